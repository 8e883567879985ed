"""The lines of a Travis job log that say why it failed, cleaned for a CodePipeline message.

A Travis log is the terminal output of the job: ANSI colour codes, `travis_fold:`/`travis_time:`
markers with carriage returns, and at the end the failed command (`The command "pytest" exited
with 1.`) followed by Travis's own closing lines. The useful part is what came just before the
failed command's verdict.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_MARKER = re.compile(r"travis_(?:fold|time):[^\r\n]*")
_VERDICT = re.compile(r'^The command ".*" (?:exited with|failed)', re.IGNORECASE)
_CLOSING = re.compile(r"^(Done\. Your build exited with|Your build has been stopped)", re.I)
# Secret-looking words that must never reach a message, whatever a build printed.
_SECRET_PATTERNS = (
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"(?i)(authorization:\s*)(\S+(?:\s+\S+)?)"),
    re.compile(r"(?i)\b(token|password|secret)(\s*[=:]\s*)(\S+)"),
)
MAX_LINE = 240


def explanation(log: str, *, lines: int = 20, secrets: Iterable[str] = ()) -> list[str]:
    """The last `lines` meaningful lines up to and including the failed command's verdict."""
    cleaned = [clean_line(line, secrets) for line in _lines(log)]
    cleaned = [line for line in cleaned if line.strip()]
    verdicts = [i for i, line in enumerate(cleaned) if _VERDICT.match(line.strip())]
    start = 0
    if verdicts:
        end = verdicts[-1] + 1
        # The failed command's own output explains it: start at its `$ command` line.
        commands = [i for i in range(end) if cleaned[i].startswith("$ ")]
        start = commands[-1] if commands else 0
    else:
        end = len(cleaned)
        while end and _CLOSING.match(cleaned[end - 1].strip()):
            end -= 1
    return cleaned[max(start, end - lines) : end]


def clean_line(line: str, secrets: Iterable[str] = ()) -> str:
    text = _MARKER.sub("", _ANSI.sub("", line)).replace("\t", "    ").rstrip()
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[secure]")
    text = _SECRET_PATTERNS[0].sub("[secure]", text)
    text = _SECRET_PATTERNS[1].sub(r"\1[secure]", text)
    text = _SECRET_PATTERNS[2].sub(r"\1\2[secure]", text)
    if len(text) > MAX_LINE:
        text = text[: MAX_LINE - 1] + "…"
    return "".join(c for c in text if c.isprintable() or c == " ")


def _lines(log: str) -> list[str]:
    out = []
    for raw in log.split("\n"):
        # A carriage return redraws the line: what follows the last one is what was shown.
        parts = [p for p in raw.split("\r") if _MARKER.sub("", _ANSI.sub("", p)).strip()]
        out.append(parts[-1] if parts else "")
    return out
