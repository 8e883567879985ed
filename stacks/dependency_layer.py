"""The Lambda dependency layer, bundled locally with pip (no Docker engine needed).

pip downloads wheels for the Lambda platform (manylinux2014 arm64, the runtime's Python version)
into `python/`, the layout Lambda layers use. The result is cached under `.build/` by a hash of
the requirements and target, so repeated synths (tests) do not reinstall.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "lambdas" / "requirements.txt"
CACHE = ROOT / ".build" / "layer"


@jsii.implements(ILocalBundling)
class PipBundling:
    """Installs the requirements for the Lambda platform into the asset output directory."""

    def __init__(self, requirements: Path, platform: str, python_version: str) -> None:
        self._requirements = requirements
        self._platform = platform
        self._python_version = python_version

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        cached = self._cached_install()
        shutil.copytree(cached, Path(output_dir), dirs_exist_ok=True)
        return True

    def _cached_install(self) -> Path:
        key = hashlib.sha256(
            self._requirements.read_bytes() + f"{self._platform}|{self._python_version}".encode()
        ).hexdigest()[:16]
        target = CACHE / key
        CACHE.mkdir(parents=True, exist_ok=True)
        # Several synths may run at once (parallel tests): one installs, the others wait for it.
        with (CACHE / f"{key}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (target / ".complete").exists():
                self._install(target)
        return target

    def _install(self, target: Path) -> None:
        staging = Path(tempfile.mkdtemp(prefix="layer-", dir=CACHE))
        site = staging / "python"
        subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--requirement",
                str(self._requirements),
                "--target",
                str(site),
                "--platform",
                self._platform,
                "--python-version",
                self._python_version,
                "--implementation",
                "cp",
                "--only-binary=:all:",
                "--no-compile",
                "--no-deps",  # requirements.txt is the full pinned closure
            ],
            check=True,
        )
        for cache_dir in site.rglob("__pycache__"):
            shutil.rmtree(cache_dir, ignore_errors=True)
        (staging / ".complete").write_text("ok\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)  # complete or absent, never half-written


class DependencyLayer(Construct):
    """One layer with the functions' third-party packages (Powertools, requests)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
    ) -> None:
        super().__init__(scope, construct_id)
        arch = "aarch64" if architecture == lambda_.Architecture.ARM_64 else "x86_64"
        python_version = runtime.name.removeprefix("python")
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(
                str(REQUIREMENTS.parent),
                exclude=["**", "!requirements.txt"],
                bundling=BundlingOptions(
                    image=DockerImage.from_registry("unused-local-bundling-only"),
                    local=PipBundling(REQUIREMENTS, f"manylinux2014_{arch}", python_version),
                ),
            ),
            compatible_runtimes=[runtime],
            compatible_architectures=[architecture],
            description="Powertools for AWS Lambda and requests for the CodePipeline Travis worker",
        )
