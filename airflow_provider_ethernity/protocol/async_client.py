"""Asynchronous, key-free chain reads (AsyncWeb3) for code that runs in the triggerer's event loop.

It only reads: order lookup, order status and the order events. Anything that signs stays on a worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_ethernity.protocol.abi import PROTOCOL
from airflow_provider_ethernity.protocol.contracts import DORequestRow, Order, contract_at, log_filter, named_outputs
from airflow_provider_ethernity.protocol.errors import shown_url
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
        from web3.types import RPCEndpoint

        self.rpc_url = rpc_url
        self.protocol_address = protocol_address
        self.retry = retry
        # web3 validates every eth_call against the node's chain id and asks for it each time (two eth_chainId
        # per call); an endpoint's chain id does not change, so it is cached (and nothing else)
        provider = AsyncWeb3.AsyncHTTPProvider(
            rpc_url,
            request_kwargs={"timeout": timeout},
            cache_allowed_requests=True,
            cacheable_requests={RPCEndpoint("eth_chainId")},
        )
        self.w3 = AsyncWeb3(provider)
        if poa:
            from web3.middleware import ExtraDataToPOAMiddleware

            self.w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        self.protocol = contract_at(
            self.w3.eth, protocol_address, PROTOCOL, "protocol_address", f"the RPC {shown_url(rpc_url)}"
        )

    async def aclose(self) -> None:
        await self.w3.provider.disconnect()

    async def block_number(self) -> int:
        return int(await self.retry.acall(lambda: self.w3.eth.block_number))

    async def _logs(self, topic: str | list[str], from_block: int, to_block: int | str) -> list[Any]:
        params = log_filter(self.protocol_address, topic, from_block, to_block)
        return list(await self.retry.acall(self.w3.eth.get_logs, params))

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
        return named_outputs(function.abi, row)

    async def chain_id(self) -> int:
        return int(await self.retry.acall(lambda: self.w3.eth.chain_id))

    async def get_order(self, order_id: int, block: int | str | None = None) -> Order:
        """The ``_getOrder`` row of ``order_id`` at ``block``."""
        return Order.from_row(order_id, await self._call("_getOrder", int(order_id), block=block))

    async def get_do_request(self, do_request_id: int, block: int | str | None = None) -> DORequestRow:
        """The ``_getDORequest`` row of ``do_request_id`` at ``block``."""
        return DORequestRow.from_row(do_request_id, await self._call("_getDORequest", int(do_request_id), block=block))

    async def do_request_status(self, do_request_id: int, block: int | str | None = None) -> int:
        """The :class:`RequestStatus` of a DO request at ``block``."""
        return int((await self.get_do_request(do_request_id, block)).status)

    async def orders_count(self, block: int | str | None = None) -> int:
        return int((await self._call("_getOrdersCount", block=block))["_length"])

    async def is_order_closed(self, order_id: int, from_block: int) -> bool:
        try:
            return int(order_id) in await self.closed_orders(from_block)
        except Exception:
            return (await self.get_order(order_id)).status == OrderStatus.CLOSED
