"""EthernityRunTaskOperator over the real hook and lifecycle with an in-memory client: the sync and deferrable
paths, every resume event, XComs, validation and on_kill."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import SimpleNamespace

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred

from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.operators.ethernity import STATE_KEY, EthernityRunTaskOperator, EthernityTaskFailed
from airflow_provider_ethernity.protocol.errors import (
    ChainError,
    CompletionTimeoutError,
    OperatorFaultError,
    OrderTimeoutError,
    ResultNotReadyError,
)
from airflow_provider_ethernity.protocol.events import OrderStatus, RequestStatus
from airflow_provider_ethernity.protocol.submission import FencedError, MemorySubmissionStore
from airflow_provider_ethernity.triggers.ethernity import EthernityTaskTrigger
from tests.airflow_context import RecordingTI, make_context
from tests.unit.fakes import NODE, DictState, FakeClient, task_result

CODE = "___etny_result___(41 + 1)"
REQUEST_LINK, ORDER_LINK = "_link_EthernityRequestLink", "_link_EthernityOrderLink"


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def state() -> DictState:
    return DictState()


@pytest.fixture
def ti() -> RecordingTI:
    return RecordingTI()


@pytest.fixture
def context(state: DictState, ti: RecordingTI) -> dict:
    return make_context(state, ti)


def make_operator(client: FakeClient, **kwargs) -> EthernityRunTaskOperator:
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("resources", {"taskPrice": 10})
    kwargs.setdefault("dag", DAG(dag_id="unit", schedule=None))  # a DAG to look for mapped dependants in
    op = EthernityRunTaskOperator(task_id="run", code=CODE, input_data={"n": 1}, **kwargs)
    hook = EthernityHook("ethernity_default")
    hook.__dict__["client"] = client
    hook.__dict__["settings"] = SimpleNamespace(network=client.network)
    op.__dict__["hook"] = hook
    return op


def record(state: DictState) -> dict:
    return state.data[STATE_KEY]


# ------------------------------------------------------------------ sync path
def test_sync_run_returns_the_result_and_publishes_public_ids_only(client, state, ti, context) -> None:
    result = make_operator(client).execute(context)
    assert result == "result-of-1"
    request_tx = client.sender.broadcast[-1].tx_hash
    assert ti.xcoms["do_request_id"] == 1 and ti.xcoms["tx_hash"] == request_tx
    assert ti.xcoms["challenge_salt"] == record(state)["challenge_salt"] and len(ti.xcoms["challenge_salt"]) == 32
    assert ti.xcoms["from_block"] == 100 and ti.xcoms["order_id"] == 1
    assert ti.xcoms["result_cid"] == "bafyresult1" and ti.xcoms["task_code_name"] == "SUCCESS"
    assert not any("challenge" in k and k != "challenge_salt" for k in ti.xcoms)
    assert ti.xcoms[REQUEST_LINK] == f"https://explorer.test/tx/{request_tx}"
    assert ti.xcoms[ORDER_LINK] == "https://explorer.test/tx/0xapprove1"
    assert record(state)["phase"] == "completed" and record(state)["approval_tx"] == "0xapprove1"
    # the enclave gets the input JSON-encoded, and the challenge derived from the recorded salt
    assert client.prepared[0].input_data == '{"n": 1}'
    assert client.result_calls == [(1, f"challenge-of-{record(state)['challenge_salt']}")]


def test_sync_run_without_waiting_returns_the_approved_order(client, state, ti, context) -> None:
    assert make_operator(client, wait_for_completion=False).execute(context) == {"order_id": 1, "do_request_id": 1}
    assert client.approved == [1] and client.result_calls == [] and ("closed", 1) not in client.waits
    assert ti.xcoms["order_id"] == 1 and record(state)["phase"] == "approved"


def test_a_task_error_fails_without_retries(client, ti, context) -> None:
    client.results[1] = [task_result(1, "division by zero", code=30, name="ZERO_DIVISION_ERROR")]
    with pytest.raises(EthernityTaskFailed, match=r"order 1 failed with ZERO_DIVISION_ERROR \(30\): division by zero"):
        make_operator(client).execute(context)
    assert issubclass(EthernityTaskFailed, AirflowFailException)
    assert ti.xcoms["task_code_name"] == "ZERO_DIVISION_ERROR" and client.sender.labels.count("_addDORequest") == 1


def test_sync_run_waits_again_after_a_reorged_close(client, context) -> None:
    client.results[1] = [ResultNotReadyError("order 1 is PROCESSING, not CLOSED")]
    assert make_operator(client).execute(context) == "result-of-1"
    assert len(client.result_calls) == 2 and client.sender.labels.count("_addDORequest") == 1


def test_sync_run_resubmits_an_operator_fault_and_publishes_the_new_request(client, state, ti, context) -> None:
    client.results[1] = [OperatorFaultError("order 1 failed on the operator side: CAS_ATTESTATION_FAULT (40)")]
    assert make_operator(client, max_resubmits=1).execute(context) == "result-of-2"
    assert ti.xcoms["do_request_id"] == 2 and ti.xcoms["order_id"] == 2
    assert record(state)["resubmits"] == 1 and client.approved == [1, 2]


def test_sync_run_gives_up_when_no_resubmit_is_allowed(client, context) -> None:
    client.results[1] = [OperatorFaultError("SESSION_RELAY_FAULT (39)")]
    with pytest.raises(OperatorFaultError, match=r"gave up after 0 resubmission"):
        make_operator(client, max_resubmits=0).execute(context)


def test_a_retry_reattaches_without_paying_again(client, state, context) -> None:
    client.auto_close = False
    with pytest.raises(CompletionTimeoutError):
        make_operator(client, completion_timeout=5).execute(context)
    client.auto_close = True
    retry_ti = RecordingTI()
    assert make_operator(client).execute(make_context(state, retry_ti)) == "result-of-1"
    assert client.sender.labels == ["approve", "_addDORequest"] and client.approved == [1]
    assert retry_ti.xcoms["do_request_id"] == 1 and retry_ti.xcoms["order_id"] == 1  # published again


def test_a_retry_of_a_closed_order_fetches_at_once(client, state, context) -> None:
    client.auto_close = False
    with pytest.raises(CompletionTimeoutError):
        make_operator(client).execute(context)
    client.set_order_status(1, OrderStatus.CLOSED)
    assert make_operator(client, deferrable=True).execute(make_context(state)) == "result-of-1"


def test_without_a_task_state_store_the_operator_keeps_its_record_in_memory(client) -> None:
    op = make_operator(client, wait_for_completion=False)
    ctx = make_context(None)
    assert op._state(ctx) is op._state(ctx) and isinstance(op._state(ctx), MemorySubmissionStore)
    op.execute(ctx)
    op.execute(make_context(None))  # the same operator object again: re-attaches from memory
    assert client.sender.labels.count("_addDORequest") == 1


# ------------------------------------------------------------------ deferrable path
def test_deferrable_run_defers_once_with_the_trigger_kwargs(client, state, context) -> None:
    op = make_operator(client, deferrable=True, poll_interval=3.0)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, EthernityTaskTrigger) and deferred.value.method_name == "execute_complete"
    assert trigger.serialize()[1] == {
        "ethernity_conn_id": "ethernity_default",
        "from_block": 100,
        "poll_interval": 3.0,
        "deadline": None,
        "do_request_id": 1,
        "cancel_on_kill": True,
        "order_deadline": record(state)["order_deadline"],
        "completion_timeout": 3600.0 + 900,
        "approve": True,
        "wait_for_completion": True,
        "order_id": None,
        "order_count_anchor": 0,
        "end_from_trigger": True,  # no listener, Airflow's own XCom table: the trigger ends the task
        "challenge_salt": record(state)["challenge_salt"],  # public; the challenge itself needs the key
        "request_tx": record(state)["request_tx"],
    }
    assert client.waits == [] and client.approved == []  # the waits and the approval are the trigger's


def test_deferrable_pinned_task_needs_no_approval(client, context) -> None:
    op = make_operator(client, deferrable=True, node_address=NODE, completion_timeout=60, wait_for_completion=False)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    kwargs = deferred.value.trigger.serialize()[1]
    assert kwargs["approve"] is False and kwargs["completion_timeout"] == 60.0
    assert kwargs["wait_for_completion"] is False


def test_deferrable_retry_of_an_approved_order_defers_with_the_order(client, state, context) -> None:
    make_operator(client, wait_for_completion=False).execute(context)  # approved, not completed
    with pytest.raises(TaskDeferred) as deferred:
        make_operator(client, deferrable=True).execute(make_context(state))
    kwargs = deferred.value.trigger.serialize()[1]
    assert kwargs["order_id"] == 1 and kwargs["approve"] is False and kwargs["cancel_on_kill"] is False


def _deferred(client: FakeClient, context: dict, **kwargs) -> EthernityRunTaskOperator:
    op = make_operator(client, deferrable=True, **kwargs)
    with pytest.raises(TaskDeferred):
        op.execute(context)
    return op


def _trigger_ran(client: FakeClient, close: bool = True) -> None:
    """What the trigger did in the triggerer: the node placed order 1, the trigger approved it, it closed."""
    client.place_order(1)
    client.approve_order(1)
    if close:
        client.set_order_status(1, OrderStatus.CLOSED)


def event(status: str, **values) -> dict:
    return {"status": status, "do_request_id": 1, "order_id": 1, "approval_tx": "0xapprove1", **values}


def test_completed_event_delivers_the_result(client, state, ti, context) -> None:
    op = _deferred(client, context)
    _trigger_ran(client)
    resumed_ti = RecordingTI()
    assert op.execute_complete(make_context(state, resumed_ti), event("completed")) == "result-of-1"
    assert resumed_ti.xcoms["order_id"] == 1 and resumed_ti.xcoms["do_request_id"] == 1
    assert resumed_ti.xcoms[ORDER_LINK] == "https://explorer.test/tx/0xapprove1"
    assert record(state)["phase"] == "completed" and record(state)["approval_tx"] == "0xapprove1"
    assert client.sender.labels.count("_addDORequest") == 1


def test_approved_event_without_waiting_returns_the_order(client, state, context) -> None:
    op = _deferred(client, context, wait_for_completion=False)
    _trigger_ran(client, close=False)
    assert op.execute_complete(make_context(state), event("approved")) == {"order_id": 1, "do_request_id": 1}
    assert record(state)["phase"] == "approved" and client.result_calls == []


def test_cancelled_event_records_the_cancellation(client, state, context) -> None:
    op = _deferred(client, context, order_wait_timeout=30)
    client.cancel_task(1)
    with pytest.raises(OrderTimeoutError, match=r"DO request 1 within order_wait_timeout=30 s.*\(10 ETNY\) returned"):
        op.execute_complete(make_context(state), {"status": "cancelled", "do_request_id": 1})
    assert record(state)["phase"] == "cancelled"


def test_error_event_fails_with_the_triggers_message(client, state, context) -> None:
    op = _deferred(client, context)
    with pytest.raises(AirflowException, match=r"DO request 1: approval failed: ChainError: reverted"):
        op.execute_complete(
            make_context(state), event("error", approval_tx=None, message="approval failed: ChainError: reverted")
        )


def test_timeout_event_raises_the_completion_timeout_with_the_order_state(client, state, context) -> None:
    op = _deferred(client, context, completion_timeout=120)
    _trigger_ran(client, close=False)
    with pytest.raises(CompletionTimeoutError, match=r"within completion_timeout=120 s: order status PROCESSING"):
        op.execute_complete(make_context(state), event("timeout"))
    assert record(state)["order_id"] == 1 and record(state)["phase"] == "approved"


def test_completed_event_with_an_operator_fault_resubmits_and_defers_again(client, state, context) -> None:
    op = _deferred(client, context)
    _trigger_ran(client)
    client.results[1] = [OperatorFaultError("ESR_RELAY_TIMEOUT (37)")]
    resumed_ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute_complete(make_context(state, resumed_ti), event("completed"))
    kwargs = deferred.value.trigger.serialize()[1]
    assert kwargs["do_request_id"] == 2 and kwargs["order_id"] is None and kwargs["approve"] is True
    assert resumed_ti.xcoms["do_request_id"] == 2 and record(state)["resubmits"] == 1


def test_completed_event_that_is_not_readable_yet_waits_again(client, state, context) -> None:
    op = _deferred(client, context)
    _trigger_ran(client, close=False)  # the close the trigger saw was reorged away
    with pytest.raises(TaskDeferred) as deferred:
        op.execute_complete(make_context(state), event("completed"))
    kwargs = deferred.value.trigger.serialize()[1]
    assert (kwargs["do_request_id"], kwargs["order_id"], kwargs["approve"]) == (1, 1, False)
    assert client.sender.labels.count("_addDORequest") == 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (None, "missing or not a dict: None"),
        ({"status": "placed", "do_request_id": 1}, "malformed"),
        ({"status": "completed"}, "malformed"),
        ({"status": "completed", "do_request_id": 1, "order_id": "x"}, "malformed"),
    ],
)
def test_a_missing_or_malformed_event_is_an_error(client, state, context, bad, message) -> None:
    op = _deferred(client, context)
    with pytest.raises(ValueError, match=message):
        op.execute_complete(make_context(state), bad)


def test_resume_without_a_record_is_fenced(client) -> None:
    op = make_operator(client, deferrable=True)
    with pytest.raises(FencedError, match="without a submission record"):
        op.execute_complete(make_context(DictState()), event("completed"))
    assert client.result_calls == []


def test_a_stale_event_for_another_request_is_fenced(client, state, context) -> None:
    op = _deferred(client, context)
    with pytest.raises(FencedError, match=r"event is for DO request 9.*submission is DO request 1: a stale event"):
        op.execute_complete(make_context(state), event("completed", do_request_id=9))
    assert client.result_calls == []


def test_resume_survives_dropped_kwargs(client, state, context) -> None:
    op = _deferred(client, context)
    _trigger_ran(client)
    assert op.execute_complete(make_context(state), event=event("completed"), unexpected="x") == "result-of-1"


# ------------------------------------------------------------------ validation, hook, on_kill
def test_code_that_looks_like_an_unrendered_path_is_refused(client, context) -> None:
    op = make_operator(client)
    op.code = "scripts/task.py"
    with pytest.raises(FileNotFoundError, match=r"code='scripts/task.py' looks like the path of a \.py file"):
        op.execute(context)
    assert client.sender.broadcast == []


def test_resources_as_json_string_and_bad_json(client, context) -> None:
    op = make_operator(client, resources='{"taskPrice": 4}', wait_for_completion=False)
    op.execute(context)
    assert client.prepared[0].resources.taskPrice == 4
    bad = make_operator(FakeClient(), resources="{{ params.res }}")
    bad.task_resources = "{not json"
    with pytest.raises(ValueError, match=r"resources='\{not json' is not a dict or JSON object"):
        bad.execute(make_context(DictState()))


def test_templated_node_address_is_checked_after_rendering(client, context) -> None:
    op = make_operator(client, node_address="{{ params.node }}")
    op.node_address = "0x1234"
    with pytest.raises(Exception, match="node_address"):
        op.execute(context)
    assert client.sender.broadcast == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"completion_timeout": 0}, "completion_timeout=0 is invalid"),
        ({"poll_interval": True}, "poll_interval=True is invalid"),
        ({"max_resubmits": True}, "max_resubmits=True is invalid"),
        ({"max_resubmits": 11}, "max_resubmits=11 is invalid"),
    ],
)
def test_invalid_numbers_fail_at_construction(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        EthernityRunTaskOperator(task_id="t", code=CODE, **kwargs)


def test_a_missing_code_file_names_the_parameter(tmp_path) -> None:
    import jinja2

    op = EthernityRunTaskOperator(task_id="t", code="missing_task.py")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(tmp_path)))
    with pytest.raises(FileNotFoundError, match=r"code='missing_task.py': the file was not found"):
        op.render_template_fields({}, env)


def test_a_code_file_is_read_and_rendered(tmp_path) -> None:
    import jinja2

    (tmp_path / "task.py").write_text("___etny_result___({{ params.n }})")
    op = EthernityRunTaskOperator(task_id="t", code="task.py")
    op.render_template_fields({"params": {"n": 5}}, jinja2.Environment(loader=jinja2.FileSystemLoader(str(tmp_path))))
    assert op.code == "___etny_result___(5)"


def test_the_hook_is_built_once_from_the_connection_id() -> None:
    op = EthernityRunTaskOperator(task_id="t", code=CODE, ethernity_conn_id="my_conn")
    assert isinstance(op.hook, EthernityHook) and op.hook.ethernity_conn_id == "my_conn" and op.hook is op.hook


def test_on_kill_cancels_an_unbooked_request(client, context) -> None:
    op = _deferred(client, context)
    op.on_kill()
    assert client.cancelled == [1] and client.get_request_status(1) is RequestStatus.CANCELED


def test_on_kill_leaves_a_booked_request_and_nothing_submitted_alone(client, context) -> None:
    make_operator(client).on_kill()  # nothing submitted
    op = make_operator(client, wait_for_completion=False)
    op.execute(context)
    op.on_kill()
    assert client.cancelled == []


def test_on_kill_never_raises(client, context, capsys) -> None:
    op = _deferred(client, context)
    client.cancel_error = ChainError("RPC down")
    capsys.readouterr()
    op.on_kill()
    assert client.cancelled == [] and "Could not cancel DO request 1: RPC down" in capsys.readouterr().out


class LazySeq(Sequence):
    def __init__(self, items):
        self.items = items

    def __getitem__(self, i):
        return self.items[i]

    def __len__(self):
        return len(self.items)


class LazyMap(Mapping):
    def __getitem__(self, k):
        return {"a": 1}[k]

    def __iter__(self):
        return iter(["a"])

    def __len__(self):
        return 1


def test_lazy_xcom_sequences_and_mappings_are_encoded_as_json(client, context) -> None:
    from airflow_provider_ethernity.operators.ethernity import _encode_input

    assert _encode_input(LazySeq([1, LazyMap()])) == '[1, {"a": 1}]'
    assert _encode_input(None) is None


@pytest.mark.parametrize("status", ["completed", "approved", "timeout"])
def test_an_event_without_its_order_is_a_malformed_event(client, state, context, status) -> None:
    op = _deferred(client, context)
    with pytest.raises(ValueError, match="malformed"):
        op.execute_complete(make_context(state), {"status": status, "do_request_id": 1})


def test_a_template_rendered_to_text_inside_input_data_is_warned_about(capsys) -> None:
    """``"{{ params.stopwords }}"`` inside a dict renders to ``"['the', 'over']"`` without native rendering."""
    from airflow.sdk import DAG, Param

    with DAG("text_rendering", params={"stopwords": Param(["the", "over"])}) as dag:
        op = EthernityRunTaskOperator(task_id="t", code="x", input_data={"words": "{{ params.stopwords }}"})
    op.render_template_fields({"params": dag.params.dump()})
    assert op.input_data == {"words": "['the', 'over']"}
    capsys.readouterr()
    op._warn_native_rendering()
    out = capsys.readouterr().out
    assert "input_data['words'] is the string" in out and "render_template_as_native_obj=True" in out

    with DAG("native_rendering", params={"stopwords": Param(["the"])}, render_template_as_native_obj=True) as dag:
        native = EthernityRunTaskOperator(task_id="t", code="x", input_data={"words": "{{ params.stopwords }}"})
    native.render_template_fields({"params": dag.params.dump()})
    assert native.input_data == {"words": ["the"]}
    native._warn_native_rendering()
    plain = EthernityRunTaskOperator(task_id="p", code="x", input_data={"json": '["the"]', "text": "[not python"})
    plain._warn_native_rendering()  # JSON text and plain strings are fine
    assert "render_template_as_native_obj" not in capsys.readouterr().out
