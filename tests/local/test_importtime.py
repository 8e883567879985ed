"""local.importtime: what it measures, in which interpreter, and the shape `make bench` reads.

One run of a tiny handler each: these tests check the tool, never a time (the target is
measured by `make bench`, on purpose not enforced by a timed test).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from local import importtime

TINY = "worker.handlers.tiny"


@pytest.fixture
def code(tmp_path: Path) -> tuple[Path, Path]:
    """Function code with one handler that needs a layer package, and that layer."""
    lambdas, layer = tmp_path / "lambdas", tmp_path / "layer"
    files = {
        lambdas / "worker" / "__init__.py": "",
        lambdas / "worker" / "handlers" / "__init__.py": "",
        lambdas / "worker" / "handlers" / "_shared.py": "",
        lambdas / "worker" / "handlers" / "tiny.py": "import layered\n",
        # Fails unless the probe has the fixed Lambda-like environment, not the caller's.
        lambdas / "worker" / "handlers" / "envcheck.py": (
            "import os\n"
            "assert os.environ['AWS_LAMBDA_FUNCTION_NAME']\n"
            "assert 'POWERTOOLS_TRACE_DISABLED' not in os.environ\n"
        ),
        lambdas / "worker" / "handlers" / "needs_pytest.py": "import pytest\n",
        # Serves a build provider: its first invocation imports it (entry.provider_for).
        lambdas / "worker" / "handlers" / "builds.py": "def handler(e, c):\n    provider_for(e)\n",
        lambdas / "worker" / "providers" / "__init__.py": "",
        lambdas / "worker" / "providers" / "travis" / "__init__.py": "",
        lambdas / "worker" / "providers" / "travis" / "provider.py": "raise ImportError('first')\n",
        layer / "layered" / "__init__.py": "VALUE = 1\n",
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return lambdas, layer


def test_discovers_every_public_handler_module(code: tuple[Path, Path]) -> None:
    lambdas, _ = code
    assert importtime.discover_handlers(lambdas) == [
        "worker.handlers.builds",
        "worker.handlers.envcheck",
        "worker.handlers.needs_pytest",
        "worker.handlers.tiny",
    ]


def test_measure_reports_medians_and_ratios_to_boto3(code: tuple[Path, Path]) -> None:
    lambdas, layer = code
    result = importtime.measure([TINY], runs=1, warmup=0, layer=layer, lambdas=lambdas)
    assert result["runs"] == 1
    assert result["boto3_ms"] > 0
    assert set(result["handlers"]) == {TINY}
    assert result["handlers"][TINY]["ms"] > 0
    assert result["handlers"][TINY]["ratio"] > 0
    # The sources stay as the assets ship them: no bytecode written next to them.
    assert not list(lambdas.rglob("__pycache__"))
    assert not list(layer.rglob("__pycache__"))


def test_cli_prints_the_dict_for_make_bench(
    code: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    lambdas, layer = code
    argv = ["--runs", "1", "--warmup", "0", "--layer", str(layer), "--lambdas", str(lambdas)]
    assert importtime.main([*argv, TINY]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) >= {"boto3_ms", "handlers"}
    assert set(printed["handlers"][TINY]) == {"ms", "ratio"}


def test_probe_has_a_fixed_environment_not_the_callers(
    code: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    lambdas, layer = code
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    with importtime.probe(layer, lambdas) as probe:
        assert probe.run("worker.handlers.envcheck").returncode == 0


def test_probe_sees_only_the_code_the_layer_and_boto3(code: tuple[Path, Path]) -> None:
    lambdas, layer = code
    with importtime.probe(layer, lambdas) as probe:
        assert probe.run("worker.handlers.tiny").returncode == 0  # the layer is on the path
        with pytest.raises(RuntimeError, match="No module named 'pytest'"):
            probe.run("worker.handlers.needs_pytest")  # this environment's packages are not
        # The baseline is boto3 as the runtime has it: no function code, no layer.
        assert probe.baseline_path == probe.handler_path[2:]
        assert str(layer) in probe.handler_path


def test_a_handler_serving_a_provider_is_timed_with_it(code: tuple[Path, Path]) -> None:
    # A cold start of such a handler includes the provider its first invocation imports
    lambdas, layer = code
    assert importtime.first_call_modules("worker.handlers.tiny", lambdas) == (TINY,)
    with importtime.probe(layer, lambdas) as probe:
        with pytest.raises(RuntimeError, match="ImportError: first"):
            probe.run("worker.handlers.builds")
        assert probe.run(TINY).returncode == 0


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind (Debian package)")
def test_instructions_are_counted_without_the_interpreters_start(code: tuple[Path, Path]) -> None:
    lambdas, layer = code
    result = importtime.measure_instructions([TINY], layer=layer, lambdas=lambdas)
    # boto3's import executes hundreds of millions of instructions; one tiny module far fewer
    assert result["boto3_instructions"] > 100_000_000
    tiny = result["handlers"][TINY]
    assert 0 < tiny["instructions"] < result["boto3_instructions"] / 10
    assert tiny["ratio"] == round(tiny["instructions"] / result["boto3_instructions"], 2)


def test_breakdown_names_the_imports(code: tuple[Path, Path]) -> None:
    lambdas, layer = code
    rows = importtime.breakdown(TINY, top=50, layer=layer, lambdas=lambdas)
    modules = {row["module"] for row in rows}
    assert {TINY, "layered"} <= modules
    assert all(row["cumulative_ms"] >= row["self_ms"] >= 0 for row in rows)


def test_runtime_is_boto3_and_its_closure() -> None:
    names = {dist.metadata["Name"].lower() for dist in importtime.distribution_closure("boto3")}
    assert {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil"} <= names
    with importtime.runtime_site() as site:
        assert {"boto3", "botocore", "jmespath", "urllib3", "dateutil"} <= {
            p.name for p in site.iterdir()
        }
        assert not (site / "requests").exists()


def test_rejects_zero_runs(code: tuple[Path, Path]) -> None:
    lambdas, layer = code
    with pytest.raises(ValueError, match="runs"):
        importtime.measure([TINY], runs=0, layer=layer, lambdas=lambdas)
