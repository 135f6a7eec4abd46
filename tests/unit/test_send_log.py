"""The distributed test's counting proxy records the node's answer to every raw transaction (a merge once left
its hook unreached: the proxy counted nothing and the collision figures read 0)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.distributed.wallet_audit import SendLog
from tests.unit.fake_rpc import fake_rpc


@pytest.fixture
def node() -> Iterator[str]:
    """A node that answers "nonce too low" to every raw transaction and 0x1 to anything else."""

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        if request["method"] == "eth_sendRawTransaction":
            return {"error": {"code": -32000, "message": "nonce too low"}}
        return {"result": "0x1"}

    with fake_rpc(answer) as url:
        yield url


def test_raw_sends_and_their_collisions_are_counted(node: str) -> None:
    with SendLog(node) as proxy:
        for method in ("eth_blockNumber", "eth_sendRawTransaction", "eth_sendRawTransaction"):
            httpx.post(proxy.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []}, timeout=10)
        assert proxy.sends == 2
        assert proxy.collisions() == 2
        assert proxy.snapshot() == (3, {"eth_blockNumber": 1, "eth_sendRawTransaction": 2})
