"""The devnet's stand-in for the public IPFS network's HTTP doors: Ethernity's intake and a public gateway.

Profiles with ``public_ipfs`` run a second IPFS service (``ipfs_service``, the "public" node: the node agent reads
artefacts from it and pins results there) and this front over it, on 127.0.0.1:

* ``POST /payload/<network>/<doRequest>/<cid>`` (body: the raw bytes), the intake of
  ``https://ipfs.ethernity.cloud/payload`` as mvp-pox-node's ``ipfs_intake.py`` serves it: only CIDs named in the
  DO request's metadata (challenge, code, input) are taken (403 "does not name this cid" otherwise, also while
  the request is not visible yet); the bytes are added with the runner's parameters and the CID compared
  (400 on a mismatch); 413 above 100 MiB; 404 "unknown network" for another network; 200
  ``{"status": "pinned"}`` or ``{"status": "already"}``.
* ``GET /ipfs/<cid>``: a gateway (``https://ipfs.io/ipfs/<cid>``): 200 with the bytes, 404 when the public node
  does not have them.

Run: ``python -m airflow_provider_ethernity.devnet.public_ipfs CONFIG_JSON`` (``PublicIpfsFront`` does this).
"""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
import threading
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from airflow_provider_ethernity.devnet.child_process import LoopbackChild
from airflow_provider_ethernity.protocol.errors import ContentNotFoundError, StorageError, TransientError
from airflow_provider_ethernity.protocol.storage import INTAKE_MAX_BYTES, named_cids

log = logging.getLogger("ethernity.devnet.public_ipfs")

_PAYLOAD = re.compile(r"^/payload/([^/]+)/([0-9]+)/([A-Za-z0-9]+)/?$")
_GATEWAY = re.compile(r"^/ipfs/([A-Za-z0-9]+)/?$")


@dataclass
class FrontConfig:
    port: int
    network: str
    ipfs_api_url: str
    rpc_url: str
    protocol_address: str
    ipfs_token: str | None = None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))
        path.chmod(0o600)


class PublicIpfsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config: FrontConfig) -> None:
        from web3 import Web3

        from airflow_provider_ethernity.protocol.abi import PROTOCOL, load_abi
        from airflow_provider_ethernity.protocol.ipfs import IpfsClient

        super().__init__(("127.0.0.1", config.port), _Handler)
        self.config = config
        self.ipfs = IpfsClient(config.ipfs_api_url, config.ipfs_token, timeout=30.0)
        w3 = Web3(Web3.HTTPProvider(config.rpc_url))
        self.protocol = w3.eth.contract(address=Web3.to_checksum_address(config.protocol_address),
                                        abi=load_abi(PROTOCOL))  # fmt: skip
        self.taken: set[tuple[int, str]] = set()


class _Handler(BaseHTTPRequestHandler):
    server: PublicIpfsServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)

    def _send(self, status: int, body: bytes | dict[str, Any], kind: str = "application/json") -> None:
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        match = _PAYLOAD.match(self.path.split("?", 1)[0])
        if not match:
            self.rfile.read(length)
            return self._send(404, {"error": "not found"})
        network, do_request, cid = match.group(1), int(match.group(2)), match.group(3)
        if length > INTAKE_MAX_BYTES:
            self.close_connection = True
            return self._send(413, {"error": f"payload above {INTAKE_MAX_BYTES} bytes"})
        data = self.rfile.read(length)
        if network != self.server.config.network:
            return self._send(404, {"error": f"unknown network {network}"})
        try:
            _owner, m1, m2, m3, _m4 = self.server.protocol.functions._getDORequestMetadata(do_request).call()
        except Exception:  # not visible yet (or no such request)
            return self._send(403, {"error": f"DO request {do_request} does not name this cid"})
        if cid not in named_cids(m1, m2, m3):
            return self._send(403, {"error": f"DO request {do_request} does not name this cid"})
        if (do_request, cid) in self.server.taken:
            return self._send(200, {"status": "already"})
        try:
            added = self.server.ipfs.add(data)
        except (StorageError, TransientError) as exc:
            return self._send(502, {"error": str(exc)})
        if added != cid:
            return self._send(400, {"error": f"the bytes are {added}, not {cid}"})
        self.server.taken.add((do_request, cid))
        log.info("intake: pinned %s for DO request %s", cid, do_request)
        return self._send(200, {"status": "pinned", "cid": cid})

    def do_GET(self) -> None:
        match = _GATEWAY.match(self.path.split("?", 1)[0])
        if not match:
            return self._send(404, {"error": "not found"})
        try:
            data = self.server.ipfs.cat(match.group(1))
        except ContentNotFoundError:
            return self._send(404, b"not found", "text/plain")
        except (StorageError, TransientError):
            return self._send(504, b"gateway timeout", "text/plain")
        return self._send(200, data, "application/octet-stream")


class PublicIpfsFront(LoopbackChild):
    """The front as a child process in its own session (what ``Devnet`` starts)."""

    log_name = "public-ipfs-front.log"
    what = "the public IPFS front"

    def __init__(self, workdir: str | Path, *, network: str, ipfs_api_url: str, rpc_url: str, protocol_address: str,
                 ipfs_token: str | None = None) -> None:  # fmt: skip
        super().__init__(workdir)
        self.settings = dict(network=network, ipfs_api_url=ipfs_api_url, rpc_url=rpc_url,
                             protocol_address=protocol_address, ipfs_token=ipfs_token)  # fmt: skip

    @property
    def intake_url(self) -> str:
        return f"{self.url}/payload"

    def command(self, port: int) -> list[str]:
        config_file = self.workdir / "public-ipfs-front.json"
        FrontConfig(port=port, **self.settings).save(config_file)  # type: ignore[arg-type]
        return [sys.executable, "-m", __name__, str(config_file)]


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = PublicIpfsServer(FrontConfig(**json.loads(Path(argv[1]).read_text())))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    log.info("public IPFS front (intake + gateway) on 127.0.0.1:%s", server.server_address[1])
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
