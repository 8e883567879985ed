"""The default Travis token secret: created and retained by the stack, or imported by ARN."""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import HANDLERS, Synthesized, as_list, synthesize

pytestmark = pytest.mark.synth

IMPORTED_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ci/travis-token-AbC123"
TOKEN_READERS = ("submit", "resolve", "watch", "report", "cancel", "reaper", "abandon")


@pytest.fixture(scope="module")
def imported_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(
        tmp_path_factory.mktemp("synth-imported"), {"travisTokenSecretArn": IMPORTED_ARN}
    )


def test_created_secret_is_retained(default_synth: Synthesized) -> None:
    # Deleting the stack must not delete the token users put in it.
    _, secret = default_synth.only("AWS::SecretsManager::Secret")
    assert secret["DeletionPolicy"] == "Retain"
    assert secret["UpdateReplacePolicy"] == "Retain"


def test_created_secret_holds_no_token(default_synth: Synthesized) -> None:
    _, secret = default_synth.only("AWS::SecretsManager::Secret")
    assert "SecretString" not in secret["Properties"]
    generated = secret["Properties"]["GenerateSecretString"]
    assert json.loads(generated["SecretStringTemplate"]) == {"token": ""}
    assert generated["GenerateStringKey"] != "token", "a random value is not a Travis token"


def test_secret_arn_is_an_output(default_synth: Synthesized) -> None:
    (secret_id,) = default_synth.resources("AWS::SecretsManager::Secret")
    assert default_synth.template["Outputs"]["TravisTokenSecretArn"]["Value"] == {"Ref": secret_id}


def test_imported_secret_is_not_created(imported_synth: Synthesized) -> None:
    assert imported_synth.resources("AWS::SecretsManager::Secret") == {}
    assert imported_synth.template["Outputs"]["TravisTokenSecretArn"]["Value"] == IMPORTED_ARN


def test_imported_secret_is_wired_to_every_function(imported_synth: Synthesized) -> None:
    assert set(imported_synth.functions) == set(HANDLERS)
    for name in imported_synth.functions:
        assert imported_synth.environment(name)["TRAVIS_TOKEN_SECRET_ARN"] == IMPORTED_ARN, name


@pytest.mark.parametrize("name", TOKEN_READERS)
def test_only_the_imported_secret_is_readable(imported_synth: Synthesized, name: str) -> None:
    statements = imported_synth.role_statements(
        imported_synth.role_id(imported_synth.functions[name])
    )
    reads = [
        s for s in statements if any(a.startswith("secretsmanager:") for a in as_list(s["Action"]))
    ]
    assert reads, "the step reads the token"
    for statement in reads:
        assert as_list(statement["Resource"]) == [IMPORTED_ARN]
        assert set(as_list(statement["Action"])) <= {
            "secretsmanager:GetSecretValue",
            "secretsmanager:DescribeSecret",
        }


def test_no_other_function_reads_the_imported_secret(imported_synth: Synthesized) -> None:
    for name in set(imported_synth.functions) - set(TOKEN_READERS):
        statements = imported_synth.role_statements(
            imported_synth.role_id(imported_synth.functions[name])
        )
        assert IMPORTED_ARN not in json.dumps(statements), name


def test_imported_secret_passes_cdk_nag(imported_synth: Synthesized) -> None:
    (report,) = imported_synth.validation_report()["pluginReports"]
    assert report["conclusion"] == "success"
    assert report["violations"] == []
