"""The custom action type: the contract pipelines are written against (ARCHITECTURE.md)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra.conftest import CUSTOM_CONTEXT, Synthesized

pytestmark = pytest.mark.synth

WEB = "https://app.travis-ci.com/github/{Config:Owner}/{Config:ProjectName}"
# name: (required, secret)
PROPERTIES = {
    "Owner": (True, False),
    "ProjectName": (True, False),
    "Branch": (True, False),
    "APIToken": (False, True),
    "Endpoint": (False, False),
}


def action_type(synth: Synthesized) -> dict[str, Any]:
    _, resource = synth.only("AWS::CodePipeline::CustomActionType")
    return dict(resource["Properties"])


def test_default_identity_is_custom_test_travis_1(default_synth: Synthesized) -> None:
    props = action_type(default_synth)
    assert (props["Category"], props["Provider"], props["Version"]) == ("Test", "Travis", "1")
    outputs = default_synth.template["Outputs"]
    assert outputs["ActionTypeId"]["Value"] == "Custom/Test/Travis/1"


def test_identity_comes_from_context(custom_synth: Synthesized) -> None:
    props = action_type(custom_synth)
    expected = (CUSTOM_CONTEXT["category"], CUSTOM_CONTEXT["provider"], CUSTOM_CONTEXT["version"])
    assert (props["Category"], props["Provider"], props["Version"]) == expected


def test_configuration_properties(default_synth: Synthesized) -> None:
    properties = {p["Name"]: p for p in action_type(default_synth)["ConfigurationProperties"]}
    assert set(properties) == set(PROPERTIES)
    for name, (required, secret) in PROPERTIES.items():
        prop = properties[name]
        assert (prop["Required"], prop["Secret"]) == (required, secret), name
        assert prop.get("Type", "String") == "String", name
        assert prop.get("Description"), f"{name} has no description for the console"


def test_properties_stay_within_codepipeline_limits(default_synth: Synthesized) -> None:
    properties = action_type(default_synth)["ConfigurationProperties"]
    assert len(properties) <= 10
    assert all(len(p["Name"]) <= 50 for p in properties)
    # At most one queryable property is allowed; none is needed (no job is matched by value).
    assert [p["Name"] for p in properties if p.get("Queryable")] == []


def test_artifacts_are_optional_and_single(default_synth: Synthesized) -> None:
    props = action_type(default_synth)
    for key in ("InputArtifactDetails", "OutputArtifactDetails"):
        assert props[key] == {"MinimumCount": 0, "MaximumCount": 1}, key


def test_url_templates_point_at_the_travis_web_ui(default_synth: Synthesized) -> None:
    settings = action_type(default_synth)["Settings"]
    assert settings["EntityUrlTemplate"] == WEB
    assert settings["ExecutionUrlTemplate"] == f"{WEB}/builds/{{ExternalExecutionId}}"


def test_url_templates_use_no_secret_property(default_synth: Synthesized) -> None:
    props = action_type(default_synth)
    secret = {p["Name"] for p in props["ConfigurationProperties"] if p["Secret"]}
    used = set()
    for url in props["Settings"].values():
        used |= set(re.findall(r"\{Config:([^}]+)\}", str(url)))
    assert used, "the URL templates name the repository"
    assert not used & secret
    known = {p["Name"] for p in props["ConfigurationProperties"] if p["Required"]}
    assert used <= known, "a URL template names a property that may be empty"
