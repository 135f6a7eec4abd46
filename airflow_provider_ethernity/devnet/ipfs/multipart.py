"""The upload side of ``/api/v0/add``: a streaming ``multipart/form-data`` reader and the add options."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote

from airflow_provider_ethernity.devnet.ipfs.common import COPY_BUFFER, MAX_PART_HEADERS, ApiError
from airflow_provider_ethernity.protocol.cid import BLOCK_SIZE


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
