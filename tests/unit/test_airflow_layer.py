"""Operator, sensor and trigger behaviour that needs no chain: validation, serialization, imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator
from airflow_provider_ethernity.protocol.errors import ResourceValidationError
from airflow_provider_ethernity.sensors.ethernity import EthernityTaskSensor
from airflow_provider_ethernity.triggers.ethernity import EthernityOrderPlacedTrigger, EthernityTaskCompletedTrigger
from tests.airflow_context import make_context

KEY = "0x" + "ab" * 32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resources": {"cpu": 300}}, r"resources\.cpu.*1 to 255"),
        ({"resources": {"duration": 0}}, r"resources\.duration.*1 to 65535"),
        ({"resources": {"gpu": 1}}, r"gpu"),
        ({"max_resubmits": -1}, r"max_resubmits=-1.*0 to 10"),
        ({"poll_interval": 0}, r"poll_interval=0"),
        ({"order_wait_timeout": -5}, r"order_wait_timeout=-5"),
        ({"node_address": "0x1234"}, r"node_address"),
    ],
)
def test_invalid_parameters_fail_at_construction(kwargs: dict, message: str) -> None:
    with pytest.raises((ValueError, ResourceValidationError), match=message):
        EthernityRunTaskOperator(task_id="t", code="___etny_result___(1)", **kwargs)


def test_templated_resources_are_validated_at_execute_before_any_transaction(mocker) -> None:
    submit = mocker.patch("airflow_provider_ethernity.hooks.ethernity.EthernityHook.submit_task")
    operator = EthernityRunTaskOperator(task_id="t", code="x = 1", resources="{{ params.resources }}")
    operator.task_resources = '{"taskPrice": 999}'  # what rendering produced
    with pytest.raises(ResourceValidationError, match=r"resources\.taskPrice=999"):
        operator.execute(make_context())
    submit.assert_not_called()


@pytest.mark.parametrize("code", ["", "   \n"])
def test_empty_code_is_refused_before_any_transaction(code: str, mocker) -> None:
    submit = mocker.patch("airflow_provider_ethernity.hooks.ethernity.EthernityHook.submit_task")
    operator = EthernityRunTaskOperator(task_id="t", code="placeholder")
    operator.code = code
    with pytest.raises(ValueError, match="code is empty"):
        operator.execute(make_context())
    submit.assert_not_called()


def test_input_data_is_json_encoded_when_not_a_string() -> None:
    from airflow_provider_ethernity.operators.ethernity import _encode_input

    assert _encode_input("raw text") == "raw text"
    assert _encode_input({"a": [1, 2]}) == '{"a": [1, 2]}'
    assert _encode_input((1, 2)) == "[1, 2]"
    with pytest.raises(ValueError, match="input_data"):
        _encode_input({"x": object()})


def test_operator_template_fields() -> None:
    assert set(EthernityRunTaskOperator.template_fields) == {
        "code",
        "input_data",
        "input_path",
        "result_path",
        "task_resources",
        "trustedzone",
        "securelock",
        "node_address",
    }
    assert EthernityRunTaskOperator.template_ext == (".py",)


def test_sensor_needs_an_order() -> None:
    with pytest.raises(ValueError, match="order_id or submit_task_id"):
        EthernityTaskSensor(task_id="s")


def test_sensor_rejects_a_malformed_order_id() -> None:
    sensor = EthernityTaskSensor(task_id="s", order_id="abc", challenge="c")
    with pytest.raises(ValueError, match="order_id='abc'"):
        sensor.execute(make_context())


def test_sensor_timeout_event_fails_or_skips(mocker) -> None:
    from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

    from airflow_provider_ethernity.protocol.client import Order

    mocker.patch(
        "airflow_provider_ethernity.hooks.ethernity.EthernityHook.get_order",
        return_value=Order(5, "0x0", "0x0", 1, 1, 1),
    )
    event = {"status": "timeout", "order_id": 5}
    with pytest.raises(AirflowSensorTimeout, match=r"order 5 did not complete.*PROCESSING"):
        EthernityTaskSensor(task_id="s", order_id=5, challenge="c").execute_complete(make_context(), event)
    with pytest.raises(AirflowSkipException):
        EthernityTaskSensor(task_id="s", order_id=5, challenge="c", soft_fail=True).execute_complete(
            make_context(), event
        )


TRIGGERS = [
    EthernityOrderPlacedTrigger(
        ethernity_conn_id="c", do_request_id=7, from_block=12, poll_interval=1.5, deadline=99.0
    ),
    EthernityTaskCompletedTrigger(ethernity_conn_id="c", order_id=3, from_block=12, deadline=None),
]


@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda t: type(t).__name__)
def test_trigger_serialization_round_trips_in_a_fresh_process(trigger) -> None:
    classpath, kwargs = trigger.serialize()
    assert set(kwargs) <= {
        "ethernity_conn_id", "from_block", "poll_interval", "deadline", "do_request_id", "order_id", "cancel_on_kill"
    }  # fmt: skip
    probe = (
        "import importlib, json, sys\n"
        "path, kwargs = json.loads(sys.argv[1])\n"
        "module, name = path.rsplit('.', 1)\n"
        "trigger = getattr(importlib.import_module(module), name)(**kwargs)\n"
        "print(json.dumps(trigger.serialize()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, json.dumps([classpath, kwargs])], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [classpath, kwargs]


def test_serialized_triggers_hold_no_secret(monkeypatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_C",
        json.dumps({"conn_type": "ethernity", "password": KEY, "extra": {"network": "bloxberg_testnet"}}),
    )
    for trigger in TRIGGERS:
        text = json.dumps(trigger.serialize())
        assert KEY not in text and KEY[2:] not in text


def test_dag_files_do_not_import_web3() -> None:
    probe = (
        "import sys\n"
        "import airflow_provider_ethernity.operators.ethernity, airflow_provider_ethernity.sensors.ethernity\n"
        "print(','.join(m for m in ('web3', 'eth_account', 'eth_abi') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_dag_files_do_not_import_the_heavy_modules() -> None:
    """The crypto libraries and the protocol client load when a task runs, not when a DAG file is parsed."""
    heavy = (
        "Crypto",
        "nacl",
        "aiohttp",
        "airflow_provider_ethernity.protocol.client",
        "airflow_provider_ethernity.protocol.async_client",
        "airflow_provider_ethernity.protocol.results",
    )
    probe = (
        "import sys\n"
        "import airflow.sdk\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_ethernity.operators.ethernity, airflow_provider_ethernity.sensors.ethernity\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules and m not in before))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
