"""A CodePipeline job as the worker sees it, and the sanitizing that keeps secrets out of runs.

`PollForJobs` returns secret property values and temporary S3 credentials. Nothing of that may reach
a Step Functions execution (its input and history are visible to anyone who can read the console),
so the poller turns every job into an `ExecutionInput` that holds only what the steps need and
nothing secret. Steps that need a secret read it at the moment they call Travis.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from worker.continuation import parse_token

EXECUTION_NAME_HASH_CHARS = 8


@dataclass(frozen=True)
class ActionType:
    """A custom action type id: what `PollForJobs` is asked for."""

    category: str
    provider: str
    version: str
    owner: str = "Custom"

    def as_api(self) -> dict[str, str]:
        return {
            "category": self.category,
            "owner": self.owner,
            "provider": self.provider,
            "version": self.version,
        }

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> ActionType:
        return cls(
            category=str(data["category"]),
            provider=str(data["provider"]),
            version=str(data["version"]),
            owner=str(data.get("owner", "Custom")),
        )


@dataclass(frozen=True)
class PipelineRef:
    """Where the job comes from: shown in logs, messages and the Travis request."""

    name: str = ""
    stage: str = ""
    action: str = ""
    execution_id: str = ""
    action_execution_id: str = ""

    @property
    def run_key(self) -> str:
        """One action run of a pipeline execution, as CodePipeline's action events name it.

        Events carry pipeline, execution id, stage and action but no job id; every job (the first
        and each continuation) of the run carries the same four in its pipelineContext.
        """
        return "/".join((self.name, self.execution_id, self.stage, self.action))

    def log_keys(self) -> dict[str, str]:
        """What every log line of a job says about where it comes from."""
        return {
            "pipeline": self.name,
            "pipeline_execution_id": self.execution_id,
            "stage": self.stage,
            "action": self.action,
        }

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "stage": self.stage,
            "action": self.action,
            "executionId": self.execution_id,
            "actionExecutionId": self.action_execution_id,
        }


@dataclass(frozen=True)
class ExecutionInput:
    """The sanitized job: the input of one state machine execution."""

    job_id: str
    nonce: str
    action_type: ActionType
    pipeline: PipelineRef
    configuration: dict[str, str]
    revision: str | None
    continuation: dict[str, Any] | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "nonce": self.nonce,
            "actionType": self.action_type.as_api(),
            "pipeline": self.pipeline.as_dict(),
            "configuration": dict(self.configuration),
            "revision": self.revision,
            "continuation": self.continuation,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ExecutionInput:
        """Read the execution input back from the state a step receives."""
        pipeline = state.get("pipeline") or {}
        return cls(
            job_id=str(state["jobId"]),
            nonce=str(state["nonce"]),
            action_type=ActionType.from_api(state["actionType"]),
            pipeline=PipelineRef(
                name=str(pipeline.get("name", "")),
                stage=str(pipeline.get("stage", "")),
                action=str(pipeline.get("action", "")),
                execution_id=str(pipeline.get("executionId", "")),
                action_execution_id=str(pipeline.get("actionExecutionId", "")),
            ),
            configuration={str(k): str(v) for k, v in (state.get("configuration") or {}).items()},
            revision=state.get("revision"),
            continuation=state.get("continuation"),
        )


def sanitize_job(job: dict[str, Any], secret_properties: frozenset[str]) -> ExecutionInput:
    """Keep what the steps need from a `PollForJobs` job, dropping every secret.

    Dropped: secret configuration values (by the action type's definition), `artifactCredentials`,
    artifact locations and the encryption key. The continuation token is parsed (it is ours and
    holds no secret) so operators can read it in the console.
    """
    data = job.get("data") or {}
    context = data.get("pipelineContext") or {}
    configuration = (data.get("actionConfiguration") or {}).get("configuration") or {}
    return ExecutionInput(
        job_id=str(job["id"]),
        nonce=str(job["nonce"]),
        action_type=ActionType.from_api(data["actionTypeId"]),
        pipeline=PipelineRef(
            name=str(context.get("pipelineName", "")),
            stage=str((context.get("stage") or {}).get("name", "")),
            action=str((context.get("action") or {}).get("name", "")),
            execution_id=str(context.get("pipelineExecutionId", "")),
            action_execution_id=str((context.get("action") or {}).get("actionExecutionId", "")),
        ),
        configuration={
            str(name): str(value)
            for name, value in configuration.items()
            if name not in secret_properties
        },
        revision=input_revision(data),
        continuation=parse_token(data.get("continuationToken")),
    )


def input_revision(data: dict[str, Any]) -> str | None:
    """The commit of the first input artifact, when the pipeline carries one."""
    artifacts = data.get("inputArtifacts") or []
    if not artifacts:
        return None
    revision = artifacts[0].get("revision")
    return str(revision) if revision else None


def execution_name(job_id: str, nonce: str, attempt: int = 1) -> str:
    """`<job id>-<8 hex of sha256(nonce)>`: one name per hand-out of a job (see ARCHITECTURE.md).

    A later attempt for the same hand-out (after an execution that ended before it could claim the
    job) gets a `-<attempt>` suffix; names stay within Step Functions' 80 characters.
    """
    digest = hashlib.sha256(nonce.encode()).hexdigest()[:EXECUTION_NAME_HASH_CHARS]
    name = f"{job_id}-{digest}"
    return name if attempt == 1 else f"{name}-{attempt}"


def same_commit(wanted: str, built: str) -> bool:
    """Whether two commit ids name the same commit (either may be abbreviated)."""
    a, b = wanted.lower(), built.lower()
    return a.startswith(b) or b.startswith(a)
