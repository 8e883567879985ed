"""The lines of a Travis log quoted in a failure message: the failed command and what led to it,
without colours, fold markers or secrets."""

from __future__ import annotations

from worker.providers.travis.logs import clean_line, explanation

LOG = (
    "travis_fold:start:worker_info\r\x1b[0K\x1b[33;1mWorker information\x1b[0m\n"
    "hostname: worker-1\n"
    "travis_fold:end:worker_info\r\x1b[0K\n"
    "$ export TOKEN=[secure]\n"
    "travis_time:start:0a1b\r\x1b[0K$ pytest\n"
    "============ test session starts ============\n"
    "tests/test_app.py ..F\n"
    "\x1b[31mFAILED tests/test_app.py::test_login - AssertionError: 401 != 200\x1b[0m\n"
    "============ 1 failed, 2 passed in 1.2s ============\n"
    "travis_time:end:0a1b:start=1,finish=2,duration=1\r\x1b[0K\n"
    '\x1b[31;1mThe command "pytest" exited with 1.\x1b[0m\n'
    "\n"
    "Done. Your build exited with 1.\n"
)


def test_the_explanation_ends_with_the_failed_command() -> None:
    lines = explanation(LOG, lines=4)
    assert lines[-1] == 'The command "pytest" exited with 1.'
    assert "FAILED tests/test_app.py::test_login - AssertionError: 401 != 200" in lines


def test_the_explanation_starts_at_the_failed_command() -> None:
    # Given room for more lines than the failed command printed
    lines = explanation(LOG, lines=20)
    # Then it quotes the command and its output, not the setup before it
    assert lines[0] == "$ pytest"
    assert not any(line.startswith("$ export") or "Worker information" in line for line in lines)
    assert not any("\x1b" in line or "travis_" in line for line in lines)
    assert not any(line.startswith("Done.") for line in lines)


def test_known_secrets_and_secret_looking_words_are_masked() -> None:
    # An access-key-shaped word, made here so no key-shaped literal sits in the repository.
    key_id = "AKIA" + "EXAMPLE" * 2 + "XY"
    line = f"curl -H 'Authorization: token abc123' {key_id} password=hunter2 tok-9"
    cleaned = clean_line(line, secrets=("tok-9",))
    for secret in ("abc123", key_id, "hunter2", "tok-9"):
        assert secret not in cleaned
    assert "[secure]" in cleaned


def test_a_log_without_a_verdict_gives_its_last_lines() -> None:
    log = "\n".join(f"line {n}" for n in range(50)) + "\nDone. Your build exited with 1.\n"
    assert explanation(log, lines=3) == ["line 47", "line 48", "line 49"]


def test_long_lines_are_cut_and_empty_logs_say_nothing() -> None:
    assert len(clean_line("x" * 1000)) <= 240
    assert explanation("") == []
