"""Waking a waiting execution: its wake-up token, the abandon flag and the webhook mark.

An execution that waits (for Travis to create the build, or between two looks at it) parks in a
`.waitForTaskToken` task with a timeout: the timeout is the schedule's next look, the token lets
someone wake it sooner. The token is left in a DynamoDB item of the *action run* (pipeline,
pipeline execution, stage, action: what CodePipeline's action events name), so

  - the handler of an ABANDONED event sets `abandonedAt` and wakes the run at once;
  - the webhook receiver (push mode) finds the run through the build id and wakes it;

and the parking step reads the item back in the same atomic update. Whoever writes second sees the
other's write: a signal that arrives while no execution is parked (between two looks, during a
hand-over) is not lost, the next park answers it at once. A wake is only ever a cue to look: the
woken step asks Travis (and CodePipeline) what really happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from worker import aws, clock
from worker.failures import ServiceUnavailable

# Lambda hosts' clocks agree to within a millisecond or so (Amazon Time Sync); a webhook noted up
# to this long before the look is answered anyway: an extra look costs little, a missed wake a
# whole park. Small enough that the look a webhook woke (which asks a tenth of a second or more
# after it) does not answer that same webhook again.
CLOCK_SKEW_SECONDS = 0.05
ITEM_DAYS = 3  # longer than any watch (watchTimeoutMinutes ≤ 20 h); DynamoDB TTL removes items
_TOKEN_GONE = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})


class Signal(StrEnum):
    """What a woken execution is told (the task's output, `$.woken.signal`)."""

    ABANDONED = "abandoned"
    WEBHOOK = "webhook"


@dataclass(frozen=True)
class BuildKey:
    """A build as the webhook receiver finds it."""

    build_id: str
    endpoint: str


def _expires() -> dict[str, str]:
    """DynamoDB TTL attribute value: the item may go ITEM_DAYS from now."""
    return {"N": str(int(clock.now()) + ITEM_DAYS * 86400)}


def run_item_key(run_key: str) -> dict[str, Any]:
    return {"pk": {"S": f"run#{run_key}"}}


def build_item_key(build_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"build#{build_id}"}}


class WatchRegistry:
    """The table of waiting action runs (clients injected in tests)."""

    def __init__(self, table: str, dynamodb: Any | None = None, states: Any | None = None) -> None:
        if not table:
            raise ValueError("the watch table is not configured")
        self._table = table
        self._dynamodb = dynamodb
        self._states = states

    # --- the parking execution ---------------------------------------------------------------

    def park(
        self,
        run_key: str,
        token: str,
        *,
        execution: str,
        job_id: str,
        build: BuildKey | None,
        looked_at: float,
    ) -> Signal | None:
        """Leave the token for this run; the signal to act on at once, if one is already there.

        `looked_at`: when the look before this park asked Travis; a webhook noted since may tell
        of what that answer missed.
        """
        now = clock.now()
        values: dict[str, Any] = {
            ":token": {"S": token},
            ":at": {"N": _number(now)},
            ":execution": {"S": execution},
            ":job": {"S": job_id},
            ":expires": _expires(),
        }
        expression = (
            "SET #token = :token, tokenAt = :at, #execution = :execution, jobId = :job, "
            "expiresAt = :expires"
        )
        if build is not None:
            values[":build"] = {"S": build.build_id}
            values[":endpoint"] = {"S": build.endpoint}
            expression += ", buildId = :build, endpoint = :endpoint"
        item = self._update(
            run_item_key(run_key),
            expression,
            values,
            names={"#token": "token", "#execution": "execution"},
        )
        if build is not None:
            self._put(
                {
                    **build_item_key(build.build_id),
                    "run": {"S": run_key},
                    "endpoint": {"S": build.endpoint},
                    "expiresAt": _expires(),
                }
            )
        if "abandonedAt" in item:
            return Signal.ABANDONED
        webhook_at = float(item.get("webhookAt", {}).get("N", "0"))
        if webhook_at and webhook_at >= looked_at - CLOCK_SKEW_SECONDS:
            return Signal.WEBHOOK
        return None

    def register_build(self, run_key: str, build: BuildKey, *, job_id: str, slug: str) -> None:
        """Note the run's build as soon as it exists (the link is published): an abandon that
        finds no parked execution can then cancel it, and a webhook find its run."""
        expires = _expires()
        self._update(
            run_item_key(run_key),
            "SET buildId = :build, endpoint = :endpoint, slug = :slug, jobId = :job, "
            "expiresAt = :expires",
            {
                ":build": {"S": build.build_id},
                ":endpoint": {"S": build.endpoint},
                ":slug": {"S": slug},
                ":job": {"S": job_id},
                ":expires": expires,
            },
        )
        self._put(
            {
                **build_item_key(build.build_id),
                "run": {"S": run_key},
                "endpoint": {"S": build.endpoint},
                "expiresAt": expires,
            }
        )

    def abandoned(self, run_key: str) -> bool:
        """Whether an ABANDONED (or CANCELED) event was seen for this run."""
        item = self._get(run_item_key(run_key))
        return item is not None and "abandonedAt" in item

    def clear_abandoned(self, run_key: str) -> None:
        """Forget a mark CodePipeline contradicts (left by an earlier run of the same stage)."""
        self._update(run_item_key(run_key), "REMOVE abandonedAt", {})

    # --- who wakes it ------------------------------------------------------------------------

    def mark_abandoned(self, run_key: str) -> dict[str, Any]:
        """Record the abandon; the run's item (its parked token, its build, if any)."""
        return self._update(
            run_item_key(run_key),
            "SET abandonedAt = if_not_exists(abandonedAt, :at), expiresAt = :expires",
            {
                ":at": {"N": _number(clock.now())},
                ":expires": _expires(),
            },
        )

    def build(self, build_id: str) -> tuple[str, str] | None:
        """(run key, endpoint) of a build some execution is watching; None when unknown."""
        item = self._get(build_item_key(build_id))
        if item is None or "run" not in item:
            return None
        return item["run"]["S"], item.get("endpoint", {}).get("S", "")

    def mark_webhook(self, run_key: str) -> str | None:
        """Record that Travis said the build changed; the parked execution's token, if any.

        Only an existing run is touched: a webhook for a run nobody watches creates nothing.
        """
        try:
            item = self._update(
                run_item_key(run_key),
                "SET webhookAt = :at",
                {":at": {"N": _number(clock.now())}},
                condition="attribute_exists(pk)",
            )
        except _ConditionFailed:
            return None
        return item.get("token", {}).get("S")

    def wake(self, token: str, signal: Signal) -> bool:
        """Send the signal to a parked task; False when that task is no longer waiting."""
        states = self._states if self._states is not None else aws.client("stepfunctions")
        try:
            states.send_task_success(taskToken=token, output=f'{{"signal": "{signal.value}"}}')
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _TOKEN_GONE:
                return False
            raise ServiceUnavailable("Step Functions SendTaskSuccess failed.") from error
        except BotoCoreError as error:
            raise ServiceUnavailable("Step Functions could not be reached.") from error
        return True

    # --- plumbing ------------------------------------------------------------------------------

    def _client(self) -> Any:
        return self._dynamodb if self._dynamodb is not None else aws.client("dynamodb")

    def _update(
        self,
        key: dict[str, Any],
        expression: str,
        values: dict[str, Any],
        *,
        names: dict[str, str] | None = None,
        condition: str | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "TableName": self._table,
            "Key": key,
            "UpdateExpression": expression,
            "ReturnValues": "ALL_NEW",
        }
        if values:
            params["ExpressionAttributeValues"] = values
        if names:
            params["ExpressionAttributeNames"] = names
        if condition:
            params["ConditionExpression"] = condition
        try:
            return dict(self._client().update_item(**params).get("Attributes") or {})
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise _ConditionFailed from error
            raise ServiceUnavailable("The worker's watch table could not be updated.") from error
        except BotoCoreError as error:
            raise ServiceUnavailable("The worker's watch table could not be reached.") from error

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            answer = self._client().get_item(TableName=self._table, Key=key, ConsistentRead=True)
        except (ClientError, BotoCoreError) as error:
            raise ServiceUnavailable("The worker's watch table could not be read.") from error
        item = answer.get("Item")
        return dict(item) if item else None

    def _put(self, item: dict[str, Any]) -> None:
        try:
            self._client().put_item(TableName=self._table, Item=item)
        except (ClientError, BotoCoreError) as error:
            raise ServiceUnavailable("The worker's watch table could not be updated.") from error


class _ConditionFailed(Exception):
    pass


def _number(value: float) -> str:
    return f"{value:.3f}"
