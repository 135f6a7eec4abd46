"""EthernityTaskSensor(start_from_trigger=True) and EthernityTaskResultTrigger: the trigger kwargs the scheduler
stores, rendering in the triggerer, ending the task there with the result, and resuming in a worker otherwise."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from unittest.mock import AsyncMock

import pytest
from airflow.triggers.base import TaskSuccessEvent

from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.protocol.events import OrderStatus
from airflow_provider_ethernity.sensors.ethernity import EthernityTaskSensor
from airflow_provider_ethernity.triggers.ethernity import EthernityTaskResultTrigger
from tests.unit.fakes import FakeClient, hooks_on, task_result
from tests.unit.triggers.test_ethernity_trigger import FakeWatcher

SALT = "ab" * 16
CLASSPATH = "airflow_provider_ethernity.triggers.ethernity.EthernityTaskResultTrigger"


def test_the_sensor_names_its_trigger_and_the_xcoms_to_render() -> None:
    sensor = EthernityTaskSensor(task_id="collect", submit_task_id="submit", start_from_trigger=True, timeout=900)
    args = sensor.start_trigger_args
    assert sensor.start_from_trigger and args.trigger_cls == CLASSPATH and args.next_method == "execute_complete"
    assert args.timeout == dt.timedelta(seconds=900)
    kwargs = args.trigger_kwargs
    assert kwargs["order_id"] == "{{ ti.xcom_pull(task_ids='submit', key='order_id', map_indexes=ti.map_index) }}"
    assert "key='challenge_salt'" in kwargs["challenge_salt"] and "key='from_block'" in kwargs["from_block"]
    assert kwargs["end_from_trigger"] is True and "challenge" not in kwargs  # no secret in the trigger row
    # the triggerer renders the sensor's template fields that are trigger kwargs and trigger attributes
    trigger = EthernityTaskResultTrigger(**kwargs)
    assert {f for f in sensor.template_fields if f in kwargs and hasattr(trigger, f)} == {
        "order_id", "challenge_salt", "from_block",
    }  # fmt: skip


def test_explicit_values_are_passed_as_they_are() -> None:
    sensor = EthernityTaskSensor(task_id="c", order_id=5, challenge_salt=SALT, start_from_trigger=True)
    kwargs = sensor.start_trigger_args.trigger_kwargs
    assert (kwargs["order_id"], kwargs["challenge_salt"], kwargs["from_block"]) == (5, SALT, 0)
    assert EthernityTaskSensor.start_from_trigger is False  # the class default is untouched


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"order_id": 5, "challenge": "raw", "start_from_trigger": True}, "not a raw challenge"),
        ({"order_id": 5, "challenge_salt": SALT, "deferrable": False, "start_from_trigger": True}, "deferrable"),
    ],
)
def test_what_cannot_start_in_the_triggerer_is_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        EthernityTaskSensor(task_id="c", **kwargs)


@pytest.fixture
def closed(mocker) -> FakeClient:
    client = FakeClient()
    client.place_order(client.add_request(), OrderStatus.CLOSED)  # order 1

    mocker.patch.object(EthernityHook, "afor_connection", AsyncMock(side_effect=hooks_on(client)))
    mocker.patch.object(EthernityHook, "aget_watcher", AsyncMock(return_value=FakeWatcher(closed=42)))
    return client


async def run(trigger) -> list:
    return [event async for event in trigger.run()]


async def test_rendered_values_are_parsed_and_the_task_ends_in_the_triggerer(closed: FakeClient, mocker) -> None:
    from airflow.sdk.execution_time.xcom import XCom

    aset = mocker.patch.object(XCom, "aset", AsyncMock())
    trigger = EthernityTaskResultTrigger(ethernity_conn_id="eth", order_id=" 1 ", from_block="12", challenge_salt=SALT)
    trigger.task_instance = SimpleNamespace(dag_id="d", task_id="collect", run_id="r", map_index=-1)
    [event] = await run(trigger)
    # the value is pushed as a worker pushes it (TaskSuccessEvent's own xcoms are stored encoded twice by Airflow)
    assert isinstance(event, TaskSuccessEvent) and event.xcoms is None
    aset.assert_awaited_once_with(key="return_value", value="result-of-1", dag_id="d", task_id="collect",
                                  run_id="r", map_index=-1)  # fmt: skip
    assert closed.result_calls == [(1, f"challenge-of-{SALT}")]
    assert (trigger.order_id, trigger.from_block) == (1, 12)


async def test_a_failed_task_resumes_in_a_worker(closed: FakeClient) -> None:
    closed.results[1] = [task_result(1, "boom", code=1, name="TASK_ERROR")]
    [event] = await run(EthernityTaskResultTrigger(ethernity_conn_id="eth", order_id=1, challenge_salt=SALT))
    assert not isinstance(event, TaskSuccessEvent) and event.payload == {"status": "completed", "order_id": 1,
                                                                         "block": 42}  # fmt: skip


async def test_without_end_from_trigger_the_worker_fetches_the_result(closed: FakeClient) -> None:
    trigger = EthernityTaskResultTrigger(ethernity_conn_id="eth", order_id=1, challenge_salt=SALT,
                                         end_from_trigger=False)  # fmt: skip
    [event] = await run(trigger)
    assert event.payload["status"] == "completed" and closed.result_calls == []


async def test_a_missing_xcom_is_named() -> None:
    trigger = EthernityTaskResultTrigger(ethernity_conn_id="eth", order_id="None", challenge_salt=SALT)
    with pytest.raises(ValueError, match="order_id='None'"):
        await run(trigger)


def test_serialization_round_trips() -> None:
    trigger = EthernityTaskResultTrigger(ethernity_conn_id="eth", order_id="{{ x }}", from_block=3, challenge_salt=SALT)
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert EthernityTaskResultTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_the_end_from_trigger_attribute_is_true_only_where_the_task_ends_there(mocker) -> None:
    """Airflow refuses to load a DAG with a task whose ``end_from_trigger`` is True while listeners are registered
    (OpenLineage, for one): a sensor that waits in a worker, or one under listeners, must not say True."""
    manager = mocker.patch("airflow.listeners.listener.get_listener_manager")
    manager.return_value.has_listeners = True
    assert EthernityTaskSensor(task_id="a", order_id=5, challenge_salt=SALT).end_from_trigger is False
    under_listeners = EthernityTaskSensor(task_id="b", order_id=5, challenge_salt=SALT, start_from_trigger=True)
    assert under_listeners.end_from_trigger is False
    assert under_listeners.start_trigger_args.trigger_kwargs["end_from_trigger"] is False
    manager.return_value.has_listeners = False
    assert EthernityTaskSensor(task_id="c", order_id=5, challenge_salt=SALT, start_from_trigger=True).end_from_trigger
