"""The shared watcher against a fake chain: replica lag, range limits, far-behind waiters, reorgs, probes.

The fake reader answers without yielding to the loop, so one ``_tick()`` runs atomically; each test drives
the watcher's ticks by hand (its own poll loop sleeps for a long poll interval in between).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import pytest

from airflow_provider_ethernity.protocol import watcher as wm
from airflow_provider_ethernity.protocol.async_client import OrderEvents
from airflow_provider_ethernity.protocol.client import Order
from airflow_provider_ethernity.protocol.events import OrderStatus, RequestStatus
from airflow_provider_ethernity.protocol.watcher import OrderEventWatcher, get_watcher


class FakeReader:
    """A chain of order events. ``placed``: (order, DO request, block); ``closed``: (order, block)."""

    def __init__(self, head: int = 100, chain_id: int = 31337) -> None:
        self.head = head
        self.chain = chain_id
        self.placed: list[tuple[int, int, int]] = []
        self.closed: list[tuple[int, int]] = []
        self.logs_lag = 0
        self.max_range: int | None = None
        self.range_error = "query returned more than 10000 results (-32005)"
        self.fail_logs: list[Exception] = []
        self.fail_logs_always: Exception | None = None
        self.fail_head: list[Exception] = []
        self.fail_calls: dict[str, list[Exception]] = {}
        self.orders: dict[int, tuple[int, int]] = {}  # order -> (DO request, status)
        self.requests: dict[int, int] = {}  # DO request -> status
        self.calls: Counter[str] = Counter()
        self.queries: list[tuple[int, int]] = []
        self.probe_blocks: list[Any] = []
        self.closed_reader = False

    def _fail(self, name: str) -> None:
        queue = self.fail_calls.get(name)
        if queue:
            raise queue.pop(0)

    async def block_number(self) -> int:
        self.calls["block_number"] += 1
        if self.fail_head:
            raise self.fail_head.pop(0)
        return self.head

    async def chain_id(self) -> int:
        self.calls["chain_id"] += 1
        self._fail("chain_id")
        return self.chain

    async def order_events(self, low: int, high: int) -> OrderEvents:
        self.calls["order_events"] += 1
        self.queries.append((low, high))
        if self.fail_logs:
            raise self.fail_logs.pop(0)
        if self.fail_logs_always is not None:
            raise self.fail_logs_always
        if self.max_range is not None and high - low + 1 > self.max_range:
            raise ValueError({"code": -32005, "message": self.range_error})
        top = min(high, self.head - self.logs_lag)
        return OrderEvents(
            placed=[p for p in self.placed if low <= p[2] <= top],
            closed=[c for c in self.closed if low <= c[1] <= top],
        )

    async def get_order(self, order_id: int, block: Any = None) -> Order:
        self.calls["get_order"] += 1
        self.probe_blocks.append(block)
        self._fail("get_order")
        do_request, status = self.orders.get(order_id, (0, OrderStatus.OPEN))
        return Order(order_id, "0xa", "0xb", do_request, 0, int(status))

    async def do_request_status(self, do_request_id: int, block: Any = None) -> int:
        self.calls["do_request_status"] += 1
        self._fail("do_request_status")
        return self.requests.get(do_request_id, RequestStatus.AVAILABLE)

    async def orders_count(self, block: Any = None) -> int:
        self.calls["orders_count"] += 1
        return max(self.orders, default=-1) + 1

    async def aclose(self) -> None:
        self.closed_reader = True
        raise ConnectionError("already gone")


@pytest.fixture(autouse=True)
def _no_wake_coalescing(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests drive the watcher in event-loop rounds: a new waiter's early poll comes at once."""
    monkeypatch.setattr(wm, "WAKE_COALESCE", 0.0)


async def settle(rounds: int = 6) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


def make(reader: FakeReader, **kwargs: Any) -> OrderEventWatcher:
    kwargs.setdefault("confirmations", 0)
    return OrderEventWatcher(lambda: reader, 1000.0, **kwargs)


async def start(coro: Any) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coro)
    await settle()
    return task


async def stop(w: OrderEventWatcher, *tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    await settle()
    if w._task is not None:
        w._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await w._task


@pytest.fixture(autouse=True)
def _no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wm, "BACKSCAN_PAUSE", 0)
    monkeypatch.setattr(wm, "IDLE_RESCAN_AFTER", 0)


# ---------------------------------------------------------------------- logs


def test_placed_and_closed_through_logs_two_requests_per_new_block() -> None:
    async def main() -> None:
        r = FakeReader(head=100)
        w = make(r)
        placed = await start(w.wait_order_placed(7, 99))
        closed = await start(w.wait_order_closed(3, 99))
        assert w.waiting == 2 and w.cursor == 100 - w.overlap
        before = Counter(r.calls)
        for _ in range(5):
            r.head += 1
            await w._tick()
        assert r.calls["block_number"] - before["block_number"] == 5
        assert r.calls["order_events"] - before["order_events"] == 5  # one query per new block
        r.placed.append((42, 7, 106))
        r.closed.append((3, 106))
        r.head += 1
        await w._tick()
        assert await placed == 42 and await closed == 106
        assert w.waiting == 0
        await stop(w)

    asyncio.run(main())


def test_logs_behind_the_head_are_caught_by_the_overlap_and_the_lag_grows_it(caplog) -> None:
    async def main() -> None:
        r = FakeReader(head=100)
        r.logs_lag = 3
        w = make(r, overlap=4)
        waits = [await start(w.wait_order_placed(do, 100)) for do in (1, 2, 3)]
        for step, do in enumerate((1, 2, 3)):
            r.head += 1
            r.placed.append((10 + do, do, r.head))  # placed at the head; the replica has it 3 blocks later
            await w._tick()
            assert not waits[step].done()
        for _ in range(8):
            r.head += 1
            await w._tick()
        assert [await t for t in waits] == [11, 12, 13]
        assert w.overlap == 6  # grown to twice the lag seen (the first late event measured it)
        assert any("lag the head" in rec.getMessage() for rec in caplog.records)
        # the cursor trails the newest block asked for by the overlap
        assert w.cursor == r.head - w.overlap
        await stop(w)

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())


def test_without_overlap_a_lagging_replica_loses_the_event() -> None:
    """The hazard itself: a watcher that trusts one query per block never sees the lagging event."""

    async def main() -> None:
        r = FakeReader(head=100)
        r.logs_lag = 2
        w = make(r, overlap=0)
        wait = await start(w.wait_order_placed(1, 100))
        r.head += 1
        r.placed.append((9, 1, r.head))
        for _ in range(5):
            await w._tick()
            r.head += 1
        assert not wait.done()
        await stop(w, wait)

    asyncio.run(main())


def test_idle_chain_re_asks_the_newest_blocks_a_bounded_number_of_times() -> None:
    async def main() -> None:
        r = FakeReader(head=100)
        w = make(r)
        wait = await start(w.wait_order_closed(5, 100))
        queries = r.calls["order_events"]
        r.closed.append((5, 100))
        r.logs_lag = 0
        for _ in range(5):  # no new block: two re-scans, then quiet
            await w._tick()
        assert 1 <= r.calls["order_events"] - queries <= wm.IDLE_RESCANS
        assert await wait == 100
        r.head += 1
        wait2 = await start(w.wait_order_closed(6, 100))  # its wake-up poll asks for the new block
        queries = r.calls["order_events"]
        for _ in range(6):
            await w._tick()
        assert r.calls["order_events"] - queries == wm.IDLE_RESCANS
        await stop(w, wait2)

    asyncio.run(main())


def test_waiters_that_come_one_after_another_share_the_early_poll(monkeypatch) -> None:
    """Triggers start one after another (each after its own connection look-up), every one waiting from a block
    behind the live scan: their early polls are coalesced, not one ``eth_blockNumber`` + ``eth_getLogs`` each."""
    monkeypatch.setattr(wm, "WAKE_COALESCE", 0.2)

    async def main() -> None:
        r = FakeReader(head=100)
        w = make(r)
        first = await start(w.wait_order_closed(1, 50))
        polls = r.calls["block_number"]
        waits = []
        for order in range(2, 22):  # 20 more waiters, each in its own event-loop turns, all from block 50
            waits.append(asyncio.ensure_future(w.wait_order_closed(order, 50)))
            await settle(3)
        r.closed.extend((order, 80) for order in range(1, 22))
        await asyncio.sleep(0.5)
        assert 1 <= r.calls["block_number"] - polls <= 3, r.calls  # without coalescing: 20
        assert r.calls["order_events"] <= polls + 3, r.calls
        assert await asyncio.wait_for(asyncio.gather(first, *waits), 5) == [80] * 21
        await stop(w)

    asyncio.run(main())


def test_idle_rescans_wait_for_their_pause(monkeypatch) -> None:
    monkeypatch.setattr(wm, "IDLE_RESCAN_AFTER", 3600)

    async def main() -> None:
        r = FakeReader(head=100)
        w = make(r)
        wait = await start(w.wait_order_closed(5, 100))
        queries = r.calls["order_events"]
        for _ in range(3):
            await w._tick()
        assert r.calls["order_events"] == queries
        await stop(w, wait)

    asyncio.run(main())


# ---------------------------------------------------------------------- confirmations and reorgs


def test_events_are_held_until_confirmations_deep_and_a_removed_one_is_never_acted_on() -> None:
    async def main() -> None:
        r = FakeReader(head=100)
        w = make(r, confirmations=3)
        wait = await start(w.wait_order_placed(7, 100))
        r.head = 101
        r.placed.append((50, 7, 101))  # a placement that a reorg will drop
        await w._tick()
        r.head = 102
        await w._tick()
        assert not wait.done()  # only 1 deep
        r.placed = [(51, 7, 102)]  # reorg: re-mined in the next block with another order id
        r.head = 104
        await w._tick()
        assert not wait.done()  # safe head 101: nothing for DO request 7 there any more
        r.head = 105
        await w._tick()
        assert await wait == 51
        await stop(w)

    asyncio.run(main())


def test_a_close_re_mined_at_a_scanned_height_is_found_by_the_overlap(caplog) -> None:
    async def main() -> None:
        r = FakeReader(head=100)
        w = make(r)
        wait = await start(w.wait_order_closed(9, 100))
        r.head = 104
        await w._tick()
        r.closed.append((9, 102))  # reorg: re-mined at a height the watcher has scanned
        r.head = 105
        await w._tick()
        assert await wait == 102
        # a seen event moving to another block is told; the chain going back rewinds the scan
        other = await start(w.wait_order_closed(10, 100))
        r.closed.append((8, 105))
        r.head = 106
        await w._tick()
        r.closed = [(8, 104)]
        r.head = 104
        await w._tick()
        assert w._scanned_to == 104
        assert any("moved from block 105 to 104" in rec.getMessage() for rec in caplog.records)
        assert any("went back" in rec.getMessage() for rec in caplog.records)
        await stop(w, other)

    with caplog.at_level(logging.INFO):
        asyncio.run(main())


def test_a_re_delivered_event_resolves_once_and_later_waiters_still_get_it() -> None:
    async def main() -> None:
        r = FakeReader(head=100)
        r.placed.append((21, 4, 100))
        w = make(r)
        first = await start(w.wait_order_placed(4, 95))
        assert await first == 21
        for _ in range(3):  # re-scanned overlap delivers it again: nobody is waiting, nothing happens
            r.head += 1
            await w._tick()
        second = await start(w.wait_order_placed(4, 95))  # a new waiter after the first delivery
        assert await second == 21
        await stop(w)

    asyncio.run(main())


def test_confirmations_are_learnt_from_the_chain_id(caplog) -> None:
    async def main() -> None:
        r = FakeReader(head=100, chain_id=137)
        r.fail_calls["chain_id"] = [ConnectionError("down")]
        w = make(r, confirmations=None)
        wait = await start(w.wait_order_closed(1, 100))
        assert w.confirmations is None  # the first eth_chainId failed: no scan yet
        await w._tick()
        assert w.confirmations == 5  # polygon mainnet
        r.closed.append((1, 103))
        r.head = 107
        await w._tick()
        assert not wait.done()
        r.head = 108
        await w._tick()
        assert await wait == 103
        await stop(w)

        unknown = make(FakeReader(chain_id=999_999), confirmations=None)
        await unknown._tick()
        assert unknown.confirmations == 0

        class NoChainId(FakeReader):
            chain_id = None  # type: ignore[assignment]

        plain = make(NoChainId(head=1), confirmations=None)
        await plain._tick()
        assert plain.confirmations == 0

        young = make(FakeReader(head=2), confirmations=5)
        await young._tick()  # the chain is shorter than the depth: nothing to scan yet
        assert young._scanned_to is None

    asyncio.run(main())


# ---------------------------------------------------------------------- failures and range limits


def test_rpc_failures_are_retried_and_blind_polls_probe_closes(caplog) -> None:
    async def main() -> None:
        r = FakeReader(head=100)
        r.fail_head = [ConnectionError("refused")]
        w = make(r)
        wait = await start(w.wait_order_closed(5, 100))
        assert w._failures == 1 and r.calls["order_events"] == 0
        r.fail_logs_always = RuntimeError("logs disabled on this node")
        await w._tick()
        assert w._failures >= 2
        r.orders[5] = (1, OrderStatus.CLOSED)
        r.head += 1
        await w._tick()  # blind: probes at once
        assert await wait == 0
        await stop(w)

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert any("did not answer" in rec.getMessage() for rec in caplog.records)


def test_range_errors_shrink_the_range_and_the_limit_is_remembered() -> None:
    async def main() -> None:
        r = FakeReader(head=12_000)
        r.max_range = 1000
        w = make(r)
        r.closed.append((5, 11_100))
        wait = await start(w.wait_order_closed(5, 10_000))  # 2,000 behind: within one chunk, inline
        for _ in range(3):
            await w._tick()
        assert w.max_range <= 1000
        assert await wait == 11_100
        refused = len([q for q in r.queries if q[1] - q[0] + 1 > 1000])
        r.head += 1
        await w._tick()
        assert len([q for q in r.queries if q[1] - q[0] + 1 > 1000]) == refused  # no more refused queries
        await stop(w)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("message", "limit"),
    [
        ("block range is too wide: limited to a 1,000 blocks range", 1000),
        ("eth_getLogs is limited to 10k blocks range", 2500),  # larger than asked: halve
        ("Log response size exceeded.", 2500),
        ("query exceeds max block range 500", 2500),
        ("exceed maximum block range: 50 blocks", 50),
    ],
)
def test_the_limit_a_range_error_names_is_used(message: str, limit: int) -> None:
    w = make(FakeReader())
    w._shrink_range(5000, message)
    assert w.max_range == limit


def test_a_lag_error_is_not_a_range_error() -> None:
    async def main() -> None:
        r = FakeReader(head=100)
        w = make(r)
        r.fail_logs = [ValueError("block range extends beyond current head block")]
        wait = await start(w.wait_order_closed(1, 100))
        assert w.max_range == wm.MAX_LOG_RANGE and w._failures == 1
        await stop(w, wait)

    asyncio.run(main())


def test_range_retries_per_poll_are_bounded(monkeypatch) -> None:
    async def main() -> None:
        r = FakeReader(head=100)
        r.fail_logs_always = ValueError("query returned more than 10000 results")
        w = make(r, overlap=64)
        wait = await start(w.wait_order_closed(1, 100))
        assert r.calls["order_events"] == wm.RANGE_RETRIES_PER_TICK + 1
        await stop(w, wait)

    asyncio.run(main())


def test_a_long_outage_is_caught_up_in_chunks_over_several_polls() -> None:
    async def main() -> None:
        r = FakeReader(head=100)
        w = make(r)
        w.max_range = 10
        wait = await start(w.wait_order_closed(1, 100))
        r.head = 200
        r.closed.append((1, 190))
        await w._tick()
        assert w._scanned_to == 100 + wm.LIVE_CHUNKS_PER_TICK * 10 - w.overlap  # 4 chunks from cursor
        for _ in range(3):
            await w._tick()
        assert await wait == 190
        await stop(w)

    asyncio.run(main())


def test_an_inline_catch_up_cut_short_resumes_where_it_stopped() -> None:
    async def main() -> None:
        r = FakeReader(head=100)
        w = make(r)
        wait = await start(w.wait_order_closed(1, 100))
        w.max_range = 30
        late = asyncio.ensure_future(w.wait_order_placed(2, 70))
        r.placed.append((3, 2, 71))
        r.fail_logs = [ConnectionError("reset")]
        await settle()
        assert w._catch_up_from == 70  # the widened query failed: kept for the next poll
        await w._tick()
        assert await late == 3 and w._catch_up_from is None
        await stop(w, wait)

    asyncio.run(main())


# ---------------------------------------------------------------------- far-behind waiters


def test_a_waiter_far_in_the_past_never_stalls_the_live_waits(caplog) -> None:
    async def main() -> None:
        r = FakeReader(head=50_000)
        r.max_range = 1000
        w = make(r)
        w.max_range = 1000
        live = await start(w.wait_order_closed(2, 50_000))
        r.fail_logs_always = None
        # the back-scan's queries fail for good; the live ones keep working
        original = r.order_events

        async def events(low: int, high: int) -> OrderEvents:
            if high < 49_000:
                raise ConnectionError("read timed out")
            return await original(low, high)

        r.order_events = events  # type: ignore[method-assign]
        old = asyncio.ensure_future(w.wait_order_closed(1, 0))
        await settle(20)
        assert w._backscan is not None and not w._backscan.done()
        r.closed.append((2, 50_001))
        r.head += 1
        await w._tick()
        assert await live == 50_001  # not stalled by the failing back-scan
        r.orders[1] = (9, OrderStatus.CLOSED)
        for _ in range(wm.PROBE_EVERY):
            await w._tick()
        assert await old == 0  # answered by its (periodic) status probe
        await stop(w)

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert any("back-scan" in rec.getMessage() for rec in caplog.records)


def test_the_back_scan_reads_newest_first_in_chunks_and_is_bounded(monkeypatch, caplog) -> None:
    monkeypatch.setattr(wm, "BACKSCAN_MAX_BLOCKS", 5_000)

    async def main() -> None:
        r = FakeReader(head=20_000)
        r.max_range = 1000
        w = make(r)
        w.max_range = 1000
        r.placed.append((77, 8, 16_500))
        old = await start(w.wait_order_placed(8, 10_000))
        await settle(30)
        assert await old == 77
        back = [q for q in r.queries if q[1] < 19_990]
        assert len(back) >= 2 and back[0][1] > back[-1][1]  # newest chunk first
        assert all(q[1] - q[0] + 1 <= 1000 for q in back)
        # a wait from block 0 is cut to BACKSCAN_MAX_BLOCKS below the live scan, told in the log
        never = asyncio.ensure_future(w.wait_order_closed(99, 0))
        await settle(60)
        assert min(q[0] for q in r.queries) >= 20_000 - 5_000 - 20
        assert w._backscan is None or w._backscan.done()
        await stop(w, never)

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert any("left to status probes" in rec.getMessage() for rec in caplog.records)


def test_a_second_far_waiter_extends_the_running_back_scan(monkeypatch) -> None:
    async def main() -> None:
        r = FakeReader(head=30_000)
        w = make(r)
        w.max_range = 1000
        gate = asyncio.Event()
        original = r.order_events

        async def events(low: int, high: int) -> OrderEvents:
            if high < 29_000:
                await gate.wait()
            return await original(low, high)

        r.order_events = events  # type: ignore[method-assign]
        live = await start(w.wait_order_closed(1, 30_000))
        first = asyncio.ensure_future(w.wait_order_closed(2, 20_000))
        await settle()
        await w._tick()
        assert w._back_low == 20_000
        second = asyncio.ensure_future(w.wait_order_closed(3, 10_000))
        await settle()
        r.head += 1
        await w._tick()
        assert w._back_low == 10_000
        r.closed += [(2, 21_000), (3, 11_000)]
        gate.set()
        assert await asyncio.wait_for(first, 5) == 21_000
        assert await asyncio.wait_for(second, 5) == 11_000
        await stop(w, live)

    asyncio.run(main())


def test_a_failing_back_scan_backs_off_and_ends_with_the_watcher(monkeypatch) -> None:
    monkeypatch.setattr(wm, "BACKSCAN_MAX_BACKOFF", 0.01)

    async def main() -> None:
        r = FakeReader(head=30_000)
        w = make(r)
        w.max_range = 1000
        original = r.order_events
        attempts = Counter()

        async def events(low: int, high: int) -> OrderEvents:
            if high < 29_000:
                attempts[high] += 1
                if attempts[high] < 3:
                    raise ConnectionError("flaky")
                if attempts[high] == 3:
                    raise ValueError("query returned more than 10000 results")
            return await original(low, high)

        r.order_events = events  # type: ignore[method-assign]
        waiter = await start(w.wait_order_closed(2, 25_000))
        await asyncio.sleep(0.3)
        assert w.max_range < 1000  # the back-scan's range error shrank it
        backscan = w._backscan
        assert backscan is not None
        await stop(w, waiter)
        assert backscan.done()

    asyncio.run(main())


# ---------------------------------------------------------------------- status probes


def test_a_close_without_event_is_found_by_the_periodic_probe() -> None:
    async def main() -> None:
        r = FakeReader(head=100)
        w = make(r)
        wait = await start(w.wait_order_closed(5, 100))
        r.orders[5] = (1, OrderStatus.CLOSED)  # closed, but no _orderClosedEV
        for _ in range(wm.PROBE_EVERY):
            r.head += 1
            await w._tick()
        assert await wait == 0
        assert r.probe_blocks[-1] > (w.cursor or 0)  # asked at the safe head, not the cursor
        assert w.rpc_calls["_getOrder"] == 1  # one probe in PROBE_EVERY polls
        await stop(w)

    asyncio.run(main())


def test_a_placement_without_event_is_found_by_searching_the_orders() -> None:
    async def main() -> None:
        r = FakeReader(head=100)
        w = make(r)
        r.orders = {i: (1000 + i, OrderStatus.OPEN) for i in range(40)}
        wait = await start(w.wait_order_placed(1005, 100))  # order 5: far down the list
        waiter = w._waits.placed[1005][0]
        await w._probe(1)  # AVAILABLE: no order search yet
        assert r.calls["orders_count"] == 0
        r.requests[1005] = RequestStatus.BOOKED
        await w._probe(1)  # orders 39..24
        assert waiter.orders_low == 40 - wm.PLACED_PROBE_ORDERS and not wait.done()
        r.orders[40] = (2000, OrderStatus.OPEN)  # a new order meanwhile: read first next time
        await w._probe(1)
        assert waiter.orders_top == 41
        await w._probe(1)
        assert await wait == 5
        before = r.calls["get_order"]
        await w._probe(1)  # nobody left to probe
        assert r.calls["get_order"] == before
        await stop(w)

    asyncio.run(main())


def test_a_probe_the_safe_head_cannot_answer_asks_at_the_cursor(caplog) -> None:
    async def main() -> None:
        r = FakeReader(head=100)
        w = make(r)
        wait = await start(w.wait_order_closed(5, 100))
        for _ in range(20):
            r.head += 1
            await w._tick()
        r.orders[5] = (1, OrderStatus.CLOSED)
        r.fail_calls["get_order"] = [ValueError("header not found")]
        await w._probe(1)
        assert r.probe_blocks[-2:] == [r.head, w.cursor]
        assert await wait == 0
        # both failing: told, and the waiter stays in the round
        other = await start(w.wait_order_closed(6, 100))
        r.fail_calls["get_order"] = [ValueError("header not found"), ConnectionError("down")]
        await w._probe(1)
        assert not other.done() and w._waits.closed[6][0] in w._probe_ring
        await stop(w, other)

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert any("status probe of closed 6 failed" in rec.getMessage() for rec in caplog.records)


def test_probe_before_any_head_reads_latest() -> None:
    async def main() -> None:
        r = FakeReader()
        r.fail_head = [ConnectionError("down")] * 3
        w = make(r)
        wait = await start(w.wait_order_closed(5, 0))
        r.orders[5] = (1, OrderStatus.CLOSED)
        await w._probe(1)
        assert r.probe_blocks == ["latest"]
        assert await wait == 0
        await stop(w)

    asyncio.run(main())


def test_cancelled_waiters_are_skipped_by_the_probes() -> None:
    async def main() -> None:
        r = FakeReader(head=100)
        w = make(r)
        gone = await start(w.wait_order_closed(5, 100))
        gone.cancel()
        await settle()
        w._probe_urgent.append(w._probe_ring[0])
        assert w._next_to_probe() is None
        await stop(w)

    asyncio.run(main())


def test_far_behind_waiters_are_probed_first_a_few_per_poll() -> None:
    async def main() -> None:
        r = FakeReader(head=100_000)
        w = make(r)
        w.max_range = 1000
        live = await start(w.wait_order_closed(1, 100_000))
        old = [asyncio.ensure_future(w.wait_order_closed(o, 10)) for o in range(10, 20)]
        for o in range(10, 20):
            r.orders[o] = (o, OrderStatus.CLOSED)
        await asyncio.sleep(0)
        calls = r.calls["get_order"]
        await w._tick()
        assert r.calls["get_order"] - calls == wm.PROBE_BATCH_BLIND
        for _ in range(3):
            await w._tick()
        assert [await t for t in old] == [0] * 10
        await stop(w, live)

    asyncio.run(main())


# ---------------------------------------------------------------------- life cycle and sharing


def test_an_idle_watcher_ends_and_closes_its_reader(monkeypatch) -> None:
    monkeypatch.setattr(wm, "IDLE_LINGER_SECONDS", 0.0)

    async def main() -> None:
        r = FakeReader(head=100)
        r.placed.append((4, 3, 100))
        w = OrderEventWatcher(lambda: r, 0.01, confirmations=0)
        assert await w.wait_order_placed(3, 100) == 4
        await asyncio.wait_for(w._task, 2)  # type: ignore[arg-type]
        assert r.closed_reader and w._reader is None

    asyncio.run(main())


def test_get_watcher_shares_one_watcher_per_rpc_and_contract() -> None:
    async def main() -> None:
        a = get_watcher("http://rpc/", "0xABC", lambda: None, 1.0)
        b = get_watcher("http://rpc", "0xabc", lambda: None, 0.5, confirmations=3)
        c = get_watcher("http://rpc", "0xabc", lambda: None, 2.0, confirmations=1)
        assert a is b is c and a.poll_interval == 0.5 and a.confirmations == 3
        d = get_watcher("http://other", "0xabc", lambda: None, confirmations=2)
        assert d is not a and d.confirmations == 2

    asyncio.run(main())


def test_seen_events_are_forgotten_oldest_first(monkeypatch) -> None:
    monkeypatch.setattr(wm, "SEEN_LIMIT", 8)
    w = make(FakeReader())
    for block in range(20):
        w._note(wm.CLOSED, block, block, None)
    assert len(w._seen) <= 8 and (wm.CLOSED, 19) in w._seen and (wm.CLOSED, 0) not in w._seen


def test_a_probe_of_a_request_the_replica_does_not_know_yet_is_not_found_quietly(caplog) -> None:
    """A lagging replica reverts reads of a DO request it has not seen: the real contracts with Solidity's panic
    0x32 (array index out of bounds), the devnet's with ``no such DO request``. Not a failure: asked again."""
    from web3.exceptions import ContractLogicError, ContractPanicError

    async def main() -> None:
        r = FakeReader(head=100)
        w = make(r)
        wait = await start(w.wait_order_placed(9, 100))
        unknown = [ContractPanicError("Panic error 0x32: Array index is out of bounds."),
                   ContractLogicError("execution reverted: no such DO request")]  # fmt: skip
        r.fail_calls["do_request_status"] = unknown * 2  # at the safe head, then at the cursor
        await w._probe(1)
        await w._probe(1)
        assert not wait.done() and w._waits.placed[9][0] in w._probe_ring
        r.requests[9], r.orders[3] = RequestStatus.BOOKED, (9, OrderStatus.OPEN)
        await w._probe(1)
        assert await wait == 3
        await stop(w)

    with caplog.at_level(logging.DEBUG, logger="airflow_provider_ethernity.protocol.watcher"):
        asyncio.run(main())
    assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING], "a replica's lag was a warning"
    assert any("not on chain yet" in rec.getMessage() for rec in caplog.records)
