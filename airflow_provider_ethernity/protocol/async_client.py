"""Asynchronous, key-free chain reads (AsyncWeb3) for code that runs in the triggerer's event loop.

It only reads: order lookup, order status and the order events. Anything that signs stays on a worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_ethernity.protocol.abi import PROTOCOL, load_abi
from airflow_provider_ethernity.protocol.client import Order
from airflow_provider_ethernity.protocol.events import (
    ORDER_CLOSED_TOPIC,
    ORDER_PLACED_TOPIC,
    OrderStatus,
    decode_order_closed,
    decode_order_placed,
)
from airflow_provider_ethernity.protocol.retry import DEFAULT_RETRY, RetryPolicy


@dataclass
class OrderEvents:
    """Order events of a block range: ``placed`` (order id, DO request id, block), ``closed`` (order id, block)."""

    placed: list[tuple[int, int, int]] = field(default_factory=list)
    closed: list[tuple[int, int]] = field(default_factory=list)


def _named(abi: dict[str, Any], row: Any) -> dict[str, Any]:
    """A view's answer as {output name: value} (one output comes back bare, several as a tuple)."""
    names = [o["name"] for o in abi.get("outputs", [])]
    values = list(row) if len(names) != 1 else [row]
    return dict(zip(names, values, strict=True))


class AsyncChainReader:
    """Reads the protocol contract of one chain. Close it with :meth:`aclose`."""

    def __init__(
        self,
        rpc_url: str,
        protocol_address: str,
        *,
        poa: bool = False,
        timeout: float = 30.0,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        from web3 import AsyncWeb3

        self.rpc_url = rpc_url
        self.protocol_address = protocol_address
        self.retry = retry
        self.w3 = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
        if poa:
            from web3.middleware import ExtraDataToPOAMiddleware

            self.w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        self.protocol = self.w3.eth.contract(address=protocol_address, abi=load_abi(PROTOCOL))

    async def aclose(self) -> None:
        await self.w3.provider.disconnect()

    async def block_number(self) -> int:
        return int(await self.retry.acall(lambda: self.w3.eth.block_number))

    async def _logs(self, topic: str | list[str], from_block: int, to_block: int | str) -> list[Any]:
        params = {
            "address": self.protocol_address,
            "fromBlock": int(from_block),
            "toBlock": to_block,
            "topics": [topic],
        }
        return await self.retry.acall(self.w3.eth.get_logs, params)

    async def order_events(self, from_block: int, to_block: int) -> OrderEvents:
        """Every ``_orderPlacedEV`` and ``_orderClosedEV`` in the range, with one ``eth_getLogs``."""
        events = OrderEvents()
        for entry in await self._logs([ORDER_PLACED_TOPIC, ORDER_CLOSED_TOPIC], from_block, to_block):
            topic = entry["topics"][0]
            topic_hex = topic if isinstance(topic, str) else "0x" + bytes(topic).hex()
            block = int(entry["blockNumber"])
            if topic_hex.lower() == ORDER_PLACED_TOPIC:
                order_id, do_request, _dp = decode_order_placed(entry["data"])
                events.placed.append((order_id, do_request, block))
            else:
                events.closed.append((decode_order_closed(entry["data"]), block))
        return events

    async def placed_orders(self, from_block: int, to_block: int | str = "latest") -> list[tuple[int, int, int]]:
        """(order id, DO request id, DP request id) of every ``_orderPlacedEV`` in the range."""
        return [decode_order_placed(e["data"]) for e in await self._logs(ORDER_PLACED_TOPIC, from_block, to_block)]

    async def closed_orders(self, from_block: int, to_block: int | str = "latest") -> list[int]:
        """Order ids of every ``_orderClosedEV`` in the range."""
        return [decode_order_closed(e["data"]) for e in await self._logs(ORDER_CLOSED_TOPIC, from_block, to_block)]

    async def find_order(self, do_request_id: int, from_block: int) -> int | None:
        for order_id, do_request, _dp in await self.placed_orders(from_block):
            if do_request == int(do_request_id):
                return order_id
        return None

    async def _call(self, name: str, *args: Any, block: int | str | None = None) -> dict[str, Any]:
        """Call a view of the protocol at ``block`` (default latest); the answer decoded by output name."""
        function = getattr(self.protocol.functions, name)(*args)
        kwargs = {} if block is None else {"block_identifier": block}
        row = await self.retry.acall(function.call, **kwargs)
        return _named(function.abi, row)

    async def chain_id(self) -> int:
        return int(await self.retry.acall(lambda: self.w3.eth.chain_id))

    async def get_order(self, order_id: int, block: int | str | None = None) -> Order:
        row = await self._call("_getOrder", int(order_id), block=block)
        return Order(
            int(order_id),
            row["downer"],
            row["dproc"],
            int(row["doRequest"]),
            int(row["dpRequest"]),
            int(row["status"]),
        )

    async def get_do_request(self, do_request_id: int, block: int | str | None = None) -> dict[str, Any]:
        """``_getDORequest`` by name: downer, cpuRequest, ..., maxPrice, status (:class:`RequestStatus`)."""
        return await self._call("_getDORequest", int(do_request_id), block=block)

    async def do_request_status(self, do_request_id: int, block: int | str | None = None) -> int:
        return int((await self.get_do_request(do_request_id, block))["status"])

    async def orders_count(self, block: int | str | None = None) -> int:
        return int((await self._call("_getOrdersCount", block=block))["_length"])

    async def is_order_closed(self, order_id: int, from_block: int) -> bool:
        try:
            return int(order_id) in await self.closed_orders(from_block)
        except Exception:
            return (await self.get_order(order_id)).status == OrderStatus.CLOSED
