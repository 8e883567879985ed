"""python -m local.travis: serve a fake (see local.travis.cli)."""

from local.travis.cli import main

main()
