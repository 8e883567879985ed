"""Metrics that carry the failure type as a dimension, so failures can be split by kind.

`JobsFailed` with dimensions {service, FailureType}: one per failure result CodePipeline took.
The FailureType values are CodePipeline's (`JobFailed`, `ConfigurationError`, `PermissionError`,
`RevisionOutOfSync`, `RevisionUnavailable`, `SystemUnavailable`); README "Metrics" says what each
means for an operator. Alarms use the same dimensions (stacks/alarms.py).
"""

from __future__ import annotations

import os

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from worker.failures import FailureType


def count_failure(failure_type: FailureType) -> None:
    """One `JobsFailed` data point for this failure type (EMF, flushed at once)."""
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE")
    service = os.environ.get("POWERTOOLS_SERVICE_NAME", "")
    if not namespace or os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() == "true":
        return
    with single_metric(
        name="JobsFailed",
        unit=MetricUnit.Count,
        value=1,
        namespace=namespace,
        default_dimensions={"service": service},
    ) as metric:
        metric.add_dimension(name="FailureType", value=failure_type.value)
