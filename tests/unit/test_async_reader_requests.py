"""What the triggerer's chain reader sends: no ``eth_chainId`` per ``eth_call`` (web3 validates every call against
the node's chain id; the reader caches it, and nothing else)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_provider_ethernity.protocol.async_client import AsyncChainReader

ANSWERS = {"eth_chainId": "0x7a69", "eth_blockNumber": "0x10", "eth_call": "0x" + "00" * 32, "eth_getLogs": []}


@pytest.fixture
def rpc() -> Iterator[tuple[str, Counter[str]]]:
    calls: Counter[str] = Counter()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls[request["method"]] += 1
            body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": ANSWERS[request["method"]]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", calls
    finally:
        server.shutdown()
        server.server_close()


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
