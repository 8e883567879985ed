"""The assets carry the Lambda runtime's own bytecode (Python 3.14), made with Pyodide's CPython.

Lambda cannot write pycs into /var/task or /opt, so without them every cold start compiles the
function code and the layer from source. These tests check what is shipped: a current,
checked-hash pyc of the runtime's Python beside every source, and nothing for another Python.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks import bytecode, function_code
from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.synth
RUNTIME_PYTHON = "3.14"
PYC_314 = bytes.fromhex("2b0e0d0a")  # CPython 3.14's magic number (3627), the same in every 3.14.x


def _asset(synth: Synthesized, logical_type: str) -> Path:
    keys = {
        r["Properties"]["Code" if logical_type == "AWS::Lambda::Function" else "Content"]["S3Key"]
        for r in synth.resources(logical_type).values()
        if "S3Key" in r["Properties"].get("Code", r["Properties"].get("Content", {}))
    }
    (key,) = keys  # every function shares one code asset; one layer
    folder = synth.outdir / f"asset.{key.removesuffix('.zip')}"
    assert folder.is_dir()
    return folder


def _pycs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.pyc"))


@pytest.mark.parametrize("asset", ["AWS::Lambda::Function", "AWS::Lambda::LayerVersion"])
def test_every_source_has_the_runtimes_current_bytecode(
    default_synth: Synthesized, asset: str
) -> None:
    folder = _asset(default_synth, asset)
    sources = sorted(folder.rglob("*.py"))
    assert sources
    # CPython 3.14 (in Pyodide) accepts each pyc for its source as it is: magic, flags, hash
    assert bytecode.check_tree(folder, RUNTIME_PYTHON) == []
    # and nothing else is there: one 3.14 pyc per source, no bytecode of another Python
    assert len(_pycs(folder)) == len(sources)
    assert {p.read_bytes()[:4] for p in _pycs(folder)} == {PYC_314}
    assert all(p.name.endswith(".cpython-314.pyc") for p in _pycs(folder))


def test_a_stale_pyc_is_found(tmp_path: Path) -> None:
    # The check above can fail: a source changed after compiling is reported
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (tmp_path / "pkg" / "other.py").write_text("OTHER = 2\n")
    assert bytecode.compile_tree(tmp_path, RUNTIME_PYTHON, "/var/task")
    assert bytecode.check_tree(tmp_path, RUNTIME_PYTHON) == []
    (tmp_path / "pkg" / "other.py").write_text("OTHER = 3\n")
    (tmp_path / "pkg" / "new.py").write_text("NEW = 4\n")
    assert bytecode.check_tree(tmp_path, RUNTIME_PYTHON) == [
        "pkg/new.py: no pyc",
        "pkg/other.py: stale",
    ]


def test_only_a_compiler_of_the_runtimes_python_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    assert bytecode.compiler_for(RUNTIME_PYTHON).startswith("pyodide-314.")
    assert bytecode.compiler_for("3.13") == ""  # its pycs would be refused by that runtime
    monkeypatch.setenv(bytecode.PYODIDE_ENV, "none")
    assert bytecode.compiler_for(RUNTIME_PYTHON) == ""


def test_without_a_compiler_the_code_ships_as_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given function code, and no Pyodide at hand (an installed package without Node tools)
    code = tmp_path / "code"
    (code / "worker").mkdir(parents=True)
    (code / "worker" / "__init__.py").write_text("")
    (code / "worker" / "__pycache__").mkdir()
    (code / "worker" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"local")
    (code / "requirements.txt").write_text("requests\n")
    monkeypatch.setattr(function_code, "CACHE", tmp_path / "cache")
    monkeypatch.setenv(bytecode.PYODIDE_ENV, "none")

    built = function_code.build_code(code, RUNTIME_PYTHON)

    # Then the asset holds the sources, no local bytecode and not the layer's requirements
    assert sorted(p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()) == [
        "worker/__init__.py"
    ]
    # and with the compiler, another cache entry holds them compiled
    monkeypatch.delenv(bytecode.PYODIDE_ENV)
    compiled = function_code.build_code(code, RUNTIME_PYTHON)
    assert compiled != built
    assert [p.name for p in compiled.rglob("*.pyc")] == ["__init__.cpython-314.pyc"]
