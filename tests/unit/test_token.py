"""Where a Travis call gets its token: the job's APIToken, else the worker's secret (if trusted)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.unit.support import JOB_TOKEN, SECRET_ARN, WORKER_TOKEN, SecretStore
from worker.codepipeline import CodePipelineJobs
from worker.failures import ConfigurationInvalid, ServiceUnavailable
from worker.providers.travis.token import TokenSource, read_secret, token_from_secret

TRUSTED = "https://api.travis-ci.com"
UNTRUSTED = "https://travis.attacker.example/api"


@pytest.fixture
def source(jobs: CodePipelineJobs, secret: SecretStore) -> TokenSource:
    return TokenSource(jobs, SECRET_ARN, frozenset({TRUSTED}), secret)


def test_the_jobs_api_token_wins(
    source: TokenSource, create_job: Callable[..., str], secret: SecretStore
) -> None:
    # Given a job whose action sets APIToken (read fresh from GetJobDetails, never stored)
    job_id = create_job(api_token=f"  {JOB_TOKEN} ")

    # When a step needs the token
    token = source.token_for(job_id, TRUSTED)

    # Then it is the job's, and the worker's secret is not read at all
    assert token == JOB_TOKEN
    assert secret.reads == []


def test_one_step_asks_codepipeline_for_the_token_once(
    source: TokenSource, create_job: Callable[..., str], emulator: Any
) -> None:
    # Given a step that makes several Travis calls for the same job (resolve: request + build)
    job_id = create_job(api_token=JOB_TOKEN)

    # When it needs the token for each of them
    tokens = {source.token_for(job_id, TRUSTED) for _ in range(3)}

    # Then CodePipeline was asked once (GetJobDetails), and the token is the same
    assert tokens == {JOB_TOKEN}
    assert len(emulator.calls("GetJobDetails")) == 1


def test_the_jobs_api_token_may_go_to_its_own_endpoint(
    source: TokenSource, create_job: Callable[..., str]
) -> None:
    # A user who points Endpoint at their Travis Enterprise brings their own token
    assert source.token_for(create_job(), UNTRUSTED) == JOB_TOKEN


@pytest.mark.parametrize(
    "stored", [json.dumps({"token": WORKER_TOKEN}), WORKER_TOKEN, f"\n{WORKER_TOKEN}\n"]
)
def test_the_workers_secret_is_used_otherwise(
    jobs: CodePipelineJobs, create_job: Callable[..., str], stored: str
) -> None:
    # Given a job without APIToken and a secret in the stack's JSON form or as plain text
    secret = SecretStore(stored)
    source = TokenSource(jobs, SECRET_ARN, frozenset({TRUSTED}), secret)

    # When a step needs the token for a trusted endpoint
    token = source.token_for(create_job(api_token=None), TRUSTED + "/")

    # Then it is the worker's token, read from the configured secret
    assert token == WORKER_TOKEN
    assert secret.reads == [SECRET_ARN]
    # once, through the cache: a secret that holds a token is not read fresh
    assert secret.calls == [(SECRET_ARN, False)]


@pytest.mark.parametrize(
    "stored",
    ["", "   ", json.dumps({"token": ""}), json.dumps({"token": 42}), "{not json", "{}"],
)
def test_an_empty_secret_is_a_configuration_error(
    jobs: CodePipelineJobs, create_job: Callable[..., str], stored: str
) -> None:
    # Given a job without APIToken and a secret holding no token (e.g. the stack's placeholder)
    secret = SecretStore(stored)
    source = TokenSource(jobs, SECRET_ARN, frozenset({TRUSTED}), secret)

    # Then the user is told both ways to provide one
    with pytest.raises(ConfigurationInvalid, match="No Travis API token") as raised:
        source.token_for(create_job(api_token=None), TRUSTED)
    assert "APIToken" in raised.value.message
    assert SECRET_ARN in raised.value.message
    # after reading it through the cache, then fresh (an empty value is never trusted cached)
    assert secret.calls == [(SECRET_ARN, False), (SECRET_ARN, True)]


def test_an_empty_cached_secret_is_read_fresh_at_once(
    jobs: CodePipelineJobs, create_job: Callable[..., str]
) -> None:
    # Given the container cached the stack's empty placeholder, and a token was stored since
    secret = SecretStore(json.dumps({"token": ""}), fresh_value=json.dumps({"token": WORKER_TOKEN}))
    source = TokenSource(jobs, SECRET_ARN, frozenset({TRUSTED}), secret)

    # When a step needs the token
    token = source.token_for(create_job(api_token=None), TRUSTED)

    # Then the token stored a moment ago works now: read as reader(arn), then reader(arn, fresh)
    assert token == WORKER_TOKEN
    assert secret.calls == [(SECRET_ARN, False), (SECRET_ARN, True)]


def test_an_empty_api_token_falls_back_to_the_secret(
    source: TokenSource, create_job: Callable[..., str]
) -> None:
    assert source.token_for(create_job(api_token="  "), TRUSTED) == WORKER_TOKEN


def test_an_untrusted_endpoint_never_gets_the_workers_token(
    source: TokenSource, create_job: Callable[..., str], secret: SecretStore
) -> None:
    # Given a pipeline that points Endpoint at a host the deployment does not trust
    job_id = create_job(api_token=None)

    # When a step asks for a token to call it
    with pytest.raises(ConfigurationInvalid, match="not trusted") as raised:
        source.token_for(job_id, UNTRUSTED)

    # Then it is refused before the secret is even read, and told how to fix it
    assert secret.reads == []
    assert UNTRUSTED in raised.value.message
    assert "APIToken" in raised.value.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"token": "abc"}', "abc"),
        ('{"token": " abc ", "placeholder": "x"}', "abc"),
        ("abc", "abc"),
        ("  abc\n", "abc"),
        ('{"token": null}', ""),
        ('{"other": "abc"}', ""),
        ("{broken", ""),
    ],
)
def test_token_from_secret_forms(raw: str, expected: str) -> None:
    assert token_from_secret(raw) == expected


# --- reading the secret from Secrets Manager --------------------------------------------------


@pytest.fixture
def secrets_manager() -> Iterator[None]:
    with mock_aws():
        yield


def test_read_secret_returns_the_stored_string(secrets_manager: None) -> None:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    arn = client.create_secret(Name="travis", SecretString=json.dumps({"token": WORKER_TOKEN}))[
        "ARN"
    ]

    assert token_from_secret(read_secret(arn)) == WORKER_TOKEN


def test_read_secret_is_cached_across_calls(secrets_manager: None) -> None:
    # Given a secret read once, then rotated
    client = boto3.client("secretsmanager", region_name="us-east-1")
    arn = client.create_secret(Name="travis", SecretString="first")["ARN"]
    assert read_secret(arn) == "first"
    client.put_secret_value(SecretId=arn, SecretString="second")

    # Then a warm container keeps using its cached value for a few minutes
    assert read_secret(arn) == "first"


def test_read_secret_fresh_skips_the_cache(secrets_manager: None) -> None:
    # Given a secret read once (cached), then changed
    client = boto3.client("secretsmanager", region_name="us-east-1")
    arn = client.create_secret(Name="travis", SecretString="first")["ARN"]
    assert read_secret(arn) == "first"
    client.put_secret_value(SecretId=arn, SecretString="second")

    # Then a fresh read sees the new value, and refreshes the cache
    assert read_secret(arn, fresh=True) == "second"
    assert read_secret(arn) == "second"


def test_a_token_stored_after_the_placeholder_was_cached_works_at_once(
    secrets_manager: None, jobs: CodePipelineJobs, create_job: Callable[..., str]
) -> None:
    # Given the worker's secret is the stack's placeholder, already cached by this container
    client = boto3.client("secretsmanager", region_name="us-east-1")
    arn = client.create_secret(Name="travis", SecretString=json.dumps({"token": ""}))["ARN"]
    assert token_from_secret(read_secret(arn)) == ""
    # and the operator stores the token right after deploying
    client.put_secret_value(SecretId=arn, SecretString=json.dumps({"token": WORKER_TOKEN}))

    # When the first job without APIToken needs a token (the real reader)
    source = TokenSource(jobs, arn, frozenset({TRUSTED}))
    token = source.token_for(create_job(api_token=None), TRUSTED)

    # Then it is the stored token, not "no token configured"
    assert token == WORKER_TOKEN


def test_a_missing_secret_is_a_configuration_error(secrets_manager: None) -> None:
    with pytest.raises(ConfigurationInvalid, match="cannot read its Travis token secret"):
        read_secret(SECRET_ARN)


def test_an_unreachable_secrets_manager_is_service_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given Secrets Manager cannot be reached (nothing listens on this port)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETSMANAGER", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    # Then the step fails retryably, without the secret's content or a stack trace in the message
    with pytest.raises(ServiceUnavailable, match="Secrets Manager is unavailable"):
        read_secret(SECRET_ARN)
