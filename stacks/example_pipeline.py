"""An example pipeline that uses the worker's action, to try a real run after deploying.

Opt-in (`-c examplePipeline=true`): a CodePipeline V2 pipeline whose source is a versioned S3
bucket this stack creates (upload any zip as `source.zip`) or, with `exampleConnectionArn`, a
GitHub repository through a CodeStar connection (real commit ids, so the worker builds the exact
commit). The Travis action builds `exampleOwner/exampleProject` on `exampleBranch` and writes its
build report to an output artifact.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, CfnElement, RemovalPolicy, Stack, Validations
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .config import ConfigError
from .pipeline_action import TravisBuildAction


class ExamplePipelineStack(Stack):
    """Source → Travis (the worker's custom action), with the build report as an artifact."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)

        def context(key: str, default: str | None = None) -> str:
            value = self.node.try_get_context(key)
            if value is None or str(value).strip() == "":
                if default is None:
                    raise ConfigError(
                        f"context '{key}' is needed for the example pipeline (-c {key}=...)"
                    )
                return default
            return str(value).strip()

        owner = context("exampleOwner")
        project = context("exampleProject")
        branch = context("exampleBranch", "main")
        connection = self.node.try_get_context("exampleConnectionArn")
        source_output = codepipeline.Artifact("Source")
        report = codepipeline.Artifact("BuildReport")
        if connection:
            source: codepipeline.IAction = actions.CodeStarConnectionsSourceAction(
                action_name="GitHub",
                connection_arn=str(connection),
                owner=owner,
                repo=project,
                branch=branch,
                output=source_output,
            )
        else:
            bucket = s3.Bucket(
                self,
                "SourceBucket",
                versioned=True,
                enforce_ssl=True,
                encryption=s3.BucketEncryption.S3_MANAGED,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                removal_policy=RemovalPolicy.DESTROY,
                auto_delete_objects=False,
            )
            source = actions.S3SourceAction(
                action_name="S3", bucket=bucket, bucket_key="source.zip", output=source_output
            )
        self.pipeline = codepipeline.Pipeline(
            self,
            "Pipeline",
            pipeline_type=codepipeline.PipelineType.V2,
            stages=[
                codepipeline.StageProps(stage_name="Source", actions=[source]),
                codepipeline.StageProps(
                    stage_name="Test",
                    actions=[
                        TravisBuildAction(
                            action_name="Travis",
                            input=source_output,
                            output=report,
                            owner=owner,
                            project_name=project,
                            branch=branch,
                            category=str(self.node.try_get_context("category") or "Test"),
                            provider=str(self.node.try_get_context("provider") or "Travis"),
                            version=str(self.node.try_get_context("version") or "1"),
                        )
                    ],
                ),
            ],
        )
        wildcard = "CDK's pipeline and action roles use wildcards for artifact objects and keys."
        for finding, reason in (
            (
                "AwsSolutions-S1",
                "An example pipeline's source and artifact buckets need no access logs.",
            ),
            *(
                (f"AwsSolutions-IAM5[Action::{action}]", wildcard)
                for action in (
                    "s3:GetObject*",
                    "s3:GetBucket*",
                    "s3:List*",
                    "s3:DeleteObject*",
                    "s3:Abort*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                )
            ),
            (
                "AwsSolutions-IAM5[Resource::<"
                + self.get_logical_id(self._cfn(self.pipeline.artifact_bucket))
                + ".Arn>/*]",
                wildcard,
            ),
            (
                "AwsSolutions-KMS5",
                "CDK's artifact key for the example; rotation is not needed for a trial.",
            ),
        ):
            Validations.of(self).acknowledge(
                Acknowledgment(id=f"AwsSolutions::{finding}", reason=reason)
            )

    @staticmethod
    def _cfn(construct: Any) -> CfnElement:
        child = construct.node.default_child
        assert isinstance(child, CfnElement)  # noqa: S101 - L2 constructs always have one
        return child
