"""A small client for the Kubo RPC API subset the protocol uses (add, cat, pin/add, version).

Uploads use the official runner's parameters (CIDv1, raw leaves, 256 KiB chunks) so CIDs agree with it.
An optional token is sent verbatim in the ``authorization`` header; it is checked to be a legal header value
first (:func:`~airflow_provider_ethernity.protocol.settings.check_ipfs_token`), so no HTTP library error can
ever quote it. Transient faults (connection errors,
timeouts, 502/503/504) are retried with backoff; 401/403 and other errors fail fast with a clear message.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import httpx

from airflow_provider_ethernity.protocol.errors import (
    ConfigurationError,
    ContentNotFoundError,
    StorageError,
    TransientError,
    shown_url,
)
from airflow_provider_ethernity.protocol.retry import DEFAULT_RETRY, TRANSIENT_HTTP_STATUS, RetryPolicy


class _Sink(Protocol):
    """Where :meth:`IpfsClient.cat_into` streams content: anything with ``write(bytes)``."""

    def write(self, chunk: bytes, /) -> object: ...


_S = TypeVar("_S", bound=_Sink)
ADD_PARAMS = {"cid-version": "1", "raw-leaves": "true", "chunker": "size-262144", "pin": "true"}
STREAM_CHUNK = 1 << 20


def normalize_api_url(url: str) -> str:
    """``http://host:5001`` or ``http://host:5001/api/v0`` -> ``http://host:5001/api/v0``."""
    url = (url or "").strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"ipfs_api_url={shown_url(url)!r} is not an http(s) URL (example: http://127.0.0.1:5001/api/v0)"
        )
    return url if url.endswith("/api/v0") else url + "/api/v0"


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code < 400:
        return
    try:
        response.read()
        detail = response.json().get("Message", "") if response.content else ""
    except Exception:
        detail = response.text[:200] if response.content else ""
    message = f"IPFS {what} failed with HTTP {response.status_code}{': ' + detail if detail else ''}"
    if response.status_code in TRANSIENT_HTTP_STATUS:
        raise TransientError(message)
    if response.status_code in (401, 403):
        raise StorageError(message + " (check the connection's IPFS token)")
    if what.startswith("cat of") and response.status_code in (404, 500):
        # Kubo answers 500 ("context deadline exceeded", "not found") for content it cannot find
        raise ContentNotFoundError(message)
    raise StorageError(message)


def _wrap_transport(exc: httpx.TransportError, api_url: str, what: str) -> TransientError:
    """A transport fault as a TransientError. Only network faults (connect, read, write, pool, timeouts) say
    more than their class: a protocol error's text may quote the request's headers, the token among them."""
    detail = f": {exc}" if isinstance(exc, (httpx.NetworkError, httpx.TimeoutException)) else ""
    return TransientError(f"IPFS API {shown_url(api_url)} unreachable during {what}: {type(exc).__name__}{detail}")


def _auth_headers(token: str | None) -> dict[str, str]:
    """The ``authorization`` header for ``token`` (stripped and validated; the error names ``ipfs_token``)."""
    from airflow_provider_ethernity.protocol.settings import check_ipfs_token

    checked = check_ipfs_token(token)
    return {"authorization": checked} if checked else {}


class IpfsClient:
    """Synchronous client. Thread-safe (one httpx.Client with a connection pool)."""

    def __init__(
        self, api_url: str, token: str | None = None, timeout: float = 60.0, retry: RetryPolicy = DEFAULT_RETRY
    ) -> None:
        self.api_url = normalize_api_url(api_url)
        self._headers = _auth_headers(token)
        self._timeout = httpx.Timeout(timeout, connect=min(10.0, timeout))
        self._retry = retry
        self._client = httpx.Client(timeout=self._timeout, headers=self._headers)

    def __repr__(self) -> str:  # never show the token
        return f"IpfsClient({self.api_url!r})"

    def close(self) -> None:
        self._client.close()

    def _post(self, path: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.post(f"{self.api_url}/{path}", **kwargs)
        except httpx.TransportError as exc:
            raise _wrap_transport(exc, self.api_url, what) from None
        _raise_for(response, what)
        return response

    def add(self, data: bytes | str | Path | IO[bytes], name: str = "blob") -> str:
        """Add bytes (or a file path / binary file) and return its CID."""

        def attempt() -> str:
            if isinstance(data, (str, Path)) and os.path.exists(data):
                with open(data, "rb") as fh:
                    response = self._post("add", "add", params=ADD_PARAMS, files={"file": (name, fh)})
            elif hasattr(data, "read"):  # a binary file: streamed from its start (again on a retry)
                data.seek(0)  # type: ignore[union-attr]
                response = self._post("add", "add", params=ADD_PARAMS, files={"file": (name, data)})
            else:
                payload = data.encode() if isinstance(data, str) else data
                response = self._post("add", "add", params=ADD_PARAMS, files={"file": (name, payload)})
            return str(response.json()["Hash"])

        return self._retry.call(attempt)

    def cat(self, cid: str, max_bytes: int | None = None) -> bytes:
        """Read the content of ``cid`` (at most ``max_bytes``; larger content is refused)."""
        return b"".join(self._retry.call(lambda: list(self._cat_stream(cid, max_bytes))))

    def cat_into(self, cid: str, sink_factory: Callable[[], _S], max_bytes: int | None = None) -> _S:
        """Stream the content of ``cid`` into a fresh ``sink_factory()`` (anything with ``write(bytes)``);
        a retried read starts over with a new sink. Returns the sink."""

        def attempt() -> _S:
            sink = sink_factory()
            for chunk in self._cat_stream(cid, max_bytes):
                sink.write(chunk)
            return sink

        return self._retry.call(attempt)

    def _cat_stream(self, cid: str, max_bytes: int | None) -> Iterator[bytes]:
        try:
            with self._client.stream("POST", f"{self.api_url}/cat", params={"arg": cid}) as response:
                _raise_for(response, f"cat of {cid}")
                total = 0
                for chunk in response.iter_bytes(STREAM_CHUNK):
                    total += len(chunk)
                    if max_bytes is not None and total > max_bytes:
                        raise StorageError(f"IPFS content {cid} is larger than the limit of {max_bytes} bytes")
                    yield chunk
        except httpx.TransportError as exc:
            raise _wrap_transport(exc, self.api_url, f"cat of {cid}") from None

    def pin(self, cid: str) -> None:
        self._retry.call(lambda: self._post("pin/add", f"pin of {cid}", params={"arg": cid}))

    def version(self) -> str:
        """The daemon's version string; a cheap reachability probe."""
        return self._retry.call(lambda: str(self._post("version", "version").json().get("Version", "unknown")))


class AsyncIpfsClient:
    """Asynchronous counterpart (httpx.AsyncClient), for code running in the triggerer's event loop."""

    def __init__(
        self, api_url: str, token: str | None = None, timeout: float = 60.0, retry: RetryPolicy = DEFAULT_RETRY
    ) -> None:
        self.api_url = normalize_api_url(api_url)
        self._retry = retry
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            headers=_auth_headers(token),
        )

    def __repr__(self) -> str:
        return f"AsyncIpfsClient({self.api_url!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(self, path: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.post(f"{self.api_url}/{path}", **kwargs)
        except httpx.TransportError as exc:
            raise _wrap_transport(exc, self.api_url, what) from None
        _raise_for(response, what)
        return response

    async def cat(self, cid: str) -> bytes:
        async def attempt() -> bytes:
            return (await self._post("cat", f"cat of {cid}", params={"arg": cid})).content

        return await self._retry.acall(attempt)

    async def version(self) -> str:
        async def attempt() -> str:
            return str((await self._post("version", "version")).json().get("Version", "unknown"))

        return await self._retry.acall(attempt)
