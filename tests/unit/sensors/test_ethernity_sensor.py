"""EthernityTaskSensor over the real hook with an in-memory client: poke, deferral, resume, XCom pulls, failures."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.operators.ethernity import EthernityTaskFailed
from airflow_provider_ethernity.protocol.events import OrderStatus
from airflow_provider_ethernity.sensors.ethernity import EthernityTaskSensor
from airflow_provider_ethernity.triggers.ethernity import EthernityTaskCompletedTrigger
from tests.airflow_context import RecordingTI, make_context
from tests.unit.fakes import FakeClient, task_result

SALT = "ab" * 16


@pytest.fixture
def client() -> FakeClient:
    client = FakeClient()
    rid = client.add_request()
    client.place_order(rid, OrderStatus.PROCESSING)  # order 1
    return client


def make_sensor(client: FakeClient, **kwargs) -> EthernityTaskSensor:
    kwargs.setdefault("order_id", 1)
    if "challenge" not in kwargs and "submit_task_id" not in kwargs:
        kwargs.setdefault("challenge_salt", SALT)
    sensor = EthernityTaskSensor(task_id="wait", **kwargs)
    hook = EthernityHook("ethernity_default")
    hook.__dict__["client"] = client
    hook.__dict__["settings"] = SimpleNamespace(network=client.network)
    sensor.__dict__["hook"] = hook
    return sensor


def test_poke_is_false_until_the_order_closes_then_returns_the_value(client: FakeClient) -> None:
    sensor = make_sensor(client)
    assert sensor.poke(make_context()) is False and client.result_calls == []
    client.set_order_status(1, OrderStatus.CLOSED)
    done = sensor.poke(make_context())
    assert isinstance(done, PokeReturnValue) and done.is_done and done.xcom_value == "result-of-1"
    assert client.result_calls == [(1, f"challenge-of-{SALT}")]  # re-derived from the salt


def test_an_explicit_challenge_is_used_as_is(client: FakeClient) -> None:
    client.set_order_status(1, OrderStatus.CLOSED)
    make_sensor(client, challenge="outside-challenge").poke(make_context())
    assert client.result_calls == [(1, "outside-challenge")]


def test_values_are_pulled_from_the_submitting_task(client: FakeClient) -> None:
    client.set_order_status(1, OrderStatus.CLOSED)
    ti = RecordingTI({("submit", "order_id"): 1, ("submit", "challenge_salt"): SALT, ("submit", "from_block"): 55})
    sensor = make_sensor(client, order_id="None", from_block="", submit_task_id="submit")
    assert sensor._resolve(make_context(ti=ti)) == (1, (SALT, None), 55)
    assert sensor.poke(make_context(ti=ti)).xcom_value == "result-of-1"


def test_explicit_values_win_over_the_submitting_tasks(client: FakeClient) -> None:
    ti = RecordingTI({("submit", "order_id"): 9, ("submit", "challenge_salt"): "other", ("submit", "from_block"): 3})
    sensor = make_sensor(client, order_id="1", challenge="c", from_block=7, submit_task_id="submit")
    assert sensor._resolve(make_context(ti=ti)) == (1, (None, "c"), 7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"order_id": -1}, r"order_id=-1 is not an order number"),
        ({"order_id": None, "submit_task_id": "submit"}, r"order_id=None is not an order number"),
        ({"submit_task_id": "submit", "challenge_salt": None}, "challenge_salt is missing"),
    ],
)
def test_unusable_values_are_named(client: FakeClient, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_sensor(client, **kwargs).poke(make_context())
    assert client.result_calls == []


def test_a_failed_task_fails_the_sensor_with_the_code_and_text(client: FakeClient) -> None:
    client.set_order_status(1, OrderStatus.CLOSED)
    client.results[1] = [task_result(1, "NameError: x", code=23, name="NAME_ERROR")]
    with pytest.raises(EthernityTaskFailed, match=r"order 1 failed with NAME_ERROR \(23\): NameError: x") as raised:
        make_sensor(client).poke(make_context())
    assert isinstance(raised.value, AirflowFailException)


def test_poke_mode_execute_returns_the_value(client: FakeClient) -> None:
    client.set_order_status(1, OrderStatus.CLOSED)
    assert make_sensor(client, deferrable=False).execute(make_context()) == "result-of-1"


def test_deferrable_execute_of_a_closed_order_does_not_defer(client: FakeClient) -> None:
    client.set_order_status(1, OrderStatus.CLOSED)
    assert make_sensor(client).execute(make_context()) == "result-of-1"


def test_deferrable_execute_defers_to_the_completed_trigger(client: FakeClient) -> None:
    sensor = make_sensor(client, from_block=40, poll_interval=4.0, timeout=600, ethernity_conn_id="c")
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(make_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, EthernityTaskCompletedTrigger) and deferred.value.method_name == "execute_complete"
    kwargs = trigger.serialize()[1]
    assert (kwargs["order_id"], kwargs["from_block"], kwargs["poll_interval"]) == (1, 40, 4.0)
    assert kwargs["ethernity_conn_id"] == "c" and kwargs["cancel_on_kill"] is False
    assert before + 600 <= kwargs["deadline"] <= time.time() + 600
    assert client.result_calls == []


def test_execute_complete_returns_the_result_of_a_completed_event(client: FakeClient) -> None:
    client.set_order_status(1, OrderStatus.CLOSED)
    value = make_sensor(client).execute_complete(make_context(), {"status": "completed", "order_id": 1, "block": 9})
    assert value == "result-of-1"


@pytest.mark.parametrize("bad", [None, {"status": "placed"}, "completed"])
def test_execute_complete_refuses_a_malformed_event(client: FakeClient, bad) -> None:
    with pytest.raises(ValueError, match="missing or malformed"):
        make_sensor(client).execute_complete(make_context(), bad)


def test_the_hook_is_built_from_the_connection_id() -> None:
    sensor = EthernityTaskSensor(task_id="s", order_id=1, challenge_salt=SALT, ethernity_conn_id="my_conn")
    assert isinstance(sensor.hook, EthernityHook) and sensor.hook.ethernity_conn_id == "my_conn"
    assert sensor.hook is sensor.hook


def test_a_sensor_timeout_names_the_order_status(client: FakeClient) -> None:
    from airflow.sdk.exceptions import AirflowSensorTimeout

    with pytest.raises(AirflowSensorTimeout, match=r"order 1 did not complete .*\(status PROCESSING\)"):
        make_sensor(client).execute_complete(make_context(), {"status": "timeout", "order_id": 1})
    assert client.result_calls == []
