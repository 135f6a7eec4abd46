"""A counting JSON-RPC proxy in front of anvil: every HTTP request and JSON-RPC call that reaches it is counted.

It listens on 127.0.0.1 (free port) and forwards each POST body unchanged to the upstream node, so the
figures are what a client really sends over the wire (batched calls count once per call inside).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from airflow_provider_ethernity.devnet.rpc_forward import JsonRpcForwarder


class CountingRpcProxy(JsonRpcForwarder):
    """``with CountingRpcProxy(upstream) as proxy: ... proxy.url ... proxy.snapshot()``."""

    thread_name = "rpc-proxy"

    def __init__(self, upstream_url: str) -> None:
        super().__init__(upstream_url)
        self.http_requests = 0
        self.calls: Counter[str] = Counter()

    def snapshot(self) -> tuple[int, dict[str, int]]:
        """(HTTP requests, JSON-RPC calls by method) so far."""
        with self._lock:
            return self.http_requests, dict(self.calls)

    def answer(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        try:
            payload: Any = json.loads(body)
        except ValueError:
            payload = None
        methods = (
            [p.get("method", "?") for p in payload]
            if isinstance(payload, list)
            else [payload.get("method", "?") if isinstance(payload, dict) else "?"]
        )
        with self._lock:
            self.http_requests += 1
            self.calls.update(methods)
        return self.forward(body, content_type)
