"""The triggers' run loops with a fake watcher and fake hook spends: every event they can fire."""

from __future__ import annotations

import asyncio
import importlib
import time
from unittest.mock import AsyncMock

import pytest

from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.protocol.errors import ChainError
from airflow_provider_ethernity.triggers.ethernity import (
    EthernityOrderPlacedTrigger,
    EthernityTaskCompletedTrigger,
    EthernityTaskTrigger,
    TaskEvent,
    TaskEventStatus,
    _brief,
    validate_event,
)


class FakeWatcher:
    """The shared chain watcher: answers what the test set, or never (None)."""

    def __init__(self, placed: int | None = None, closed: int | None = None) -> None:
        self.placed, self.closed = placed, closed
        self.calls: list[tuple] = []

    async def wait_order_placed(self, do_request_id: int, from_block: int) -> int:
        self.calls.append(("placed", do_request_id, from_block))
        if self.placed is None:
            await asyncio.Event().wait()
        return self.placed

    async def wait_order_closed(self, order_id: int, from_block: int) -> int:
        self.calls.append(("closed", order_id, from_block))
        if self.closed is None:
            await asyncio.Event().wait()
        return self.closed


@pytest.fixture
def hook(mocker):
    """The hook's spending methods, patched on the class (the trigger builds its own hook, from a connection
    fetched asynchronously: here a hook for the id, with no connection behind it)."""
    mocker.patch.object(EthernityHook, "afor_connection", AsyncMock(side_effect=lambda conn_id: EthernityHook(conn_id)))
    return {
        "approve": mocker.patch.object(EthernityHook, "approve_order", return_value="0xapproval"),
        "settle": mocker.patch.object(EthernityHook, "settle_unplaced_request", return_value=None),
        "cancel": mocker.patch.object(EthernityHook, "cancel_task", return_value="0xcancel"),
    }


@pytest.fixture
def watch(mocker):
    def install(watcher: FakeWatcher) -> AsyncMock:
        return mocker.patch.object(EthernityHook, "aget_watcher", AsyncMock(return_value=watcher))

    return install


def task_trigger(**kwargs) -> EthernityTaskTrigger:
    values = {
        "ethernity_conn_id": "eth",
        "do_request_id": 7,
        "from_block": 12,
        "poll_interval": 1.5,
        "order_deadline": time.time() + 600,
        "completion_timeout": 600,
        "order_count_anchor": 3,
    }
    values.update(kwargs)
    return EthernityTaskTrigger(**values)


async def events(trigger) -> list[dict]:
    """The trigger's events; the approval time (where the result read window starts) checked, then left out."""
    before = time.time()
    payloads = [event.payload async for event in trigger.run()]
    for each in payloads:
        if "approved_at" not in each:  # the events of the single-purpose triggers carry none
            continue
        approved_at = each.pop("approved_at")
        if each["status"] in ("approved", "completed", "timeout"):
            assert before <= approved_at <= time.time(), each
        else:
            assert approved_at is None, each
    return payloads


def payload(status: str, order_id=None, approval_tx=None, message="") -> dict:
    return {"status": status, "do_request_id": 7, "order_id": order_id, "approval_tx": approval_tx, "message": message}


# ------------------------------------------------------------------ EthernityTaskTrigger
async def test_placed_then_approved_then_completed(hook, watch) -> None:
    watcher = FakeWatcher(placed=5, closed=99)
    aget = watch(watcher)
    assert await events(task_trigger()) == [payload("completed", 5, "0xapproval")]
    aget.assert_awaited_once_with("eth", 1.5)
    hook["approve"].assert_called_once_with(5)
    hook["settle"].assert_not_called()
    assert watcher.calls == [("placed", 7, 12), ("closed", 5, 12)]


async def test_a_pinned_order_is_not_approved(hook, watch) -> None:
    watch(FakeWatcher(placed=5, closed=99))
    assert await events(task_trigger(approve=False)) == [payload("completed", 5)]
    hook["approve"].assert_not_called()


async def test_a_known_order_is_not_waited_for_again(hook, watch) -> None:
    watcher = FakeWatcher(closed=99)
    watch(watcher)
    assert await events(task_trigger(order_id=5, approve=False)) == [payload("completed", 5)]
    assert watcher.calls == [("closed", 5, 12)]


async def test_at_the_order_deadline_the_request_is_cancelled(hook, watch) -> None:
    watch(FakeWatcher())
    assert await events(task_trigger(order_deadline=time.time() - 1)) == [payload("cancelled")]
    hook["settle"].assert_called_once_with(7, 12, 3)
    hook["approve"].assert_not_called()


async def test_an_order_booked_at_the_deadline_is_carried_on(hook, watch) -> None:
    hook["settle"].return_value = 8
    watcher = FakeWatcher(closed=99)
    watch(watcher)
    assert await events(task_trigger(order_deadline=time.time() - 1)) == [payload("completed", 8, "0xapproval")]
    hook["approve"].assert_called_once_with(8)
    assert ("closed", 8, 12) in watcher.calls


async def test_a_failed_settlement_is_an_error_event(hook, watch) -> None:
    hook["settle"].side_effect = ChainError("DO request 7 is BOOKED but its order cannot be found")
    watch(FakeWatcher())
    [event] = await events(task_trigger(order_deadline=time.time() - 1))
    assert event == payload("error", message="ChainError: DO request 7 is BOOKED but its order cannot be found")


async def test_a_failed_approval_is_an_error_event(hook, watch) -> None:
    hook["approve"].side_effect = ChainError("_approveOrder reverted")
    watcher = FakeWatcher(placed=5, closed=99)
    watch(watcher)
    assert await events(task_trigger()) == [
        payload("error", 5, message="approval failed: ChainError: _approveOrder reverted")
    ]
    assert ("closed", 5, 12) not in watcher.calls


async def test_without_waiting_for_completion_the_approval_is_the_event(hook, watch) -> None:
    watcher = FakeWatcher(placed=5)
    watch(watcher)
    assert await events(task_trigger(wait_for_completion=False)) == [payload("approved", 5, "0xapproval")]
    assert watcher.calls == [("placed", 7, 12)]


async def test_no_close_within_the_completion_timeout_is_a_timeout_event(hook, watch) -> None:
    watch(FakeWatcher(placed=5))
    assert await events(task_trigger(completion_timeout=0.01)) == [payload("timeout", 5, "0xapproval")]


def test_task_trigger_serialization_round_trips() -> None:
    trigger = task_trigger(order_deadline=1234.5, order_id=None, wait_for_completion=False, approve=False)
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert kwargs == {
        "ethernity_conn_id": "eth",
        "from_block": 12,
        "poll_interval": 1.5,
        "deadline": None,
        "do_request_id": 7,
        "cancel_on_kill": True,  # no order yet: a kill cancels the request
        "order_deadline": 1234.5,
        "completion_timeout": 600.0,
        "approve": False,
        "wait_for_completion": False,
        "order_id": None,
        "order_count_anchor": 3,
        "end_from_trigger": False,
        "challenge_salt": None,
        "request_tx": None,
    }
    assert task_trigger(order_id=4).cancel_on_kill is False
    assert task_trigger(order_count_anchor=None).order_count_anchor is None


def test_validate_event_round_trips_every_status() -> None:
    for status in TaskEventStatus:
        event = TaskEvent(status, 7, order_id=5, approval_tx="0xa", message="m", approved_at=1.5)
        assert validate_event(event.to_payload()) == event
    assert validate_event({"status": "cancelled", "do_request_id": "7"}) == TaskEvent(TaskEventStatus.CANCELLED, 7)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (None, "missing or not a dict"),
        ([("status", "completed")], "missing or not a dict"),
        ({"status": "bogus", "do_request_id": 7}, "malformed"),
        ({"status": "completed", "order_id": 3}, r"malformed \('do_request_id'\)"),
        ({"status": "completed", "do_request_id": 7}, "names no order_id"),
        ({"status": "completed", "do_request_id": None}, "malformed"),
    ],
)
def test_validate_event_refuses_what_it_cannot_read(bad, message) -> None:
    with pytest.raises(ValueError, match=message):
        validate_event(bad)


def test_brief_names_the_error_and_is_bounded() -> None:
    assert _brief(ChainError("x")) == "ChainError: x"
    assert len(_brief(ValueError("y" * 2000))) == 500


# ------------------------------------------------------------------ the single-wait triggers
async def test_order_placed_trigger_fires_placed_or_timeout(watch) -> None:
    watch(FakeWatcher(placed=5))
    trigger = EthernityOrderPlacedTrigger(ethernity_conn_id="eth", do_request_id=7, from_block=12)
    assert await events(trigger) == [{"status": "placed", "order_id": 5, "do_request_id": 7}]
    watch(FakeWatcher())
    late = EthernityOrderPlacedTrigger(
        ethernity_conn_id="eth", do_request_id=7, from_block=12, deadline=time.time() - 1
    )
    assert await events(late) == [{"status": "timeout", "do_request_id": 7}]


async def test_task_completed_trigger_fires_completed_or_timeout(watch) -> None:
    watcher = FakeWatcher(closed=42)
    watch(watcher)
    trigger = EthernityTaskCompletedTrigger(ethernity_conn_id="eth", order_id=5, from_block=12)
    assert await events(trigger) == [{"status": "completed", "order_id": 5, "block": 42}]
    assert watcher.calls == [("closed", 5, 12)] and trigger._seconds_left() is None
    watch(FakeWatcher())
    late = EthernityTaskCompletedTrigger(ethernity_conn_id="eth", order_id=5, from_block=12, deadline=time.time() - 1)
    assert await events(late) == [{"status": "timeout", "order_id": 5}]
    assert late._seconds_left() == 0.0


# ------------------------------------------------------------------ on_kill
async def test_on_kill_cancels_an_unbooked_request(hook) -> None:
    await task_trigger().on_kill()
    hook["cancel"].assert_called_once_with(7)


async def test_on_kill_asks_even_when_nothing_is_left_to_cancel(hook) -> None:
    hook["cancel"].return_value = None
    await EthernityOrderPlacedTrigger(ethernity_conn_id="eth", do_request_id=7, from_block=1).on_kill()
    hook["cancel"].assert_called_once_with(7)


async def test_on_kill_leaves_a_booked_order_alone(hook) -> None:
    await task_trigger(order_id=5).on_kill()
    await EthernityTaskCompletedTrigger(ethernity_conn_id="eth", order_id=5, from_block=1).on_kill()
    await EthernityOrderPlacedTrigger(ethernity_conn_id="eth", from_block=1).on_kill()  # no request at all
    hook["cancel"].assert_not_called()
