"""Job logs that look like Travis's: ANSI colours, fold and timer markers, the real closing lines.

The markers and closing lines are the ones travis-build prints (travis-ci/travis-build
`lib/travis/build/bash/travis_fold.bash`, `travis_result.bash`, `travis_assert.bash`, and the
footer "Done. Your build exited with N."), so a client that extracts "the failing part" of a log is
tested against the real layout rather than a tidy invention.
"""

from __future__ import annotations

from local.travis.model import TravisJob

ANSI_RED = "\x1b[31;1m"
ANSI_GREEN = "\x1b[32;1m"
ANSI_YELLOW = "\x1b[33;1m"
ANSI_RESET = "\x1b[0m"
ANSI_CLEAR = "\x1b[0K"


def _fold(action: str, name: str) -> str:
    # travis_fold.bash: echo -en "travis_fold:${action}:${name}\r${ANSI_CLEAR}"
    return f"travis_fold:{action}:{name}\r{ANSI_CLEAR}"


def _timed(marker: str, command: str, output: str, seconds: float) -> str:
    start = 1_700_000_000_000_000_000
    finish = start + int(seconds * 1e9)
    return (
        f"travis_time:start:{marker}\r{ANSI_CLEAR}$ {command}\n{output}"
        f"travis_time:end:{marker}:start={start},finish={finish},duration={finish - start},"
        f"event=script\r{ANSI_CLEAR}"
    )


def default_log(job: TravisJob, slug: str, sha: str) -> str:
    """A plausible full log for a finished job (passed, failed, errored or canceled)."""
    state = "canceled" if job.canceled() else job.scripted_state
    head = (
        f"{_fold('start', 'worker_info')}{ANSI_YELLOW}Worker information{ANSI_RESET}\n"
        "hostname: 4f2a-travis-job.example\nversion: v6.2.22\n"
        f"{_fold('end', 'worker_info')}\n"
        f"{_fold('start', 'git.checkout')}"
        + _timed(
            "0a1b2c3d",
            f"git clone --depth=50 https://github.com/{slug}.git {slug}",
            f"Cloning into '{slug}'...\n",
            1.2,
        )
        + f"$ cd {slug}\n$ git checkout -qf {sha}\n{_fold('end', 'git.checkout')}\n"
        f"{_fold('start', 'install')}"
        + _timed("1b2c3d4e", "pip install -r requirements.txt", "Successfully installed\n", 8.0)
    )
    if state == "errored":
        # travis_assert.bash: a failing install stops the build
        return (
            head
            + f'{ANSI_RED}The command "pip install -r requirements.txt" failed and exited with 1'
            f" during install.{ANSI_RESET}\n\nYour build has been stopped.\n"
        )
    head += f"{_fold('end', 'install')}\n"
    if state == "canceled":
        return head + _timed("2c3d4e5f", "pytest", "collected 42 items\n", 3.0) + "\n"
    if state == "failed":
        output = (
            "============================= test session starts ==============================\n"
            "collected 42 items\n\ntests/test_app.py ........F..\n\n"
            "=================================== FAILURES ===================================\n"
            "________________________________ test_checkout _________________________________\n"
            "    def test_checkout():\n>       assert total(cart) == 3\n"
            "E       assert 2 == 3\n\ntests/test_app.py:17: AssertionError\n"
            "=========================== short test summary info ============================\n"
            "FAILED tests/test_app.py::test_checkout - assert 2 == 3\n"
            "========================= 1 failed, 41 passed in 3.21s =========================\n"
        )
        code, colour = 1, ANSI_RED
    else:
        output = (
            "============================= test session starts ==============================\n"
            "collected 42 items\n\ntests/test_app.py ..........\n\n"
            "============================== 42 passed in 3.02s ==============================\n"
        )
        code, colour = 0, ANSI_GREEN
    # travis_result.bash: echo -e "\n${ANSI_RED}The command \"${TRAVIS_CMD}\" exited with 1."
    return (
        head
        + _timed("2c3d4e5f", "pytest", output, 3.2)
        + f'\n{colour}The command "pytest" exited with {code}.{ANSI_RESET}\n'
        f"\n\nDone. Your build exited with {code}.\n"
    )


def log_as_of(full: str, job: TravisJob, t: float) -> str:
    """The part of a log written by time t: assumed to grow line by line while the job runs."""
    start, end = job.started_as_of(t), job.end()
    if start is None:
        return ""
    if job.finished_as_of(t) is not None:
        return full
    fraction = (t - start) / max(end - start, 1e-9)
    lines = full.splitlines(keepends=True)
    return "".join(lines[: int(len(lines) * min(max(fraction, 0.0), 1.0))])
