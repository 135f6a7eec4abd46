"""TaskLifecycle over an in-memory protocol: write-ahead, re-attach decisions, allowance races, order timeout,
completion, result and resubmission. Every spend the lifecycle makes is checked against what was saved."""

from __future__ import annotations

import time

import pytest

from airflow_provider_ethernity.protocol.errors import (
    ChainError,
    CompletionTimeoutError,
    InsufficientFundsError,
    OperatorFaultError,
    OrderTimeoutError,
    ResultNotReadyError,
    ResultReplayError,
    ResultVerificationError,
)
from airflow_provider_ethernity.protocol.events import OrderStatus, RequestStatus
from airflow_provider_ethernity.protocol.lifecycle import (
    ALLOWANCE_RACE_ATTEMPTS,
    COMPLETION_MARGIN_SECONDS,
    TaskLifecycle,
    completion_timeout_for,
)
from airflow_provider_ethernity.protocol.resources import Resources
from airflow_provider_ethernity.protocol.submission import (
    FencedError,
    KeyValueSubmissionStore,
    Phase,
    Submission,
    TaskSpec,
)
from airflow_provider_ethernity.protocol.transactions import NonceTakenError, PendingTransactionError, RevertedError
from tests.unit.fakes import NODE, DictState, FakeClient, RecordingStore, task_result

PRICE_WEI = 10 * 10**18


def make_spec(code: str = "___etny_result___(1)", node: str = "", price: int = 10) -> TaskSpec:
    return TaskSpec(code, "input", Resources.from_value({"taskPrice": price}), "tz", node)


class WitnessStore(RecordingStore):
    """Also notes, at each save, how many transactions had been broadcast and whether the submit lock was held."""

    def __init__(self, client: FakeClient, **kwargs) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.broadcast_at_save: list[int] = []
        self.locked_at_save: list[bool] = []

    def save(self, submission) -> None:
        self.broadcast_at_save.append(len(self.client.sender.broadcast))
        self.locked_at_save.append(self.client.lock_held)
        super().save(submission)


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


def lifecycle(client: FakeClient, store=None, **kwargs) -> TaskLifecycle:
    return TaskLifecycle(client, store if store is not None else RecordingStore(), **kwargs)


# ------------------------------------------------------------------ submit and write-ahead
def test_submit_records_each_signed_spend_before_it_is_broadcast(client: FakeClient) -> None:
    store = WitnessStore(client)
    spec = make_spec()
    before = time.time()
    sub = lifecycle(client, store, order_wait_timeout=60).submit(spec)

    approve, request = client.sender.broadcast
    assert [approve.label, request.label] == ["approve", "_addDORequest"]
    # save 0: the fence (nothing signed); 1: the approve intent; 2: the request intent; 3: submitted
    assert store.phases == ["submitting", "submitting", "submitting", "submitted"]
    assert store.saved[0]["intent"] is None
    assert store.saved[1]["intent"]["tx_hash"] == approve.tx_hash
    assert store.saved[2]["intent"]["tx_hash"] == request.tx_hash
    assert store.broadcast_at_save[:3] == [0, 0, 1]  # each intent saved while its tx was not yet broadcast
    assert store.locked_at_save[:3] == [True, True, True]
    last = store.saved[-1]
    assert last["intent"] is None and last["request_tx"] == request.tx_hash and last["do_request_id"] == 1
    assert last["fingerprint"] == spec.fingerprint() and last["price"] == 10 and last["from_block"] == 100
    assert last["order_count_anchor"] == 0 and last["order_deadline"] >= before + 60
    assert sub.do_request_id == 1 and sub.phase is Phase.SUBMITTED
    # the request names the secret challenge derived from the submission's own salt; 10 tokens escrowed
    assert client.calls_by_hash[request.tx_hash].args[1] == f"challenge-of-{sub.challenge_salt}"
    assert client.requests[1]["price"] == 10 and client.allowance == 0


def test_submit_with_the_protocol_token_needs_no_allowance() -> None:
    client = FakeClient(token_is_protocol=True)
    lifecycle(client).submit(make_spec())
    assert client.sender.labels == ["_addDORequest"]


@pytest.mark.parametrize(("refuse_from", "sent"), [(0, []), (1, []), (2, ["approve"])])
def test_a_store_that_refuses_a_write_stops_the_try_before_that_spend(
    client: FakeClient, refuse_from: int, sent: list[str]
) -> None:
    with pytest.raises(FencedError):
        lifecycle(client, RecordingStore(refuse_from=refuse_from)).submit(make_spec())
    assert client.sender.labels == sent
    assert client.requests == {}


def test_a_superseded_try_on_the_airflow_store_sends_nothing(client: FakeClient) -> None:
    state = DictState()
    state.foreign_writer = True
    with pytest.raises(FencedError, match="another try owns the submission"):
        lifecycle(client, KeyValueSubmissionStore(state, "k")).submit(make_spec())
    assert client.sender.broadcast == []


@pytest.mark.parametrize(("good_writes", "sent"), [(0, []), (1, []), (2, ["approve"])])
def test_an_airflow_state_that_stops_taking_writes_stops_the_spends(client, good_writes, sent) -> None:
    state = DictState()
    state.fail_set, state.fail_set_after = ConnectionError("API server gone"), good_writes
    with pytest.raises(FencedError, match=r"could not be written \(ConnectionError\)"):
        lifecycle(client, KeyValueSubmissionStore(state, "k")).attach_or_submit(make_spec())
    assert client.sender.labels == sent and client.requests == {}


def test_a_try_that_finds_another_writers_record_under_the_lock_sends_nothing(client: FakeClient) -> None:
    store = RecordingStore()
    other = Submission(fingerprint="x", challenge_salt="s", price=10, duration=1)
    store.save(other)
    with pytest.raises(FencedError, match="another try of this task instance wrote its submission meanwhile"):
        lifecycle(client, store).submit(make_spec())  # this try believed there was no record
    assert client.sender.broadcast == [] and len(store.saved) == 1


def test_a_failed_preflight_sends_and_saves_nothing(client: FakeClient) -> None:
    client.prepare_error = InsufficientFundsError("wallet holds 0 ETNY, the task costs 10")
    store = RecordingStore()
    with pytest.raises(InsufficientFundsError, match="holds 0 ETNY"):
        lifecycle(client, store).attach_or_submit(make_spec())
    assert store.saved == [] and client.sender.broadcast == []


# ------------------------------------------------------------------ allowance race
def test_an_allowance_taken_by_a_concurrent_submission_is_approved_again(client: FakeClient) -> None:
    client.steal_allowance = 1
    sub = lifecycle(client).submit(make_spec())
    assert client.sender.labels == ["approve", "_addDORequest", "approve", "_addDORequest"]
    assert sub.do_request_id == 1 and list(client.requests) == [1]  # the reverted request moved no token


def test_the_allowance_race_gives_up_after_its_attempts(client: FakeClient) -> None:
    client.steal_allowance = ALLOWANCE_RACE_ATTEMPTS
    with pytest.raises(ChainError, match="reverted"):
        lifecycle(client).submit(make_spec())
    assert client.sender.labels == ["approve", "_addDORequest"] * ALLOWANCE_RACE_ATTEMPTS
    assert client.requests == {}


def test_a_mined_revert_is_retried_even_when_the_allowance_was_set_again_since(client: FakeClient) -> None:
    """The receipt says only "reverted", and by the time it is read another machine has approved anew, so the
    allowance looks sufficient (seen in CI: one of 10 two-machine tasks failed on a reverted _addDORequest)."""
    client.sender.receipt_failures["_addDORequest"] = [RevertedError("_addDORequest transaction 0xab reverted")]
    client.allowance = 10 * PRICE_WEI  # set again since by the other machine
    sub = lifecycle(client).submit(make_spec())
    assert client.sender.labels.count("_addDORequest") == 2 and sub.do_request_id == 1
    assert list(client.requests) == [1]


def test_a_request_refused_for_another_reason_is_raised_without_a_retry(client: FakeClient) -> None:
    client.sender.receipt_failures["_addDORequest"] = [ChainError("_addDORequest would revert: node is not registered")]
    client.allowance = 10 * PRICE_WEI
    with pytest.raises(ChainError, match="node is not registered"):
        lifecycle(client).submit(make_spec())
    assert client.sender.labels.count("_addDORequest") == 1 and client.requests == {}


def test_a_request_whose_nonce_was_taken_is_signed_again(client: FakeClient) -> None:
    client.sender.receipt_failures["_addDORequest"] = [NonceTakenError("nonce 1 was used by another transaction")]
    store = RecordingStore()
    sub = lifecycle(client, store).submit(make_spec())
    first, second = client.sender.broadcast[1:]
    assert client.sender.labels == ["approve", "_addDORequest", "_addDORequest"]
    assert first.tx_hash != second.tx_hash and sub.request_tx == second.tx_hash
    assert [s["intent"]["tx_hash"] for s in store.saved if s["intent"]][-1] == second.tx_hash


def test_a_nonce_taken_every_time_is_raised(client: FakeClient) -> None:
    client.sender.receipt_failures["_addDORequest"] = [NonceTakenError("taken")] * ALLOWANCE_RACE_ATTEMPTS
    with pytest.raises(NonceTakenError, match="taken"):
        lifecycle(client).submit(make_spec())
    assert client.sender.labels.count("_addDORequest") == ALLOWANCE_RACE_ATTEMPTS


def test_an_allowance_refusal_is_retried_even_when_the_allowance_was_set_again_since(client: FakeClient) -> None:
    """Another machine approved anew between the refusal and the check: the refusal's text decides (seen: one of
    50 two-machine tasks failed on 'insufficient allowance')."""
    client.sender.receipt_failures["_addDORequest"] = [
        ChainError("_addDORequest would revert: execution reverted: EthernityToken: insufficient allowance")
    ]
    sub = lifecycle(client).submit(make_spec())
    assert client.sender.labels.count("_addDORequest") == 2 and sub.do_request_id == 1


def test_a_revert_with_the_allowance_in_place_is_not_retried(client: FakeClient) -> None:
    client.sender.receipt_failures["_addDORequest"] = [ChainError("_addDORequest reverted: bad metadata")]
    with pytest.raises(ChainError, match="bad metadata"):
        lifecycle(client).submit(make_spec())
    assert client.sender.labels == ["approve", "_addDORequest"]


# ------------------------------------------------------------------ attach_or_submit decision table
def _submitted_record(client: FakeClient, spec: TaskSpec, **changes) -> RecordingStore:
    """A store holding what a first try left: a submitted request (on the fake chain)."""
    store = RecordingStore()
    sub = lifecycle(client, store).submit(spec)
    for key, value in changes.items():
        setattr(sub, key, value)
    store.save(sub)
    client.sender.broadcast.clear()
    return store


def test_no_record_submits(client: FakeClient) -> None:
    sub = lifecycle(client).attach_or_submit(make_spec())
    assert sub.phase is Phase.SUBMITTED and client.sender.labels == ["approve", "_addDORequest"]


def test_a_changed_task_cancels_the_old_available_request_then_submits(client: FakeClient) -> None:
    store = _submitted_record(client, make_spec("___etny_result___(1)"))
    changed = make_spec("___etny_result___(2)")
    sub = lifecycle(client, store).attach_or_submit(changed)
    assert client.cancelled == [1]
    assert client.get_request_status(1) is RequestStatus.CANCELED
    assert sub.do_request_id == 2 and sub.fingerprint == changed.fingerprint() and sub.resubmits == 0
    assert client.sender.labels == ["approve", "_addDORequest"]


def test_a_changed_task_submits_even_when_the_old_request_cannot_be_cancelled(client: FakeClient) -> None:
    store = _submitted_record(client, make_spec("___etny_result___(1)"))
    client.cancel_error = ChainError("RPC down")
    sub = lifecycle(client, store).attach_or_submit(make_spec("___etny_result___(2)"))
    assert sub.do_request_id == 2 and client.cancelled == []


def test_a_changed_task_leaves_a_booked_old_request_alone(client: FakeClient) -> None:
    store = _submitted_record(client, make_spec("___etny_result___(1)"))
    client.place_order(1)
    sub = lifecycle(client, store).attach_or_submit(make_spec("___etny_result___(2)"))
    assert client.cancelled == [] and sub.do_request_id == 2


@pytest.mark.parametrize("phase", [Phase.CANCELLED, Phase.SUBMITTING])
def test_a_changed_task_does_not_cancel_what_was_never_requested_or_is_cancelled(client, phase) -> None:
    store = RecordingStore()
    store.save(Submission(fingerprint="old", challenge_salt="s", price=10, duration=1, phase=phase))
    sub = lifecycle(client, store).attach_or_submit(make_spec())
    assert client.cancelled == [] and sub.do_request_id == 1


def test_a_try_killed_before_its_request_was_mined_resumes_it_by_hash(client: FakeClient) -> None:
    spec = make_spec()
    store = RecordingStore()
    client.sender.receipt_failures["_addDORequest"] = [PendingTransactionError("_addDORequest", "0xh", 1, 300)]
    with pytest.raises(PendingTransactionError):
        lifecycle(client, store).submit(spec)
    pending = client.sender.broadcast[-1]
    assert store.saved[-1]["phase"] == "submitting" and store.saved[-1]["intent"]["tx_hash"] == pending.tx_hash

    sub = lifecycle(client, store).attach_or_submit(spec)
    assert client.sender.resumed == [pending.tx_hash]
    assert client.sender.labels == ["approve", "_addDORequest"]  # nothing sent again
    assert sub.phase is Phase.SUBMITTED and sub.request_tx == pending.tx_hash and sub.do_request_id == 1
    assert store.saved[-1]["intent"] is None


def _killed_with_intent(client: FakeClient, spec: TaskSpec, label: str) -> RecordingStore:
    store = RecordingStore()
    client.sender.receipt_failures[label] = [PendingTransactionError(label, "0xh", 0, 300)]
    with pytest.raises(PendingTransactionError):
        lifecycle(client, store).submit(spec)
    client.sender.broadcast.clear()
    return store


def test_a_recorded_request_that_can_never_be_mined_is_submitted_again(client: FakeClient) -> None:
    spec = make_spec()
    store = _killed_with_intent(client, spec, "_addDORequest")
    lost = store.load().intent.tx_hash
    client.sender.known[lost] = False  # its nonce went to another transaction
    sub = lifecycle(client, store).attach_or_submit(spec)
    assert client.sender.labels == ["_addDORequest"] and sub.request_tx != lost and sub.do_request_id == 1


@pytest.mark.parametrize("error", [NonceTakenError("taken"), ChainError("reverted")])
def test_a_recorded_request_that_failed_on_chain_is_submitted_again(client: FakeClient, error) -> None:
    spec = make_spec()
    store = _killed_with_intent(client, spec, "_addDORequest")
    client.sender.receipt_failures["_addDORequest"] = [error]
    sub = lifecycle(client, store).attach_or_submit(spec)
    assert client.sender.labels == ["_addDORequest"] and sub.do_request_id == 1


def test_a_recorded_allowance_is_resumed_and_the_request_signed_anew(client: FakeClient) -> None:
    spec = make_spec()
    store = _killed_with_intent(client, spec, "approve")
    assert client.allowance == 0
    sub = lifecycle(client, store).attach_or_submit(spec)
    assert client.sender.labels == ["_addDORequest"]  # the resumed approve was mined: no second approve
    assert sub.do_request_id == 1 and client.allowance == 0


def test_a_record_stopped_before_signing_submits(client: FakeClient) -> None:
    spec = make_spec()
    store = RecordingStore()
    store.save(Submission(fingerprint=spec.fingerprint(), challenge_salt="s", price=10, duration=1, resubmits=1))
    sub = lifecycle(client, store).attach_or_submit(spec)
    assert sub.do_request_id == 1 and sub.resubmits == 1 and client.sender.resumed == []


def test_a_cancelled_record_submits_keeping_its_resubmit_count(client: FakeClient) -> None:
    spec = make_spec()
    store = _submitted_record(client, spec, phase=Phase.CANCELLED, resubmits=1)
    sub = lifecycle(client, store).attach_or_submit(spec)
    assert sub.do_request_id == 2 and sub.resubmits == 1 and client.sender.labels == ["approve", "_addDORequest"]


def test_reattach_to_a_request_still_waiting_for_a_node(client: FakeClient) -> None:
    spec = make_spec()
    store = _submitted_record(client, spec, order_deadline=1.0)
    sub = lifecycle(client, store, order_wait_timeout=50).attach_or_submit(spec)
    assert client.sender.broadcast == [] and sub.do_request_id == 1 and sub.phase is Phase.SUBMITTED
    assert store.saved[-1]["order_deadline"] > time.time() + 40  # a fresh order wait for this try


def test_reattach_to_a_cancelled_request_submits_anew(client: FakeClient) -> None:
    spec = make_spec()
    store = _submitted_record(client, spec)
    client.requests[1]["status"] = RequestStatus.CANCELED  # a reclaim cancelled it
    sub = lifecycle(client, store).attach_or_submit(spec)
    assert sub.do_request_id == 2 and client.sender.labels == ["approve", "_addDORequest"]


@pytest.mark.parametrize(
    ("record_phase", "order_status", "phase"),
    [
        (Phase.SUBMITTED, OrderStatus.OPEN, Phase.ORDER_PLACED),
        (Phase.ORDER_PLACED, OrderStatus.OPEN, Phase.ORDER_PLACED),
        (Phase.SUBMITTED, OrderStatus.PROCESSING, Phase.APPROVED),
        (Phase.ORDER_PLACED, OrderStatus.PROCESSING, Phase.APPROVED),
        (Phase.SUBMITTED, OrderStatus.CLOSED, Phase.APPROVED),
        (Phase.APPROVED, OrderStatus.CLOSED, Phase.APPROVED),
        (Phase.COMPLETED, OrderStatus.CLOSED, Phase.COMPLETED),
    ],
)
def test_reattach_to_an_order(client: FakeClient, record_phase, order_status, phase) -> None:
    spec = make_spec()
    store = _submitted_record(client, spec, phase=record_phase)
    client.place_order(1, order_status)
    sub = lifecycle(client, store).attach_or_submit(spec)
    assert client.sender.broadcast == [] and sub.order_id == 1 and sub.phase is phase
    assert store.saved[-1]["order_id"] == 1


def test_reattach_to_a_cancelled_order_submits_anew(client: FakeClient) -> None:
    spec = make_spec()
    store = _submitted_record(client, spec, phase=Phase.ORDER_PLACED, order_id=None)
    order_id = client.place_order(1, OrderStatus.CANCELED)
    store.saved[-1]["order_id"] = order_id
    sub = lifecycle(client, store).attach_or_submit(spec)
    assert sub.do_request_id == 2 and sub.order_id is None and client.sender.labels[-1] == "_addDORequest"


# ------------------------------------------------------------------ order wait, timeout, approval
def test_order_timeout_cancels_the_request_and_records_it(client: FakeClient) -> None:
    client.auto_place = False
    store = RecordingStore()
    lc = lifecycle(client, store, order_wait_timeout=5)
    with pytest.raises(OrderTimeoutError, match=r"DO request 1 within order_wait_timeout=5 s.*\(10 ETNY\) returned"):
        lc.run_to_approval(make_spec())
    assert client.cancelled == [1] and store.saved[-1]["phase"] == "cancelled"
    assert client.approved == []


def test_an_order_booked_at_the_timeouts_edge_carries_on(client: FakeClient) -> None:
    client.auto_place, client.place_at_settle = False, True
    sub = lifecycle(client).run_to_approval(make_spec())
    assert client.cancelled == [] and sub.order_id == 1 and sub.phase is Phase.APPROVED
    assert client.approved == [1] and sub.approval_tx == "0xapprove1"


def test_a_pinned_request_is_not_approved(client: FakeClient) -> None:
    store = RecordingStore()
    sub = lifecycle(client, store).run_to_approval(make_spec(node=NODE))
    assert client.approved == [] and sub.approval_tx is None and sub.phase is Phase.APPROVED
    assert store.saved[-1]["phase"] == "approved" and store.saved[-1]["node_address"] == NODE


def test_approve_is_idempotent_once_approved(client: FakeClient) -> None:
    lc = lifecycle(client)
    sub = lc.run_to_approval(make_spec())
    assert lc.approve(sub) is sub and client.approved == [1]


def test_order_placed_records_an_approval_made_elsewhere(client: FakeClient) -> None:
    store = RecordingStore()
    lc = lifecycle(client, store)
    sub = lc.submit(make_spec())
    lc.order_placed(sub, 7)
    assert sub.phase is Phase.ORDER_PLACED and sub.order_id == 7
    lc.order_placed(sub, 7, approved=True, approval_tx="0xabc")
    assert store.saved[-1]["phase"] == "approved" and store.saved[-1]["approval_tx"] == "0xabc"
    sub.phase = Phase.COMPLETED
    lc.order_placed(sub, 7, approved=True)
    assert sub.phase is Phase.COMPLETED and sub.approval_tx == "0xabc"


# ------------------------------------------------------------------ completion and result
def test_completion_timeout_names_the_order_and_request_state(client: FakeClient) -> None:
    client.auto_close = False
    lc = lifecycle(client, completion_timeout=30)
    sub = lc.run_to_approval(make_spec())
    expected = (
        r"order 1 \(DO request 1\) was not completed within completion_timeout=30 s: order status PROCESSING, "
        r"request status BOOKED"
    )
    with pytest.raises(CompletionTimeoutError, match=expected):
        lc.await_completion(sub)
    assert not lc.is_closed(sub)


def test_default_completion_timeout_is_the_duration_plus_the_margin(client: FakeClient) -> None:
    client.auto_close = False
    lc = lifecycle(client)
    sub = lc.run_to_approval(make_spec())
    assert lc.completion_timeout_seconds(sub) == 3600 + COMPLETION_MARGIN_SECONDS
    assert completion_timeout_for(2, 10.0) == 10.0
    with pytest.raises(CompletionTimeoutError, match=r"the task's duration \(1 h\) plus 15 min"):
        lc.run(make_spec())


def test_run_returns_the_verified_result_and_records_completion(client: FakeClient) -> None:
    store = RecordingStore()
    result = lifecycle(client, store).run(make_spec())
    assert result.value == "result-of-1"
    salt = store.saved[-1]["challenge_salt"]
    assert client.result_calls == [(1, f"challenge-of-{salt}")]
    assert store.saved[-1]["phase"] == "completed" and client.approved == [1]
    assert client.sender.labels == ["approve", "_addDORequest"]


def test_an_unreadable_result_is_read_until_the_orders_processing_deadline(client: FakeClient) -> None:
    """The runner reads a result until max(processing deadline, closed + 120 s): the lifecycle passes the
    deadline (approval + completion timeout), from the approval it recorded, and keeps it across re-attach."""
    before = time.time()
    store = RecordingStore()
    lifecycle(client, store, completion_timeout=3600).run(make_spec())
    approved_at = store.saved[-1]["approved_at"]
    assert before <= approved_at <= time.time()
    assert client.read_untils == [pytest.approx(approved_at + 3600)]
    # a try that resumes after the trigger approved: the first approval time is kept
    sub = Submission.from_dict(store.saved[-1])
    sub.phase, sub.approved_at = Phase.ORDER_PLACED, 0.0
    again = lifecycle(client, RecordingStore())
    in_trigger = again.order_placed(Submission.from_dict(sub.to_dict()), 1, approved=True, approved_at=123.0)
    assert in_trigger.approved_at == 123.0  # the trigger's approval time, not the resume's
    first = again.order_placed(sub, 1, approved=True)
    assert first.approved_at > 0
    assert again.order_placed(first, 1, approved=True).approved_at == first.approved_at


def test_a_record_without_an_approval_time_reads_for_the_default_window(client: FakeClient) -> None:
    spec = make_spec()
    store = _submitted_record(client, spec, phase=Phase.COMPLETED)
    client.place_order(1, OrderStatus.CLOSED)
    lifecycle(client, store).run(spec)
    assert client.read_untils == [None]  # the client reads for result_read_seconds from now


def test_run_waits_again_when_the_close_was_reorged_away(client: FakeClient) -> None:
    client.results[1] = [ResultNotReadyError("order 1 is PROCESSING, not CLOSED")]
    result = lifecycle(client).run(make_spec())
    assert result.value == "result-of-1"
    assert client.waits.count(("closed", 1)) == 2 and len(client.result_calls) == 2


def test_run_of_a_reattached_completed_record_fetches_without_waiting(client: FakeClient) -> None:
    spec = make_spec()
    store = _submitted_record(client, spec, phase=Phase.COMPLETED)
    client.place_order(1, OrderStatus.CLOSED)
    assert lifecycle(client, store).run(spec).value == "result-of-1"
    assert ("closed", 1) not in client.waits and client.sender.broadcast == []


def test_run_resubmits_a_confirmed_operator_fault_once(client: FakeClient) -> None:
    client.results[1] = [OperatorFaultError("order 1 failed on the operator side: ESR_RELAY_TIMEOUT (37)")]
    store = RecordingStore()
    result = lifecycle(client, store, max_resubmits=1).run(make_spec())
    assert result.value == "result-of-2"
    assert client.sender.labels.count("_addDORequest") == 2 and client.approved == [1, 2]
    assert store.saved[-1]["resubmits"] == 1 and store.saved[-1]["do_request_id"] == 2


def test_run_gives_up_after_max_resubmits(client: FakeClient) -> None:
    client.results[1] = [ResultVerificationError("order 1: bad signer")]
    with pytest.raises(OperatorFaultError, match=r"order 1: bad signer; gave up after 0 resubmission\(s\)"):
        lifecycle(client, max_resubmits=0).run(make_spec())
    assert client.sender.labels.count("_addDORequest") == 1


def test_a_replayed_result_is_never_resubmitted(client: FakeClient) -> None:
    replay = ResultReplayError("order 1: the result belongs to order 9")
    client.results[1] = [replay]
    with pytest.raises(ResultReplayError) as raised:
        lifecycle(client, max_resubmits=3).run(make_spec())
    assert raised.value is replay and client.sender.labels.count("_addDORequest") == 1


def test_a_task_error_is_a_result_not_a_fault(client: FakeClient) -> None:
    client.results[1] = [task_result(1, "ZeroDivisionError", code=30, name="ZERO_DIVISION_ERROR")]
    result = lifecycle(client).run(make_spec())
    assert not result.success and result.task_code == 30
    assert client.sender.labels.count("_addDORequest") == 1


def test_the_logger_defaults_to_the_clients(client: FakeClient) -> None:
    assert lifecycle(client).log is client.log


def test_a_changed_task_does_not_orphan_the_escrow_of_a_request_in_flight(client: FakeClient) -> None:
    old_spec = make_spec("___etny_result___(1)")
    store = _killed_with_intent(client, old_spec, "_addDORequest")
    client.mine(store.load().intent.tx_hash, "_addDORequest")  # the killed try's request lands anyway
    new = lifecycle(client, store).attach_or_submit(make_spec("___etny_result___(2)"))
    orphans = [
        rid for rid, r in client.requests.items() if r["status"] is RequestStatus.AVAILABLE and rid != new.do_request_id
    ]
    assert orphans == [], f"DO request(s) {orphans} keep their escrow with no task holding them"
