"""One task's lifecycle, the only one: submit, await order, approve, await completion, fetch result, resubmit.

``EthernityClient.run_task`` and ``EthernityRunTaskOperator`` (sync and deferrable) both drive it; the
Airflow layer only decides where each wait happens (here, in a worker, or in the triggerer).

Money rules, each enforced here:

* **Write-ahead.** Before any transaction that spends (the token ``approve``, ``_addDORequest``) is
  broadcast, the submission record with the signed transaction (hash, nonce, raw bytes) is saved to the
  task instance's :class:`~.submission.SubmissionStore`. If the save fails the try is fenced and sends
  nothing. A later try that finds an intent looks its hash up and continues from it.
* **Fingerprinted re-attach.** A record is re-used only by a task with the same fingerprint (code, input,
  resources, trustedzone, node): a fixed or changed task submits anew, a retry of the same task never pays
  twice.
* **No orphaned escrow.** At the order timeout the request is cancelled (escrow back) unless a node booked
  it at the edge; then the lifecycle carries on with that order, as the official runner does.
* **Resubmit only on a confirmed fault.** Only a closed order whose result is a verified fault code, or a
  result for this order that fails the signer or checksum check, is resubmitted (bounded). A replayed or
  foreign result is refused without paying again; an unreadable result of an order not yet closed is "not
  yet".
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, TypeVar

from airflow_provider_ethernity.protocol.errors import (
    ChainError,
    CompletionTimeoutError,
    OperatorFaultError,
    OrderTimeoutError,
    ResultNotReadyError,
    ResultReplayError,
)
from airflow_provider_ethernity.protocol.events import OrderStatus, RequestStatus
from airflow_provider_ethernity.protocol.logs import Log
from airflow_provider_ethernity.protocol.release import release_superseded
from airflow_provider_ethernity.protocol.submission import (
    FencedError,
    Phase,
    Submission,
    SubmissionStore,
    TaskSpec,
    new_salt,
)
from airflow_provider_ethernity.protocol.transactions import NonceTakenError, SignedTx

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_ethernity.protocol.client import EthernityClient
    from airflow_provider_ethernity.protocol.results import StoredResult, TaskResult
    from airflow_provider_ethernity.protocol.results_fetch import ResultDestination

    _R = TypeVar("_R", TaskResult, StoredResult)

#: How many times an operator fault is resubmitted as a new request, by default (operator and run_task).
DEFAULT_MAX_RESUBMITS = 1
#: Extra time the node gets beyond the task's duration before the completion wait fails (the runner's margin).
COMPLETION_MARGIN_SECONDS = 900
#: Default seconds to wait for a node to take the request before cancelling it.
DEFAULT_ORDER_WAIT_TIMEOUT = 1800.0
#: How often a submission re-approves when a concurrent one (another machine, same wallet) took the allowance.
ALLOWANCE_RACE_ATTEMPTS = 10


def completion_timeout_for(spec_duration_hours: int, completion_timeout: float | None) -> float:
    return completion_timeout or spec_duration_hours * 3600 + COMPLETION_MARGIN_SECONDS


class TaskLifecycle:
    """Drives one task instance's submission through the protocol, recording each step in ``store``."""

    def __init__(
        self,
        client: EthernityClient,
        store: SubmissionStore,
        *,
        max_resubmits: int = DEFAULT_MAX_RESUBMITS,
        order_wait_timeout: float = DEFAULT_ORDER_WAIT_TIMEOUT,
        completion_timeout: float | None = None,
        poll_interval: float | None = None,
        logger: Log | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.max_resubmits = max_resubmits
        self.order_wait_timeout = order_wait_timeout
        self.completion_timeout = completion_timeout
        self.poll_interval = poll_interval
        self.log = logger or client.log

    # ------------------------------------------------------------------ entry
    def attach_or_submit(self, spec: TaskSpec) -> Submission:
        """Continue this task instance's submission if it is the same task and still alive, else submit."""
        record = self.store.load()
        if record is None:
            return self.submit(spec)
        if record.fingerprint != spec.fingerprint():
            self.log.warning(
                "The task changed since DO request %s (code, input, resources, trustedzone or node): submitting "
                "a new request",
                record.do_request_id,
            )
            release_superseded(self.client, record, self.log)
            return self.submit(spec, previous=record)
        if record.phase is Phase.SUBMITTING:
            return self._recover(spec, record) or self.submit(spec, resubmits=record.resubmits, previous=record)
        if record.phase is Phase.CANCELLED:
            return self.submit(spec, resubmits=record.resubmits, previous=record)
        return self._reattach(spec, record)

    # ------------------------------------------------------------------ submit
    def submit(self, spec: TaskSpec, *, resubmits: int = 0, previous: Submission | None = None) -> Submission:
        """Seal and upload the artefacts, then (write-ahead) the allowance and the DO request."""
        client = self.client
        enclave = client.prepare_submission(spec)
        sub = Submission(
            fingerprint=spec.fingerprint(),
            challenge_salt=new_salt(),
            price=spec.resources.taskPrice,
            duration=spec.resources.duration,
            node_address=spec.node_address,
            resubmits=resubmits,
        )
        call = client.do_request_call(spec, enclave, client.challenge_for(sub.challenge_salt))
        with client.submit_lock():
            current = self.store.load()
            if (current.writer if current else None) != (previous.writer if previous else None):
                raise FencedError(
                    "another try of this task instance wrote its submission meanwhile; this try stops before "
                    "sending anything (a retry re-attaches to that submission)"
                )
            sub.order_count_anchor = client.orders_count()
            sub.from_block = client.block_number()
            self.store.save(sub)  # proves this try may still write (the fence) before anything is signed
            receipt = self._send_request(sub, call, spec.resources.price_wei)
        do_request_id = client.do_request_id_from(receipt, sub.intent.tx_hash if sub.intent else "")
        return self._submitted(sub, do_request_id)

    def _record(self, sub: Submission) -> Callable[[SignedTx], None]:
        def record(signed: SignedTx) -> None:
            sub.intent = signed
            self.store.save(sub)

        return record

    def _send_request(self, sub: Submission, call: object, price_wei: int) -> object:
        """Allowance (when needed) and ``_addDORequest``, each written ahead; re-approve on an allowance race."""
        client = self.client
        for attempt in range(1, ALLOWANCE_RACE_ATTEMPTS + 1):
            try:
                client.ensure_allowance(price_wei, self._record(sub))
                signed = client.sender.send(call, "_addDORequest", record=self._record(sub))
                return client.sender.wait_receipt(signed, "_addDORequest")
            except ChainError as exc:
                if attempt == ALLOWANCE_RACE_ATTEMPTS:
                    raise
                if isinstance(exc, NonceTakenError):
                    continue  # our request can never be mined: sign it again
                if not client.lost_allowance_race(exc, price_wei):
                    raise
                self.log.info("%s: another submission of this wallet used its allowance; approving again", exc)
                # a random pause breaks the lockstep of two machines that keep overwriting each other's approval
                time.sleep(random.uniform(0, min(2.0, client.network.block_time)))
        raise AssertionError("unreachable")  # pragma: no cover

    def _submitted(self, sub: Submission, do_request_id: int) -> Submission:
        assert sub.intent is not None
        sub.do_request_id = do_request_id
        sub.request_tx = sub.intent.tx_hash
        sub.intent = None
        sub.phase = Phase.SUBMITTED
        sub.order_deadline = time.time() + self.order_wait_timeout
        self.store.save(sub)
        self.log.info(
            "Task created: DO request %s (tx %s, %s %s escrowed)",
            do_request_id,
            sub.request_tx,
            sub.price,
            self.client.network.token_name,
        )
        return sub

    def _recover(self, spec: TaskSpec, sub: Submission) -> Submission | None:
        """A try stopped while a spend was in flight: continue from its recorded transaction."""
        intent = sub.intent
        if intent is None:
            return None
        if not self.client.sender.resume(intent):
            self.log.info("The recorded %s %s was never mined: submitting again", intent.label, intent.tx_hash)
            return None
        try:
            receipt = self.client.sender.wait_receipt(intent, intent.label)
        except NonceTakenError:
            return None
        except ChainError:  # reverted: it moved no token
            return None
        if intent.label != "_addDORequest":
            return None  # the allowance is in place; the request itself was never signed
        self.log.info("Recovered DO request transaction %s from the task state: nothing is sent again", intent.tx_hash)
        return self._submitted(sub, self.client.do_request_id_from(receipt, intent.tx_hash))

    # ------------------------------------------------------------------ re-attach
    def _reattach(self, spec: TaskSpec, sub: Submission) -> Submission:
        client = self.client
        assert sub.do_request_id is not None
        order_id = sub.order_id
        if order_id is None:
            order_id = client.find_order(sub.do_request_id, sub.from_block, sub.order_count_anchor)
        if order_id is None:
            status = client.get_request_status(sub.do_request_id)
            if status is RequestStatus.CANCELED:
                self.log.warning("DO request %s was cancelled; submitting a new one", sub.do_request_id)
                return self.submit(spec, resubmits=sub.resubmits, previous=sub)
            self.log.info("Re-attaching to DO request %s, still waiting for a node", sub.do_request_id)
            sub.order_deadline = time.time() + self.order_wait_timeout
            self.store.save(sub)
            return sub
        order = client.get_order(order_id)
        if order.status == OrderStatus.CANCELED:
            self.log.warning("Order %s of DO request %s was cancelled; submitting anew", order_id, sub.do_request_id)
            return self.submit(spec, resubmits=sub.resubmits, previous=sub)
        self.log.info(
            "Re-attaching to DO request %s, order %s (%s): nothing is submitted again",
            sub.do_request_id,
            order_id,
            order.status_name,
        )
        sub.order_id = order_id
        if sub.phase in (Phase.SUBMITTED, Phase.ORDER_PLACED) and order.status != OrderStatus.OPEN:
            sub.phase = Phase.APPROVED
        elif sub.phase is Phase.SUBMITTED:
            sub.phase = Phase.ORDER_PLACED
        self.store.save(sub)
        return sub

    # ------------------------------------------------------------------ orders
    def await_order(self, sub: Submission) -> int | None:
        """Poll until a node places an order for the request; None at the order deadline."""
        assert sub.do_request_id is not None
        return self.client.wait_for_order_id(
            sub.do_request_id,
            sub.from_block,
            sub.order_count_anchor,
            timeout=max(0.0, sub.order_deadline - time.time()),
            poll_interval=self.poll_interval,
        )

    def settle_order_timeout(self, sub: Submission) -> int:
        """The order wait ran out: cancel the request (escrow back, OrderTimeoutError) or, when a node booked
        it at the edge, carry on with that order (its id is returned)."""
        assert sub.do_request_id is not None
        order_id = self.client.settle_unplaced_request(sub.do_request_id, sub.from_block, sub.order_count_anchor)
        if order_id is None:
            raise self.cancelled(sub)
        return order_id

    def cancelled(self, sub: Submission) -> OrderTimeoutError:
        """Record that the request was cancelled at the order timeout (here or by the trigger); the error."""
        sub.phase = Phase.CANCELLED
        self.store.save(sub)
        return OrderTimeoutError(
            f"no node placed an order for DO request {sub.do_request_id} within "
            f"order_wait_timeout={self.order_wait_timeout:g} s; the request was cancelled and its escrow "
            f"({sub.price} {self.client.network.token_name}) returned"
        )

    def order_placed(
        self,
        sub: Submission,
        order_id: int,
        *,
        approved: bool = False,
        approval_tx: str | None = None,
        approved_at: float | None = None,
    ) -> Submission:
        """Record the order, and an approval made elsewhere (the trigger approves in deferrable mode)."""
        sub.order_id = int(order_id)
        sub.approval_tx = approval_tx or sub.approval_tx
        if approved and sub.phase is not Phase.COMPLETED:
            sub.phase, sub.approved_at = Phase.APPROVED, sub.approved_at or approved_at or time.time()
        elif sub.phase is Phase.SUBMITTED:
            sub.phase = Phase.ORDER_PLACED
        self.store.save(sub)
        return sub

    def approve(self, sub: Submission) -> Submission:
        """Approve the order unless the request is pinned (delegated) or it is approved already."""
        assert sub.order_id is not None
        if sub.phase in (Phase.APPROVED, Phase.COMPLETED):
            return sub
        self.log.info("Order placed: order %s for DO request %s", sub.order_id, sub.do_request_id)
        if sub.pinned:
            self.log.info("Order %s was delegated to the pinned node %s: no approval", sub.order_id, sub.node_address)
        else:
            sub.approval_tx = self.client.approve_order(sub.order_id)
        sub.phase, sub.approved_at = Phase.APPROVED, time.time()
        self.store.save(sub)
        return sub

    # ------------------------------------------------------------------ completion and result
    def is_closed(self, sub: Submission) -> bool:
        """Whether the submission's order closed already (a re-attaching try then needs no wait)."""
        return sub.order_id is not None and self.client.get_order_status(sub.order_id) == OrderStatus.CLOSED

    def completion_timeout_seconds(self, sub: Submission) -> float:
        return completion_timeout_for(sub.duration, self.completion_timeout)

    def await_completion(self, sub: Submission) -> None:
        """Wait for TASK_COMPLETED; CompletionTimeoutError (with the order's state) after the timeout."""
        assert sub.order_id is not None
        timeout = self.completion_timeout_seconds(sub)
        if not self.client.wait_closed(sub.order_id, sub.from_block, timeout, self.poll_interval):
            raise self.completion_timeout_error(sub)

    def completion_timeout_error(self, sub: Submission) -> CompletionTimeoutError:
        assert sub.order_id is not None and sub.do_request_id is not None
        approved = sub.phase == Phase.APPROVED  # our approval is mined: an OPEN read is a lagging replica
        order = (self.client.get_order_once_approved if approved else self.client.get_order)(sub.order_id)
        request = self.client.get_request_status(sub.do_request_id)
        waited = (
            f"completion_timeout={self.completion_timeout:g} s"
            if self.completion_timeout
            else f"the task's duration ({sub.duration} h) plus {COMPLETION_MARGIN_SECONDS // 60} min"
        )
        return CompletionTimeoutError(
            f"order {sub.order_id} (DO request {sub.do_request_id}) was not completed within {waited}: order status "
            f"{order.status_name}, request status {request.name}; the node may still deliver, and a retry of this "
            "task re-attaches to the order (nothing is paid again)"
        )

    def fetch_result(self, sub: Submission) -> TaskResult:
        """The verified result of the closed order (a task error is a result with ``success=False``). Bytes not
        readable yet are read until the order's processing deadline (approval + completion timeout) or for
        ``result_read_seconds``, whichever is later (the runner's rule)."""
        assert sub.order_id is not None
        salt, until = sub.challenge_salt, self._read_until(sub)
        return self._completed(sub, self.client.get_result(sub.order_id, challenge_salt=salt, read_until=until))

    def write_result(self, sub: Submission, into: ResultDestination) -> StoredResult:
        """:meth:`fetch_result`, streamed into ``into`` (storage) without holding the result in memory."""
        assert sub.order_id is not None
        salt, until = sub.challenge_salt, self._read_until(sub)
        return self._completed(sub, self.client.write_result(sub.order_id, into, challenge_salt=salt, read_until=until))

    def _read_until(self, sub: Submission) -> float | None:
        return sub.approved_at + self.completion_timeout_seconds(sub) if sub.approved_at else None

    def _completed(self, sub: Submission, result: _R) -> _R:
        sub.phase = Phase.COMPLETED
        self.store.save(sub)
        return result

    def resubmit(self, spec: TaskSpec, sub: Submission, fault: OperatorFaultError) -> Submission:
        """A confirmed operator fault: a new request, within ``max_resubmits``."""
        if isinstance(fault, ResultReplayError):
            raise fault
        if sub.resubmits >= self.max_resubmits:
            raise OperatorFaultError(f"{fault}; gave up after {sub.resubmits} resubmission(s) (max_resubmits)")
        self.log.warning(
            "Operator fault on order %s (%s); resubmitting (%s of %s)",
            sub.order_id,
            fault,
            sub.resubmits + 1,
            self.max_resubmits,
        )
        return self.submit(spec, resubmits=sub.resubmits + 1, previous=sub)

    # ------------------------------------------------------------------ the whole way, in this process
    def run_to_approval(self, spec: TaskSpec) -> Submission:
        """Submit (or re-attach) and wait here until the order is approved."""
        return self.approve_when_placed(self.attach_or_submit(spec))

    def approve_when_placed(self, sub: Submission) -> Submission:
        if sub.order_id is None:
            order_id = self.await_order(sub)
            if order_id is None:
                order_id = self.settle_order_timeout(sub)
            sub = self.order_placed(sub, order_id)
        return self.approve(sub)

    def run(self, spec: TaskSpec) -> TaskResult:
        """Submit (or re-attach), approve, wait for TASK_COMPLETED, verify; resubmit confirmed faults."""
        sub = self.run_to_approval(spec)
        while True:
            try:
                if sub.phase is not Phase.COMPLETED:
                    self.await_completion(sub)
                return self.fetch_result(sub)
            except ResultNotReadyError as not_yet:  # a close seen, then reorged away: wait again
                self.log.warning("%s; waiting again", not_yet)
            except OperatorFaultError as fault:
                sub = self.approve_when_placed(self.resubmit(spec, sub, fault))
