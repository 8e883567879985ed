"""The dependency layer as synthesized (what Lambda unpacks in /opt): importable, small, pruned.

"Importable" is checked the way Lambda imports: each handler module in a fresh, isolated
interpreter whose path is the function code, the layer's `python/` and boto3's closure (what the
runtime brings), nothing else. The layer is built for the Lambda platform, not for this machine;
that check is meaningful because the layer is pure Python (asserted below).
"""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.importtime import LAMBDAS, Probe, discover_handlers, probe, runtime_site
from stacks.dependency_layer import POWERTOOLS_KEEP, prune
from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.synth

# Today 1.37 MB raw, 0.43 MB zipped (Powertools' logging, metrics and parameters; requests, idna,
# certifi, typing_extensions). The bounds leave about 30 % for upgrades and stay below what they
# guard against: the whole of Powertools is 3.7 MB, charset_normalizer 0.9 MB, urllib3 0.46 MB
# (that one also trips test_layer_shadows_nothing_the_runtime_has), the X-Ray SDK + wrapt 1.5 MB.
MAX_RAW_BYTES = 1_800_000
MAX_ZIPPED_BYTES = 560_000
WORKER = LAMBDAS / "worker"


@pytest.fixture(scope="module")
def layer_site(default_synth: Synthesized) -> Path:
    """The `python/` folder of the layer asset the template points at."""
    (layer,) = default_synth.resources("AWS::Lambda::LayerVersion").values()
    asset_hash = layer["Properties"]["Content"]["S3Key"].removesuffix(".zip")
    site = default_synth.outdir / f"asset.{asset_hash}" / "python"
    assert site.is_dir(), f"no bundled layer at {site}"
    return site


@pytest.fixture(scope="module")
def prober(layer_site: Path) -> Iterator[Probe]:
    with probe(layer_site) as started:
        yield started


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_layer_is_pure_python(layer_site: Path) -> None:
    compiled = [str(p.relative_to(layer_site)) for p in _files(layer_site) if p.suffix == ".so"]
    assert not compiled, (
        f"{compiled}: a compiled module cannot be loaded by this machine's interpreter, so the "
        "import check below would test a fallback, not what Lambda runs: check it on the target"
    )


@pytest.mark.parametrize("module", discover_handlers())
def test_handler_imports_with_only_the_layer_and_boto3(prober: Probe, module: str) -> None:
    completed = prober.run(module)  # raises with the traceback when an import fails
    # Anything on stderr at import (a warning, say) would be in every cold start's log.
    assert completed.stderr == ""


_USE_POWERTOOLS = """\
import sys
sys.path[:0] = {path!r}
from aws_lambda_powertools.utilities import parameters
from worker.observability import logger, metrics

@logger.inject_lambda_context(log_event=False, correlation_id_path="state.jobId")
@metrics.log_metrics
def handler(event, context):
    metrics.add_metric(name="Probe", unit="Count", value=1)
    logger.info("probe")

class Context:
    function_name = "probe"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:probe"
    aws_request_id = "request"

handler({{"state": {{"jobId": "job-1"}}}}, Context())
parameters.SecretsProvider()
"""


def test_powertools_features_work_from_the_pruned_layer(prober: Probe) -> None:
    """Beyond imports: the log correlation id (JMESPath, from the runtime's jmespath), an EMF
    metric, and the parameters provider the token is read with."""
    completed = subprocess.run(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-I", "-S", "-B", "-c", _USE_POWERTOOLS.format(path=prober.handler_path)],
        capture_output=True,
        text=True,
        env=prober.env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    log_line, metric_line = (json.loads(line) for line in completed.stdout.splitlines())
    assert log_line["correlation_id"] == "job-1"
    assert metric_line["Probe"] == [1.0]


def test_layer_size(layer_site: Path) -> None:
    # Sources and data: what upgrades grow. The runtime's pycs beside them (test_bytecode) add
    # about 0.8 as much again.
    files = [p for p in _files(layer_site) if p.suffix != ".pyc"]
    raw = sum(p.stat().st_size for p in files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            archive.write(path, path.relative_to(layer_site.parent).as_posix())
    assert raw <= MAX_RAW_BYTES, f"{raw} bytes raw"
    assert len(buffer.getvalue()) <= MAX_ZIPPED_BYTES, f"{len(buffer.getvalue())} bytes zipped"


def test_layer_shadows_nothing_the_runtime_has(layer_site: Path) -> None:
    """A copy of one of boto3's dependencies would be imported (and compiled) instead of the
    runtime's compiled one, by boto3 as well."""
    with runtime_site() as runtime:
        provided = {p.name for p in runtime.iterdir()}
    assert not provided & {p.name for p in layer_site.iterdir()}


def test_layer_holds_no_stubs_scripts_or_tests(layer_site: Path) -> None:
    # (bytecode only the runtime's, beside its source: test_bytecode)
    unused = [
        str(p.relative_to(layer_site))
        for p in layer_site.rglob("*")
        if p.name in {"bin", "tests", "py.typed", ".complete"}
        or p.suffix == ".pyi"
        or p.name.endswith("-stubs")
        or (p.parent.name.endswith(".dist-info") and p.name in {"RECORD", "WHEEL", "INSTALLER"})
    ]
    assert not unused


# --- every third-party import of the function code resolves in the layer or the runtime ------


def _imports(node: ast.AST) -> Iterator[tuple[str, str | None, int]]:
    """(module, imported name or None, line) of every import, at any depth, but those only
    type checkers see (`if TYPE_CHECKING:`)."""
    if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
        for statement in node.orelse:
            yield from _imports(statement)
        return
    if isinstance(node, ast.Import):
        yield from ((alias.name, None, node.lineno) for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        yield from ((node.module, alias.name, node.lineno) for alias in node.names)
    for child in ast.iter_child_nodes(node):
        yield from _imports(child)


def _module_in(dotted: str, roots: list[Path]) -> bool:
    for root in roots:
        base = root.joinpath(*dotted.split("."))
        if (base / "__init__.py").is_file() or base.with_suffix(".py").is_file():
            return True
    return False


def test_every_import_of_the_function_code_is_in_the_layer_or_the_runtime(
    layer_site: Path,
) -> None:
    """Also the lazy ones inside functions, which the handler import check never runs.

    `from package import name` needs `package.name` too when that is a module where Powertools
    and requests are installed in full (this environment), since the layer is pruned.
    """
    installed = [Path(sysconfig.get_paths()["purelib"])]
    missing = []
    with runtime_site() as runtime:
        roots = [layer_site, runtime]
        for source in sorted(WORKER.rglob("*.py")):
            for module, name, line in _imports(ast.parse(source.read_text(encoding="utf-8"))):
                top = module.partition(".")[0]
                if top == "worker" or top in sys.stdlib_module_names:
                    continue
                wanted = [module]
                if name and _module_in(f"{module}.{name}", installed):
                    wanted.append(f"{module}.{name}")
                where = f"{source.relative_to(LAMBDAS)}:{line}"
                missing += [f"{where} {m}" for m in wanted if not _module_in(m, roots)]
    assert not missing, (
        f"not in the layer: {missing}; add the package to lambdas/requirements.txt, or the "
        "Powertools feature to POWERTOOLS_KEEP in stacks/dependency_layer.py"
    )


# --- the pruning rules, on a made-up install ----------------------------------------------------


def test_prune_keeps_what_is_imported_and_read(tmp_path: Path) -> None:
    site = tmp_path / "python"
    files = {
        "aws_lambda_powertools/__init__.py": "",
        "aws_lambda_powertools/logging/logger.py": "",
        "aws_lambda_powertools/utilities/__init__.py": "",
        "aws_lambda_powertools/utilities/typing/__init__.py": "",
        "aws_lambda_powertools/utilities/batch/__init__.py": "",
        "aws_lambda_powertools/event_handler/api_gateway.py": "",
        "aws_lambda_powertools/py.typed": "",
        "requests/__init__.py": "",
        "requests/__init__.pyi": "",
        "requests/__pycache__/__init__.cpython-314.pyc": "",
        "requests/tests/test_api.py": "",
        "wrapt-stubs/__init__.pyi": "",
        "bin/normalizer": "",
        "requests-2.0.dist-info/METADATA": "Name: requests\nVersion: 2.0\n\n# README\nlong text\n",
        "requests-2.0.dist-info/RECORD": "",
        "requests-2.0.dist-info/WHEEL": "",
        "requests-2.0.dist-info/entry_points.txt": "",
        "requests-2.0.dist-info/licenses/LICENSE": "Apache",
        "requests-2.0.dist-info/NOTICE": "notice",
    }
    for name, text in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)

    prune(site)

    left = {p.relative_to(site).as_posix() for p in _files(site)}
    assert left == {
        "aws_lambda_powertools/__init__.py",
        "aws_lambda_powertools/logging/logger.py",
        "aws_lambda_powertools/utilities/__init__.py",
        "aws_lambda_powertools/utilities/typing/__init__.py",
        "requests/__init__.py",
        "requests-2.0.dist-info/METADATA",
        "requests-2.0.dist-info/licenses/LICENSE",
        "requests-2.0.dist-info/NOTICE",
    }
    assert (site / "requests-2.0.dist-info/METADATA").read_text() == (
        "Name: requests\nVersion: 2.0\n"
    )
    assert not (site / "aws_lambda_powertools" / "event_handler").exists()  # no empty folders
    assert {"logging", "utilities/typing"} <= POWERTOOLS_KEEP
