"""Command line: serve the emulator until interrupted.

``python -m local.codepipeline --port 4599`` (or ``python -m local.codepipeline``)
prints ``AWS_ENDPOINT_URL_CODEPIPELINE=...`` for clients to use.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Iterable

from .emulator import CodePipelineEmulator


def main(argv: Iterable[str] | None = None) -> None:
    """Serve until interrupted: ``python -m local.codepipeline --port 4599``."""
    parser = argparse.ArgumentParser(description="CodePipeline job-worker API emulator")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redelivery-timeout", type=float, default=30.0)
    parser.add_argument("--pollable-delay", type=float, default=0.0)
    args = parser.parse_args(list(argv) if argv is not None else None)
    with CodePipelineEmulator(
        port=args.port,
        redelivery_timeout_seconds=args.redelivery_timeout,
        pollable_delay_seconds=args.pollable_delay,
    ) as emulator:
        print(f"AWS_ENDPOINT_URL_CODEPIPELINE={emulator.endpoint_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
