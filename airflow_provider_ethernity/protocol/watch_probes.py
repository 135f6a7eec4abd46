"""The watcher's status probes: asking the chain directly about a few waiters.

Status probes are the backstop for anything logs miss (lag beyond the overlap, a reorg deeper than
the confirmations, a close without an event, an RPC without logs): every ``PROBE_EVERY`` polls one
waiter, round-robin, is asked about on chain, at the covered cursor: a closed-wait by ``_getOrder``
(CLOSED resolves it, with block 0 as the close block is unknown), a placed-wait by ``_getDORequest``
(BOOKED: the orders are searched newest first, ``PLACED_PROBE_ORDERS`` per probe, for the one of that
DO request). New waiters behind the cursor are probed first; while log queries keep failing, every poll
probes a few. So probes add about 1/``PROBE_EVERY`` request per block, whatever the number of waiters.
"""

from __future__ import annotations

import contextlib
import logging

from airflow_provider_ethernity.protocol.events import OrderStatus, RequestStatus
from airflow_provider_ethernity.protocol.watch_errors import brief
from airflow_provider_ethernity.protocol.watch_state import CLOSED, Waiter, WatcherState

log = logging.getLogger("airflow_provider_ethernity.protocol.watcher")

#: Waiters probed per poll while logs fail, and new far-behind waiters probed per poll.
PROBE_BATCH_BLIND = 4
#: Orders a placed-wait probe reads per probe while searching the order of its DO request.
PLACED_PROBE_ORDERS = 16


class StatusProbes(WatcherState):
    """Probes waiters on chain: the backstop for anything the log scans miss."""

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
                if _not_there_yet(exc):  # a replica behind the block that made it: like "not found"
                    log.debug("Ethernity watcher: %s %s not on chain yet for the probe", waiter.kind, waiter.key)
                    self._probe_ring.append(waiter)
                    continue
                log.warning("Ethernity watcher: status probe of %s %s failed (%s)", waiter.kind, waiter.key,
                            brief(exc))  # fmt: skip
                self._probe_ring.append(waiter)
                return
            if found is not None:
                log.info("Ethernity watcher: %s %s found by a status probe", waiter.kind, waiter.key)
                self._dispatch(waiter.kind, waiter.key, found, 0)
            else:
                self._probe_ring.append(waiter)

    def _next_to_probe(self) -> Waiter | None:
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

    async def _probe_one(self, waiter: Waiter) -> int | None:
        """Ask the chain at the safe head (the logs up to it were already asked for, so a probe finds only
        what they missed); a replica without that block yet is asked at the covered cursor instead."""
        safe, cursor = self._safe_head, self.cursor
        try:
            return await self._probe_at(waiter, "latest" if safe is None else safe)
        except Exception:
            if safe is None or cursor is None or cursor >= safe:
                raise
            return await self._probe_at(waiter, max(0, cursor))

    async def _probe_at(self, waiter: Waiter, block: int | str) -> int | None:
        if waiter.kind == CLOSED:
            self.rpc_calls["_getOrder"] += 1
            order = await self.reader.get_order(waiter.key, block)
            return 0 if int(order.status) == OrderStatus.CLOSED else None
        self.rpc_calls["_getDORequest"] += 1
        status = int(await self.reader.do_request_status(waiter.key, block))
        if status != RequestStatus.BOOKED:
            return None
        return await self._find_order(waiter, block)

    async def _find_order(self, waiter: Waiter, block: int | str) -> int | None:
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


def _not_there_yet(exc: Exception) -> bool:
    """Whether a probe's read reverted because the contract does not know the waiter's DO request or order at
    the block asked: a lagging replica, or a wait registered right after the send. The real contracts index
    their lists (Solidity panic 0x32, array index out of bounds); the devnet's says ``no such ...``."""
    from web3.exceptions import ContractLogicError, ContractPanicError

    if isinstance(exc, ContractPanicError):
        return "0x32" in str(exc)
    return isinstance(exc, ContractLogicError) and "no such" in str(exc)
