"""Where a Travis call gets its token: the job's APIToken property, else the worker's secret.

The token is read at the moment of the call and lives only in this Lambda's memory. The worker's own
token is sent only to trusted endpoints, so a pipeline cannot point `Endpoint` at an arbitrary host
and collect it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from worker.codepipeline import CodePipelineJobs, CodePipelineRejected
from worker.failures import ConfigurationInvalid, ServiceUnavailable

SECRET_CACHE_SECONDS = 300
TOKEN_PROPERTY = "APIToken"  # noqa: S105 - a property name, not a secret


def read_secret(arn: str, *, fresh: bool = False) -> str:
    """The secret's string, cached for a few minutes across invocations of this container
    (`fresh` reads it from Secrets Manager now)."""
    from aws_lambda_powertools.utilities import parameters  # only when the secret is needed

    try:
        value = parameters.get_secret(arn, max_age=SECRET_CACHE_SECONDS, force_fetch=fresh)
    except parameters.exceptions.GetParameterError as error:
        reason = str(error)
        if "ResourceNotFound" in reason or "AccessDenied" in reason:
            raise ConfigurationInvalid(
                f"The worker cannot read its Travis token secret {arn}: check that it exists and "
                "that the worker may read it."
            ) from None
        raise ServiceUnavailable(
            "Secrets Manager is unavailable: the worker could not read its Travis token."
        ) from None
    return value if isinstance(value, str) else ""


def token_from_secret(value: str) -> str:
    """Accept a plain token or the stack's JSON form {"token": "..."}."""
    text = value.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return ""
        token = data.get("token", "") if isinstance(data, dict) else ""
        return token.strip() if isinstance(token, str) else ""
    return text


class TokenSource:
    """Resolves the Travis token for a job."""

    def __init__(
        self,
        jobs: CodePipelineJobs,
        secret_arn: str,
        trusted_endpoints: frozenset[str],
        secret_reader: Callable[..., str] = read_secret,
    ) -> None:
        self._jobs = jobs
        self._secret_arn = secret_arn
        self._trusted = trusted_endpoints
        self._read_secret = secret_reader
        self._known: dict[tuple[str, str], str] = {}  # this invocation's answers, memory only

    def token_for(self, job_id: str, endpoint: str) -> str:
        """The token for this job's calls to `endpoint` (asked once per source instance: a step
        makes several Travis calls, and each used to cost a GetJobDetails)."""
        key = (job_id, endpoint.rstrip("/"))
        if key not in self._known:
            self._known[key] = self._resolve(job_id, endpoint)
        return self._known[key]

    def _resolve(self, job_id: str, endpoint: str) -> str:
        try:
            token = self._jobs.configuration(job_id).get(TOKEN_PROPERTY, "").strip()
        except CodePipelineRejected:
            # The job is gone (abandoned or deleted): only canceling its build is left to do,
            # with the worker's own token where that is trusted.
            token = ""
        if token:
            return token
        return self.worker_token(endpoint)

    def worker_token(self, endpoint: str) -> str:
        """The worker's own token, for trusted endpoints only."""
        if endpoint.rstrip("/") not in self._trusted:
            raise ConfigurationInvalid(
                f"The Endpoint {endpoint} is not trusted with the worker's own Travis token: set "
                "the APIToken property for it, or add it to the worker stack's trustedEndpoints "
                "context."
            )
        token = token_from_secret(self._read_secret(self._secret_arn))
        if not token:
            # An empty secret is never trusted from the cache: a token stored a moment ago (the
            # first run after deploying) takes effect at once.
            token = token_from_secret(self._read_secret(self._secret_arn, fresh=True))
        if not token:
            raise ConfigurationInvalid(
                "No Travis API token is configured: set the APIToken property of the action, or "
                f"store a token in the worker's secret {self._secret_arn}."
            )
        return token
