"""Fixtures of the devnet tests: the agent reset after each test, the connections, a fake RPC."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_provider_ethernity.devnet.network import Devnet
from tests.integration.deferral import LEDGER_CONN_ID


@pytest.fixture
def agent(devnet: Devnet) -> Iterator[Devnet]:
    """The devnet with its node agent reset to normal after the test (for failure injection)."""
    devnet.set_agent()
    yield devnet
    devnet.set_agent()


@pytest.fixture
def devnet_conn(devnet: Devnet, monkeypatch: pytest.MonkeyPatch) -> dict:
    """``ethernity_default`` pointing at the devnet (through a profile's chain front, as a task reads a public
    RPC) and ``ethernity_ledger``, the same wallet on anvil directly (what ``deferral.Ledger`` reads); returns
    ``ethernity_default`` as a dict."""
    conn = json.loads(devnet.connection_json())
    ledger = {**conn, "extra": {**conn["extra"], "rpc_url": devnet.state.anvil_rpc_url or devnet.state.rpc_url}}
    monkeypatch.setenv("AIRFLOW_CONN_ETHERNITY_DEFAULT", json.dumps(conn))
    monkeypatch.setenv(f"AIRFLOW_CONN_{LEDGER_CONN_ID.upper()}", json.dumps(ledger))
    return conn


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, base: dict, password: str | None = None, **extra) -> None:
    """Register a variant of the devnet connection under ``conn_id``."""
    conn = {**base, "extra": {**base["extra"], **extra}}
    if password is not None:
        conn["password"] = password
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


class _HtmlPage(BaseHTTPRequestHandler):
    """Answers every request with an HTML page and status 200, as a web server or a login page does."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def html_rpc() -> Iterator[str]:
    """The URL of a loopback HTTP server answering HTML with status 200, with an API key in its path."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlPage)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v3/rpc-api-key-0123456789"
    finally:
        server.shutdown()
        server.server_close()
