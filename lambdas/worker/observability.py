"""Powertools singletons shared by every handler (service name and namespace come from the env).

Logs are Powertools' structured JSON (each line carries the X-Ray trace id Lambda sets in
`_X_AMZN_TRACE_ID`), metrics are EMF lines on stdout. Traces come from Lambda's and Step Functions'
own active tracing, not from an SDK in the function: Powertools' Tracer imported the X-Ray SDK (in
maintenance since February 2026), and with it three quarters of a step's cold import.
"""

from __future__ import annotations

import warnings

# The package root runs on either import path (and imports Logger and Metrics itself), so these
# paths cost the same as `from aws_lambda_powertools import ...`: they name what is relied on.
from aws_lambda_powertools.logging.logger import Logger
from aws_lambda_powertools.metrics.metrics import Metrics

# The layer leaves charset_normalizer out (see lambdas/requirements.txt), which requests reports
# at import, once per cold start. Set here because the handlers import this before requests.
warnings.filterwarnings(
    "ignore", message="Unable to find acceptable character detection", module="requests"
)

logger = Logger()
metrics = Metrics()
