"""Fetching a closed order's result: read the result statement, verify it, download, decrypt, check (a layer of
:class:`~.client.EthernityClient`). The checks themselves are in :mod:`.results`; :meth:`ResultFetcher.write_result`
streams a result to storage through :mod:`.result_stream` and :mod:`.envelope_stream`."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Protocol, TypeVar

from airflow_provider_ethernity.protocol.crypto import HexDecoder, requester_box_secret
from airflow_provider_ethernity.protocol.envelope_stream import copy_result_text
from airflow_provider_ethernity.protocol.errors import (
    ConfigurationError,
    OperatorFaultError,
    ResultCorruptedError,
    ResultDecryptionError,
    ResultNotReadyError,
    ResultVerificationError,
    StorageError,
    TransientError,
)
from airflow_provider_ethernity.protocol.events import OrderStatus
from airflow_provider_ethernity.protocol.orders import OrderReads
from airflow_provider_ethernity.protocol.result_stream import OpenedResult, ResultFileSink
from airflow_provider_ethernity.protocol.results import (
    OrderResult,
    ResultTransaction,
    StoredResult,
    TaskResult,
    build_stored_result,
    build_task_result,
    check_checksum,
    decode_envelope,
    decode_result_transaction,
    open_order_result,
    parse_order_result,
    verify_binding,
    verify_checksum,
    verify_signer,
)
from airflow_provider_ethernity.protocol.storage import read_result_blob
from airflow_provider_ethernity.protocol.task_codes import SUCCESS, is_operator_fault

#: The most of a failed task's error text read back from a streamed result.
MAX_ERROR_TEXT = 1 << 20

_Sink = TypeVar("_Sink", HexDecoder, ResultFileSink)


class ResultDestination(Protocol):
    """Where :meth:`ResultFetcher.write_result` writes a verified result (an ``ObjectStoragePath`` fits; its
    ``unlink``, when it has one, removes what a write that failed midway left)."""

    def open(self, mode: str) -> IO[bytes]: ...


class ResultFetcher(OrderReads):
    """The verified, decrypted result of a closed order."""

    def get_result(
        self,
        order_id: int,
        challenge: str | None = None,
        max_result_bytes: int | None = None,
        *,
        challenge_salt: str | None = None,
        read_until: float | None = None,
    ) -> TaskResult:
        """Fetch, verify and decrypt the result of a closed order.

        Give the submission's ``challenge_salt`` (the challenge is re-derived from the wallet key) or the
        ``challenge`` itself; ``read_until`` (epoch seconds) extends the read window to the order's processing
        deadline, as the runner does. Raises :class:`ResultNotReadyError` while the order is not closed (never
        a fault), :class:`ResultReplayError` for a result of another order/contract/chain (refused, never
        resubmitted), :class:`OperatorFaultError` / :class:`ResultVerificationError` for a confirmed fault
        of this order (resubmit). A task error is a result with ``success=False``.
        """
        order_result, tx = self._verified_statement(order_id, challenge, challenge_salt)
        blob = self._read(order_id, order_result, max_result_bytes, HexDecoder, read_until)
        plaintext = open_order_result(blob, self.settings.private_key or "", order_id, order_result.result_cid)
        del blob
        verify_checksum(tx, order_id, plaintext)
        result = build_task_result(tx, order_id, plaintext, order_result.result_cid)
        self.log.info("Result of order %s verified: %s (%s)", order_id, result.task_code_name, result.task_code)
        return result

    def write_result(
        self,
        order_id: int,
        destination: ResultDestination,
        *,
        challenge_salt: str | None = None,
        challenge: str | None = None,
        max_result_bytes: int | None = None,
        read_until: float | None = None,
        work_dir: str | None = None,
    ) -> StoredResult:
        """:meth:`get_result`, streamed: the result is decrypted into a private temporary file (in ``work_dir``)
        while it downloads, and its value is written to ``destination`` only once the box and the signed
        checksum verified. Memory stays flat whatever the size of a ``text`` or ``base64`` result (a ``json``
        one is decoded in memory). A failed task writes nothing (its error text is in the returned record).
        Raises as :meth:`get_result`."""
        order_result, tx = self._verified_statement(order_id, challenge, challenge_salt)
        where = f"order {order_id}: the result {order_result.result_cid}"
        secret = requester_box_secret(self.settings.private_key or "")
        sinks: list[ResultFileSink] = []

        def new_sink() -> ResultFileSink:  # a new read: the earlier ones failed or found nothing
            for earlier in sinks:
                earlier.discard()
            sinks.append(ResultFileSink(secret, work_dir))
            return sinks[-1]

        try:
            sink = self._read(order_id, order_result, max_result_bytes, new_sink, read_until)
            try:
                opened = sink.finish()
            except ResultDecryptionError as exc:
                raise ResultCorruptedError(f"{where} is corrupted: {exc}") from None
            check_checksum(tx, order_id, opened.checksum)
            stored = self._store(tx, order_id, order_result, opened, destination)
        finally:
            for each in sinks:
                each.discard()
        self.log.info("Result of order %s verified: %s (%s)", order_id, stored.task_code_name, stored.task_code)
        return stored

    def _store(
        self,
        tx: ResultTransaction,
        order_id: int,
        order_result: OrderResult,
        opened: OpenedResult,
        destination: ResultDestination,
    ) -> StoredResult:
        if tx.task_code != SUCCESS:  # the enclave's error text: small, and never written as a result
            opened.file.seek(0)
            kind, _, text = decode_envelope(opened.file.read(MAX_ERROR_TEXT).decode("utf-8", "replace"))
            return build_stored_result(tx, order_id, order_result.result_cid, kind, "", 0, text)
        written = []

        def open_destination() -> IO[bytes]:
            out = destination.open("wb")  # a failed open leaves whatever was there before
            written.append(destination)
            return out

        try:
            kind, size = copy_result_text(opened.file, open_destination)
        except BaseException:
            if written:  # object stores commit what was written when the file closes, even on an error
                self._remove_partial(destination)
            raise
        return build_stored_result(tx, order_id, order_result.result_cid, kind, str(destination), size)

    def _remove_partial(self, destination: ResultDestination) -> None:
        unlink = getattr(destination, "unlink", None)
        try:
            if unlink is not None:
                unlink(missing_ok=True)
        except Exception as exc:  # the write's own error matters more; say what is left behind
            self.log.warning("Could not remove the partial result at %s (%s)", destination, type(exc).__name__)

    def _verified_statement(
        self, order_id: int, challenge: str | None, challenge_salt: str | None
    ) -> tuple[OrderResult, ResultTransaction]:
        """The closed order's result statement, bound to this order and signed by its enclave."""
        if challenge is None:
            if not challenge_salt:
                raise ConfigurationError("get_result needs the submission's challenge_salt (or its challenge)")
            challenge = self.challenge_for(challenge_salt)
        status = self.get_order_status(order_id)
        if status != OrderStatus.CLOSED:
            raise ResultNotReadyError(f"order {order_id} is {status.name}, not CLOSED: no result yet")
        text = self._lagging_read(
            lambda: self._view(self.protocol.functions._getResultFromOrder(int(order_id))), f"result of {order_id}"
        )
        order_result = parse_order_result(text)
        tx = decode_result_transaction(order_result.transaction_bytes)
        verify_binding(tx, order_id, self.network.protocol_address or "", self.chain_id())
        if is_operator_fault(tx.task_code):
            raise OperatorFaultError(
                f"order {order_id} failed on the operator side: {tx.task_code_name} ({tx.task_code})"
            )
        verify_signer(tx, order_id, challenge)
        return order_result, tx

    def _read(
        self,
        order_id: int,
        order_result: OrderResult,
        max_result_bytes: int | None,
        sink_factory: Callable[[], _Sink],
        read_until: float | None,
    ) -> _Sink:
        """The result's bytes streamed into a sink: the API, then the gateway, until the read window; missing
        bytes after it are an operator fault."""
        cid = order_result.result_cid
        try:
            return read_result_blob(self, order_id, cid, max_result_bytes, sink_factory=sink_factory,
                                    read_until=read_until)  # fmt: skip
        except (TransientError, StorageError) as exc:
            raise StorageError(f"order {order_id}: the result {cid} could not be read from IPFS: {exc}") from None
        except ValueError:
            raise ResultVerificationError(f"order {order_id}: the result {cid} is not hex") from None
