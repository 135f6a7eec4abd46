"""Where artefacts go so that a node can fetch them, and how results are read back (the real networks' rules).

A real node fetches the sealed challenge, code and input through public gateways and its own Kubo peered with
Ethernity's IPFS: a requester's private Kubo (loopback, LAN) is unreachable, and the task would fail on the
node's side after the escrow is paid ("cannot download files from IPFS"). So, decided before paying
(:func:`require_reachable_storage`):

* ``ipfs_public`` true (the default for a public host; see :func:`.settings.ipfs_reachable_by_nodes`): artefacts
  are added through the connection's IPFS API, as today;
* otherwise, on a network with a public intake (bloxberg testnet, LitVM, Sepolia and their -unsafe twins, or
  ``ipfs_intake_url`` in the connection): the CIDs are computed locally, the bytes held in memory and POSTed to
  ``<intake>/<network>/<doRequest>/<cid>`` after the request's receipt (:class:`IntakeUploads`), as the
  official runner 0.5.26 does (403 "does not name this cid" retried: the intake may not see the request yet);
* otherwise: :class:`~.errors.ConfigurationError` before any transaction.

Results (:func:`read_result_blob`): the IPFS API's ``cat``, then the gateway, again and again (every
:data:`RESULT_READ_PAUSE` seconds at most) until ``result_read_seconds`` (default 120) after the close was seen: a
real node records the result CID on chain and pins the bytes in the background. With a private API
(``ipfs_public`` false) the gateway is asked first: the node pins on the public network, which the gateway
serves, while a private Kubo may spend its whole timeout searching for the bytes. Our API unreachable is our
side (:class:`~.errors.StorageError`, no resubmit); the API answering "not found" until the window ends is the
operator's fault (:class:`~.errors.OperatorFaultError`: the lifecycle resubmits), the runner's rule.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar

import httpx

from airflow_provider_ethernity.protocol import metadata
from airflow_provider_ethernity.protocol.cid import compute_cid
from airflow_provider_ethernity.protocol.crypto import HexDecoder
from airflow_provider_ethernity.protocol.errors import (
    ConfigurationError,
    ContentNotFoundError,
    OperatorFaultError,
    StorageError,
    shown_url,
)

if TYPE_CHECKING:
    from airflow_provider_ethernity.protocol.connection import ClientConnection
    from airflow_provider_ethernity.protocol.settings import ClientSettings


class _Writable(Protocol):
    def write(self, chunk: bytes) -> None: ...


_Sink = TypeVar("_Sink", bound=_Writable)

#: The intake refuses bigger blobs (runner ipfs.py:49).
INTAKE_MAX_BYTES = 100 * 1024**2
#: 403 "does not name this cid" (the intake has not seen the request yet) is retried this many times.
INTAKE_FORBIDDEN_ATTEMPTS = 12
#: Connection faults and 5xx answers of the intake are retried this many times.
INTAKE_SERVER_ATTEMPTS = 3


def require_reachable_storage(settings: ClientSettings) -> None:
    """Fail before paying when nodes could not fetch the artefacts (see the module docstring)."""
    if settings.ipfs_public or settings.uses_intake:
        return
    api = shown_url(settings.ipfs_api_url or "")
    raise ConfigurationError(
        f"the IPFS API {api} is private (ipfs_public is false, or unset for a loopback or private address): "
        f"nodes of network {settings.network.name!r} fetch artefacts from the public IPFS network and could "
        "not read them, and this network has no public intake; use an IPFS API nodes can reach and set "
        "ipfs_public=true, or set ipfs_intake_url. Nothing was sent"
    )


class IntakeUploads:
    """Artefacts waiting for their DO request: CIDs computed locally, bytes POSTed after the receipt."""

    def __init__(self, settings: ClientSettings, retry_delay: float | None = None, logger: Any = None) -> None:
        assert settings.ipfs_intake_url
        self.base_url = settings.ipfs_intake_url
        self.network = settings.network.intake_name
        self.timeout = max(120.0, settings.ipfs_timeout)
        self.retry_delay = retry_delay if retry_delay is not None else min(5.0, max(0.5, settings.network.block_time))
        self.log = logger
        self._pending: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def queue(self, sealed: IO[bytes], what: str) -> str:
        """Hold a sealed artefact (read from its start) until its request exists; returns its CID."""
        sealed.seek(0)
        data = sealed.read()
        if len(data) > INTAKE_MAX_BYTES:
            raise ConfigurationError(
                f"the sealed {what} is {len(data)} bytes: the public intake takes at most {INTAKE_MAX_BYTES} bytes; "
                "use an IPFS API nodes can reach (ipfs_public=true). Nothing was sent"
            )
        cid = compute_cid(data)
        with self._lock:
            self._pending[cid] = data
        return cid

    def flush(self, client: ClientConnection, do_request_id: int) -> list[str]:
        """Upload the held artefacts the request names (its metadata, read back from the chain)."""
        row = client._lagging_read(
            lambda: client._view(client.protocol.functions._getDORequestMetadata(int(do_request_id))),
            f"DO request {do_request_id}",
        )
        named = set(named_cids(row[1], row[2], row[3]))
        with self._lock:
            todo = {cid: data for cid, data in self._pending.items() if cid in named}
        for cid, data in todo.items():
            self.upload(do_request_id, cid, data)
            with self._lock:
                self._pending.pop(cid, None)
        return list(todo)

    def upload(self, do_request_id: int, cid: str, data: bytes) -> None:
        url = f"{self.base_url}/{self.network}/{int(do_request_id)}/{cid}"
        forbidden = server = 0
        with httpx.Client(timeout=self.timeout) as http:
            while True:
                try:
                    response = http.post(url, content=data, headers={"Content-Type": "application/octet-stream"})
                except httpx.TransportError as exc:
                    server += 1
                    if server >= INTAKE_SERVER_ATTEMPTS:
                        raise StorageError(
                            f"the public intake {shown_url(self.base_url)} is unreachable ({type(exc).__name__}); "
                            f"{cid} of DO request {do_request_id} was not uploaded"
                        ) from None
                    time.sleep(self.retry_delay)
                    continue
                status = response.status_code
                if status in (200, 201, 409):
                    if self.log:
                        self.log.info("Uploaded %s of DO request %s to the public intake", cid, do_request_id)
                    return
                detail = response.text[:200]
                if status == 403 and forbidden + 1 < INTAKE_FORBIDDEN_ATTEMPTS:
                    forbidden += 1  # the intake does not see the request yet (a lagging replica)
                    time.sleep(self.retry_delay)
                    continue
                if status >= 500 and server + 1 < INTAKE_SERVER_ATTEMPTS:
                    server += 1
                    time.sleep(self.retry_delay)
                    continue
                hint = (
                    " (the intake does not serve this network: set ipfs_api_url to a public IPFS API)"
                    if (status == 404)
                    else ""
                )
                raise StorageError(
                    f"the public intake refused {cid} of DO request {do_request_id}: HTTP {status} {detail}{hint}"
                )


def named_cids(m1: str, m2: str, m3: str) -> list[str]:
    """The artefact CIDs a DO request's metadata names (challenge, code, input)."""
    cids = []
    with contextlib.suppress(ValueError):
        cids.append(metadata.parse_image_metadata(m1).challenge_cid)
    for text in (m2, m3):
        try:
            cid = metadata.parse_artefact_metadata(text).cid
        except ValueError:
            continue
        if cid:
            cids.append(cid)
    return cids


def _gateway_read(
    gateway_url: str, cid: str, timeout: float, max_bytes: int | None, sink_factory: Callable[[], _Sink]
) -> _Sink | None:
    """The result from a public gateway, or None when it does not have it (any failure: gateways are flaky)."""
    sink = sink_factory()
    total = 0
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(timeout, connect=min(10.0, timeout))) as http,
            http.stream("GET", f"{gateway_url}/ipfs/{cid}") as response,
        ):
            if response.status_code != 200:
                return None
            for chunk in response.iter_bytes(1 << 20):
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise StorageError(f"IPFS content {cid} is larger than the limit of {max_bytes} bytes")
                sink.write(chunk)
    except httpx.HTTPError:
        return None
    return sink


#: Longest pause between two reads of a result not readable yet. The runner pauses a block time (5 s on
#: bloxberg); the bytes appear when the node's background pin ends, not at a block, and a read is one cheap
#: HTTP request, so a shorter pause delivers a late-pinned result seconds earlier.
RESULT_READ_PAUSE = 2.0


def read_result_blob(
    client: ClientConnection,
    order_id: int,
    cid: str,
    max_bytes: int | None = None,
    *,
    sink_factory: Callable[[], _Sink] = HexDecoder,  # type: ignore[assignment]
    read_until: float | None = None,
) -> _Sink:
    """The result's hex text, streamed into a new ``sink_factory()`` per read, read as the runner does (see
    the module docstring): until ``result_read_seconds`` from now or ``read_until`` (epoch seconds: the
    order's processing deadline), whichever is later.

    Raises :class:`StorageError` when our IPFS API is unreachable (the lifecycle does not resubmit),
    :class:`OperatorFaultError` when the content is still unreadable at the end of that window,
    ``ValueError`` when the text is not hex.
    """
    settings = client.settings
    window = max(settings.result_read_seconds, (read_until - time.time()) if read_until else 0.0)
    deadline = time.monotonic() + window
    pause = min(RESULT_READ_PAUSE, max(0.5, client.network.block_time))
    gateway_first = not settings.ipfs_public and bool(settings.ipfs_gateway_url)
    tries = 0
    while True:
        tries += 1
        if gateway_first:
            timeout = min(60.0, settings.ipfs_timeout)
            blob = _gateway_read(settings.ipfs_gateway_url or "", cid, timeout, max_bytes, sink_factory)
            if blob is not None:
                return blob
        if settings.ipfs_api_url:
            try:
                return client.ipfs.cat_into(cid, sink_factory, max_bytes=max_bytes)
            except ContentNotFoundError:
                pass  # the API answers: the bytes are not there (yet)
        if settings.ipfs_gateway_url and not gateway_first:
            timeout = min(60.0, settings.ipfs_timeout)
            blob = _gateway_read(settings.ipfs_gateway_url, cid, timeout, max_bytes, sink_factory)
            if blob is not None:
                return blob
        if time.monotonic() >= deadline:
            raise OperatorFaultError(
                f"order {order_id}: the result {cid} is recorded on chain but still unreadable after {window:.0f} s "
                f"({tries} reads of the IPFS API and the gateway): the node never published it"
            )
        if tries == 1:
            client.log.info("Result %s of order %s is not readable yet (a node pins it after closing); waiting", cid,
                            order_id)  # fmt: skip
        time.sleep(pause)
