"""One chain watcher per (RPC URL, protocol contract) per event loop, shared by every waiting trigger.

A waiting trigger registers what it waits for (the order of a DO request, or the close of an order) and
awaits a future. The watcher polls the chain head; for each new block range it fetches the order events
with one ``eth_getLogs`` and resolves the futures whose orders appear. So N waiting triggers cost about two
RPC calls per new block (``eth_blockNumber`` + ``eth_getLogs``), whatever N is.

A waiter that starts behind the watcher's cursor (a triggerer restarted after the order closed, a
deferral that began blocks ago) is caught up by widening the next log query down to its ``from_block``;
several late waiters share that one query. When log queries keep failing, the watcher probes
``_getOrder`` for the waited orders instead, so a node without logs still completes the waits.

Polls follow the chain's rhythm: once blocks come regularly (their interval, learnt from the heads seen,
is steady and at least about the poll interval), the next poll is timed just before the next block is due (its
phase taken from the earliest recent sighting, as sightings are never early), and a late block is
retried after short, then growing pauses (up to the poll interval). Detection then lags a block
by a fraction of a second while the requests per block stay at about two.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_ethernity.protocol.events import OrderStatus

log = logging.getLogger(__name__)

#: Largest block range one ``eth_getLogs`` covers (public RPCs refuse larger ones).
MAX_LOG_RANGE = 5_000
#: Consecutive failed log queries after which ``_getOrder`` probes are used for closed-order waits.
PROBE_AFTER_FAILURES = 2
#: How long an idle watcher (no waiter) lingers before its poll task ends.
IDLE_LINGER_SECONDS = 5.0
#: Shortest retry pause while a due block is late.
MIN_POLL_STEP = 0.1
#: How long before a block is due the watcher asks for it.
POLL_EARLY = 0.02


@dataclass
class _Waits:
    placed: dict[int, list[asyncio.Future[int]]] = field(default_factory=dict)  # DO request -> futures
    closed: dict[int, list[asyncio.Future[int]]] = field(default_factory=dict)  # order -> futures

    def __bool__(self) -> bool:
        return bool(self.placed or self.closed)


class OrderEventWatcher:
    """Shared poller of one protocol contract. Get it with :func:`get_watcher`; it needs a running loop."""

    def __init__(self, reader_factory: Callable[[], Any], poll_interval: float = 1.0) -> None:
        self._reader_factory = reader_factory
        self._reader: Any = None
        self.poll_interval = poll_interval
        self.cursor: int | None = None  # last block whose events were dispatched
        self._catch_up_from: int | None = None
        self._waits = _Waits()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._failures = 0
        self._sightings: collections.deque[tuple[int, float]] = collections.deque(maxlen=8)  # (head, loop time)
        self._steps: collections.deque[float] = collections.deque(maxlen=9)  # seconds between one-block steps
        self.block_interval: float | None = None  # learnt seconds per block; None while blocks are irregular
        self._misses = 0  # scheduled polls since the head last grew
        self._scheduled = True  # whether the coming tick is a timed poll (not a new waiter's wake-up)
        #: How many RPC requests the watcher made, by method (the benchmarks read this).
        self.rpc_calls: dict[str, int] = {"eth_blockNumber": 0, "eth_getLogs": 0, "_getOrder": 0}

    # ------------------------------------------------------------------ waiting
    async def wait_order_placed(self, do_request_id: int, from_block: int) -> int:
        """The id of the order placed for ``do_request_id`` at or after ``from_block``."""
        return await self._wait(self._waits.placed, int(do_request_id), from_block)

    async def wait_order_closed(self, order_id: int, from_block: int) -> int:
        """The block of ``_orderClosedEV`` of ``order_id`` at or after ``from_block`` (0 when found by probe)."""
        return await self._wait(self._waits.closed, int(order_id), from_block)

    async def _wait(self, table: dict[int, list[asyncio.Future[int]]], key: int, from_block: int) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        table.setdefault(key, []).append(future)
        if self.cursor is None or from_block <= self.cursor:
            self._catch_up_from = from_block if self._catch_up_from is None else min(self._catch_up_from, from_block)
        self._ensure_running()
        self._wake.set()
        try:
            return await future
        finally:
            waiting = table.get(key)
            if waiting is not None:
                if future in waiting:
                    waiting.remove(future)
                if not waiting:
                    del table[key]

    @property
    def waiting(self) -> int:
        return sum(len(v) for v in self._waits.placed.values()) + sum(len(v) for v in self._waits.closed.values())

    # ------------------------------------------------------------------ polling
    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ethernity-order-watcher")

    async def _run(self) -> None:
        idle_since: float | None = None
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._waits:
                    idle_since = idle_since or loop.time()
                    if loop.time() - idle_since >= IDLE_LINGER_SECONDS:
                        return
                else:
                    idle_since = None
                    await self._tick()
                self._wake.clear()
                self._scheduled = True
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.next_delay(loop.time()))
                    self._scheduled = False
        finally:
            if self._reader is not None:
                reader, self._reader = self._reader, None
                with contextlib.suppress(Exception):  # closing a dead connection
                    await reader.aclose()

    def _observe_head(self, head: int, now: float, scheduled: bool = True) -> None:
        """Learn the chain's rhythm from the heads seen: the interval (median of one-block steps) and the
        arrival phase (the earliest sighting among recent blocks: sightings are never early)."""
        last = self._sightings[-1] if self._sightings else None
        if last is None or head > last[0]:
            if last is not None and head - last[0] == 1:
                self._steps.append(now - last[1])
                self.block_interval = _regular_interval(self._steps)
            self._sightings.append((head, now))
            self._misses = 0
        elif scheduled:  # a poll a new waiter caused is not a late block
            self._misses += 1

    def _next_arrival(self) -> float | None:
        interval = self.block_interval
        if interval is None or not self._sightings:
            return None
        head = self._sightings[-1][0]
        return min(seen + (head + 1 - number) * interval for number, seen in self._sightings)

    def next_delay(self, now: float) -> float:
        """Seconds until the next poll: the poll interval, or timed to the next block when blocks are regular."""
        interval, due = self.block_interval, self._next_arrival()
        if interval is None or due is None or interval < 0.8 * self.poll_interval:
            return self.poll_interval
        due -= POLL_EARLY
        if self._misses == 0 and now < due:
            return due - now
        step = max(MIN_POLL_STEP, interval / 10)
        return min(self.poll_interval, step * 2 ** max(0, self._misses - 2))

    @property
    def reader(self) -> Any:
        if self._reader is None:
            self._reader = self._reader_factory()
        return self._reader

    async def _tick(self) -> None:
        try:
            self.rpc_calls["eth_blockNumber"] += 1
            head = await self.reader.block_number()
        except Exception as exc:
            self._failures += 1
            log.warning("Ethernity watcher: the RPC did not answer (%s); will retry", _brief(exc))
            return
        self._observe_head(head, asyncio.get_running_loop().time(), self._scheduled)
        start = self.cursor + 1 if self.cursor is not None else head
        if self._catch_up_from is not None:
            start = min(start, self._catch_up_from)
        if start > head:
            return
        try:
            await self._scan(start, head)
        except Exception as exc:
            self._failures += 1
            log.warning("Ethernity watcher: log query %s..%s failed (%s)", start, head, _brief(exc))
            if self._failures >= PROBE_AFTER_FAILURES:
                await self._probe_closed()
            return
        self._failures = 0
        self.cursor = head
        self._catch_up_from = None

    async def _scan(self, start: int, head: int) -> None:
        for low in range(start, head + 1, MAX_LOG_RANGE):
            high = min(low + MAX_LOG_RANGE - 1, head)
            self.rpc_calls["eth_getLogs"] += 1
            events = await self.reader.order_events(low, high)
            for order_id, do_request_id, _block in events.placed:
                _resolve(self._waits.placed.get(do_request_id), order_id)
            for order_id, block in events.closed:
                _resolve(self._waits.closed.get(order_id), block)

    async def _probe_closed(self) -> None:
        """Logs are unavailable: ask ``_getOrder`` about each waited order instead."""
        for order_id in list(self._waits.closed):
            try:
                self.rpc_calls["_getOrder"] += 1
                order = await self.reader.get_order(order_id)
            except Exception as exc:
                log.warning("Ethernity watcher: _getOrder(%s) failed (%s)", order_id, _brief(exc))
                return
            if order.status == OrderStatus.CLOSED:
                _resolve(self._waits.closed.get(order_id), 0)


def _regular_interval(steps: collections.deque[float]) -> float | None:
    """The median step when blocks come regularly (the middle half of the steps within 50% of it), else None:
    a chain that mines on demand (a devnet in automine mode) keeps the plain poll interval."""
    if len(steps) < 3:
        return None
    ordered = sorted(steps)
    median = ordered[len(ordered) // 2]
    spread = ordered[(3 * len(ordered)) // 4] - ordered[len(ordered) // 4]
    return median if median > 0 and spread <= 0.5 * median else None


def _resolve(futures: list[asyncio.Future[int]] | None, value: int) -> None:
    for future in list(futures or ()):
        if not future.done():
            future.set_result(value)


def _brief(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], OrderEventWatcher]] = (
    weakref.WeakKeyDictionary()
)


def get_watcher(
    rpc_url: str, protocol_address: str, reader_factory: Callable[[], Any], poll_interval: float = 1.0
) -> OrderEventWatcher:
    """The watcher of ``(rpc_url, protocol_address)`` in the running event loop (created on first use).

    The poll interval is the smallest any of its users asked for.
    """
    loop = asyncio.get_running_loop()
    per_loop = _watchers.setdefault(loop, {})
    key = (rpc_url.rstrip("/"), protocol_address.lower())
    watcher = per_loop.get(key)
    if watcher is None:
        watcher = per_loop[key] = OrderEventWatcher(reader_factory, poll_interval)
    else:
        watcher.poll_interval = min(watcher.poll_interval, poll_interval)
    return watcher
