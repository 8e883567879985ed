"""What the emulator remembers: pipelines, their executions, action runs, jobs, results, calls.

Plain dataclasses, no behaviour beyond derived properties: ``jobs.py`` and ``executions.py`` move
them through their states, ``emulator.py`` hands out deep copies for tests to inspect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

NonceMode = Literal["new", "same"]
ActionState = Literal["STARTED", "SUCCEEDED", "FAILED", "ABANDONED", "CANCELED"]
ActionListener = Callable[[str, "ActionRun"], None]
EventListener = Callable[[dict[str, Any]], None]

# botocore model, shape JobStatus: Created | Queued | Dispatched | InProgress | TimedOut |
# Succeeded | Failed. "Abandoned" is ours: a job of an abandoned or canceled action run.
FINISHED_JOB_STATES = frozenset({"Succeeded", "Failed", "TimedOut", "Abandoned"})
# Our action-run states; ListActionExecutions shows them as the model's ActionExecutionStatus
# (InProgress | Abandoned | Succeeded | Failed), see executions.list_status.
RUN_STATES = ("InProgress", "Succeeded", "Failed", "Abandoned", "Canceled", "Deleted")


@dataclass
class CallRecord:
    """One API call as the emulator saw it (params and response are deep copies)."""

    seq: int
    operation: str
    protocol: str  # "json" | "cbor"
    params: dict[str, Any]
    response: dict[str, Any] | None
    error_code: str | None
    error_message: str | None
    status: int
    started: float  # emulator clock
    finished: float
    request_id: str

    @property
    def ok(self) -> bool:
        return self.error_code is None


@dataclass
class JobResult:
    """A PutJobSuccessResult or PutJobFailureResult accepted for a job."""

    job_id: str
    kind: Literal["success", "failure"]
    at: float
    execution_details: dict[str, Any] | None = None
    continuation_token: str | None = None
    output_variables: dict[str, str] | None = None
    current_revision: dict[str, Any] | None = None
    failure_details: dict[str, Any] | None = None


@dataclass
class Job:
    """A CodePipeline job: one unit of work of an action run (the first, or a continuation)."""

    id: str
    action_execution_id: str
    created_at: float
    status: str = "Queued"
    continuation_token: str | None = None
    nonce: str | None = None  # current nonce; None until first handed out
    nonces: list[str] = field(default_factory=list)  # every nonce ever handed out, in order
    handouts: int = 0
    acknowledgements: int = 0  # successful AcknowledgeJob calls
    pollable_at: float = 0.0  # PollForJobs hands it out from this clock reading on
    dispatched_at: float | None = None
    acknowledged_at: float | None = None
    finished_at: float | None = None
    result: JobResult | None = None
    issued_credentials: list[dict[str, str]] = field(default_factory=list)
    gone: bool = False  # deleted with its pipeline (or abandoned, in JobNotFound mode)
    forced_acknowledge: list[str] = field(default_factory=list)  # scripted AcknowledgeJob answers


@dataclass
class ActionRun:
    """One execution of the custom action in a pipeline execution, with its ordered jobs."""

    action_execution_id: str
    pipeline_execution_id: str
    action_type: dict[str, str]
    configuration: dict[str, str]
    pipeline_name: str
    stage_name: str
    action_name: str
    pipeline_arn: str
    input_artifacts: list[dict[str, Any]]
    output_artifacts: list[dict[str, Any]]
    encryption_key: dict[str, str] | None
    started_at: float
    status: str = "InProgress"  # one of RUN_STATES
    job_ids: list[str] = field(default_factory=list)
    results: list[JobResult] = field(default_factory=list)
    finished_at: float | None = None
    timed_out: bool = False
    seq: int = 0  # creation order, for ListActionExecutions paging
    pipeline_version: int = 1
    last_update_at: float = 0.0
    stop_reason: str | None = None  # StopPipelineExecution's reason, when abandoned

    @property
    def finished(self) -> bool:
        return self.status != "InProgress"

    @property
    def continuation_tokens(self) -> list[str]:
        return [r.continuation_token for r in self.results if r.continuation_token]

    @property
    def execution_details(self) -> list[dict[str, Any]]:
        """executionDetails of every result that had them, in order."""
        return [r.execution_details for r in self.results if r.execution_details is not None]

    @property
    def output_variables(self) -> dict[str, str] | None:
        final = self.results[-1] if self.results else None
        return final.output_variables if final else None

    @property
    def failure_details(self) -> dict[str, Any] | None:
        final = self.results[-1] if self.results else None
        return final.failure_details if final else None


@dataclass
class PipelineExecution:
    """A pipeline execution as far as StopPipelineExecution needs it.

    ``status`` uses the model's PipelineExecutionStatus words: InProgress, Stopping, Stopped,
    Cancelled. The emulator knows no stages beyond its action runs, so an execution whose runs
    have all finished counts as over (``executions.is_over``).
    """

    id: str
    pipeline_name: str
    status: str = "InProgress"
    stop_mode: Literal["wait", "abandon"] | None = None
    stop_reason: str | None = None


@dataclass
class Pipeline:
    """A pipeline the emulator has heard of (``create_job`` or ``create_pipeline``)."""

    name: str
    arn: str
    version: int = 1  # the structure version: UpdatePipeline adds 1 (model, UpdatePipeline)


@dataclass
class ActionTypeEntry:
    """A registered custom action type and what ListActionExecutions needs to know of it."""

    key: tuple[str, str, str, str]
    secret_keys: frozenset[str] = frozenset()
    execution_url_template: str | None = None
    deleted: bool = False
