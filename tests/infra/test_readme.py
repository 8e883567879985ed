"""The README's runbook names what the stack really synthesizes, and documents every metric."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from local.runner import synthesize

pytestmark = pytest.mark.synth
ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
STACK = "CodePipelineTravisWorker"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return synthesize({"webhooks": True})


def test_every_output_the_readme_queries_exists(template: dict[str, Any]) -> None:
    named = set(re.findall(r"OutputKey=='(\w+)'", README))
    listed = set(re.findall(r"`(\w+)`", README.split("Stack outputs:", 1)[1].split("\n\n", 1)[0]))
    assert named and listed
    assert named | listed <= set(template["Outputs"])


def test_log_groups_are_where_the_runbook_looks(template: dict[str, Any]) -> None:
    # Function log groups carry no fixed name: CloudFormation names them <stack>-<logical id>-…,
    # and every logical id starts with the construct's id, "Worker" (the runbook's prefix).
    groups = {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::Logs::LogGroup"}
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    function_groups = {f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] for f in functions}
    assert function_groups <= set(groups)
    for logical_id in function_groups:
        assert logical_id.startswith("Worker")
        assert "LogGroupName" not in groups[logical_id]["Properties"]
    assert '--log-group-name-prefix "$STACK-Worker"' in README
    named = [r["Properties"].get("LogGroupName") for r in groups.values()]
    assert f"/aws/vendedlogs/states/{STACK}-Worker" in named
    assert "/aws/vendedlogs/states/<stack>-Worker" in README


def test_the_state_machine_name_is_the_one_execution_arns_are_built_from(
    template: dict[str, Any],
) -> None:
    (machine,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    assert machine["Properties"]["StateMachineName"] == f"{STACK}-Worker"
    assert "${SM/:stateMachine:/:execution:}" in README


def test_every_metric_the_worker_emits_is_documented() -> None:
    code = "\n".join(p.read_text() for p in (ROOT / "lambdas" / "worker").rglob("*.py"))
    emitted = set(re.findall(r'add_metric\(name="(\w+)"', code)) | set(
        re.findall(r'name="(\w+)",\s*unit=MetricUnit', code)
    )
    assert "JobsFailed" in emitted and "BuildsPassed" in emitted
    metrics_section = README.split("**Metrics**", 1)[1].split("\n\n", 1)[0]
    undocumented = sorted(m for m in emitted if f"`{m}`" not in metrics_section)
    assert undocumented == []


def test_every_end_state_is_documented(template: dict[str, Any]) -> None:
    definition = str(template)
    for state in (
        "NotClaimed",
        "LinkPublished",
        "HandedOver",
        "BuildPassed",
        "BuildFailed",
        "ReportedFailure",
        "Abandoned",
        "JobGone",
    ):
        assert state in definition
        assert f"`{state}`" in README
