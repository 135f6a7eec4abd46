"""The events of :class:`~airflow_provider_ethernity.triggers.ethernity.EthernityTaskTrigger`, typed and validated
at the deferral boundary (they cross it as JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class TaskEventStatus(str, Enum):
    """Statuses of :class:`EthernityTaskTrigger` events (they cross the deferral boundary as strings)."""

    COMPLETED = "completed"  # the order closed: fetch the result
    APPROVED = "approved"  # the order is approved (``wait_for_completion=False``)
    CANCELLED = "cancelled"  # no node took the request in time: it was cancelled, the escrow returned
    TIMEOUT = "timeout"  # the order did not close within the completion timeout
    ERROR = "error"  # the trigger could not go on (approval refused, order cancelled, ...)


@dataclass(frozen=True)
class TaskEvent:
    """A validated :class:`EthernityTaskTrigger` event."""

    status: TaskEventStatus
    do_request_id: int
    order_id: int | None = None
    approval_tx: str | None = None
    message: str = ""
    approved_at: float | None = None  # epoch seconds: where the result read window starts

    def to_payload(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "do_request_id": self.do_request_id,
            "order_id": self.order_id,
            "approval_tx": self.approval_tx,
            "message": self.message,
            "approved_at": self.approved_at,
        }


def validate_event(event: Any) -> TaskEvent:
    """Check a resumed task's event (as dbt Cloud's ``validate_execute_complete_event``): a missing or
    malformed event is an error naming what was received, never a silent branch."""
    if not isinstance(event, dict):
        raise ValueError(f"the Ethernity trigger event is missing or not a dict: {event!r}")
    try:
        status = TaskEventStatus(event.get("status"))
        order_id = event.get("order_id")
        if order_id is None and status in (
            TaskEventStatus.COMPLETED,
            TaskEventStatus.APPROVED,
            TaskEventStatus.TIMEOUT,
        ):
            raise ValueError(f"a {status.value!r} event names no order_id")
        return TaskEvent(
            status=status,
            do_request_id=int(event["do_request_id"]),
            order_id=None if order_id is None else int(order_id),
            approval_tx=event.get("approval_tx"),
            message=str(event.get("message") or ""),
            approved_at=None if event.get("approved_at") is None else float(event["approved_at"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"the Ethernity trigger event is malformed ({exc}): {event!r}") from None
