"""`TravisBuildAction`: use the worker's custom action from a CDK pipeline.

CDK has no ready-made action class for custom action types; this is the `Action` subclass a
pipeline app needs. It ships in the worker's package (`pip install codepipeline-travis-worker`,
`from codepipeline_travis_worker import TravisBuildAction`) and depends on aws-cdk-lib only.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_codepipeline as codepipeline
from constructs import Construct

_CATEGORIES = {
    "build": codepipeline.ActionCategory.BUILD,
    "test": codepipeline.ActionCategory.TEST,
    "deploy": codepipeline.ActionCategory.DEPLOY,
    "invoke": codepipeline.ActionCategory.INVOKE,
    "approval": codepipeline.ActionCategory.APPROVAL,
    "source": codepipeline.ActionCategory.SOURCE,
}


def action_category(category: str | codepipeline.ActionCategory) -> codepipeline.ActionCategory:
    """`"Build"`, `"test"` or an `ActionCategory`: what the worker's `category` context says."""
    if isinstance(category, codepipeline.ActionCategory):
        return category
    try:
        return _CATEGORIES[str(category).strip().lower()]
    except KeyError:
        raise ValueError(
            f"category must be one of {', '.join(c.capitalize() for c in _CATEGORIES)}, "
            f"not {category!r}"
        ) from None


class TravisBuildAction(codepipeline.Action):
    """A pipeline action of the worker's custom type (owner Custom, provider Travis by default).

    `output`, when given, receives the worker's build report (`build-report.json` in a zip:
    build id, number, URL, state, commit, duration, jobs) once the build passed.
    """

    def __init__(
        self,
        *,
        action_name: str,
        input: codepipeline.Artifact,  # noqa: A002 - the name CDK actions use
        owner: str,
        project_name: str,
        branch: str,
        endpoint: str | None = None,
        output: codepipeline.Artifact | None = None,
        category: str | codepipeline.ActionCategory = "Test",
        provider: str = "Travis",
        version: str = "1",
        run_order: int | None = None,
        variables_namespace: str | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("owner", owner), ("project_name", project_name), ("branch", branch)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"TravisBuildAction: {name} must be a non-empty string")
        self._properties = codepipeline.ActionProperties(
            action_name=action_name,
            artifact_bounds=codepipeline.ActionArtifactBounds(
                min_inputs=0, max_inputs=1, min_outputs=0, max_outputs=1
            ),
            category=action_category(category),
            provider=str(provider),
            owner="Custom",
            version=str(version),
            inputs=[input],
            outputs=[output] if output else None,
            run_order=run_order,
            variables_namespace=variables_namespace,
        )
        # APIToken is left out on purpose: a secret in a pipeline definition is visible to anyone
        # who can read the pipeline; the worker's Secrets Manager secret is the default.
        self._configuration: dict[str, str] = {
            "Owner": owner,
            "ProjectName": project_name,
            "Branch": branch,
        }
        if endpoint:
            self._configuration["Endpoint"] = endpoint

    @property
    def _provided_action_properties(self) -> codepipeline.ActionProperties:
        return self._properties

    def _bound(
        self, scope: Construct, stage: codepipeline.IStage, *, bucket: Any, role: Any
    ) -> codepipeline.ActionConfig:
        return codepipeline.ActionConfig(configuration=self._configuration)
