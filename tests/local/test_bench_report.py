"""The README's cost and speed figures are those of the committed bench/report.json.

`make bench` rewrites the report; these tests fail until the README shows what it measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README.split("## Cost and speed", 1)[1].split("\n## ", 1)[0]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return dict(json.loads((ROOT / "bench" / "report.json").read_text(encoding="utf-8")))


def _row(label: str) -> list[str]:
    (line,) = [line for line in SECTION.splitlines() if line.startswith(f"| {label} |")]
    return [cell.strip() for cell in line.strip("|").split("|")[1:]]


def test_transitions_and_invocations(report: dict[str, Any]) -> None:
    for label, key in (
        ("State transitions, polling / push", "transitions_per_build"),
        ("Lambda invocations, polling / push", "lambda_invocations_per_build"),
    ):
        figures = report[key]
        expected = [
            f"{figures['polling'][n]:.0f} / {figures['push'][n]:.0f}" for n in ("2", "10", "60")
        ]
        assert _row(label) == expected, label


def test_cost_per_run(report: dict[str, Any]) -> None:
    for label, mode in (("Cost, polling", "polling"), ("Cost, push (Travis webhooks)", "push")):
        usd = report["usd_per_build"][mode]
        assert _row(label) == [f"${usd[n]:.4f}" for n in ("2", "10", "60")], label


def test_result_delay(report: dict[str, Any]) -> None:
    delays = report["result_delay_s"]
    poll, push = delays["polling"], delays["push"]
    assert (
        f"polling p50 {poll['p50']:.0f} s, p95 {poll['p95']:.0f} s, max {poll['max']:.0f} s"
        in SECTION
    )
    assert f"push p50 {push['p50']:.1f} s, max {push['max']:.1f} s" in SECTION


def test_cold_import(report: dict[str, Any]) -> None:
    ratios = report["cold_import_ratio"].values()
    from_source = report["cold_import_ratio_from_source"].values()
    assert f"{min(ratios):.2f}-{max(ratios):.2f}× `import boto3`" in SECTION
    assert f"{min(from_source):.2f}-{max(from_source):.2f}× without them" in SECTION


def test_assets_and_throughput(report: dict[str, Any]) -> None:
    assets, queued = report["asset_bytes"], report["throughput"]
    assert f"Code asset {assets['code_zipped'] / 1000:.0f} KB zipped" in SECTION
    assert f"dependency layer {assets['layer_zipped'] / 1000:.0f} KB zipped" in SECTION
    assert f"all started in {queued['wall_s']:.0f} s ({queued['poller_invocations']} poller" in (
        SECTION
    )
