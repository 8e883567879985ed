"""`make bench`: what one action run costs and how soon its result arrives — measured, then priced.

The bench lives in the `bench` package (measurement, analysis, prices, chart); this module keeps
`python -m local.bench` working. Writes `bench/report.json` and `bench/cost.png`.
"""

from __future__ import annotations

import sys

from bench.run import main

if __name__ == "__main__":
    sys.exit(main())
