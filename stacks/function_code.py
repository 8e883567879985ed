"""The functions' code asset: `lambdas/` as Lambda runs it, with the runtime's bytecode.

The sources are copied without requirements.txt (the layer's) and without local bytecode, and
compiled with stacks.bytecode into the runtime's checked-hash pycs (sources only when no compiler
of the runtime's Python is at hand). The result is cached by a hash of the sources and the
compiler, so repeated synths (tests) copy rather than compile.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import tempfile
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from .bytecode import compile_tree, compiler_for, script_bytes
from .dependency_layer import CACHE as LAYER_CACHE

CACHE = LAYER_CACHE / "code"  # inside the layer cache (its entries are hashes: no clash)
NOT_SHIPPED = ("requirements.txt", "__pycache__", "*.pyc")
RUNTIME_DIR = "/var/task"


def sources(code_dir: Path) -> list[Path]:
    """The files the asset ships, relative to `code_dir`, in a stable order."""
    ignored = shutil.ignore_patterns(*NOT_SHIPPED)
    found: list[Path] = []
    for path in sorted(code_dir.rglob("*")):
        relative = path.relative_to(code_dir)
        if path.is_file() and not any(ignored(str(path.parent), [part]) for part in relative.parts):
            found.append(relative)
    return found


def build_code(code_dir: Path, python_version: str) -> Path:
    """The asset's folder for these sources, built once and cached."""
    digest = hashlib.sha256(f"{python_version}|{compiler_for(python_version)}|".encode())
    digest.update(script_bytes() + Path(__file__).read_bytes())
    for relative in sources(code_dir):
        digest.update(relative.as_posix().encode() + b"\0" + (code_dir / relative).read_bytes())
    key = digest.hexdigest()[:16]
    target = CACHE / key
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{key}.lock").open("w") as lock:  # parallel synths: one builds, others wait
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_dir():
            staging = Path(tempfile.mkdtemp(prefix="code-", dir=CACHE))
            try:
                shutil.copytree(
                    code_dir,
                    staging,
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(*NOT_SHIPPED),
                )
                compile_tree(staging, python_version, RUNTIME_DIR)
                staging.rename(target)  # complete or absent, never half-written
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return target


@jsii.implements(ILocalBundling)
class CompiledCode:
    """Copies the cached, compiled code into the asset output directory."""

    def __init__(self, code_dir: Path, python_version: str) -> None:
        self._code_dir = code_dir
        self._python_version = python_version

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        built = build_code(self._code_dir, self._python_version)
        shutil.copytree(built, Path(output_dir), dirs_exist_ok=True)
        return True


def function_code(code_dir: Path, runtime: lambda_.Runtime) -> lambda_.Code:
    """The code asset for functions on `runtime`."""
    python_version = runtime.name.removeprefix("python")
    return lambda_.Code.from_asset(
        str(code_dir),
        exclude=["requirements.txt", "**/__pycache__", "**/*.pyc"],
        asset_hash_type=AssetHashType.OUTPUT,  # what is shipped, pycs included
        bundling=BundlingOptions(
            image=DockerImage.from_registry("unused-local-bundling-only"),
            local=CompiledCode(code_dir, python_version),
        ),
    )
