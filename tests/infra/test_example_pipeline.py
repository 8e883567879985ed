"""The opt-in example pipeline (context examplePipeline=true): source → the worker's action."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.assertions import Capture, Match, Template

from stacks.config import ConfigError
from stacks.example_pipeline import ExamplePipelineStack
from tests.infra.conftest import EXAMPLE_CONTEXT

pytestmark = pytest.mark.synth

CONNECTION = "arn:aws:codestar-connections:us-east-1:123456789012:connection/abc"


def example(context: dict[str, Any]) -> Template:
    """The example stack alone (no worker, no cdk-nag: test_static_gates checks the app)."""
    app = App(context=context)
    return Template.from_stack(ExamplePipelineStack(app, "Example"))


@pytest.fixture(scope="module")
def s3_example() -> Template:
    return example(EXAMPLE_CONTEXT)


def stages(template: Template) -> list[dict[str, Any]]:
    captured = Capture()
    template.has_resource_properties(
        "AWS::CodePipeline::Pipeline", {"PipelineType": "V2", "Stages": captured}
    )
    return list(captured.as_array())


def test_v2_pipeline_with_source_and_travis_stages(s3_example: Template) -> None:
    s3_example.resource_count_is("AWS::CodePipeline::Pipeline", 1)
    source, travis = stages(s3_example)
    assert source["Name"] == "Source"
    (s3_action,) = source["Actions"]
    assert s3_action["ActionTypeId"]["Provider"] == "S3"
    assert s3_action["OutputArtifacts"] == [{"Name": "Source"}]
    assert s3_action["Configuration"]["S3ObjectKey"] == "source.zip"
    assert travis["Name"] == "Test"
    (action,) = travis["Actions"]
    assert action["ActionTypeId"] == {
        "Category": "Test",
        "Owner": "Custom",
        "Provider": "Travis",
        "Version": "1",
    }
    assert action["Configuration"] == {
        "Owner": EXAMPLE_CONTEXT["exampleOwner"],
        "ProjectName": EXAMPLE_CONTEXT["exampleProject"],
        "Branch": "main",
    }
    assert action["InputArtifacts"] == [{"Name": "Source"}]
    assert action["OutputArtifacts"] == [{"Name": "BuildReport"}]


def test_source_bucket_is_versioned_and_private(s3_example: Template) -> None:
    s3_example.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True}),
        },
    )


def test_action_follows_the_worker_identity_and_a_connection() -> None:
    template = example(
        {
            **EXAMPLE_CONTEXT,
            "exampleBranch": "develop",
            "exampleConnectionArn": CONNECTION,
            "category": "Build",
            "provider": "TravisEnterprise",
            "version": "2",
        }
    )
    template.resource_count_is("AWS::S3::Bucket", 1)  # the artifact bucket only
    source, travis = stages(template)
    (github,) = source["Actions"]
    assert github["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert github["Configuration"]["ConnectionArn"] == CONNECTION
    assert github["Configuration"]["BranchName"] == "develop"
    (action,) = travis["Actions"]
    assert action["ActionTypeId"] == {
        "Category": "Build",
        "Owner": "Custom",
        "Provider": "TravisEnterprise",
        "Version": "2",
    }
    assert action["Configuration"]["Branch"] == "develop"
    assert action["OutputArtifacts"] == [{"Name": "BuildReport"}]


@pytest.mark.parametrize("missing", ["exampleOwner", "exampleProject"])
def test_missing_repository_names_the_key(missing: str) -> None:
    context = {k: v for k, v in EXAMPLE_CONTEXT.items() if k != missing}
    with pytest.raises(ConfigError, match=f"context '{missing}'"):
        example(context)
