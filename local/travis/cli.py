"""Serve a Travis fake for manual runs and demos: python -m local.travis --port 8099."""

from __future__ import annotations

import argparse
import contextlib
import threading

from local.clock import VirtualClock
from local.travis.fake import TravisFake
from local.travis.model import ALL, DEFAULT_TOKEN, OUTCOMES, RepoScript, token_fingerprint


def main(argv: list[str] | None = None) -> None:
    """Serve a fake for manual runs and demos: python -m local.travis --port 8099."""
    parser = argparse.ArgumentParser(description="A fake of the Travis CI API v3")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--outcome", default="passed", choices=OUTCOMES)
    parser.add_argument("--scale", type=float, default=1.0, help="real seconds per virtual second")
    args = parser.parse_args(argv)  # every owner/name slug exists (auto_repos)
    fake = TravisFake(
        tokens={args.token: ALL}, auto_repos=True, port=args.port, clock=VirtualClock(args.scale)
    )
    fake.auto_template = RepoScript(outcome=args.outcome)
    with fake:
        print(f"Travis fake on {fake.base_url} (token fingerprint {token_fingerprint(args.token)})")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
