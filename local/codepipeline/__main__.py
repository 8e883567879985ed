"""``python -m local.codepipeline``: serve until interrupted."""

from .cli import main

main()
