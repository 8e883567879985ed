"""The bad-input catalogue, end to end: every case gets its classified answer, nothing is lost.

The cases live in local/catalogue.py; docs/bad-input.md is generated from them. Every row runs
through the real worker against the Travis fake's real answers, all rows at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.catalogue import (
    CASES,
    NOT_CLAIMED,
    ROW_TOKENS,
    SUCCEEDED,
    TRAVIS_URL_IN_DOCS,
    Answer,
    catalogue_worker,
    markdown,
    run_catalogue,
)
from local.travis import DEFAULT_TOKEN
from tests.e2e.conftest import everything_an_operator_sees

pytestmark = pytest.mark.e2e
DOC = Path(__file__).resolve().parents[2] / "docs" / "bad-input.md"


@pytest.fixture(scope="module")
def catalogue(template: dict[str, Any]) -> Iterator[tuple[dict[str, Answer], str, str]]:
    """Run every case once, concurrently, through one local worker."""
    worker = catalogue_worker(template)
    with worker:
        worker.emulator.add_action_listener(worker.on_action_started)
        worker.start_sweeper(0.05)
        answers = run_catalogue(worker)
        seen = everything_an_operator_sees(worker)
        yield {a.case.name: a for a in answers}, seen, worker.travis.base_url


def test_catalogue_has_at_least_40_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
    assert len({c.slug for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_its_classified_answer(catalogue: Any, case: Any) -> None:
    answers, _, _ = catalogue
    answer = answers[case.name]
    assert answer.result == case.expected, answer.message
    assert case.message in answer.message, answer.message
    assert answer.travis_ok, "Travis did not receive what the case expects"
    if case.expected not in (SUCCEEDED, NOT_CLAIMED):
        # one or two sentences a pipeline user understands, never empty
        assert 20 < len(answer.message) < 700
        assert answer.ends.endswith("ReportedFailure"), answer.ends
    if case.expected == SUCCEEDED:
        assert answer.ends == "LinkPublished, BuildPassed"


def test_every_claimed_job_of_the_catalogue_has_a_result(catalogue: Any) -> None:
    answers, _, _ = catalogue
    for answer in answers.values():
        if answer.case.expected != NOT_CLAIMED:
            assert answer.run.finished, answer.case.name


def test_no_secret_in_answers_histories_or_logs(catalogue: Any) -> None:
    answers, seen, _ = catalogue
    messages = " ".join(a.message for a in answers.values())
    for secret in (DEFAULT_TOKEN, *ROW_TOKENS):
        assert secret not in messages
        assert secret not in seen
    assert "Claimed job" in seen  # the scan covers real logs


def test_documentation_shows_what_users_get_today(catalogue: Any) -> None:
    # The documented table is what the catalogue produces now (ids and ports aside).
    answers, _, travis_url = catalogue
    text = DOC.read_text(encoding="utf-8")
    generated = markdown([answers[c.name] for c in CASES], travis_url=travis_url)

    def rows(markdown_text: str) -> list[str]:
        return [
            re.sub(r"\d+", "N", line.replace(TRAVIS_URL_IN_DOCS, "URL"))
            for line in markdown_text.splitlines()
            if line.startswith("| ") and not line.startswith("| #")
        ]

    assert rows(text) == rows(generated), (
        "regenerate docs/bad-input.md: python -m local.catalogue --markdown > docs/bad-input.md"
    )
