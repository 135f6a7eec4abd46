"""One chain watcher per (RPC URL, protocol contract) per event loop, shared by every waiting trigger.

A waiting trigger registers what it waits for (the order of a DO request, or the close of an order) and
awaits a future. The watcher polls the chain head; for each new block range it fetches the order events
with one ``eth_getLogs`` and resolves the futures whose orders appear. So N waiting triggers cost about two
RPC calls per new block (``eth_blockNumber`` + ``eth_getLogs``), whatever N is. A new waiter polls early (it
may wait for an event already mined), but waiters that come within ``WAKE_COALESCE`` share that poll.

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
* **Range limits** (:mod:`.watch_errors`): a refused range shrinks the chunks of later queries.
* **Waiters far in the past** (a sensor given only an order id, a triggerer restarted long after the
  deferral) do not widen the live query beyond one chunk: the blocks between their ``from_block`` and the
  live scan are read by a separate back-scan task, newest chunk first, at most ``BACKSCAN_MAX_BLOCKS``
  blocks deep, paced and backing off on failure. It never holds the live cursor, so other waits go on;
  they are also probed at once, which answers most of them in one call.
* **Status probes** (:mod:`.watch_probes`) are the backstop for anything logs miss.

Polls follow the chain's rhythm (:mod:`.watch_rhythm`): timed just before the next block is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

from airflow_provider_ethernity.protocol.watch_errors import RangeError, brief, is_range_error, named_range_limit
from airflow_provider_ethernity.protocol.watch_probes import PLACED_PROBE_ORDERS, PROBE_BATCH_BLIND, StatusProbes
from airflow_provider_ethernity.protocol.watch_rhythm import MIN_POLL_STEP, POLL_EARLY, ChainRhythm, regular_interval
from airflow_provider_ethernity.protocol.watch_state import (
    CLOSED,
    DEFAULT_OVERLAP,
    MAX_LOG_RANGE,
    PLACED,
    Waiter,
    Waits,
    WatcherState,
)

__all__ = [
    "CLOSED",
    "DEFAULT_OVERLAP",
    "MAX_LOG_RANGE",
    "MIN_POLL_STEP",
    "PLACED",
    "PLACED_PROBE_ORDERS",
    "POLL_EARLY",
    "PROBE_BATCH_BLIND",
    "OrderEventWatcher",
    "RangeError",
    "WatcherState",
    "get_watcher",
    "is_range_error",
]

#: The private names these lived under before the watcher was split (kept for callers and tests).
_Waiter, _Waits, _regular_interval, _brief = Waiter, Waits, regular_interval, brief

log = logging.getLogger(__name__)

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
#: Re-scans of the newest blocks while the chain is idle, and the seconds after the last query they wait.
IDLE_RESCANS = 2
IDLE_RESCAN_AFTER = 2.0
#: How long a new waiter's early poll waits for the waiters that come after it (each would poll on its own:
#: an ``eth_blockNumber`` and a catch-up ``eth_getLogs``); at most until the next scheduled poll.
WAKE_COALESCE = 0.25
#: How long an idle watcher (no waiter) lingers before its poll task ends.
IDLE_LINGER_SECONDS = 5.0
#: Events remembered (to measure the lag and notice re-mined events) before the oldest are forgotten.
SEEN_LIMIT = 4_096


class OrderEventWatcher(StatusProbes, ChainRhythm):
    """Shared poller of one protocol contract. Get it with :func:`get_watcher`; it needs a running loop.

    Its state and waiters are :class:`~.watch_state.WatcherState`; the rhythm and confirmation depth,
    :class:`~.watch_rhythm.ChainRhythm`; the status probes, :class:`~.watch_probes.StatusProbes`.
    """

    # ------------------------------------------------------------------ polling
    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ethernity-order-watcher")

    async def _run(self) -> None:
        idle_since: float | None = None
        loop = asyncio.get_running_loop()
        try:
            while True:
                self._wake.clear()  # a waiter that comes during the poll wakes the next one
                if not self._waits:
                    idle_since = idle_since or loop.time()
                    if loop.time() - idle_since >= IDLE_LINGER_SECONDS:
                        return
                else:
                    idle_since = None
                    await self._tick()
                self._scheduled = True
                delay = self.next_delay(loop.time())
                due = loop.time() + delay
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                    self._scheduled = False
                    # waiters come in bursts (triggers start one after another): one poll serves them all
                    await asyncio.sleep(max(0.0, min(WAKE_COALESCE, due - loop.time())))
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

    async def _tick(self) -> None:
        self._ticks += 1
        loop = asyncio.get_running_loop()
        try:
            self.rpc_calls["eth_blockNumber"] += 1
            head = int(await self.reader.block_number())
        except Exception as exc:
            self._failures += 1
            log.warning("Ethernity watcher: the RPC did not answer (%s); will retry", brief(exc))
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
                log.warning("Ethernity watcher: log query %s..%s failed (%s)", low, high, brief(exc))
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
        limit = named_range_limit(text)
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
                            brief(exc), pause)  # fmt: skip
                await asyncio.sleep(pause)
                continue
            failures = 0
            if self._back_next == high:  # not moved meanwhile
                self._back_next = low - 1
            await asyncio.sleep(BACKSCAN_PAUSE)
        self._back_low = self._back_next = None


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
