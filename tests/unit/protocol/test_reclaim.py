"""reclaim over an in-memory protocol: which escrow comes back, which stays, and what the report says."""

from __future__ import annotations

import pytest

from airflow_provider_ethernity.protocol.events import OrderStatus, RequestStatus
from airflow_provider_ethernity.protocol.reclaim import EscrowEntry, ReclaimReport, reclaim
from tests.unit.fakes import FakeClient


@pytest.fixture
def client() -> FakeClient:
    """Requests 1..7 in every state: available (2: held by a live task), cancelled, and booked with an order
    open, processing, closed, or not found."""
    c = FakeClient()
    c.add_request(price=5)  # 1 available, free
    c.add_request(price=6)  # 2 available, held
    c.add_request(price=7, status=RequestStatus.CANCELED)  # 3
    c.place_order(c.add_request(price=8), OrderStatus.OPEN)  # 4 -> order 1
    c.place_order(c.add_request(price=9), OrderStatus.PROCESSING)  # 5 -> order 2
    c.place_order(c.add_request(price=10), OrderStatus.CLOSED)  # 6 -> order 3
    c.add_request(price=11, status=RequestStatus.BOOKED)  # 7, its order not among ours
    return c


def test_reclaim_cancels_only_free_available_requests(client: FakeClient) -> None:
    report = reclaim(client, held=[2])
    assert client.cancelled == [1]
    assert [(e.do_request_id, e.order_id, e.action) for e in report.entries] == [
        (1, None, "cancelled, escrow returned"),
        (2, None, "held by a live task: left alone"),
        (4, 1, "order placed and never approved: the escrow stays locked (approving lets the node run the task "
         "and be paid)"),
        (5, 2, "approved, in progress: the node is paid when it delivers"),
        (7, None, "booked, order not found"),
    ]  # fmt: skip
    assert report.returned == 5 and report.still_locked == 6 + 8 + 9 + 11
    assert client.approved == []  # never approved behind the user's back
    lines = report.render().splitlines()
    assert lines[0] == "DO request 1: 5 ETNY in escrow, request AVAILABLE: cancelled, escrow returned"
    assert lines[2].startswith("DO request 4: 8 ETNY in escrow, request BOOKED, order 1 OPEN: order placed")
    assert lines[-1] == "5 unsettled request(s): 5 ETNY returned, 34 ETNY still in escrow"


def test_dry_run_cancels_nothing(client: FakeClient) -> None:
    report = reclaim(client, dry_run=True)
    assert client.cancelled == [] and client.get_request_status(1) is RequestStatus.AVAILABLE
    assert [e.action for e in report.entries[:2]] == ["would cancel (escrow back)"] * 2
    assert report.returned == 0 and not report.entries[0].locked


def test_a_held_open_order_is_the_live_tasks_to_approve(client: FakeClient) -> None:
    report = reclaim(client, held={4})
    (entry,) = [e for e in report.entries if e.do_request_id == 4]
    assert entry.action == "held by a live task (it approves the order)" and entry.locked


def test_a_request_booked_meanwhile_is_reported_not_cancelled(client: FakeClient, mocker) -> None:
    mocker.patch.object(client, "cancel_task", return_value=None)
    report = reclaim(client, held=[2])
    assert report.entries[0].action == "booked meanwhile" and report.returned == 0


def test_an_empty_wallet_reports_nothing() -> None:
    report = reclaim(FakeClient())
    assert report.entries == [] and report.render() == "0 unsettled request(s): 0 ETNY returned, 0 ETNY still in escrow"


def test_escrow_entry_locked() -> None:
    assert EscrowEntry(1, 1, RequestStatus.AVAILABLE, action="cancelled, escrow returned").locked is False
    assert EscrowEntry(1, 1, RequestStatus.BOOKED, action="approved, in progress").locked is True
    assert ReclaimReport("T").still_locked == 0
