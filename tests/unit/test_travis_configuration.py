"""The Travis action's properties: validated before anything reaches Travis, errors naming them."""

from __future__ import annotations

import pytest

from worker.failures import ConfigurationInvalid
from worker.providers.travis.configuration import (
    build_url,
    check_endpoint,
    read_target,
    web_base,
)

DEFAULT_ENDPOINT = "https://api.travis-ci.com"  # what the stack sets by default

VALID = {"Owner": "octo-org", "ProjectName": "hello.world", "Branch": "main"}


def _with(**changes: str) -> dict[str, str]:
    return {**VALID, **changes}


def test_a_valid_configuration_names_the_repository() -> None:
    # Given the three required properties, surrounded by stray spaces
    configuration = {"Owner": " octo-org ", "ProjectName": "hello.world", "Branch": " main"}

    # When it is read
    target = read_target(configuration, DEFAULT_ENDPOINT)

    # Then the target is the repository and branch, on the default endpoint
    assert (target.owner, target.project, target.branch) == ("octo-org", "hello.world", "main")
    assert target.slug == "octo-org/hello.world"
    assert target.endpoint == DEFAULT_ENDPOINT


@pytest.mark.parametrize("prop", ["Owner", "ProjectName", "Branch"])
@pytest.mark.parametrize("value", [None, "", "  "])
def test_a_missing_required_property_is_named(prop: str, value: str | None) -> None:
    # Given a configuration without one required property
    configuration = dict(VALID)
    if value is None:
        del configuration[prop]
    else:
        configuration[prop] = value

    # Then the error names it, for the pipeline user to fix
    with pytest.raises(ConfigurationInvalid, match=f"required property {prop} .* missing"):
        read_target(configuration, DEFAULT_ENDPOINT)


@pytest.mark.parametrize("prop", ["Owner", "ProjectName"])
@pytest.mark.parametrize(
    "value",
    [
        "octo/evil",  # would change the slug
        "octo%2Fevil",
        "two words",
        "..",
        ".",
        "ówner",
        "name;rm",
        "a" * 101,
        "repo?x=1",
        "repo#frag",
    ],
)
def test_odd_characters_in_names_are_refused(prop: str, value: str) -> None:
    with pytest.raises(ConfigurationInvalid, match=f"property {prop} must be"):
        read_target(_with(**{prop: value}), DEFAULT_ENDPOINT)


@pytest.mark.parametrize("value", ["a", "A-b_c.d", "x" * 100, "123"])
def test_ordinary_names_are_accepted(value: str) -> None:
    assert read_target(_with(Owner=value, ProjectName=value), DEFAULT_ENDPOINT).owner == value


@pytest.mark.parametrize(
    "branch",
    [
        "feature branch",
        "a..b",
        "~x",
        "x^",
        "a:b",
        "a?b",
        "a*b",
        "a[b",
        "a\\b",
        "-x",
        "/x",
        "x/",
        "x.",
        "x.lock",
        "a@{b",
        "a//b",
        "tab\tbranch",
        "nul\x00branch",
        "del\x7f",
        "b" * 256,
    ],
)
def test_invalid_branch_names_are_refused(branch: str) -> None:
    with pytest.raises(ConfigurationInvalid, match="property Branch is not a valid git branch"):
        read_target(_with(Branch=branch), DEFAULT_ENDPOINT)


@pytest.mark.parametrize(
    "branch", ["main", "feature/new-thing", "release-1.2", "v1.0_rc", "user@host", "b" * 255]
)
def test_valid_branch_names_are_accepted(branch: str) -> None:
    assert read_target(_with(Branch=branch), DEFAULT_ENDPOINT).branch == branch


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("https://api.travis-ci.com", "https://api.travis-ci.com"),
        ("https://api.travis-ci.com/", "https://api.travis-ci.com"),
        ("https://travis.example.com/api", "https://travis.example.com/api"),
        ("https://travis.example.com:8443/api/", "https://travis.example.com:8443/api"),
        ("http://127.0.0.1:8099", "http://127.0.0.1:8099"),
        ("http://localhost:8099", "http://localhost:8099"),
        ("http://[::1]:8099", "http://[::1]:8099"),
    ],
)
def test_endpoint_accepts_https_and_loopback_http(endpoint: str, expected: str) -> None:
    assert read_target(_with(Endpoint=endpoint), DEFAULT_ENDPOINT).endpoint == expected


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://api.travis-ci.com",  # the token would travel in clear text
        "http://127.0.0.1.evil.example",  # looks like loopback, is not
        "http://localhost.evil.example",
        "ftp://api.travis-ci.com",
        "api.travis-ci.com",
        "https://",
        "https://user:password@travis.example.com",
        "https://travis.example.com?redirect=evil",
        "https://travis.example.com/api#x",
        "https://travis.example.com:99999",
        "https://travis.example.com:port",
        "https://" + "h" * 500,
    ],
)
def test_endpoint_refuses_anything_else(endpoint: str) -> None:
    # Given an Endpoint that could leak the token, or is no URL at all
    # When the configuration is read
    # Then it is refused, naming the property and never echoing what could hold credentials
    with pytest.raises(ConfigurationInvalid, match="Endpoint property") as raised:
        read_target(_with(Endpoint=endpoint), DEFAULT_ENDPOINT)
    assert "password" not in raised.value.message


def test_a_blank_endpoint_means_the_default() -> None:
    target = read_target(_with(Endpoint="  "), "https://travis.example.com/api")
    assert target.endpoint == "https://travis.example.com/api"


def test_the_default_endpoint_is_checked_too() -> None:
    with pytest.raises(ConfigurationInvalid):
        check_endpoint("http://travis.example.com")


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        (
            "https://api.travis-ci.com",
            "https://app.travis-ci.com/github/octo-org/hello.world/builds/900001",
        ),
        (  # travis-ci.org was shut down; its builds live on app.travis-ci.com
            "https://api.travis-ci.org",
            "https://app.travis-ci.com/github/octo-org/hello.world/builds/900001",
        ),
        (  # Travis Enterprise: the web UI is the API host without /api
            "https://travis.example.com/api",
            "https://travis.example.com/octo-org/hello.world/builds/900001",
        ),
        ("http://127.0.0.1:8099", "http://127.0.0.1:8099/octo-org/hello.world/builds/900001"),
    ],
)
def test_build_links_point_at_the_travis_web_ui(endpoint: str, url: str) -> None:
    assert build_url(endpoint, "octo-org/hello.world", "900001") == url


def test_web_base_of_enterprise_with_trailing_slash() -> None:
    assert web_base("https://travis.example.com/api/") == "https://travis.example.com"
