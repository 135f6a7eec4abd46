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

import http.client
import json
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

TOO_MANY_RESULTS = {"code": -32005, "message": "query returned more than 10000 results"}
RANGE_TOO_WIDE = {"code": -32600, "message": "block range is too wide: limited to a 1000 blocks range"}


class _Drop(Exception):
    """Answer nothing: close the connection."""


class RpcFaultProxy:
    def __init__(
        self,
        upstream_url: str,
        *,
        logs_lag: int = 0,
        max_log_range: int | None = None,
        range_error: dict[str, Any] | None = None,
    ) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
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
        self._lock = threading.Lock()
        self._local = threading.local()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> RpcFaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, name="rpc-faults", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> RpcFaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

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
            raise _Drop

    # ------------------------------------------------------------------ upstream
    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """Call the upstream node directly (not through the faults)."""
        answer = json.loads(self._forward(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                                      "params": params or []}).encode())[1])  # fmt: skip
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def _forward(self, body: bytes) -> tuple[int, bytes]:
        conn = getattr(self._local, "conn", None)
        for attempt in range(2):
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(*self._upstream, timeout=60)
            try:
                conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                conn = self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ faults
    def _answer(self, call: dict[str, Any]) -> dict[str, Any] | None:
        """The faulty answer of one call, or None to forward it unchanged."""
        method = call.get("method", "?")
        with self._lock:
            self.calls[method] += 1
            if self._drops[method] > 0:
                self._drops[method] -= 1
                self.dropped += 1
                raise _Drop
            fails = self._fails.get(method)
            if fails:
                return {"jsonrpc": "2.0", "id": call.get("id"), "error": fails.pop(0)}
        if method != "eth_getLogs" or not (self.logs_lag or self.max_log_range):
            return None
        query = dict((call.get("params") or [{}])[0])
        head = int(self.rpc("eth_blockNumber"), 16)
        low, high = _block(query.get("fromBlock", "latest"), head), _block(query.get("toBlock", "latest"), head)
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

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    call = json.loads(body)
                    answer = proxy._answer(call) if isinstance(call, dict) else None
                    if answer is None:
                        status, raw = proxy._forward(body)
                        if isinstance(call, dict):
                            proxy._after_forward(str(call.get("method", "?")))
                    else:
                        status, raw = 200, json.dumps(answer).encode()
                except _Drop:
                    self.close_connection = True
                    return
                except (OSError, RuntimeError, ValueError):
                    self.send_error(502)
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _block(tag: Any, head: int) -> int:
    if isinstance(tag, int):
        return tag
    if tag in (None, "latest", "pending", "safe", "finalized"):
        return head
    if tag == "earliest":
        return 0
    return int(tag, 16)
