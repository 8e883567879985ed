"""The provider seam: the small interface a CI service implements to back a custom action.

The poller, the state machine and the reporting are generic; everything that knows Travis lives in
`worker.providers.travis`. Another service is added by implementing `BuildProvider` and registering
it in `PROVIDERS` (and, in the stack, a custom action type that names it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from worker.continuation import Continuation
from worker.job import ExecutionInput
from worker.schedule import Expectation
from worker.settings import Settings


@dataclass(frozen=True)
class SubmitAttempt:
    """What a submit knows about earlier attempts for the same job."""

    first: bool  # no earlier submit of this job can have posted (first try, no retry)
    window_start: float  # epoch seconds: every request of this job was created after it


@dataclass(frozen=True)
class Submission:
    """A build request the CI service accepted for a job."""

    request_id: str
    created: bool  # False when a retried submit found the request it had already made
    submitted_at: float
    sha_sent: bool = True  # False: the revision was no commit id, the branch head is built
    lost_answer: bool = False  # an earlier attempt may have posted (look for a duplicate later)
    push: bool = False  # the request asked the CI service to notify the worker's webhook
    window_start: float = 0.0  # every request of this job was created after this (epoch s)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requestId": self.request_id,
            "created": self.created,
            "submittedAt": self.submitted_at,
            "shaSent": self.sha_sent,
            "lostAnswer": self.lost_answer,
            "push": self.push,
            "windowStart": self.window_start,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Submission:
        return cls(
            request_id=str(data["requestId"]),
            created=bool(data.get("created", True)),
            submitted_at=float(data["submittedAt"]),
            sha_sent=bool(data.get("shaSent", True)),
            lost_answer=bool(data.get("lostAnswer", False)),
            push=bool(data.get("push", False)),
            window_start=float(data.get("windowStart", data["submittedAt"])),
        )


@dataclass(frozen=True)
class BuildRef:
    """A build that exists, with what the console link needs."""

    build_id: str
    number: str
    url: str
    commit: str | None = None  # the commit the CI service builds

    def as_dict(self) -> dict[str, Any]:
        return {
            "buildId": self.build_id,
            "number": self.number,
            "url": self.url,
            "commit": self.commit,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildRef:
        return cls(
            build_id=str(data["buildId"]),
            number=str(data.get("number", "")),
            url=str(data.get("url", "")),
            commit=str(data["commit"]) if data.get("commit") else None,
        )


@dataclass(frozen=True)
class JobState:
    """One job (matrix entry) of a build."""

    job_id: str
    number: str
    state: str
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


FINISHED_STATES = frozenset({"passed", "failed", "errored", "canceled"})


@dataclass(frozen=True)
class BuildStatus:
    """One look at a build."""

    build_id: str
    number: str
    url: str
    state: str
    finished: bool
    passed: bool
    commit: str | None
    started_at: float | None = None
    finished_at: float | None = None
    jobs: tuple[JobState, ...] = field(default=())

    @property
    def jobs_done(self) -> int:
        return sum(1 for j in self.jobs if j.finished)

    @property
    def progress(self) -> int:
        """0..100 from finished jobs; 100 only when the build itself finished."""
        if self.finished:
            return 100
        if not self.jobs:
            return 0
        return min(99, int(100 * self.jobs_done / len(self.jobs)))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["progress"] = self.progress
        data["jobs_done"] = self.jobs_done
        data["jobs"] = len(self.jobs)  # the count only: the state is no place for a matrix
        return data


class CancelResult(StrEnum):
    REQUESTED = "requested"  # Travis: 202, it cancels asynchronously
    ALREADY_FINISHED = "already_finished"  # Travis: 409 build_not_cancelable
    NOT_PERMITTED = "not_permitted"  # Travis: 403 insufficient_access (permission cancel)


class BuildProvider(Protocol):
    """What a CI service must offer the worker."""

    def validate(self, configuration: Mapping[str, str]) -> None:
        """Raise ConfigurationInvalid naming the property when the configuration is unusable."""

    def submit(
        self, job: ExecutionInput, attempt: SubmitAttempt, before_post: Callable[[], None]
    ) -> Submission:
        """Request a build of the job's commit, at most once per job: a later attempt finds
        the request an earlier one made. `before_post` runs right before a request is sent (it
        raises to stop, e.g. when the action was abandoned)."""

    def resolve(self, job: ExecutionInput, request_id: str) -> BuildRef | None:
        """The build created for the request, None while pending; raise when it was rejected."""

    def expectation(self, job: ExecutionInput) -> Expectation | None:
        """How long builds of the job's branch take, from the service's history."""

    def continuation(
        self,
        job: ExecutionInput,
        submission: Submission,
        build: BuildRef,
        expectation: Expectation | None,
    ) -> Continuation:
        """The state phase 2 needs (no secrets)."""

    def status(self, job: ExecutionInput, continuation: Continuation) -> BuildStatus:
        """The build's current state."""

    def cancel(self, job: ExecutionInput, continuation: Continuation) -> CancelResult:
        """Ask the CI service to stop the build."""

    def explain_failure(
        self, job: ExecutionInput, continuation: Continuation, status: BuildStatus
    ) -> str:
        """Which jobs failed and the last lines of their logs that tell why ("" if unknown)."""

    def cancel_duplicates(
        self, job: ExecutionInput, submission: Submission, window_start: float
    ) -> list[str]:
        """Cancel builds of other requests this job made (a lost answer that landed late);
        returns the canceled build ids."""


ProviderFactory = Callable[[Settings], BuildProvider]


def _travis(settings: Settings) -> BuildProvider:
    from worker.providers.travis.provider import TravisProvider

    return TravisProvider.for_settings(settings)


PROVIDERS: dict[str, ProviderFactory] = {"travis": _travis}


def provider_named(name: str, settings: Settings) -> BuildProvider:
    """The provider registered as `name`, configured from the settings the handler parsed."""
    try:
        factory = PROVIDERS[name]
    except KeyError:
        raise KeyError(f"no provider registered as {name!r}") from None
    return factory(settings)
