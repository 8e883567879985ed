"""The provider seam: the small interface a CI service implements to back a custom action.

The poller, the state machine and the reporting are generic; everything that knows Travis lives in
`worker.providers.travis`. Another service is added by implementing `BuildProvider` and registering
it in `PROVIDERS` (and, in the stack, a custom action type that names it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from worker.continuation import Continuation
from worker.job import ExecutionInput
from worker.settings import Settings


@dataclass(frozen=True)
class Submission:
    """A build request the CI service accepted for a job."""

    request_id: str
    created: bool  # False when a retried submit found the request it had already made
    submitted_at: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "requestId": self.request_id,
            "created": self.created,
            "submittedAt": self.submitted_at,
        }


@dataclass(frozen=True)
class BuildRef:
    """A build that exists, with what the console link needs."""

    build_id: str
    number: str
    url: str

    def as_dict(self) -> dict[str, str]:
        return {"buildId": self.build_id, "number": self.number, "url": self.url}


@dataclass(frozen=True)
class BuildStatus:
    """One look at a build."""

    build_id: str
    number: str
    url: str
    state: str
    finished: bool
    passed: bool
    progress: int  # 0..100, from finished jobs
    commit: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class BuildProvider(Protocol):
    """What a CI service must offer the worker."""

    def validate(self, configuration: Mapping[str, str]) -> None:
        """Raise ConfigurationInvalid naming the property when the configuration is unusable."""

    def submit(self, job: ExecutionInput) -> Submission:
        """Request a build of the job's commit; idempotent per job id."""

    def resolve(self, job: ExecutionInput, request_id: str) -> BuildRef | None:
        """The build created for the request, None while pending; raise when it was rejected."""

    def continuation(
        self, job: ExecutionInput, submission: Submission, build: BuildRef
    ) -> Continuation:
        """The state phase 2 needs (no secrets)."""

    def status(self, job: ExecutionInput, continuation: Continuation) -> BuildStatus:
        """The build's current state."""

    def cancel(self, job: ExecutionInput, continuation: Continuation) -> None:
        """Ask the CI service to stop the build (best effort)."""


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
