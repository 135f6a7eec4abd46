"""The synchronous Ethernity client: the requester's side of the protocol over web3 and the IPFS HTTP API.

No Airflow here: the hook builds this from a connection; the devnet, benchmarks and scripts use it directly.
:class:`EthernityClient` is a small facade over layers split by concern, each building on the one before:

* :mod:`.connection`: web3, wallet, IPFS, contracts, bounded RPC reads, the preflight, the transaction sender;
* :mod:`.orders`: order and DO request reads (rows typed by :mod:`.contracts`), the approval, the waits;
* :mod:`.do_requests`: the task spec, sealing and upload, the allowance, ``_addDORequest``, cancel/settle;
* :mod:`.results_fetch`: the verified, decrypted result of a closed order.

Spending transactions go through :class:`~.transactions.TransactionSender` (idempotent by hash); one task's
whole life is :class:`~.lifecycle.TaskLifecycle`, which :meth:`EthernityClient.run_task` drives.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_ethernity.protocol.connection import LAGGING_READ_ATTEMPTS, ClientConnection
from airflow_provider_ethernity.protocol.contracts import DORequestRow, EnclaveDetails, Order
from airflow_provider_ethernity.protocol.do_requests import (
    MAX_ARTEFACT_BYTES,
    RequestClient,
    SubmittedTask,
)
from airflow_provider_ethernity.protocol.input_file import InputFile
from airflow_provider_ethernity.protocol.orders import ORDER_SCAN_LIMIT, OrderReads
from airflow_provider_ethernity.protocol.resources import Resources
from airflow_provider_ethernity.protocol.results import TaskResult
from airflow_provider_ethernity.protocol.results_fetch import ResultFetcher
from airflow_provider_ethernity.protocol.submission import MemorySubmissionStore

__all__ = [
    "LAGGING_READ_ATTEMPTS",
    "MAX_ARTEFACT_BYTES",
    "ORDER_SCAN_LIMIT",
    "ClientConnection",
    "DORequestRow",
    "EnclaveDetails",
    "EthernityClient",
    "Order",
    "OrderReads",
    "SubmittedTask",
]


class EthernityClient(RequestClient, ResultFetcher):
    """Requester-side protocol client over web3 (sync) and the IPFS HTTP API."""

    def __repr__(self) -> str:
        return f"EthernityClient(network={self.network.name!r}, rpc={self.settings.rpc_url_shown!r})"

    def submit_task(
        self,
        code: str,
        input_data: str | InputFile | None = None,
        resources: Resources | dict[str, Any] | None = None,
        trustedzone: str | None = None,
        node_address: str | None = None,
        securelock: str | None = None,
    ) -> SubmittedTask:
        """Seal and upload the artefacts, then place the DO request (written ahead in a memory store). Validation
        and uploads come first: a bad parameter, missing funds or an unreachable IPFS fail before any send."""
        from airflow_provider_ethernity.protocol.lifecycle import TaskLifecycle

        spec = self.task_spec(code, input_data, resources, trustedzone, node_address, securelock)
        sub = TaskLifecycle(self, MemorySubmissionStore()).submit(spec)
        assert sub.do_request_id is not None and sub.request_tx is not None
        return SubmittedTask(
            do_request_id=sub.do_request_id,
            tx_hash=sub.request_tx,
            from_block=sub.from_block,
            challenge_salt=sub.challenge_salt,
            order_count_anchor=sub.order_count_anchor,
            requester=self.address,
            node_address=sub.node_address,
            resources=spec.resources.as_dict(),
        )

    def run_task(
        self,
        code: str,
        input_data: str | None = None,
        resources: Resources | dict[str, Any] | None = None,
        trustedzone: str | None = None,
        node_address: str | None = None,
        securelock: str | None = None,
        *,
        timeout: float | None = None,
        order_wait_timeout: float = 1800.0,
        max_resubmits: int | None = None,
        poll_interval: float | None = None,
    ) -> TaskResult:
        """Run one task end to end through :class:`~.lifecycle.TaskLifecycle` (the operator's lifecycle too).

        No order within ``order_wait_timeout``: the request is cancelled (escrow back) and OrderTimeoutError is
        raised, unless a node booked it at the edge. A confirmed operator fault is resubmitted up to
        ``max_resubmits`` times (default 1). No completion within ``timeout`` (default the task's duration +
        15 min): CompletionTimeoutError. A task error returns a result with ``success=False``.
        """
        from airflow_provider_ethernity.protocol.lifecycle import DEFAULT_MAX_RESUBMITS, TaskLifecycle

        spec = self.task_spec(code, input_data, resources, trustedzone, node_address, securelock)
        lifecycle = TaskLifecycle(
            self,
            MemorySubmissionStore(),
            max_resubmits=DEFAULT_MAX_RESUBMITS if max_resubmits is None else max_resubmits,
            order_wait_timeout=order_wait_timeout,
            completion_timeout=timeout,
            poll_interval=poll_interval,
        )
        return lifecycle.run(spec)
