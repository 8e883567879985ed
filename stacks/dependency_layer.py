"""The Lambda dependency layer, bundled locally with pip (no Docker engine needed).

pip downloads wheels for the Lambda platform (manylinux2014 arm64, the runtime's Python version)
into `python/`, the layout Lambda layers use, and the install is then pruned to what the functions
import (`prune`). The result is cached under `.build/` by a hash of the requirements, the target
and this file (so a change to the pruning rebuilds), so repeated synths (tests) do not reinstall.

Lambda cannot write bytecode into /opt (read-only), so the layer carries the runtime's own pycs,
compiled with Pyodide's CPython of the runtime's version (stacks.bytecode); without Pyodide it
ships sources only, compiled at each cold start. Either way it does not duplicate what the
runtime already has, compiled (boto3's closure; see requirements.txt).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .bytecode import compile_tree, compiler_for, script_bytes

ROOT = Path(__file__).resolve().parent.parent
# The installed package (the wheel of `make package`) carries the Lambda code in `lambda_code/`
# next to this file; the repository has it in `lambdas/` (as stacks.worker.lambda_code_dir).
PACKAGED = Path(__file__).resolve().parent / "lambda_code"
REQUIREMENTS = (PACKAGED if PACKAGED.is_dir() else ROOT / "lambdas") / "requirements.txt"
CACHE_ENV = "CODEPIPELINE_TRAVIS_WORKER_CACHE"


def layer_cache_dir() -> Path:
    """Where built layers are kept: $CODEPIPELINE_TRAVIS_WORKER_CACHE when set; else `.build/layer`
    in the repository, or, installed (never inside site-packages), the user's cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if not PACKAGED.is_dir():
        return ROOT / ".build" / "layer"
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return user_cache / "codepipeline-travis-worker" / "layer"


CACHE = layer_cache_dir()

# The Powertools features the functions use (paths inside the package); the rest (event handlers,
# batch, idempotency, parser, data classes, ... 3.4 of its 3.7 MB) is left out. The package root
# imports logging, metrics and tracing (Tracer's module, not the X-Ray SDK); Logger imports
# utilities.jmespath_utils, which imports exceptions; the Travis token is read with parameters.
# A new Powertools import in lambdas/worker must be listed here: tests/infra/test_dependency_layer
# fails on one that is not.
POWERTOOLS_KEEP = frozenset(
    {
        "__init__.py",
        "package_logger.py",
        "exceptions",
        "logging",
        "metrics",
        "shared",
        "tracing",
        "warnings",
        "utilities/__init__.py",
        "utilities/jmespath_utils",
        "utilities/parameters",
        "utilities/typing",
    }
)
PRUNED_PACKAGES = {"aws_lambda_powertools": POWERTOOLS_KEEP}
# Never imported at run time: bytecode for the wrong Python, type information, console scripts.
UNUSED_FILES = ("*.pyc", "*.pyi", "py.typed")
UNUSED_DIRS = ("__pycache__", "*-stubs", "tests", "test")
# Of *.dist-info, METADATA stays (importlib.metadata versions, and scanners such as Amazon Inspector
# read it to know what is installed) without its long description, and the license files stay.
LICENSE_PREFIXES = ("LICENSE", "LICENCE", "NOTICE", "COPYING", "AUTHORS")


@jsii.implements(ILocalBundling)
class PipBundling:
    """Installs the requirements for the Lambda platform into the asset output directory."""

    def __init__(self, requirements: Path, platform: str, python_version: str) -> None:
        self._requirements = requirements
        self._platform = platform
        self._python_version = python_version

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        cached = build_layer(self._requirements, self._platform, self._python_version)
        shutil.copytree(cached, Path(output_dir), dirs_exist_ok=True, ignore=_not_in_asset)
        return True


def _not_in_asset(folder: str, names: list[str]) -> set[str]:
    return {".complete"} & set(names)


def build_layer(requirements: Path, platform: str, python_version: str) -> Path:
    """The pruned install for this target, built once and cached: a folder holding `python/`."""
    key = hashlib.sha256(
        requirements.read_bytes()
        + f"{platform}|{python_version}|{compiler_for(python_version)}|".encode()
        + Path(__file__).read_bytes()
        + script_bytes()
    ).hexdigest()[:16]
    target = CACHE / key
    CACHE.mkdir(parents=True, exist_ok=True)
    # Several synths may run at once (parallel tests): one installs, the others wait for it.
    with (CACHE / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".complete").exists():
            _install(requirements, platform, python_version, target)
    return target


def _install(requirements: Path, platform: str, python_version: str, target: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix="layer-", dir=CACHE))
    try:
        _install_into(requirements, platform, python_version, staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)  # complete or absent, never half-written
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # only left when something failed


def _install_into(requirements: Path, platform: str, python_version: str, staging: Path) -> None:
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
            str(requirements),
            "--target",
            str(site),
            "--platform",
            platform,
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            "--only-binary=:all:",
            "--no-compile",
            "--no-deps",  # requirements.txt is the full pinned closure (less the runtime's)
        ],
        check=True,
    )
    prune(site)
    compile_tree(site, python_version, "/opt/python")
    (staging / ".complete").write_text("ok\n")


def prune(site: Path) -> None:
    """Remove from an installed site folder what the functions never import or read."""
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts: nothing runs them in Lambda
    for package, keep in PRUNED_PACKAGES.items():
        _keep_only(site / package, keep)
    for pattern in UNUSED_DIRS:
        for folder in sorted(site.rglob(pattern), reverse=True):
            if folder.is_dir() and not folder.name.endswith(".dist-info"):
                shutil.rmtree(folder)
    for pattern in UNUSED_FILES:
        for file in site.rglob(pattern):
            file.unlink()
    for info in site.glob("*.dist-info"):
        _prune_dist_info(info)


def _keep_only(package: Path, keep: frozenset[str]) -> None:
    """Delete every file of `package` that is not in, or under, a path of `keep`."""
    if not package.is_dir():
        return
    for file in [p for p in package.rglob("*") if p.is_file()]:
        relative = file.relative_to(package).as_posix()
        if not any(relative == k or relative.startswith(f"{k}/") for k in keep):
            file.unlink()
    for folder in sorted((p for p in package.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def _prune_dist_info(info: Path) -> None:
    for entry in list(info.iterdir()):
        if entry.name == "METADATA":
            headers, _, _description = entry.read_text(encoding="utf-8").partition("\n\n")
            entry.write_text(headers + "\n", encoding="utf-8")
        elif entry.name == "licenses" or entry.name.upper().startswith(LICENSE_PREFIXES):
            continue
        elif entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()  # RECORD, WHEEL, INSTALLER, REQUESTED, top_level.txt, entry_points.txt


def lambda_target(runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> tuple[str, str]:
    """pip's `--platform` and `--python-version` for a Lambda runtime and architecture."""
    # By name: jsii hands out a new proxy object per access, so `==` on the objects is never true
    # (which once gave the arm64 functions an x86_64 layer).
    arch = "aarch64" if architecture.name == lambda_.Architecture.ARM_64.name else "x86_64"
    return f"manylinux2014_{arch}", runtime.name.removeprefix("python")


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
        platform, python_version = lambda_target(runtime, architecture)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(
                str(REQUIREMENTS.parent),
                exclude=["**", "!requirements.txt"],
                # Hash what is shipped, not requirements.txt: a change to the pruning must publish
                # a new layer version too.
                asset_hash_type=AssetHashType.OUTPUT,
                bundling=BundlingOptions(
                    image=DockerImage.from_registry("unused-local-bundling-only"),
                    local=PipBundling(REQUIREMENTS, platform, python_version),
                ),
            ),
            compatible_runtimes=[runtime],
            compatible_architectures=[architecture],
            description="Powertools for AWS Lambda and requests for the CodePipeline Travis worker",
        )
