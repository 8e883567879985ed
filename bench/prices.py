"""Public list prices (one dated table) and the arithmetic that turns measurements into dollars.

Free tiers are ignored throughout: they are per account, not per worker.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

PRICES_AS_OF = "2026-05"
REGION = "us-east-1"
# Public on-demand list prices, us-east-1; the dollar figures of the report follow from these.
PRICES: dict[str, float] = {
    "stepfunctions_standard_per_transition": 0.025 / 1000,
    "lambda_per_request": 0.20 / 1_000_000,
    "lambda_arm64_per_gb_second": 0.0000133334,
    "codebuild_general1_small_linux_per_minute": 0.005,  # billed per started minute
    "ec2_t4g_nano_per_hour": 0.0042,
    "ebs_gp3_per_gb_month": 0.08,
    "secretsmanager_per_secret_month": 0.40,
    "cloudwatch_standard_alarm_month": 0.10,
    "cloudwatch_dashboard_month": 3.00,  # beyond the first three of an account
}
LAMBDA_MEMORY_MB = 256  # stacks/worker.py: every function, arm64
HOURS_PER_MONTH = 730
SWEEPS_PER_MONTH = 60 * 24 * 30  # the rate(1 minute) sweeper rule
DAEMON_DISK_GB = 8  # the root volume of the smallest Amazon Linux instance
CODEBUILD_OVERHEAD_MINUTES = 1.0  # provisioning, source download, submitting to Travis


def gb_seconds(durations_s: Iterable[float], memory_mb: int = LAMBDA_MEMORY_MB) -> float:
    """Lambda GB-seconds of invocations lasting `durations_s` (billed per millisecond)."""
    return sum(math.ceil(d * 1000) / 1000 for d in durations_s) * memory_mb / 1024


def billed_duration(local_s: float, assumed_aws_s: float) -> float:
    """An invocation's AWS duration: the local one is a floor, the assumed AWS one (network
    round trips to CodePipeline and Travis) usually the larger."""
    return max(local_s, assumed_aws_s)


def lambda_usd(invocations: float, gb_s: float) -> float:
    return invocations * PRICES["lambda_per_request"] + gb_s * PRICES["lambda_arm64_per_gb_second"]


def transitions_usd(transitions: float) -> float:
    return transitions * PRICES["stepfunctions_standard_per_transition"]


def action_run_usd(transitions: float, invocations: float, gb_s: float) -> float:
    """What one action run costs: its state transitions and its Lambda invocations."""
    return transitions_usd(transitions) + lambda_usd(invocations, gb_s)


def idle_usd_per_month(poll_seconds: float, memory_mb: int = LAMBDA_MEMORY_MB) -> float:
    """The sweeper's schedule ticks in a month without a single job (the secret aside)."""
    return lambda_usd(SWEEPS_PER_MONTH, SWEEPS_PER_MONTH * gb_seconds([poll_seconds], memory_mb))


def codebuild_wrapper_usd(build_minutes: float) -> float:
    """A CodeBuild project that submits the Travis build and sleeps until it ends
    (general1.small, billed per started minute)."""
    minutes = math.ceil(build_minutes + CODEBUILD_OVERHEAD_MINUTES)
    return minutes * PRICES["codebuild_general1_small_linux_per_minute"]


def daemon_usd_per_month() -> float:
    """The original Go daemon on the smallest always-on instance, with its root volume."""
    return (
        PRICES["ec2_t4g_nano_per_hour"] * HOURS_PER_MONTH
        + DAEMON_DISK_GB * PRICES["ebs_gp3_per_gb_month"]
    )


def fixed_usd_per_month(alarms: int, dashboards: int, secrets: int = 1) -> dict[str, float]:
    """Charges that do not depend on use: the token secret, alarms, dashboards."""
    return {
        "secrets": secrets * PRICES["secretsmanager_per_secret_month"],
        "alarms": alarms * PRICES["cloudwatch_standard_alarm_month"],
        "dashboards": dashboards * PRICES["cloudwatch_dashboard_month"],
    }
