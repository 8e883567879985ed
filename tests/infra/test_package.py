"""The installable package: a separate CDK app installs the wheel and synthesizes the worker.

The wheel is built as `make package` builds it, installed with `pip install --no-deps` into a
fresh virtual environment outside the repository whose other packages (aws-cdk-lib, jsii, ...)
come from the project's .venv through a `.pth` file, so nothing is downloaded. A user's app in a
temporary folder (not the repository: neither `stacks` nor `lambdas` is importable there)
imports `TravisWorker`, `WorkerConfig` and `TravisBuildAction` from `codepipeline_travis_worker`
and synthesizes; the functions' code must be the installed package's `lambda_code/`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest

from local.template import lambda_functions, resources_of_type

pytestmark = pytest.mark.synth

ROOT = Path(__file__).resolve().parents[2]
IMPORT_NAME = "codepipeline_travis_worker"

USER_APP = '''
"""A user's CDK app: the worker and a pipeline that uses its action, from the installed package."""
import importlib.util
import json
import sys

from aws_cdk import App, Stack
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_s3 as s3

import codepipeline_travis_worker
from codepipeline_travis_worker import TravisBuildAction, TravisWorker, WorkerConfig
from codepipeline_travis_worker.dependency_layer import CACHE, REQUIREMENTS
from codepipeline_travis_worker.worker import lambda_code_dir


class UserStack(Stack):
    def __init__(self, scope, construct_id):
        super().__init__(scope, construct_id)
        TravisWorker(self, "Worker", config=WorkerConfig(category="Build"))
        source = codepipeline.Artifact("Source")
        pipeline = codepipeline.Pipeline(self, "Pipeline")
        pipeline.add_stage(
            stage_name="Source",
            actions=[
                actions.S3SourceAction(
                    action_name="Source",
                    bucket=s3.Bucket(self, "Sources"),
                    bucket_key="app.zip",
                    output=source,
                )
            ],
        )
        pipeline.add_stage(
            stage_name="Build",
            actions=[
                TravisBuildAction(
                    action_name="Travis",
                    input=source,
                    owner="my-org",
                    project_name="my-app",
                    branch="main",
                    category="Build",
                )
            ],
        )


app = App(outdir=sys.argv[1])
UserStack(app, "UserStack")
app.synth()
print(json.dumps({
    "package": codepipeline_travis_worker.__file__,
    "lambda_code": str(lambda_code_dir()),
    "requirements": str(REQUIREMENTS),
    "cache": str(CACHE),
    "repository_importable": [
        name for name in ("stacks", "worker", "local") if importlib.util.find_spec(name)
    ],
}))
'''


def _run(*command: str | Path, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Build, install into a fresh venv, synthesize the user's app; what the app reported."""
    base = tmp_path_factory.mktemp("package")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # The layer built by the repository's synths (the same requirements and pruning: same key).
    env["CODEPIPELINE_TRAVIS_WORKER_CACHE"] = str(ROOT / ".build" / "layer")

    # Given the wheel, built as `make package` builds it
    dist = base / "dist"
    pip = (sys.executable, "-m", "pip")
    _run(
        *pip,
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        dist,
        ROOT,
        cwd=base,
        env=env,
    )
    (wheel,) = dist.glob(f"{IMPORT_NAME}-*-py3-none-any.whl")

    # ... installed without its dependencies into a fresh venv that borrows them from .venv
    venv = base / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base, env=env)
    python = venv / "bin" / "python"
    site = Path(
        _run(
            python,
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
            cwd=base,
            env=env,
        ).strip()
    )
    (site / "project_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(
        *pip,
        "--python",
        python,
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        wheel,
        cwd=base,
        env=env,
    )

    # When a separate app, outside the repository, synthesizes with it
    app_dir = base / "user-app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(textwrap.dedent(USER_APP))
    outdir = base / "cdk.out"
    report = json.loads(
        _run(python, "app.py", outdir, cwd=app_dir, env=env).strip().splitlines()[-1]
    )
    template = json.loads((outdir / "UserStack.template.json").read_text())
    return {
        "wheel": wheel,
        "site": site,
        "python": python,
        "outdir": outdir,
        "template": template,
        "env": env,
        **report,
    }


def test_wheel_carries_the_construct_and_the_lambda_code_without_bytecode_or_tests(
    installed: dict[str, Any],
) -> None:
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    package = {n for n in names if n.startswith(f"{IMPORT_NAME}/")}
    assert {
        f"{IMPORT_NAME}/__init__.py",
        f"{IMPORT_NAME}/worker.py",
        f"{IMPORT_NAME}/pipeline_action.py",
        f"{IMPORT_NAME}/config.py",
        f"{IMPORT_NAME}/lambda_code/requirements.txt",
        f"{IMPORT_NAME}/lambda_code/worker/handlers/claim.py",
    } <= package
    shipped = {
        p.relative_to(ROOT / "lambdas").as_posix()
        for p in (ROOT / "lambdas").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert {f"{IMPORT_NAME}/lambda_code/{p}" for p in shipped} <= package
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n]
    metadata = zipfile.ZipFile(installed["wheel"]).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))
    )
    for dependency in ("aws-cdk-lib", "constructs", "cdk-nag"):
        assert f"Requires-Dist: {dependency}".encode() in metadata


def test_user_app_imports_the_installed_package_not_the_repository(
    installed: dict[str, Any],
) -> None:
    site = installed["site"]
    assert Path(installed["package"]).is_relative_to(site)
    assert Path(installed["lambda_code"]) == site / IMPORT_NAME / "lambda_code"
    assert Path(installed["requirements"]) == site / IMPORT_NAME / "lambda_code/requirements.txt"
    assert installed["repository_importable"] == []
    assert Path(installed["cache"]) == ROOT / ".build" / "layer"  # as the test asked


def test_installed_package_caches_layers_outside_site_packages(installed: dict[str, Any]) -> None:
    env = {k: v for k, v in installed["env"].items() if k != "CODEPIPELINE_TRAVIS_WORKER_CACHE"}
    env["XDG_CACHE_HOME"] = str(installed["outdir"].parent / "user-cache")
    cache = _run(
        installed["python"],
        "-c",
        "from codepipeline_travis_worker.dependency_layer import CACHE; print(CACHE)",
        cwd=installed["outdir"].parent,
        env=env,
    ).strip()
    assert Path(cache) == Path(env["XDG_CACHE_HOME"]) / "codepipeline-travis-worker" / "layer"


def test_user_app_synthesizes_the_action_type_state_machine_and_pipeline_action(
    installed: dict[str, Any],
) -> None:
    template = installed["template"]
    (action_type,) = resources_of_type(template, "AWS::CodePipeline::CustomActionType").values()
    assert action_type["Properties"]["Provider"] == "Travis"
    assert action_type["Properties"]["Category"] == "Build"
    assert len(resources_of_type(template, "AWS::StepFunctions::StateMachine")) == 1
    (pipeline,) = resources_of_type(template, "AWS::CodePipeline::Pipeline").values()
    (travis,) = [
        a for s in pipeline["Properties"]["Stages"] for a in s["Actions"] if a["Name"] == "Travis"
    ]
    assert travis["ActionTypeId"] == {
        "Category": "Build",
        "Owner": "Custom",
        "Provider": "Travis",
        "Version": "1",
    }


def test_functions_code_is_the_packaged_lambda_code(installed: dict[str, Any]) -> None:
    outdir: Path = installed["outdir"]
    functions = lambda_functions(installed["template"])
    assert functions
    assets = json.loads((outdir / "UserStack.assets.json").read_text())["files"]
    for function in functions.values():
        key = function["Code"]["S3Key"]
        source = Path(assets[key.removesuffix(".zip")]["source"]["path"])
        staged = source if source.is_absolute() else outdir / source
        # The code asset was staged from the installed package into cdk.out, not from lambdas/
        assert staged.is_relative_to(outdir) or staged.is_relative_to(installed["site"])
        assert (staged / "worker" / "handlers" / "claim.py").is_file()
        assert not (staged / "requirements.txt").exists()
        assert not list(staged.rglob("__pycache__"))
