"""A counting JSON-RPC proxy in front of anvil: every HTTP request and JSON-RPC call that reaches it is counted.

It listens on 127.0.0.1 (free port) and forwards each POST body unchanged to the upstream node, so the
figures are what a client really sends over the wire (batched calls count once per call inside).
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class CountingRpcProxy:
    """``with CountingRpcProxy(upstream) as proxy: ... proxy.url ... proxy.snapshot()``."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.http_requests = 0
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> CountingRpcProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, name="rpc-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> CountingRpcProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def snapshot(self) -> tuple[int, dict[str, int]]:
        """(HTTP requests, JSON-RPC calls by method) so far."""
        with self._lock:
            return self.http_requests, dict(self.calls)

    def _count(self, body: bytes) -> None:
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

    def _forward(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        conn = getattr(self._local, "conn", None)
        for attempt in range(2):
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(*self._upstream, timeout=60)
            try:
                conn.request("POST", "/", body=body, headers={"Content-Type": content_type})
                response = conn.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                conn = self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                proxy._count(body)
                try:
                    status, answer = proxy._forward(body, self.headers.get("Content-Type", "application/json"))
                except OSError:
                    self.send_error(502)
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
