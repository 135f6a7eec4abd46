"""A fault-injecting JSON-RPC proxy in front of anvil: the misbehaviour of public, load-balanced RPCs, on demand.

``with RpcFaultProxy(anvil_url, logs_lag=2, max_log_range=1000) as proxy: ... proxy.url ...``

It listens on 127.0.0.1 (free port), forwards every POST to the upstream node and, per its knobs (which a
test may change while it runs):

* ``logs_lag``: ``eth_getLogs`` is answered as of N blocks behind the head (a replica behind the node that
  answered ``eth_blockNumber``): ``toBlock`` is clamped to ``head - N`` and a range above it is empty. No
  error: the client cannot tell "no events" from "not indexed yet", as with real replicas.
* ``max_log_range``: ``eth_getLogs`` over more blocks is refused with ``range_error`` (by default the
  ``-32005`` error public RPCs give; ``RANGE_TOO_WIDE`` is another common text).
* ``drop_next(method, n)``: the next ``n`` calls of ``method`` get no answer (the connection is closed).
* ``fail_next(method, n, error)``: the next ``n`` calls of ``method`` get a JSON-RPC error.
* ``lose_answers(method, rate, seed)``: the call reaches the node (a transaction is accepted), then its answer
  is lost with probability ``rate`` (the connection is closed): a client cannot tell whether it was sent.
* ``delay_answers(method, seconds, n)``: the next ``n`` calls are forwarded at once and answered ``seconds``
  later (a send that times out at the client although the node accepted it).

Counters: ``calls`` (by method), ``refused`` (range errors), ``dropped``, ``clamped`` (lagged log answers),
``lost`` (answers lost after forwarding), ``delayed``.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from typing import Any

from airflow_provider_ethernity.devnet.rpc_forward import DropAnswer, JsonRpcForwarder, block_number_of

TOO_MANY_RESULTS = {"code": -32005, "message": "query returned more than 10000 results"}
RANGE_TOO_WIDE = {"code": -32600, "message": "block range is too wide: limited to a 1000 blocks range"}


class RpcFaultProxy(JsonRpcForwarder):
    thread_name = "rpc-faults"

    def __init__(
        self,
        upstream_url: str,
        *,
        logs_lag: int = 0,
        max_log_range: int | None = None,
        range_error: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(upstream_url)
        self.logs_lag = logs_lag
        self.max_log_range = max_log_range
        self.range_error = range_error or TOO_MANY_RESULTS
        self.calls: Counter[str] = Counter()
        self.refused = 0
        self.dropped = 0
        self.clamped = 0
        self.lost = 0
        self.delayed = 0
        self._lose: dict[str, tuple[float, random.Random]] = {}
        self._delays: dict[str, list[float]] = {}
        self._drops: Counter[str] = Counter()
        self._fails: dict[str, list[dict[str, Any]]] = {}

    # ------------------------------------------------------------------ knobs
    def drop_next(self, method: str, n: int = 1) -> None:
        with self._lock:
            self._drops[method] += n

    def fail_next(self, method: str, n: int = 1, error: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._fails.setdefault(method, []).extend([error or {"code": -32000, "message": "injected"}] * n)

    def lose_answers(self, method: str, rate: float, seed: int = 0) -> None:
        with self._lock:
            if rate <= 0:
                self._lose.pop(method, None)
            else:
                self._lose[method] = (rate, random.Random(seed))

    def delay_answers(self, method: str, seconds: float, n: int = 1) -> None:
        with self._lock:
            self._delays.setdefault(method, []).extend([seconds] * n)

    def _after_forward(self, method: str) -> None:
        """Faults that strike after the node has the call: a delayed answer, or a lost one."""
        with self._lock:
            delays = self._delays.get(method)
            delay = delays.pop(0) if delays else 0.0
            lose = self._lose.get(method)
            lost = lose is not None and lose[1].random() < lose[0]
            self.delayed += bool(delay)
            self.lost += lost
        if delay:
            time.sleep(delay)
        if lost:
            raise DropAnswer

    # ------------------------------------------------------------------ faults
    def _answer(self, call: dict[str, Any]) -> dict[str, Any] | None:
        """The faulty answer of one call, or None to forward it unchanged."""
        method = call.get("method", "?")
        with self._lock:
            self.calls[method] += 1
            if self._drops[method] > 0:
                self._drops[method] -= 1
                self.dropped += 1
                raise DropAnswer
            fails = self._fails.get(method)
            if fails:
                return {"jsonrpc": "2.0", "id": call.get("id"), "error": fails.pop(0)}
        if method != "eth_getLogs" or not (self.logs_lag or self.max_log_range):
            return None
        query = dict((call.get("params") or [{}])[0])
        head = int(self.rpc("eth_blockNumber"), 16)
        low, high = (
            block_number_of(query.get("fromBlock", "latest"), head),
            block_number_of(query.get("toBlock", "latest"), head),
        )
        if self.max_log_range and high - low + 1 > self.max_log_range:
            with self._lock:
                self.refused += 1
            return {"jsonrpc": "2.0", "id": call.get("id"), "error": self.range_error}
        if self.logs_lag:
            replica = head - self.logs_lag
            if high > replica:
                with self._lock:
                    self.clamped += 1
                if low > replica:
                    return {"jsonrpc": "2.0", "id": call.get("id"), "result": []}
                query["toBlock"] = hex(replica)
                return {"jsonrpc": "2.0", "id": call.get("id"), "result": self.rpc("eth_getLogs", [query])}
        return None

    def answer(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        call = json.loads(body)
        faulty = self._answer(call) if isinstance(call, dict) else None
        if faulty is not None:
            return 200, json.dumps(faulty).encode()
        status, raw = self.forward(body, content_type)
        if isinstance(call, dict):
            self._after_forward(str(call.get("method", "?")))
        return status, raw
