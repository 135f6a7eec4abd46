"""The HTTP front: ``/api/v0/add``, ``cat``, ``pin/add``, ``version`` and ``id`` over the Kubo core, on
127.0.0.1 only. Fault injection: ``<workdir>/ipfs-control.json`` with ``{"mode": "unavailable"}`` makes every
request answer 503 (read on every request)."""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_ethernity.devnet.ipfs.common import (
    CONTROL_FILE,
    COPY_BUFFER,
    PID_HEADER,
    VERSION,
    ApiError,
    log,
)
from airflow_provider_ethernity.devnet.ipfs.deadline import DeadlineCalls
from airflow_provider_ethernity.devnet.ipfs.kubo import KuboCore
from airflow_provider_ethernity.devnet.ipfs.multipart import AddOptions, MultipartReader, _disposition_param
from airflow_provider_ethernity.protocol.cid import CidBuilder, decode_cid

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}


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
        self, routes: Mapping[str, Callable[[dict[str, str]], None]], path: str
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
