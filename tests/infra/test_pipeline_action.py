"""The CDK action class users put into their pipeline app renders the worker's custom action."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Capture, Match, Template

from stacks.pipeline_action import TravisBuildAction, action_category

pytestmark = pytest.mark.synth


def pipeline_template(**action: Any) -> Template:
    """A pipeline with an S3 source and one TravisBuildAction(**action) in stage "Travis"."""
    app = App()
    stack = Stack(app, "Pipeline")
    source = codepipeline.Artifact("Source")
    pipeline = codepipeline.Pipeline(stack, "Pipe")
    pipeline.add_stage(
        stage_name="Source",
        actions=[
            actions.S3SourceAction(
                action_name="Source",
                bucket=s3.Bucket(stack, "Bucket"),
                bucket_key="src.zip",
                output=source,
            )
        ],
    )
    pipeline.add_stage(
        stage_name="Travis",
        actions=[
            TravisBuildAction(
                action_name="Travis",
                input=source,
                owner="my-org",
                project_name="my-app",
                branch="release/1.x",
                **action,
            )
        ],
    )
    return Template.from_stack(stack)


def travis_action(template: Template) -> dict[str, Any]:
    captured = Capture()
    template.has_resource_properties(
        "AWS::CodePipeline::Pipeline",
        {"Stages": Match.array_with([{"Name": "Travis", "Actions": [captured]}])},
    )
    return dict(captured.as_object())


def test_pipeline_stage_uses_the_custom_action_type_with_its_configuration() -> None:
    # Given a pipeline with a Travis action built with TravisBuildAction, when synthesized
    template = pipeline_template(endpoint="https://travis.example.com/api")

    # Then the stage names our custom action type and carries the configuration, no token
    template.has_resource_properties(
        "AWS::CodePipeline::Pipeline",
        {
            "Stages": Match.array_with(
                [
                    {
                        "Name": "Travis",
                        "Actions": [
                            {
                                "Name": "Travis",
                                "ActionTypeId": {
                                    "Category": "Test",
                                    "Owner": "Custom",
                                    "Provider": "Travis",
                                    "Version": "1",
                                },
                                "Configuration": {
                                    "Owner": "my-org",
                                    "ProjectName": "my-app",
                                    "Branch": "release/1.x",
                                    "Endpoint": "https://travis.example.com/api",
                                },
                                "InputArtifacts": [{"Name": "Source"}],
                                "RunOrder": 1,
                            }
                        ],
                    }
                ]
            ),
        },
    )


def test_category_as_a_string_and_output_artifact() -> None:
    rendered = travis_action(
        pipeline_template(
            category="Build",
            provider="TravisEnterprise",
            version="2",
            output=codepipeline.Artifact("BuildReport"),
        )
    )
    assert rendered["ActionTypeId"] == {
        "Category": "Build",
        "Owner": "Custom",
        "Provider": "TravisEnterprise",
        "Version": "2",
    }
    assert rendered["OutputArtifacts"] == [{"Name": "BuildReport"}]
    assert "APIToken" not in rendered["Configuration"]
    assert "Endpoint" not in rendered["Configuration"]


def test_no_output_artifacts_without_output() -> None:
    assert "OutputArtifacts" not in travis_action(pipeline_template())


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Build", codepipeline.ActionCategory.BUILD),
        ("test", codepipeline.ActionCategory.TEST),
        (" Deploy ", codepipeline.ActionCategory.DEPLOY),
        (codepipeline.ActionCategory.INVOKE, codepipeline.ActionCategory.INVOKE),
    ],
)
def test_action_category_accepts_strings(given: Any, expected: Any) -> None:
    assert action_category(given) == expected


@pytest.mark.parametrize("category", ["Testing", "", "Custom"])
def test_unknown_category_is_rejected(category: str) -> None:
    source = codepipeline.Artifact("Source")
    with pytest.raises(ValueError, match="category must be one of Build, Test"):
        TravisBuildAction(
            action_name="Travis",
            input=source,
            owner="o",
            project_name="p",
            branch="main",
            category=category,
        )


@pytest.mark.parametrize("missing", ["owner", "project_name", "branch"])
def test_required_configuration_is_checked(missing: str) -> None:
    kwargs = {"owner": "o", "project_name": "p", "branch": "main", missing: " "}
    with pytest.raises(ValueError, match=missing):
        TravisBuildAction(action_name="Travis", input=codepipeline.Artifact("Source"), **kwargs)
