"""The CDK action class users copy into their pipeline app renders the worker's custom action."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from stacks.pipeline_action import TravisBuildAction

pytestmark = pytest.mark.synth


def test_pipeline_stage_uses_the_custom_action_type_with_its_configuration() -> None:
    # Given a pipeline with a source and a Travis action built with TravisBuildAction
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
        stage_name="Test",
        actions=[
            TravisBuildAction(
                action_name="Travis",
                input=source,
                owner="my-org",
                project_name="my-app",
                branch="release/1.x",
                endpoint="https://travis.example.com/api",
            )
        ],
    )

    # When it is synthesized
    template = Template.from_stack(stack)

    # Then the stage names our custom action type and carries the configuration, no token
    template.has_resource_properties(
        "AWS::CodePipeline::Pipeline",
        {
            "Stages": Match.array_with(
                [
                    {
                        "Name": "Test",
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
