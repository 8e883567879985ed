"""Pure functions over what a local run recorded: transitions, looks, result delays, targets.

Times are virtual epoch seconds of the run's clock unless a name says otherwise; `scale` is the
clock's real seconds per virtual second.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Event = Mapping[str, Any]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], digits: int = 1) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), digits),
        "p95": round(percentile(values, 95), digits),
        "max": round(max(values), digits),
        "n": len(values),
    }


def transitions(history: Iterable[Event]) -> int:
    """Billed state transitions of an execution: every state entered (retries re-enter)."""
    return sum(1 for event in history if str(event["type"]).endswith("StateEntered"))


def lambda_invocations(history: Iterable[Event]) -> Counter[str]:
    """Lambda invocations the state machine made, by function name: plain Lambda tasks and
    `.waitForTaskToken` tasks (the park step is a Lambda too)."""
    counts: Counter[str] = Counter()
    for event in history:
        if event["type"] == "LambdaFunctionScheduled":
            details = event.get("lambdaFunctionScheduledEventDetails", {})
            counts[_function_name(str(details.get("resource", "")))] += 1
        elif event["type"] == "TaskScheduled":
            details = event.get("taskScheduledEventDetails", {})
            if details.get("resourceType") == "lambda":
                parameters = json.loads(details.get("parameters") or "{}")
                counts[_function_name(str(parameters.get("FunctionName", "")))] += 1
    return counts


def _function_name(arn_or_name: str) -> str:
    parts = arn_or_name.split(":")
    if "function" in parts:
        return parts[parts.index("function") + 1]
    return parts[-1]


@dataclass(frozen=True)
class Look:
    """One look at the build (the watch step's answer)."""

    at: float  # lookedAt
    next: str  # report | park | handover | cancel
    wait: float | None  # waitSeconds asked for, when parking


def looks_from(outputs: Iterable[Mapping[str, Any]]) -> list[Look]:
    """The watch steps' answers among step outputs, in time order."""
    looks = [
        Look(float(o["lookedAt"]), str(o["next"]), _number(o.get("waitSeconds")))
        for o in outputs
        if isinstance(o, Mapping) and o.get("lookedAt") and o.get("next") and "looks" in o
    ]
    return sorted(looks, key=lambda look: look.at)


def step_outputs(history: Iterable[Event]) -> list[Any]:
    outputs = []
    for event in history:
        details = event.get("lambdaFunctionSucceededEventDetails") or event.get(
            "taskSucceededEventDetails"
        )
        if details and details.get("output"):
            outputs.append(json.loads(details["output"]))
    return outputs


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class Delay:
    """Travis finished -> the result at CodePipeline, in seconds AWS would see."""

    raw: float  # virtual finish -> trigger, plus real trigger -> result
    corrected: float  # the same with the local processing before the seeing look taken out
    trigger: str  # "webhook" | "look"
    excess_virtual: float  # virtual seconds the previous loop ran over its park (local CPU)


def result_delay(
    finished: float,
    result_at: float,
    looks: Sequence[Look],
    scale: float,
    *,
    webhook_at: float | None = None,
    started: float | None = None,
    next_wait: Callable[[float], float] | None = None,
) -> Delay:
    """How long after Travis finished the result reached CodePipeline.

    The trigger is the webhook delivery that woke the watch (push) or the first look at or after
    the finish. From Travis's finish to the trigger is virtual time (parks and webhook lag are
    time the design spends); from the trigger to the result is local processing, which a
    compressed clock inflates by 1/scale, so it counts in real seconds. `raw` stops there.

    `corrected` also takes local processing out of the loop before the seeing look: that look
    came `park + processing/scale` after the previous one, where AWS would take `park +
    processing`. If the finish falls before the corrected look, it would have seen it; if it
    falls in the inflated stretch, AWS's look would have come too early and the next one would
    follow after `next_wait(elapsed)` (the schedule's own answer), which is then counted.
    """
    # The look that reported saw the finish, even when it asked just before it (a look is dated
    # when it asked Travis; its answer may come after the build ended).
    seeing = next((look for look in looks if look.next == "report"), None) or next(
        (look for look in looks if look.at >= finished), None
    )
    if webhook_at is not None and (seeing is None or webhook_at <= seeing.at):
        delay = (webhook_at - finished) + (result_at - webhook_at) * scale
        return Delay(delay, delay, "webhook", 0.0)
    if seeing is None:
        raise ValueError("no look at or after the finish")
    processing = (result_at - max(seeing.at, finished)) * scale
    raw = max(0.0, seeing.at - finished) + processing
    index = list(looks).index(seeing)
    previous = looks[index - 1] if index > 0 else None
    if previous is None or previous.next != "park" or previous.wait is None:
        return Delay(raw, raw, "look", 0.0)
    excess = max(0.0, seeing.at - previous.at - previous.wait)
    aws_look = previous.at + previous.wait + excess * scale
    if finished <= aws_look:
        corrected = (aws_look - finished) + processing
    else:
        origin = started if started is not None else previous.at
        look = aws_look
        while look < finished:  # AWS's looks, each after the schedule's wait and processing
            wait = next_wait(look - origin) if next_wait is not None else previous.wait
            look += wait + excess * scale
        corrected = (look - finished) + processing
    return Delay(raw, corrected, "look", excess)


def promised_looks(
    duration: float, first_look_elapsed: float, next_wait: Callable[[float, int], float]
) -> int:
    """How many looks the schedule plans for a build of `duration` seconds with no processing
    time: the first at `first_look_elapsed`, then each after `next_wait(elapsed, looks)`."""
    elapsed, looks = first_look_elapsed, 1
    while elapsed < duration:
        elapsed += next_wait(elapsed, looks)
        looks += 1
    return looks


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "missed"


def against(value: float, target: float, unit: str = "") -> dict[str, Any]:
    return {"value": value, "target": f"<= {target:g}{unit}", "verdict": verdict(value, target)}


def mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items)
