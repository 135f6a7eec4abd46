"""Fetching a closed order's result: read the result statement, verify it, download, decrypt, check (a layer of
:class:`~.client.EthernityClient`). The checks themselves are in :mod:`.results`."""

from __future__ import annotations

from airflow_provider_ethernity.protocol.errors import (
    ConfigurationError,
    OperatorFaultError,
    ResultNotReadyError,
    ResultVerificationError,
    StorageError,
    TransientError,
)
from airflow_provider_ethernity.protocol.events import OrderStatus
from airflow_provider_ethernity.protocol.orders import OrderReads
from airflow_provider_ethernity.protocol.results import (
    TaskResult,
    build_task_result,
    decode_result_transaction,
    open_order_result,
    parse_order_result,
    verify_binding,
    verify_checksum,
    verify_signer,
)
from airflow_provider_ethernity.protocol.storage import read_result_blob
from airflow_provider_ethernity.protocol.task_codes import is_operator_fault


class ResultFetcher(OrderReads):
    """The verified, decrypted result of a closed order."""

    def get_result(
        self,
        order_id: int,
        challenge: str | None = None,
        max_result_bytes: int | None = None,
        *,
        challenge_salt: str | None = None,
    ) -> TaskResult:
        """Fetch, verify and decrypt the result of a closed order.

        Give the submission's ``challenge_salt`` (the challenge is re-derived from the wallet key) or the
        ``challenge`` itself. Raises :class:`ResultNotReadyError` while the order is not closed (never a
        fault), :class:`ResultReplayError` for a result of another order/contract/chain (refused, never
        resubmitted), :class:`OperatorFaultError` / :class:`ResultVerificationError` for a confirmed fault
        of this order (resubmit). A task error is a result with ``success=False``.
        """
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
        try:
            # the API, then the gateway, until the read window; missing bytes after it are an operator fault
            blob = read_result_blob(self, order_id, order_result.result_cid, max_result_bytes)
        except (TransientError, StorageError) as exc:
            raise StorageError(
                f"order {order_id}: the result {order_result.result_cid} could not be read from IPFS: {exc}"
            ) from None
        except ValueError:
            raise ResultVerificationError(
                f"order {order_id}: the result {order_result.result_cid} is not hex"
            ) from None
        plaintext = open_order_result(blob, self.settings.private_key or "", order_id, order_result.result_cid)
        del blob
        verify_checksum(tx, order_id, plaintext)
        result = build_task_result(tx, order_id, plaintext, order_result.result_cid)
        self.log.info("Result of order %s verified: %s (%s)", order_id, result.task_code_name, result.task_code)
        return result
