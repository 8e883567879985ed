#!/usr/bin/env python3
"""CDK app entry point: `cdk synth` / `cdk deploy` (see the README for context keys)."""

from __future__ import annotations

import os
import sys

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.config import ConfigError
from stacks.worker_stack import TravisWorkerStack


def build_app(outdir: str | None = None, context: dict[str, object] | None = None) -> App:
    """The app with its stack and cdk-nag; no AWS call, no side effect beyond synthesis."""
    app = App(outdir=outdir, context=context) if outdir else App(context=context)
    stack_name = app.node.try_get_context("stackName") or "CodePipelineTravisWorker"
    TravisWorkerStack(
        app,
        str(stack_name),
        env=Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=os.environ.get("CDK_DEFAULT_REGION"),
        ),
        description="Serverless AWS CodePipeline custom-action worker for Travis CI",
    )
    if app.node.try_get_context("examplePipeline") in (True, "true", "1", "yes"):
        from stacks.example_pipeline import ExamplePipelineStack

        ExamplePipelineStack(
            app,
            f"{stack_name}-ExamplePipeline",
            env=Environment(
                account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
                region=os.environ.get("CDK_DEFAULT_REGION"),
            ),
        )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


if __name__ == "__main__":
    try:
        build_app(outdir=os.environ.get("CDK_OUTDIR") or None).synth()
    except ConfigError as error:
        # One clean line naming the key, not a 20-line traceback.
        print(f"Error: {error}", file=sys.stderr)
        sys.exit(2)
