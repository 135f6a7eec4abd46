"""The state of an :class:`~.watcher.OrderEventWatcher` and its waiting side: what the triggers wait for.

A waiting trigger registers a waiter (the order of a DO request, or the close of an order) and awaits its
future; the watcher's scans (:mod:`.watcher`) and status probes (:mod:`.watch_probes`) resolve it with
:meth:`WatcherState._dispatch`, at most once. The other parts of the watcher are mixins over this state.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Largest block range one ``eth_getLogs`` covers at first (halved when the RPC refuses a range).
MAX_LOG_RANGE = 5_000
#: Blocks re-scanned below the newest block asked for, at first (grows with the replica lag seen).
DEFAULT_OVERLAP = 8

PLACED, CLOSED = "placed", "closed"


@dataclass(eq=False, slots=True)
class Waiter:
    kind: str  # PLACED or CLOSED
    key: int  # DO request id (placed) or order id (closed)
    from_block: int
    future: asyncio.Future[int]
    orders_top: int | None = None  # placed probes: orders [orders_low, orders_top) were read already
    orders_low: int | None = None


@dataclass
class Waits:
    placed: dict[int, list[Waiter]] = field(default_factory=dict)  # DO request -> waiters
    closed: dict[int, list[Waiter]] = field(default_factory=dict)  # order -> waiters

    def __bool__(self) -> bool:
        return bool(self.placed or self.closed)

    def table(self, kind: str) -> dict[int, list[Waiter]]:
        return self.placed if kind == PLACED else self.closed


class WatcherState:
    """The watcher's state, its reader and its waiters; polling is :class:`~.watcher.OrderEventWatcher`'s."""

    def __init__(
        self,
        reader_factory: Callable[[], Any],
        poll_interval: float = 1.0,
        *,
        confirmations: int | None = None,
        overlap: int = DEFAULT_OVERLAP,
    ) -> None:
        self._reader_factory = reader_factory
        self._reader: Any = None
        self.poll_interval = poll_interval
        #: Depth an event must have before it is acted on; None: learnt from the chain id on the first poll.
        self.confirmations = confirmations
        self.overlap = max(0, int(overlap))
        self.max_range = MAX_LOG_RANGE
        self._scanned_to: int | None = None  # highest block the live scan asked for
        self._live_low: int | None = None  # lowest block of the live scan's continuous coverage
        self._safe_head: int | None = None
        self._catch_up_from: int | None = None
        self._waits = Waits()
        self._task: asyncio.Task[None] | None = None
        self._backscan: asyncio.Task[None] | None = None
        self._back_low: int | None = None  # back-scan: blocks [_back_low, _back_next] are still to read
        self._back_next: int | None = None
        self._wake = asyncio.Event()
        self._failures = 0
        self._ticks = 0
        self._idle_rescans = 0
        self._last_query_at = 0.0
        self._probe_ring: collections.deque[Waiter] = collections.deque()
        self._probe_urgent: collections.deque[Waiter] = collections.deque()
        self._seen: dict[tuple[str, int], int] = {}  # (kind, id) -> block of the event
        self._sightings: collections.deque[tuple[int, float]] = collections.deque(maxlen=8)  # (head, loop time)
        self._steps: collections.deque[float] = collections.deque(maxlen=9)  # seconds between one-block steps
        self.block_interval: float | None = None  # learnt seconds per block; None while blocks are irregular
        self._misses = 0  # scheduled polls since the head last grew
        self._scheduled = True  # whether the coming tick is a timed poll (not a new waiter's wake-up)
        #: How many RPC requests the watcher made, by method (the benchmarks read this).
        self.rpc_calls: dict[str, int] = {
            "eth_blockNumber": 0,
            "eth_getLogs": 0,
            "_getOrder": 0,
            "_getDORequest": 0,
            "_getOrdersCount": 0,
            "eth_chainId": 0,
        }

    @property
    def cursor(self) -> int | None:
        """The last block taken as covered: the highest block asked for, less the overlap."""
        return None if self._scanned_to is None else self._scanned_to - self.overlap

    @property
    def reader(self) -> Any:
        """The chain reader (an :class:`~.async_client.AsyncChainReader`), made on first use."""
        if self._reader is None:
            self._reader = self._reader_factory()
        return self._reader

    def _ensure_running(self) -> None:
        """Start the poll task if it is not running (:class:`~.watcher.OrderEventWatcher` implements it)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ waiting
    async def wait_order_placed(self, do_request_id: int, from_block: int) -> int:
        """The id of the order placed for ``do_request_id`` at or after ``from_block``."""
        return await self._wait(PLACED, int(do_request_id), int(from_block))

    async def wait_order_closed(self, order_id: int, from_block: int) -> int:
        """The block of ``_orderClosedEV`` of ``order_id`` at or after ``from_block`` (0 when found by probe)."""
        return await self._wait(CLOSED, int(order_id), int(from_block))

    async def _wait(self, kind: str, key: int, from_block: int) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        waiter = Waiter(kind, key, from_block, future)
        table = self._waits.table(kind)
        table.setdefault(key, []).append(waiter)
        if self._scanned_to is None or from_block <= self._scanned_to - self.overlap:
            self._catch_up_from = from_block if self._catch_up_from is None else min(self._catch_up_from, from_block)
        self._probe_ring.append(waiter)
        self._ensure_running()
        self._wake.set()
        try:
            return await future
        finally:
            waiting = table.get(key)
            if waiting is not None:
                if waiter in waiting:
                    waiting.remove(waiter)
                if not waiting:
                    del table[key]

    @property
    def waiting(self) -> int:
        """How many waits are registered."""
        return sum(len(v) for v in self._waits.placed.values()) + sum(len(v) for v in self._waits.closed.values())

    def _dispatch(self, kind: str, key: int, value: int, block: int) -> None:
        for waiter in list(self._waits.table(kind).get(key, ())):
            if not waiter.future.done():
                waiter.future.set_result(value)
