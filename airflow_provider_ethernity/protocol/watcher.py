"""One chain watcher per (RPC URL, protocol contract) per event loop, shared by every waiting trigger.

A waiting trigger registers what it waits for (the order of a DO request, or the close of an order) and
awaits a future. The watcher polls the chain head; for each new block range it fetches the order events
with one ``eth_getLogs`` and resolves the futures whose orders appear. So N waiting triggers cost about two
RPC calls per new block (``eth_blockNumber`` + ``eth_getLogs``), whatever N is.

Correctness on real RPCs (load balancers, public endpoints, reorgs):

* **Confirmations.** The live scan stops at the *safe head*, ``head - confirmations`` (per network:
  :attr:`Network.confirmations`, learnt from ``eth_chainId`` unless given; 0 on the devnet, so it stays
  fast). An event is acted on only once it is that deep, so a reorg shallower than that never resolves a
  waiter with an event that then disappears (or with an order id that a re-mined placement changes).
* **Replica lag: a re-scanned overlap.** A load-balanced RPC can answer ``eth_getLogs`` from a replica a
  few blocks behind the one that answered ``eth_blockNumber``; such an answer is indistinguishable from
  "no events". So the watcher does not trust one query with the newest blocks: every live query starts
  ``overlap`` blocks below the last block it asked for, and ``cursor`` (blocks taken as covered) trails the
  highest block asked for by ``overlap``. A block is thus asked about in every poll until it is
  ``overlap`` blocks old, and an event a lagging replica left out appears a poll or two later. This costs
  no extra request (the one ``eth_getLogs`` per new block just spans a few more blocks, which nodes
  answer from their log index), unlike a coverage check per block (block hashes or ``blockHash`` queries
  would add a request or two per block). The overlap adapts: an event first seen in a block an earlier
  query already covered measures the lag, and the overlap grows to twice it (up to ``MAX_OVERLAP``). When
  the chain is idle the newest blocks are asked about twice more, a few seconds apart (a replica catches
  up in time, not only in blocks). Waiters are resolved at most once (their future), so re-delivered
  events are harmless; a re-scan also heals a shallow reorg that re-mined an event at a height already
  scanned.
* **Range limits.** Log queries are split into chunks of ``max_range`` blocks (5,000 at first). An RPC's
  "range too wide / too many results" error halves it (or sets it to the limit the message names), and
  the watcher remembers it.
* **Waiters far in the past** (a sensor given only an order id, a triggerer restarted long after the
  deferral) do not widen the live query beyond one chunk: the blocks between their ``from_block`` and the
  live scan are read by a separate back-scan task, newest chunk first, at most ``BACKSCAN_MAX_BLOCKS``
  blocks deep, paced and backing off on failure. It never holds the live cursor, so other waits go on;
  they are also probed at once (below), which answers most of them in one call.
* **Status probes** are the backstop for anything logs miss (lag beyond the overlap, a reorg deeper than
  the confirmations, a close without an event, an RPC without logs): every ``PROBE_EVERY`` polls one
  waiter, round-robin, is asked about on chain, at the covered cursor: a closed-wait by ``_getOrder``
  (CLOSED resolves it, with block 0 as the close block is unknown), a placed-wait by ``_getDORequest``
  (BOOKED: the orders are searched newest first, ``PLACED_PROBE_ORDERS`` per probe, for the one of that
  DO request). New waiters behind the cursor are probed first; while log queries keep failing, every poll
  probes a few. So probes add about 1/``PROBE_EVERY`` request per block, whatever the number of waiters.

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
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_ethernity.protocol.events import OrderStatus, RequestStatus

log = logging.getLogger(__name__)

#: Largest block range one ``eth_getLogs`` covers at first (halved when the RPC refuses a range).
MAX_LOG_RANGE = 5_000
#: Blocks re-scanned below the newest block asked for, at first (grows with the replica lag seen).
DEFAULT_OVERLAP = 8
#: Largest overlap the lag seen can grow it to.
MAX_OVERLAP = 128
#: Chunks the live scan asks for in one poll (a long outage is caught up over several polls).
LIVE_CHUNKS_PER_TICK = 4
#: Range-error retries (each with a smaller range) in one poll.
RANGE_RETRIES_PER_TICK = 4
#: Deepest a back-scan reads below the live scan; older waits are answered by status probes.
BACKSCAN_MAX_BLOCKS = 100_000
#: Pause between two back-scan chunks (it shares the RPC with the live scan).
BACKSCAN_PAUSE = 0.05
#: Longest pause of a failing back-scan.
BACKSCAN_MAX_BACKOFF = 30.0
#: Consecutive failed log queries after which every poll probes ``PROBE_BATCH_BLIND`` waiters.
PROBE_AFTER_FAILURES = 2
#: One waiter is probed every this many polls.
PROBE_EVERY = 10
#: Waiters probed per poll while logs fail, and new far-behind waiters probed per poll.
PROBE_BATCH_BLIND = 4
#: Orders a placed-wait probe reads per probe while searching the order of its DO request.
PLACED_PROBE_ORDERS = 16
#: Re-scans of the newest blocks while the chain is idle, and the seconds after the last query they wait.
IDLE_RESCANS = 2
IDLE_RESCAN_AFTER = 2.0
#: How long an idle watcher (no waiter) lingers before its poll task ends.
IDLE_LINGER_SECONDS = 5.0
#: Shortest retry pause while a due block is late.
MIN_POLL_STEP = 0.1
#: How long before a block is due the watcher asks for it.
POLL_EARLY = 0.02
#: Events remembered (to measure the lag and notice re-mined events) before the oldest are forgotten.
SEEN_LIMIT = 4_096

PLACED, CLOSED = "placed", "closed"

_RANGE_ERROR = re.compile(
    r"-32005|-32614|range|too many|more than|too large|exceed|limit|response size|query timeout", re.IGNORECASE
)
_LAG_ERROR = re.compile(r"beyond|future|head block|not found|unknown block|after last", re.IGNORECASE)
_NAMED_LIMIT = re.compile(r"(\d[\d,_]*)\s*(k\s*)?-?\s*blocks?\b", re.IGNORECASE)


@dataclass(eq=False, slots=True)
class _Waiter:
    kind: str  # PLACED or CLOSED
    key: int  # DO request id (placed) or order id (closed)
    from_block: int
    future: asyncio.Future[int]
    orders_top: int | None = None  # placed probes: orders [orders_low, orders_top) were read already
    orders_low: int | None = None


@dataclass
class _Waits:
    placed: dict[int, list[_Waiter]] = field(default_factory=dict)  # DO request -> waiters
    closed: dict[int, list[_Waiter]] = field(default_factory=dict)  # order -> waiters

    def __bool__(self) -> bool:
        return bool(self.placed or self.closed)

    def table(self, kind: str) -> dict[int, list[_Waiter]]:
        return self.placed if kind == PLACED else self.closed


class RangeError(Exception):
    """The RPC refused a log query's range (or its result size)."""


class OrderEventWatcher:
    """Shared poller of one protocol contract. Get it with :func:`get_watcher`; it needs a running loop."""

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
        self._waits = _Waits()
        self._task: asyncio.Task[None] | None = None
        self._backscan: asyncio.Task[None] | None = None
        self._back_low: int | None = None  # back-scan: blocks [_back_low, _back_next] are still to read
        self._back_next: int | None = None
        self._wake = asyncio.Event()
        self._failures = 0
        self._ticks = 0
        self._idle_rescans = 0
        self._last_query_at = 0.0
        self._probe_ring: collections.deque[_Waiter] = collections.deque()
        self._probe_urgent: collections.deque[_Waiter] = collections.deque()
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

    # ------------------------------------------------------------------ waiting
    async def wait_order_placed(self, do_request_id: int, from_block: int) -> int:
        """The id of the order placed for ``do_request_id`` at or after ``from_block``."""
        return await self._wait(PLACED, int(do_request_id), int(from_block))

    async def wait_order_closed(self, order_id: int, from_block: int) -> int:
        """The block of ``_orderClosedEV`` of ``order_id`` at or after ``from_block`` (0 when found by probe)."""
        return await self._wait(CLOSED, int(order_id), int(from_block))

    async def _wait(self, kind: str, key: int, from_block: int) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(kind, key, from_block, future)
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
            backscan, self._backscan = self._backscan, None
            if backscan is not None and not backscan.done():
                backscan.cancel()
                with contextlib.suppress(BaseException):
                    await backscan
            self._back_low = self._back_next = None
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

    async def _learn_confirmations(self) -> None:
        """The confirmation depth of the chain's network (by ``eth_chainId``); 0 for unknown chains."""
        from airflow_provider_ethernity.protocol.networks import NETWORKS

        chain_id_of = getattr(self.reader, "chain_id", None)
        depth = 0
        if chain_id_of is not None:
            try:
                self.rpc_calls["eth_chainId"] += 1
                chain_id = int(await chain_id_of())
            except Exception as exc:
                log.warning("Ethernity watcher: eth_chainId failed (%s); will retry", _brief(exc))
                return
            depth = max((n.confirmations for n in NETWORKS.values() if n.chain_id == chain_id), default=0)
        self.confirmations = depth

    async def _tick(self) -> None:
        self._ticks += 1
        loop = asyncio.get_running_loop()
        try:
            self.rpc_calls["eth_blockNumber"] += 1
            head = int(await self.reader.block_number())
        except Exception as exc:
            self._failures += 1
            log.warning("Ethernity watcher: the RPC did not answer (%s); will retry", _brief(exc))
            return
        self._observe_head(head, loop.time(), self._scheduled)
        if self.confirmations is None:
            await self._learn_confirmations()
            if self.confirmations is None:
                return
        safe = head - self.confirmations
        if safe < 0:
            return
        self._safe_head = safe
        if self._scanned_to is not None and safe < self._scanned_to:  # the chain went back (a reorg)
            log.info("Ethernity watcher: the chain went back from %s to %s; re-scanning", self._scanned_to, safe)
            self._scanned_to = safe
        await self._scan_live(safe, loop.time())
        blind = self._failures >= PROBE_AFTER_FAILURES
        if self._probe_urgent or blind or self._ticks % PROBE_EVERY == 0:
            await self._probe(PROBE_BATCH_BLIND if blind else 1)

    async def _scan_live(self, safe: int, now: float) -> None:
        scanned = self._scanned_to
        live_low = low = max(0, (safe if scanned is None else scanned) - self.overlap + 1)
        inline_catch_up = False
        catch = self._catch_up_from
        if catch is not None:
            if catch >= low:
                self._catch_up_from = None
            elif low - catch <= self.max_range:  # a little behind: widen this query
                low, inline_catch_up = catch, True
            else:  # far behind: its own back-scan, the live scan goes on
                self._start_backscan(catch, low - 1)
                self._catch_up_from = None
        new_blocks = scanned is None or safe > scanned
        if new_blocks:
            self._idle_rescans = 0
        elif not inline_catch_up:
            if self._idle_rescans >= IDLE_RESCANS or now - self._last_query_at < IDLE_RESCAN_AFTER:
                return
            self._idle_rescans += 1
        if self._live_low is None:
            self._live_low = live_low
        chunks, range_retries = 0, 0
        while low <= safe and chunks < LIVE_CHUNKS_PER_TICK:
            high = min(low + self.max_range - 1, safe)
            try:
                await self._query(low, high, live=True)
            except RangeError:
                range_retries += 1
                if range_retries > RANGE_RETRIES_PER_TICK:
                    return
                continue
            except Exception as exc:
                self._failures += 1
                log.warning("Ethernity watcher: log query %s..%s failed (%s)", low, high, _brief(exc))
                return
            finally:
                self._last_query_at = now
            chunks += 1
            self._failures = 0
            if self._scanned_to is None or high > self._scanned_to:
                self._scanned_to = high
            if inline_catch_up:
                self._catch_up_from = None if high + 1 >= live_low else high + 1
            low = high + 1

    async def _query(self, low: int, high: int, *, live: bool) -> None:
        """Ask for the order events of ``low..high`` and dispatch them; RangeError shrinks ``max_range``."""
        self.rpc_calls["eth_getLogs"] += 1
        try:
            events = await self.reader.order_events(low, high)
        except Exception as exc:
            text = str(exc)
            if is_range_error(exc) and self._shrink_range(high - low + 1, text):
                raise RangeError(text) from exc
            raise
        previous = self._scanned_to if live else None
        for order_id, do_request_id, block in events.placed:
            self._note(PLACED, order_id, int(block), previous)
            self._dispatch(PLACED, int(do_request_id), int(order_id), int(block))
        for order_id, block in events.closed:
            self._note(CLOSED, order_id, int(block), previous)
            self._dispatch(CLOSED, int(order_id), int(block), int(block))

    def _shrink_range(self, asked: int, text: str) -> bool:
        """Shrink ``max_range`` below ``asked`` (to the limit the error names, else half); False at 1 block."""
        named = _NAMED_LIMIT.search(text)
        limit = 0
        if named:
            limit = int(re.sub(r"[,_]", "", named.group(1))) * (1000 if named.group(2) else 1)
        new = limit if 0 < limit < asked else max(1, asked // 2)
        if asked <= 1:
            return False
        if new < self.max_range:
            log.warning("Ethernity watcher: the RPC refused %s blocks per log query; now %s", asked, new)
            self.max_range = new
        return True

    def _note(self, kind: str, ident: int, block: int, previous: int | None) -> None:
        """Remember an event; one first seen in a block an earlier live query covered measures the lag."""
        key = (kind, int(ident))
        before = self._seen.get(key)
        self._seen[key] = block
        if before is not None and before != block:
            log.info("Ethernity watcher: %s event of %s moved from block %s to %s (reorg)", kind, ident, before, block)
        elif (
            before is None
            and previous is not None
            and self._live_low is not None
            and self._live_low <= block <= previous
        ):
            lag = previous - block + 1
            grown = min(MAX_OVERLAP, max(self.overlap, 2 * lag))
            if grown > self.overlap:
                log.warning("Ethernity watcher: logs lag the head by %s blocks; re-scanning %s", lag, grown)
                self.overlap = grown
        if len(self._seen) > SEEN_LIMIT:
            for old in sorted(self._seen, key=self._seen.__getitem__)[: SEEN_LIMIT // 4]:
                del self._seen[old]

    def _dispatch(self, kind: str, key: int, value: int, block: int) -> None:
        for waiter in list(self._waits.table(kind).get(key, ())):
            if not waiter.future.done():
                waiter.future.set_result(value)

    # ------------------------------------------------------------------ back-scan
    def _start_backscan(self, low: int, high: int) -> None:
        """Read ``low..high`` on the side (newest first), bounded to ``BACKSCAN_MAX_BLOCKS``."""
        if self._back_next is not None and self._back_low is not None:  # running: only reach deeper
            high = self._back_next
            low = min(low, self._back_low)
        floor = max(0, high - BACKSCAN_MAX_BLOCKS + 1)
        if low < floor:
            log.warning(
                "Ethernity watcher: a wait starts at block %s, more than %s blocks back; blocks before %s are "
                "left to status probes",
                low,
                BACKSCAN_MAX_BLOCKS,
                floor,
            )
            low = floor
        self._back_low, self._back_next = low, high
        for waiters in (*self._waits.placed.values(), *self._waits.closed.values()):
            # behind the live scan: ask the chain directly, soon (bounded per poll)
            self._probe_urgent.extend(w for w in waiters if w.from_block <= high and not w.future.done())
        if self._backscan is None or self._backscan.done():
            self._backscan = asyncio.get_running_loop().create_task(self._run_backscan(), name="ethernity-backscan")

    async def _run_backscan(self) -> None:
        failures = 0
        while self._waits and self._back_next is not None and self._back_low is not None:
            high = self._back_next
            if high < self._back_low:
                break
            low = max(self._back_low, high - self.max_range + 1)
            try:
                await self._query(low, high, live=False)
            except RangeError:
                await asyncio.sleep(BACKSCAN_PAUSE)
                continue
            except Exception as exc:
                failures += 1
                pause = min(BACKSCAN_MAX_BACKOFF, self.poll_interval * 2 ** min(failures, 10))
                log.warning("Ethernity watcher: back-scan %s..%s failed (%s); again in %.1f s", low, high,
                            _brief(exc), pause)  # fmt: skip
                await asyncio.sleep(pause)
                continue
            failures = 0
            if self._back_next == high:  # not moved meanwhile
                self._back_next = low - 1
            await asyncio.sleep(BACKSCAN_PAUSE)
        self._back_low = self._back_next = None

    # ------------------------------------------------------------------ status probes
    async def _probe(self, batch: int) -> None:
        """Ask the chain about a few waiters: far-behind ones first, then round-robin."""
        budget = max(batch, min(PROBE_BATCH_BLIND, len(self._probe_urgent)))
        while budget > 0:
            waiter = self._next_to_probe()
            if waiter is None:
                return
            budget -= 1
            try:
                found = await self._probe_one(waiter)
            except Exception as exc:
                log.warning("Ethernity watcher: status probe of %s %s failed (%s)", waiter.kind, waiter.key,
                            _brief(exc))  # fmt: skip
                self._probe_ring.append(waiter)
                return
            if found is not None:
                log.info("Ethernity watcher: %s %s found by a status probe", waiter.kind, waiter.key)
                self._dispatch(waiter.kind, waiter.key, found, 0)
            else:
                self._probe_ring.append(waiter)

    def _next_to_probe(self) -> _Waiter | None:
        for queue in (self._probe_urgent, self._probe_ring):
            while queue:
                waiter = queue.popleft()
                if waiter.future.done():
                    continue
                if queue is self._probe_urgent:
                    with contextlib.suppress(ValueError):
                        self._probe_ring.remove(waiter)
                return waiter
        return None

    async def _probe_one(self, waiter: _Waiter) -> int | None:
        """Ask the chain at the safe head (the logs up to it were already asked for, so a probe finds only
        what they missed); a replica without that block yet is asked at the covered cursor instead."""
        safe, cursor = self._safe_head, self.cursor
        try:
            return await self._probe_at(waiter, "latest" if safe is None else safe)
        except Exception:
            if safe is None or cursor is None or cursor >= safe:
                raise
            return await self._probe_at(waiter, max(0, cursor))

    async def _probe_at(self, waiter: _Waiter, block: int | str) -> int | None:
        if waiter.kind == CLOSED:
            self.rpc_calls["_getOrder"] += 1
            order = await self.reader.get_order(waiter.key, block)
            return 0 if int(order.status) == OrderStatus.CLOSED else None
        self.rpc_calls["_getDORequest"] += 1
        status = int(await self.reader.do_request_status(waiter.key, block))
        if status != RequestStatus.BOOKED:
            return None
        return await self._find_order(waiter, block)

    async def _find_order(self, waiter: _Waiter, block: int | str) -> int | None:
        """The order of a booked DO request: orders added since the last probe, then on downwards from the
        count first seen; at most ``PLACED_PROBE_ORDERS`` reads per probe (orders read are not read again)."""
        self.rpc_calls["_getOrdersCount"] += 1
        count = int(await self.reader.orders_count(block))
        if waiter.orders_top is None or waiter.orders_low is None:
            waiter.orders_top = waiter.orders_low = count
        budget = PLACED_PROBE_ORDERS
        while budget and waiter.orders_top < count:
            order_id, budget = waiter.orders_top, budget - 1
            waiter.orders_top += 1
            if await self._order_of(order_id, block) == waiter.key:
                return order_id
        while budget and waiter.orders_low > 0:
            order_id, budget = waiter.orders_low - 1, budget - 1
            waiter.orders_low = order_id
            if await self._order_of(order_id, block) == waiter.key:
                return order_id
        return None

    async def _order_of(self, order_id: int, block: int | str) -> int:
        """The DO request of an order."""
        self.rpc_calls["_getOrder"] += 1
        return int((await self.reader.get_order(order_id, block)).do_request_id)


def is_range_error(exc: BaseException) -> bool:
    """Whether an ``eth_getLogs`` error means "ask for fewer blocks" (not a network fault, not replica lag)."""
    from airflow_provider_ethernity.protocol.retry import is_transient

    text = str(exc)
    return not is_transient(exc) and bool(_RANGE_ERROR.search(text)) and not _LAG_ERROR.search(text)


def _regular_interval(steps: collections.deque[float]) -> float | None:
    """The median step when blocks come regularly (the middle half of the steps within 50% of it), else None:
    a chain that mines on demand (a devnet in automine mode) keeps the plain poll interval."""
    if len(steps) < 3:
        return None
    ordered = sorted(steps)
    median = ordered[len(ordered) // 2]
    spread = ordered[(3 * len(ordered)) // 4] - ordered[len(ordered) // 4]
    return median if median > 0 and spread <= 0.5 * median else None


def _brief(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], OrderEventWatcher]] = (
    weakref.WeakKeyDictionary()
)


def get_watcher(
    rpc_url: str,
    protocol_address: str,
    reader_factory: Callable[[], Any],
    poll_interval: float = 1.0,
    *,
    confirmations: int | None = None,
) -> OrderEventWatcher:
    """The watcher of ``(rpc_url, protocol_address)`` in the running event loop (created on first use).

    The poll interval is the smallest any of its users asked for; ``confirmations`` (the network's
    :attr:`~airflow_provider_ethernity.protocol.networks.Network.confirmations`), when given, the largest.
    Without it the watcher learns the depth from the chain id.
    """
    loop = asyncio.get_running_loop()
    per_loop = _watchers.setdefault(loop, {})
    key = (rpc_url.rstrip("/"), protocol_address.lower())
    watcher = per_loop.get(key)
    if watcher is None:
        watcher = per_loop[key] = OrderEventWatcher(reader_factory, poll_interval, confirmations=confirmations)
    else:
        watcher.poll_interval = min(watcher.poll_interval, poll_interval)
        if confirmations is not None:
            watcher.confirmations = max(watcher.confirmations or 0, confirmations)
    return watcher
