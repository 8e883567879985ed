"""The bench's pricing and analysis functions (no timing, no worker)."""

from __future__ import annotations

import struct
import zlib

import pytest

from bench import analysis, chart, prices


def test_percentile_interpolates_between_ranks():
    assert analysis.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert analysis.percentile([5.0], 95) == 5.0
    assert analysis.summary([1.0, 2.0, 3.0])["max"] == 3.0
    with pytest.raises(ValueError):
        analysis.percentile([], 50)


def test_transitions_count_every_state_entered():
    history = [
        {"type": "ExecutionStarted"},
        {"type": "TaskStateEntered"},
        {"type": "TaskStateEntered"},  # a retry re-enters
        {"type": "ChoiceStateEntered"},
        {"type": "SucceedStateEntered"},
        {"type": "ExecutionSucceeded"},
    ]
    assert analysis.transitions(history) == 4


def test_lambda_invocations_include_park_tasks():
    arn = "arn:aws:lambda:us-east-1:123456789012:function:WorkerWatch"
    history = [
        {
            "type": "LambdaFunctionScheduled",
            "lambdaFunctionScheduledEventDetails": {"resource": arn},
        },
        {
            "type": "TaskScheduled",
            "taskScheduledEventDetails": {
                "resourceType": "lambda",
                "parameters": '{"FunctionName": "arn:aws:lambda:us-east-1:1:function:WorkerPark"}',
            },
        },
        {"type": "TaskScheduled", "taskScheduledEventDetails": {"resourceType": "dynamodb"}},
    ]
    assert analysis.lambda_invocations(history) == {"WorkerWatch": 1, "WorkerPark": 1}


def test_looks_come_from_watch_outputs_in_time_order():
    outputs = [
        {"next": "report", "lookedAt": 30.0, "looks": 2},
        {"next": "publish", "lookedAt": None},  # resolve: not a look at the build
        {"next": "park", "waitSeconds": 20, "lookedAt": 10.0, "looks": 1},
    ]
    assert analysis.looks_from(outputs) == [
        analysis.Look(10.0, "park", 20.0),
        analysis.Look(30.0, "report", None),
    ]


def test_delay_counts_processing_after_the_look_in_real_seconds():
    looks = [analysis.Look(100.0, "report", None)]
    delay = analysis.result_delay(90.0, 150.0, looks, 0.01)
    assert delay.raw == pytest.approx(10.0 + 0.5)
    assert delay.trigger == "look"


def test_delay_takes_local_overrun_out_of_the_loop_before_the_look():
    # parked 20 s at t=0, but the look came at t=50: 30 virtual s of local processing
    looks = [analysis.Look(0.0, "park", 20.0), analysis.Look(50.0, "report", None)]
    delay = analysis.result_delay(15.0, 50.0, looks, 0.01, started=0.0, next_wait=lambda e: 20)
    assert delay.raw == pytest.approx(35.0)
    assert delay.corrected == pytest.approx(20.0 + 0.3 - 15.0)
    # a finish inside the inflated stretch: AWS's look would come too early, the next one counts
    late = analysis.result_delay(30.0, 50.0, looks, 0.01, started=0.0, next_wait=lambda e: 20)
    assert late.corrected == pytest.approx(20.3 + 20 + 0.3 - 30.0)


def test_the_reporting_look_may_have_asked_just_before_the_finish():
    # a look is dated when it asked Travis; the answer (after the build ended) said finished
    looks = [analysis.Look(0.0, "park", 20.0), analysis.Look(29.5, "report", None)]
    delay = analysis.result_delay(30.0, 40.0, looks, 0.01, started=0.0, next_wait=lambda e: 20)
    assert delay.trigger == "look"
    assert delay.raw == pytest.approx(10.0 * 0.01)  # the answer came with the finish
    # in AWS that look (at 20 + 0.095 s) would have seen it running: the next one counts
    aws_look = 20 + 9.5 * 0.01
    assert delay.corrected == pytest.approx(2 * aws_look - 30.0 + 0.1)


def test_delay_with_a_webhook_starts_at_the_delivery():
    looks = [analysis.Look(0.0, "park", 300.0), analysis.Look(101.0, "report", None)]
    delay = analysis.result_delay(100.0, 200.0, looks, 0.01, webhook_at=100.5)
    assert delay.trigger == "webhook"
    assert delay.corrected == pytest.approx(0.5 + 99.5 * 0.01)


def test_promised_looks_follow_the_schedule():
    assert analysis.promised_looks(100.0, 10.0, lambda elapsed, n: 30.0) == 4
    assert analysis.promised_looks(5.0, 10.0, lambda elapsed, n: 30.0) == 1


def test_verdicts():
    assert analysis.verdict(30.0, 30.0) == "met"
    assert analysis.against(41, 40)["verdict"] == "missed"


def test_prices():
    assert prices.transitions_usd(1000) == pytest.approx(0.025)
    assert prices.gb_seconds([0.3, 0.3]) == pytest.approx(0.15)
    assert prices.gb_seconds([0.0001]) == pytest.approx(0.001 / 4)  # billed per started ms
    assert prices.billed_duration(0.05, 0.3) == 0.3
    assert prices.lambda_usd(1_000_000, 0) == pytest.approx(0.20)
    assert prices.codebuild_wrapper_usd(10) == pytest.approx(11 * 0.005)
    assert prices.codebuild_wrapper_usd(9.5) == pytest.approx(11 * 0.005)
    assert prices.daemon_usd_per_month() == pytest.approx(0.0042 * 730 + 8 * 0.08)
    idle = prices.idle_usd_per_month(0.15)
    assert idle == pytest.approx(43_200 * (0.2e-6 + 0.15 * 0.25 * 0.0000133334))
    assert prices.fixed_usd_per_month(alarms=2, dashboards=0)["alarms"] == pytest.approx(0.2)


def test_chart_writes_a_valid_png(tmp_path):
    report = {
        "usd_per_build": {
            "polling": {"2": 4e-4, "10": 6e-4, "60": 1e-3},
            "push": {"2": 4e-4, "10": 5e-4, "60": 6e-4},
        },
        "alternatives_usd_per_build": {
            "codebuild_wrapper": {"2": 0.015, "10": 0.055, "60": 0.305},
            "daemon_monthly": 3.71,
            "daemon_per_build_at_1000_runs_per_month": 0.0037,
        },
        "prices": {"as_of": "2026-05"},
    }
    path = tmp_path / "cost.png"
    chart.write_cost_chart(path, report)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (chart.WIDTH, chart.HEIGHT)
    length = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41 : 41 + length])
    assert len(raw) == height * (1 + width * 3)
