"""A JSON-RPC endpoint on 127.0.0.1 that forwards to an upstream node: the base of the devnet's chain front and
of the test and benchmark proxies (faults, counting).

A subclass decides what each POST gets through :meth:`JsonRpcForwarder.answer`; the base keeps the server, its
thread, one upstream connection per handler thread, and the HTTP framing.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class DropAnswer(Exception):
    """Answer nothing: the connection is closed (a lost answer)."""


class JsonRpcForwarder:
    """``with Subclass(upstream_url) as proxy: ... proxy.url ...``; runs its server in a daemon thread."""

    #: seconds an upstream request may take
    upstream_timeout = 60.0
    thread_name = "rpc-forwarder"

    def __init__(self, upstream_url: str, *, port: int = 0) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Any:
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread (a process that is only this endpoint)."""
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ upstream
    def forward(self, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        """POST ``body`` to the upstream node (one kept-alive connection per thread, re-opened once)."""
        conn = getattr(self._local, "conn", None)
        for attempt in range(2):
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(*self._upstream, timeout=self.upstream_timeout)
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

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """Call the upstream node directly (not through this endpoint's behaviour)."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
        answer = json.loads(self.forward(body)[1])
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def answer(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        """The (status, body) a POST gets; raise :class:`DropAnswer` to answer nothing. Default: forward."""
        return self.forward(body, content_type)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    status, raw = endpoint.answer(body, self.headers.get("Content-Type", "application/json"))
                except DropAnswer:
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


def block_number_of(tag: Any, head: int) -> int:
    """A JSON-RPC block parameter (number, hex or tag) as a number, ``head`` for the moving tags."""
    if isinstance(tag, int):
        return tag
    if tag in (None, "latest", "pending", "safe", "finalized"):
        return head
    if tag == "earliest":
        return 0
    return int(tag, 16)
