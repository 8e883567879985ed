"""Builds the installable wheel: the CDK construct with the Lambda code as package data.

This is the project's PEP 517 build backend (`[build-system]` in pyproject.toml), so
`pip wheel --no-deps --no-build-isolation .` (what `make package` runs), `pip install .` and
`python -m build --wheel` all work offline with no build requirement at all: the wheel is a zip
file with a few metadata files, written here with the standard library only.

The wheel maps the repository to the import package `codepipeline_travis_worker` like this:

    stacks/*.py, stacks/*.mjs    -> codepipeline_travis_worker/*.py, *.mjs
    lambdas/worker/**/*.py      -> codepipeline_travis_worker/lambda_code/worker/**/*.py
    lambdas/requirements.txt    -> codepipeline_travis_worker/lambda_code/requirements.txt

`stacks.worker.lambda_code_dir` and `stacks.dependency_layer` find `lambda_code/` next to
themselves when installed, `lambdas/` when run from the repository. No bytecode, no tests.
The metadata (name, version, dependencies) comes from `[project]` in pyproject.toml.

`python -m local.package [OUTDIR]` builds the wheel without pip (default OUTDIR: dist/).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IMPORT_NAME = "codepipeline_travis_worker"
# (source folder, folder inside the import package, the files of it that are shipped)
LAYOUT = (
    ("stacks", "", ("*.py", "*.mjs")),
    ("lambdas/worker", "lambda_code/worker", ("**/*.py",)),
    ("lambdas", "lambda_code", ("requirements.txt",)),
)
NOT_SHIPPED = ("__pycache__", "tests", "test")
WHEEL_TAG = "py3-none-any"
# Reproducible archives: a fixed timestamp unless SOURCE_DATE_EPOCH says otherwise.
DEFAULT_EPOCH = 315532800  # 1980-01-01, the earliest a zip entry can hold


def _project(root: Path = ROOT) -> dict[str, Any]:
    with (root / "pyproject.toml").open("rb") as file:
        project: dict[str, Any] = tomllib.load(file)["project"]
    return project


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def shipped_files(root: Path = ROOT) -> Iterator[tuple[str, Path]]:
    """(path inside the wheel, source file) for each file of the import package, sorted."""
    files: dict[str, Path] = {}
    for source, target, patterns in LAYOUT:
        base = root / source
        for pattern in patterns:
            for path in base.glob(pattern):
                relative = path.relative_to(base)
                if not path.is_file() or any(part in NOT_SHIPPED for part in relative.parts):
                    continue
                inside = "/".join(p for p in (IMPORT_NAME, target, relative.as_posix()) if p)
                files[inside] = path
    yield from sorted(files.items())


def metadata(project: Mapping[str, Any], root: Path = ROOT) -> str:
    """The wheel's METADATA (core metadata 2.1) from pyproject's `[project]`."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
    ]
    if project.get("description"):
        lines.append(f"Summary: {project['description']}")
    if project.get("requires-python"):
        lines.append(f"Requires-Python: {project['requires-python']}")
    lines += [f"Requires-Dist: {requirement}" for requirement in project.get("dependencies", ())]
    for extra, requirements in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {req}; extra == "{extra}"' for req in requirements]
    body = ""
    readme = project.get("readme")
    if isinstance(readme, str):
        lines.append("Description-Content-Type: text/markdown")
        body = (root / readme).read_text(encoding="utf-8")
    return "\n".join(lines) + "\n\n" + body


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build(outdir: Path, root: Path = ROOT) -> Path:
    """Write the wheel into `outdir`; returns its path."""
    project = _project(root)
    name, version = _normalized(project["name"]), str(project["version"])
    dist_info = f"{name}-{version}.dist-info"
    wheel_path = Path(outdir) / f"{name}-{version}-{WHEEL_TAG}.whl"
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
    moment = time.gmtime(max(epoch, DEFAULT_EPOCH))
    date_time = (
        moment.tm_year,
        moment.tm_mon,
        moment.tm_mday,
        moment.tm_hour,
        moment.tm_min,
        moment.tm_sec,
    )
    entries: list[tuple[str, bytes]] = [
        (inside, source.read_bytes()) for inside, source in shipped_files(root)
    ]
    entries += [
        (f"{dist_info}/METADATA", metadata(project, root).encode()),
        (
            f"{dist_info}/WHEEL",
            (
                "Wheel-Version: 1.0\nGenerator: local.package\nRoot-Is-Purelib: true\n"
                f"Tag: {WHEEL_TAG}\n"
            ).encode(),
        ),
        (f"{dist_info}/top_level.txt", f"{IMPORT_NAME}\n".encode()),
    ]
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for inside, data in entries:
        writer.writerow((inside, _record_hash(data), len(data)))
    writer.writerow((f"{dist_info}/RECORD", "", ""))
    entries.append((f"{dist_info}/RECORD", record.getvalue().encode()))

    Path(outdir).mkdir(parents=True, exist_ok=True)
    partial = wheel_path.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for inside, data in entries:
            info = zipfile.ZipInfo(inside, date_time=date_time)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    partial.replace(wheel_path)  # complete or absent
    return wheel_path


# --- PEP 517 hooks -------------------------------------------------------------------------------


def get_requires_for_build_wheel(config_settings: Mapping[str, Any] | None = None) -> list[str]:
    """Nothing: the backend is this file and the standard library."""
    return []


def build_wheel(
    wheel_directory: str,
    config_settings: Mapping[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """PEP 517: build the wheel into `wheel_directory`; returns its file name."""
    return build(Path(wheel_directory)).name


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist"))
