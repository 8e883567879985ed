"""Static gates on the synthesized output: cdk-nag, cfn-lint and asl-validator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import EXAMPLE_CONTEXT, Synthesized, synthesize

pytestmark = pytest.mark.synth

ROOT = Path(__file__).resolve().parents[2]
ASL_VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"  # installed next to the venv's python
CFN_LINT_ALLOWED = {"W3005"}  # explicit DependsOn next to a GetAtt: how CDK wires roles
MIN_REASON = 20  # characters: a reason a reviewer can judge, not a placeholder

requires_asl_validator = pytest.mark.skipif(
    not ASL_VALIDATOR.exists() or shutil.which("npx") is None,
    reason="asl-validator is not installed: run `make setup` (npm ci) to install node_modules",
)


@pytest.fixture(params=["default_synth", "custom_synth", "webhook_synth"])
def synth(request: pytest.FixtureRequest) -> Synthesized:
    fixture: Synthesized = request.getfixturevalue(request.param)
    return fixture


# --- cdk-nag -----------------------------------------------------------------------------------


def acknowledgements(synth: Synthesized) -> dict[str, str]:
    """Every acknowledgement recorded in the assembly metadata: rule id -> reason."""
    metadata = json.loads((synth.outdir / f"{synth.stack_name}.metadata.json").read_text())
    found: dict[str, str] = {}
    for entries in metadata.values():
        for entry in entries:
            if entry.get("type") == "aws:cdk:acknowledged-rules":
                found.update(entry["data"])
    return found


def test_cdk_nag_reports_success(synth: Synthesized) -> None:
    (report,) = synth.validation_report()["pluginReports"]
    assert report["pluginName"] == "AwsSolutions"
    assert report["conclusion"] == "success"
    assert report["violations"] == []


def test_every_acknowledgement_has_a_reason(synth: Synthesized) -> None:
    acknowledged = acknowledgements(synth)
    assert acknowledged, "the stack acknowledges its IAM findings"
    for rule, reason in acknowledged.items():
        assert isinstance(reason, str) and len(reason.strip()) >= MIN_REASON, rule
    (report,) = synth.validation_report()["pluginReports"]
    for suppressed in report["suppressedViolations"]:
        assert len(suppressed.get("reason", "").strip()) >= MIN_REASON, suppressed["ruleName"]


def stale_acknowledgements(synth: Synthesized) -> set[str]:
    (report,) = synth.validation_report()["pluginReports"]
    used = {s["acknowledgedId"] for s in report["suppressedViolations"]}
    return set(acknowledgements(synth)) - used


def known_stale(synth: Synthesized) -> set[str]:
    return {
        "AwsSolutions::AwsSolutions-DDB3",
        *(
            f"AwsSolutions::AwsSolutions-IAM5[Resource::<{synth.functions[name]}.Arn>:*]"
            for name in ("abandon", "reaper", "webhook")
            if name in synth.functions
        ),
    }


def test_no_acknowledgement_is_stale(synth: Synthesized) -> None:
    # An acknowledgement that suppresses nothing hides the next real finding with that id.
    assert stale_acknowledgements(synth) == set()


def test_only_expected_rules_are_acknowledged(default_synth: Synthesized) -> None:
    rules = {rule.split("[", 1)[0] for rule in acknowledgements(default_synth)}
    # Managed logging policy, wildcards on APIs without resources, secret rotation: nothing else.
    assert rules == {
        "AwsSolutions::AwsSolutions-IAM4",
        "AwsSolutions::AwsSolutions-IAM5",
        "AwsSolutions::AwsSolutions-SMG4",
    }


def test_webhook_url_needs_no_acknowledgement(
    default_synth: Synthesized, webhook_synth: Synthesized
) -> None:
    # The public function URL passes cdk-nag as is: no acknowledgement is added for it.
    extra = set(acknowledgements(webhook_synth)) - set(acknowledgements(default_synth))
    assert extra == set()


def test_cdk_nag_passes_with_the_example_pipeline(tmp_path: Path) -> None:
    synth = synthesize(tmp_path / "example", EXAMPLE_CONTEXT)
    (report,) = synth.validation_report()["pluginReports"]
    assert report["conclusion"] == "success"
    assert report["violations"] == []
    assert len(synth.others) == 1


# --- cfn-lint ----------------------------------------------------------------------------------


def cfn_lint(template: Path, *regions: str) -> list[dict[str, Any]]:
    command = [str(CFN_LINT), "--format", "json", str(template)]
    if regions:
        command += ["--regions", *regions]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    assert result.returncode in (0, 2, 4, 6, 8, 10, 12, 14), result.stderr
    return list(json.loads(result.stdout or "[]"))


def test_cfn_lint_is_clean(custom_synth: Synthesized, webhook_synth: Synthesized) -> None:
    # The webhooks variant is the default template plus the optional parts: linting it covers
    # the default; the custom one adds a concrete region.
    runs = ((custom_synth, ("eu-west-1",)), (webhook_synth, ()))
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        results = list(pool.map(lambda run: cfn_lint(run[0].template_path, *run[1]), runs))
    for findings in results:
        unexpected = [
            f"{f['Rule']['Id']} {f['Message']}"
            for f in findings
            if f["Rule"]["Id"] not in CFN_LINT_ALLOWED
        ]
        assert unexpected == [], "\n".join(unexpected)


# --- asl-validator -----------------------------------------------------------------------------


def asl_validator(definition: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "state-machine.asl.json"
    path.write_text(json.dumps(definition, indent=2))
    env = os.environ | {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    return subprocess.run(  # noqa: S603
        ["npx", "--no-install", "asl-validator", "--json-path", str(path)],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=env,
    )


@requires_asl_validator
def test_asl_validator_accepts_the_definition(default_synth: Synthesized, tmp_path: Path) -> None:
    result = asl_validator(default_synth.definition, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@requires_asl_validator
def test_asl_validator_rejects_a_broken_definition(
    default_synth: Synthesized, tmp_path: Path
) -> None:
    # The gate is not vacuous: a dangling transition is reported.
    broken = json.loads(json.dumps(default_synth.definition))
    broken["States"]["Claim"]["Next"] = "NoSuchState"
    result = asl_validator(broken, tmp_path)
    assert result.returncode != 0, result.stdout
