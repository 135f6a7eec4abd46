"""How a result not readable yet is read: which door first, and how often."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_ethernity.protocol import storage
from airflow_provider_ethernity.protocol.errors import ContentNotFoundError


def _client(
    calls: list[str], *, public: bool, gateway: str | None, ready_at: int, block_time: float, window: float = 120.0
) -> Any:
    def cat_into(cid: str, sink: Any, max_bytes: int | None = None) -> Any:
        calls.append("api")
        if len(calls) >= ready_at:
            return "api-bytes"
        raise ContentNotFoundError(cid)

    settings = SimpleNamespace(
        ipfs_public=public,
        ipfs_api_url="http://127.0.0.1:5001/api/v0",
        ipfs_gateway_url=gateway,
        result_read_seconds=window,
        ipfs_timeout=60.0,
    )
    return SimpleNamespace(
        settings=settings,
        ipfs=SimpleNamespace(cat_into=cat_into),
        network=SimpleNamespace(block_time=block_time),
        log=logging.getLogger("tests.result_reads"),
    )


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    pauses: list[float] = []
    monkeypatch.setattr(storage.time, "sleep", pauses.append)
    return pauses


def _gateway(calls: list[str], ready_at: int):
    def read(url: str, cid: str, timeout: float, max_bytes: int | None, sink_factory: Any) -> Any:
        calls.append("gateway")
        return "gateway-bytes" if len(calls) >= ready_at else None

    return read


def test_a_private_api_reads_the_gateway_first(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    calls: list[str] = []
    monkeypatch.setattr(storage, "_gateway_read", _gateway(calls, ready_at=3))
    client = _client(calls, public=False, gateway="http://gw", ready_at=99, block_time=5.0)
    assert storage.read_result_blob(client, 1, "bafk") == "gateway-bytes"
    assert calls == ["gateway", "api", "gateway"]
    assert sleeps == [storage.RESULT_READ_PAUSE]  # not a 5 s block


def test_a_public_api_is_read_first_then_the_gateway(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    calls: list[str] = []
    monkeypatch.setattr(storage, "_gateway_read", _gateway(calls, ready_at=99))
    client = _client(calls, public=True, gateway="http://gw", ready_at=3, block_time=0.2)
    assert storage.read_result_blob(client, 1, "bafk") == "api-bytes"
    assert calls == ["api", "gateway", "api"]
    assert sleeps == [0.5]  # never busier than twice a second


def test_a_late_result_is_read_until_the_orders_deadline_not_only_the_window(sleeps: list[float]) -> None:
    """The runner's window is max(processing deadline, closed + 120 s): with the window spent (0 s) a result
    pinned late is still read while the order's deadline (``read_until``) is ahead."""
    import time

    from airflow_provider_ethernity.protocol.errors import OperatorFaultError

    calls: list[str] = []
    client = _client(calls, public=True, gateway=None, ready_at=3, block_time=0.01, window=0.0)
    with pytest.raises(OperatorFaultError, match=r"still unreadable after 0 s \(1 reads"):
        storage.read_result_blob(client, 7, "bafyresult")
    calls.clear()
    assert storage.read_result_blob(client, 7, "bafyresult", read_until=time.time() + 600) == "api-bytes"
    assert calls == ["api", "api", "api"]


@pytest.mark.parametrize(
    ("reads", "expected"), [(["OPEN", "OPEN", "PROCESSING"], "PROCESSING"), (["OPEN"] * 9, "OPEN")]
)
def test_an_order_read_open_after_its_approval_is_read_again(
    monkeypatch: pytest.MonkeyPatch, reads: list[str], expected: str
) -> None:
    """A lagging replica shows an approved order OPEN: read again for a few blocks, then take what it says."""
    from airflow_provider_ethernity.protocol import connection, orders
    from airflow_provider_ethernity.protocol.connection import LAGGING_READ_ATTEMPTS
    from airflow_provider_ethernity.protocol.contracts import Order
    from airflow_provider_ethernity.protocol.events import OrderStatus

    answers = iter(reads)
    asked: list[int] = []

    class Reads(orders.OrderReads):
        def __init__(self) -> None:  # no chain: only the order reads are answered
            self.log = logging.getLogger("test")
            self.network = SimpleNamespace(block_time=1.0)  # type: ignore[assignment]

        def get_order(self, order_id: int) -> Order:
            asked.append(order_id)
            return Order(order_id, "0xa", "0xb", 1, 0, int(OrderStatus[next(answers)]))

    monkeypatch.setattr(connection.time, "sleep", lambda seconds: None)
    assert Reads().get_order_once_approved(5).status_name == expected
    assert len(asked) == (3 if expected == "PROCESSING" else LAGGING_READ_ATTEMPTS)
