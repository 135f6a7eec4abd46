"""What the triggerer's chain reader sends: no ``eth_chainId`` per ``eth_call`` (web3 validates every call against
the node's chain id; the reader caches it, and nothing else)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_ethernity.protocol.async_client import AsyncChainReader
from tests.unit.fake_rpc import fake_rpc

ANSWERS = {"eth_chainId": "0x7a69", "eth_blockNumber": "0x10", "eth_call": "0x" + "00" * 32, "eth_getLogs": []}


@pytest.fixture
def rpc() -> Iterator[tuple[str, Counter[str]]]:
    calls: Counter[str] = Counter()

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        calls[request["method"]] += 1
        return {"result": ANSWERS[request["method"]]}

    with fake_rpc(answer) as url:
        yield url, calls


def test_the_chain_id_is_asked_for_once_not_per_call(rpc: tuple[str, Counter[str]]) -> None:
    url, calls = rpc

    async def main() -> None:
        reader = AsyncChainReader(url, "0x" + "11" * 20)
        try:
            for _ in range(10):
                assert await reader.orders_count(15) == 0
                assert await reader.block_number() == 16
                assert (await reader.order_events(1, 15)).placed == []
        finally:
            await reader.aclose()

    asyncio.run(main())
    assert calls["eth_call"] == calls["eth_blockNumber"] == calls["eth_getLogs"] == 10
    assert calls["eth_chainId"] <= 2, calls  # web3's cache check and the one cached answer (was 2 per eth_call)
