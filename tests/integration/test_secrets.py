"""The wallet key never shows: not in logs (DEBUG), XCom, trigger kwargs, the state store, errors or test_connection."""

from __future__ import annotations

import json
import logging

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator
from tests.airflow_context import FileStateStore, make_context
from tests.integration.conftest import set_conn
from tests.integration.deferral import run_deferrable

pytestmark = pytest.mark.integration


def leaks(key: str, text: str) -> bool:
    bare = key[2:] if key.startswith("0x") else key
    return bare.lower() in text.lower()


def test_the_key_appears_nowhere(agent, devnet_conn, caplog, capfd, tmp_path, monkeypatch) -> None:
    key = devnet_conn["password"]
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    # A whole deferrable task, with its serialized triggers, XComs and state store.
    context = make_context(store=FileStateStore(tmp_path / "state.json"))
    operator = EthernityRunTaskOperator(task_id="t", code="___etny_result___(41 + 1)", deferrable=True)
    value, serialized = run_deferrable(operator, context)
    assert value == 42
    seen += [json.dumps(serialized), json.dumps(context["ti"].xcoms), (tmp_path / "state.json").read_text()]

    # A task error and the connection test.
    failing = EthernityRunTaskOperator(task_id="f", code="raise RuntimeError('nope')")
    with pytest.raises(Exception) as failure:
        failing.execute(make_context())
    seen.append(str(failure.value))
    ok, message = EthernityHook().test_connection()
    assert ok
    seen.append(message)

    # Errors around the key: a malformed key (one character off) and a wrong chain id.
    set_conn(monkeypatch, "bad_key", devnet_conn, password=key[:-1] + "z")
    with pytest.raises(Exception) as bad_key:
        EthernityHook("bad_key").submit_task("___etny_result___(1)")
    seen.append(str(bad_key.value))
    set_conn(monkeypatch, "bad_chain", devnet_conn, chain_id=1)
    with pytest.raises(Exception) as bad_chain:
        EthernityHook("bad_chain").submit_task("___etny_result___(1)")
    seen.append(str(bad_chain.value))
    ok, message = EthernityHook("bad_chain").test_connection()
    assert not ok
    seen.append(message)
    seen.append(repr(EthernityHook().settings))
    seen.append(repr(EthernityHook().client.ipfs))

    captured = capfd.readouterr()
    seen += [caplog.text, captured.out, captured.err]
    assert "DEBUG" in caplog.text or caplog.records, "debug logging was not captured"
    for text in seen:
        assert not leaks(key, text), text[:500]
    assert not leaks(key[:-1] + "z", str(bad_key.value))


def test_deferral_kwargs_hold_only_ids(agent, devnet_conn) -> None:
    from airflow.sdk import DAG

    agent.set_agent(mode="idle")  # nobody takes the request; it is cancelled below
    with DAG(dag_id="secrets", schedule=None):  # in a DAG: the task may end in the triggerer (end_from_trigger)
        operator = EthernityRunTaskOperator(task_id="t", code="___etny_result___(1)", deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(make_context())
    _classpath, kwargs = deferred.value.trigger.serialize()
    assert set(kwargs) == {
        "ethernity_conn_id", "from_block", "poll_interval", "deadline", "do_request_id", "cancel_on_kill",
        "order_deadline", "completion_timeout", "approve", "wait_for_completion", "order_id", "order_count_anchor",
        "end_from_trigger", "challenge_salt", "request_tx",
    }  # fmt: skip
    assert all(isinstance(value, (int, float, str, bool, type(None))) for value in kwargs.values())
    assert not leaks(devnet_conn["password"], json.dumps(deferred.value.kwargs))
    # the trigger gets the public salt; the challenge the enclave signs with is derived from it and the key, in the
    # triggerer, and is in no kwarg
    assert kwargs["end_from_trigger"] is True and len(kwargs["challenge_salt"]) == 32
    challenge = EthernityHook().client.challenge_for(kwargs["challenge_salt"])
    assert challenge.lower() not in json.dumps(kwargs).lower()
    assert EthernityHook().cancel_task(kwargs["do_request_id"])
