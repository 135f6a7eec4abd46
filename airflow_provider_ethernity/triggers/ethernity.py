"""Triggers that wait on the Ethernity protocol without holding a worker slot.

Both wait through the shared :class:`~airflow_provider_ethernity.protocol.watcher.OrderEventWatcher` of
their chain, so a thousand deferred tasks cost the RPC about as much as one. Their serialized kwargs hold
only the connection id, ids, block numbers, intervals and a deadline: never a key or token (they are
stored in the metadata database in clear).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_ethernity.hooks.ethernity import EthernityHook


class _EthernityWaitTrigger(BaseTrigger):
    """Common part: connection -> shared watcher, deadline, and cancelling on a user's kill."""

    def __init__(
        self,
        *,
        ethernity_conn_id: str,
        from_block: int,
        poll_interval: float = 1.0,
        deadline: float | None = None,
        do_request_id: int | None = None,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()
        self.ethernity_conn_id = ethernity_conn_id
        self.from_block = int(from_block)
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline) if deadline is not None else None
        self.do_request_id = int(do_request_id) if do_request_id is not None else None
        self.cancel_on_kill = cancel_on_kill

    def _base_kwargs(self) -> dict[str, Any]:
        return {
            "ethernity_conn_id": self.ethernity_conn_id,
            "from_block": self.from_block,
            "poll_interval": self.poll_interval,
            "deadline": self.deadline,
            "do_request_id": self.do_request_id,
            "cancel_on_kill": self.cancel_on_kill,
        }

    async def _watcher(self) -> Any:
        from airflow_provider_ethernity.protocol.async_client import AsyncChainReader
        from airflow_provider_ethernity.protocol.watcher import get_watcher

        settings = await EthernityHook.aget_reader_settings(self.ethernity_conn_id)
        rpc_url, address = settings.rpc_url, settings.network.protocol_address or ""
        return get_watcher(
            rpc_url,
            address,
            lambda: AsyncChainReader(rpc_url, address, poa=settings.network.poa),
            self.poll_interval,
        )

    def _seconds_left(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.time())

    async def _wait(self, awaitable: Any) -> tuple[bool, Any]:
        """(True, value) when the watcher answered, (False, None) at the deadline."""
        try:
            return True, await asyncio.wait_for(awaitable, timeout=self._seconds_left())
        except asyncio.TimeoutError:
            return False, None

    async def on_kill(self) -> None:
        """A user killed the deferred task: cancel its DO request if no node booked it (escrow back)."""
        if not (self.cancel_on_kill and self.do_request_id is not None):
            return
        from asgiref.sync import sync_to_async

        hook = EthernityHook(self.ethernity_conn_id)
        tx = await sync_to_async(hook.cancel_task)(self.do_request_id)
        if tx:
            self.log.info("Cancelled DO request %s on kill (tx %s)", self.do_request_id, tx)


class EthernityOrderPlacedTrigger(_EthernityWaitTrigger):
    """Fires when a node places an order for ``do_request_id`` (``_orderPlacedEV``), or at ``deadline``.

    Events: ``{"status": "placed", "order_id", "do_request_id"}`` or ``{"status": "timeout", ...}``.
    """

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", self._base_kwargs()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watcher = await self._watcher()
        self.log.info("Waiting for a node to place an order for DO request %s", self.do_request_id)
        found, order_id = await self._wait(watcher.wait_order_placed(self.do_request_id, self.from_block))
        if found:
            yield TriggerEvent({"status": "placed", "order_id": order_id, "do_request_id": self.do_request_id})
        else:
            yield TriggerEvent({"status": "timeout", "do_request_id": self.do_request_id})


class EthernityTaskCompletedTrigger(_EthernityWaitTrigger):
    """Fires at TASK_COMPLETED: ``_orderClosedEV`` of ``order_id`` (the order closed on chain), or at ``deadline``.

    Events: ``{"status": "completed", "order_id", "block"}`` or ``{"status": "timeout", "order_id"}``.
    """

    def __init__(self, *, order_id: int, **kwargs: Any) -> None:
        kwargs.setdefault("cancel_on_kill", False)  # a booked order cannot be cancelled
        super().__init__(**kwargs)
        self.order_id = int(order_id)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            **self._base_kwargs(),
            "order_id": self.order_id,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watcher = await self._watcher()
        self.log.info("Waiting for TASK_COMPLETED of order %s", self.order_id)
        found, block = await self._wait(watcher.wait_order_closed(self.order_id, self.from_block))
        if found:
            yield TriggerEvent({"status": "completed", "order_id": self.order_id, "block": block})
        else:
            yield TriggerEvent({"status": "timeout", "order_id": self.order_id})
