"""Bytecode for the Lambda runtime's Python, compiled here without that Python.

Lambda cannot write bytecode into /var/task or /opt (read-only), so an asset without pycs is
compiled from source at every cold start: a good part of a handler's import time. This machine's
Python is not the runtime's (a pyc holds the version's magic number), but Pyodide (an npm package,
pinned in package.json) is CPython compiled to WebAssembly, and bytecode does not depend on the
platform: Pyodide's CPython of the runtime's version writes the runtime's pycs. They are
checked-hash pycs (PEP 552): valid whatever times the zip gives the files, and the interpreter
still compares them with the source's hash, so a stale pyc is never used.

Where no Pyodide of the runtime's version is at hand (an installed package without Node tools),
the assets ship sources only, as before: slower cold starts, same behaviour.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve().parent / "compile_bytecode.mjs"
PYODIDE_ENV = "CODEPIPELINE_TRAVIS_WORKER_PYODIDE"  # a Pyodide folder (or "none": sources only)


def pyodide_dir() -> Path | None:
    """The Pyodide package to compile with: $CODEPIPELINE_TRAVIS_WORKER_PYODIDE, or the project's
    node_modules/pyodide."""
    configured = os.environ.get(PYODIDE_ENV)
    if configured == "none":
        return None
    folder = Path(configured) if configured else ROOT / "node_modules" / "pyodide"
    return folder if (folder / "pyodide.mjs").is_file() else None


def pyodide_python(folder: Path) -> str:
    """The Python version a Pyodide package runs ("314.0.8" -> "3.14")."""
    version = str(json.loads((folder / "package.json").read_text(encoding="utf-8"))["version"])
    major = version.split(".", maxsplit=1)[0]
    return f"{major[0]}.{major[1:]}"


def compiler_for(python_version: str) -> str:
    """What compile_tree would use for this Python ("pyodide-314.0.8"), or "" for none; part of
    the cache keys of compiled assets."""
    folder = pyodide_dir()
    if folder is None or shutil.which("node") is None or not SCRIPT.is_file():
        return ""
    if pyodide_python(folder) != python_version:
        return ""
    version = json.loads((folder / "package.json").read_text(encoding="utf-8"))["version"]
    return f"pyodide-{version}"


def script_bytes() -> bytes:
    """The compile script and this module (part of compiled assets' cache keys)."""
    script = SCRIPT.read_bytes() if SCRIPT.is_file() else b""
    return script + Path(__file__).read_bytes()


def compile_tree(folder: Path, python_version: str, runtime_dir: str) -> bool:
    """Write the runtime's pycs beside every .py under `folder`, and check them; False (nothing
    written) when no compiler of that Python is at hand. `runtime_dir` is where the folder lives
    in Lambda (the file names tracebacks show)."""
    pyodide = pyodide_dir()
    if pyodide is None or not compiler_for(python_version):
        return False
    _run(pyodide, folder, runtime_dir)
    return True


def check_tree(folder: Path, python_version: str) -> list[str]:
    """What is wrong with the pycs under `folder` for that Python ([] when each .py has a valid,
    current one); RuntimeError when no compiler of that Python is at hand to tell."""
    pyodide = pyodide_dir()
    if pyodide is None or not compiler_for(python_version):
        raise RuntimeError(f"no Pyodide of Python {python_version} to check with")
    try:
        _run(pyodide, folder, "--check")
    except BytecodeError as error:
        return error.problems
    return []


class BytecodeError(RuntimeError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems) or "the compiler failed")
        self.problems = problems


def _run(pyodide: Path, folder: Path, third: str) -> None:
    completed = subprocess.run(  # noqa: S603 - fixed script, our own paths
        ["node", str(SCRIPT), str(pyodide), str(folder.resolve()), third],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        lines = completed.stdout.strip().splitlines()
        header = next((i for i, line in enumerate(lines) if " problem(s)" in line), None)
        found = lines[header + 1 :] if header is not None else []
        raise BytecodeError(
            found
            or [
                "compiling the assets' bytecode with Pyodide failed (set "
                f"{PYODIDE_ENV}=none to ship sources only): {completed.stderr.strip()[-1500:]}"
            ]
        )
