"""The distributed test's counting proxy records the node's answer to every raw transaction (a merge once left
its hook unreached: the proxy counted nothing and the collision figures read 0)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.distributed.wallet_audit import SendLog


@pytest.fixture
def node() -> Iterator[str]:
    """A node that answers "nonce too low" to every raw transaction and 0x1 to anything else."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer: dict[str, object] = {"jsonrpc": "2.0", "id": request["id"], "result": "0x1"}
            if request["method"] == "eth_sendRawTransaction":
                answer = {"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32000, "message": "nonce too low"}}
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_raw_sends_and_their_collisions_are_counted(node: str) -> None:
    with SendLog(node) as proxy:
        for method in ("eth_blockNumber", "eth_sendRawTransaction", "eth_sendRawTransaction"):
            httpx.post(proxy.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []}, timeout=10)
        assert proxy.sends == 2
        assert proxy.collisions() == 2
        assert proxy.snapshot() == (3, {"eth_blockNumber": 1, "eth_sendRawTransaction": 2})
