"""The watch table: waiting action runs and their wake-up tokens, expiring on their own."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.synth


def test_one_on_demand_table_with_ttl(default_synth: Synthesized) -> None:
    default_synth.assertions.resource_count_is("AWS::DynamoDB::GlobalTable", 1)
    default_synth.assertions.resource_count_is("AWS::DynamoDB::Table", 0)
    default_synth.assertions.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True},
            "Replicas": [Match.object_like({"Region": {"Ref": "AWS::Region"}})],
        },
    )


def test_table_is_deleted_with_the_stack(default_synth: Synthesized) -> None:
    # It holds only short-lived wake-up tokens: nothing to keep.
    default_synth.assertions.has_resource(
        "AWS::DynamoDB::GlobalTable", {"DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete"}
    )


def test_table_name_is_an_output(default_synth: Synthesized) -> None:
    (table_id,) = default_synth.resources("AWS::DynamoDB::GlobalTable")
    assert default_synth.template["Outputs"]["WatchTableName"]["Value"] == {"Ref": table_id}
