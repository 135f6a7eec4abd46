"""System tests: each example DAG runs with ``airflow dags test`` against the devnet; results are asserted.

A fresh AIRFLOW_HOME per session (``airflow db migrate``), the example DAGs folder, and the devnet's
connection in ``AIRFLOW_CONN_ETHERNITY_DEFAULT``; the final values are read back from the XCom table.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAGS_FOLDER = str(Path(__file__).resolve().parents[2] / "example_dags")  # the repository's example_dags/


@pytest.fixture(scope="module")
def airflow_env(devnet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": DAGS_FOLDER,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_ETHERNITY_DEFAULT": devnet.connection_json(),
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


def run_dag(env: dict[str, str], dag_id: str, conf: dict | None = None) -> str:
    command = [AIRFLOW, "dags", "test", dag_id]
    if conf:
        command += ["-c", json.dumps(conf)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert f"dag_id={dag_id}" in output and "state=success" in output, output[-5000:]
    return output


def last_value(env: dict[str, str], dag_id: str, task_id: str) -> list:
    """The return values of the latest run's task (one per map index)."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        rows = db.execute(
            "SELECT x.map_index, x.value FROM xcom x JOIN dag_run r ON r.id = x.dag_run_id "
            "WHERE x.dag_id = ? AND x.task_id = ? AND x.key = 'return_value' "
            "AND r.id = (SELECT MAX(id) FROM dag_run WHERE dag_id = ?) ORDER BY x.map_index",
            (dag_id, task_id, dag_id),
        ).fetchall()
    return [json.loads(value) if isinstance(value, (str, bytes)) else value for _, value in rows]


def test_ethernity_hello(airflow_env: dict[str, str]) -> None:
    run_dag(airflow_env, "ethernity_hello")
    assert last_value(airflow_env, "ethernity_hello", "hello") == ["Hello, Python World!"]
    # the sealed result as an asset event ipfs://<result CID>, through the task's AssetAlias
    with sqlite3.connect(Path(airflow_env["AIRFLOW_HOME"]) / "airflow.db") as db:
        events = db.execute(
            "SELECT a.uri, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE e.source_dag_id = 'ethernity_hello' AND e.source_task_id = 'hello'"
        ).fetchall()
        result_cid = db.execute(
            "SELECT value FROM xcom WHERE dag_id = 'ethernity_hello' AND task_id = 'hello' AND key = 'result_cid' "
            "ORDER BY dag_run_id DESC LIMIT 1"
        ).fetchone()[0]
    cid = json.loads(result_cid) if isinstance(result_cid, (str, bytes)) else result_cid
    assert (f"ipfs://{cid}",) in [(uri,) for uri, _extra in events], events
    extra = json.loads(next(e for uri, e in events if uri == f"ipfs://{cid}"))
    assert extra["task_code"] == "SUCCESS" and extra["order_id"] >= 0


def test_ethernity_pipeline(airflow_env: dict[str, str]) -> None:
    output = run_dag(airflow_env, "ethernity_pipeline")
    assert last_value(airflow_env, "ethernity_pipeline", "stats") == [
        {"label": "primes", "count": 6, "sum": 41, "max": 13}
    ]
    assert last_value(airflow_env, "ethernity_pipeline", "scale_result") == [{"scaled_sum": 410, "scaled_max": 130}]
    assert last_value(airflow_env, "ethernity_pipeline", "report") == ["primes: sum 41 -> 410, max 13 -> 130"]
    assert "EthernityTaskSensor" in output


def test_ethernity_fan_out(airflow_env: dict[str, str]) -> None:
    run_dag(airflow_env, "ethernity_fan_out")
    squares = last_value(airflow_env, "ethernity_fan_out", "squares")
    assert squares == [5, 14, 29, 50, 77]  # sum of squares of [i, i+1, i+2], i = 0..4
    assert last_value(airflow_env, "ethernity_fan_out", "total") == [175]


def test_ethernity_params_with_changed_parameters(airflow_env: dict[str, str]) -> None:
    run_dag(airflow_env, "ethernity_params")
    assert last_value(airflow_env, "ethernity_params", "run") == ["HELLO CONFIDENTIAL WORLD"]
    conf = {
        "code": "import json\n___etny_result___(sum(json.loads(___etny_data_set___)))",
        "input": "[1, 2, 3, 4]",
        "resources": {"taskPrice": 3, "cpu": 1, "memory": 1, "storage": 40, "bandwidth": 1, "duration": 1,
                      "validators": 1},
    }  # fmt: skip
    run_dag(airflow_env, "ethernity_params", conf)
    assert last_value(airflow_env, "ethernity_params", "run") == [10]


#: Each example DAG, its Ethernity task instances (one DO request each) and a result to check.
#: (DAG id: Ethernity task instances, tokens they pay, a task to read, its value)
DEFERRABLE_CASES = {
    "ethernity_hello": (1, 2, "hello", ["Hello, Python World!"]),
    "ethernity_pipeline": (3, 6, "report", ["primes: sum 41 -> 410, max 13 -> 130"]),
    "ethernity_fan_out": (6, 6, "total", [175]),
    "ethernity_params": (1, 2, "run", ["HELLO CONFIDENTIAL WORLD"]),
}


@pytest.mark.parametrize("dag_id", sorted(DEFERRABLE_CASES))
def test_example_dag_with_default_deferrable(dag_id, airflow_env, devnet, monkeypatch) -> None:
    """``[operators] default_deferrable = True``: Airflow 3.3.2's ``dags test`` resumes with the event only
    (the resume kwargs are dropped); the operator resumes from its task state. Paid once per task."""
    from tests.integration.deferral import Ledger

    monkeypatch.setenv("AIRFLOW_CONN_ETHERNITY_DEFAULT", devnet.connection_json())
    tasks, tokens, task_id, expected = DEFERRABLE_CASES[dag_id]
    ledger = Ledger()
    env = {**airflow_env, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True"}
    output = run_dag(env, dag_id)
    assert "execute_complete" in output or "Deferring" in output, "no task deferred"
    assert last_value(env, dag_id, task_id) == expected
    assert ledger.requests_placed() == tasks, f"{ledger.requests_placed()} DO requests for {tasks} task instances"
    assert ledger.tokens_spent() == tokens
    assert ledger.unsettled() == []


def test_ethernity_confidential_keeps_plaintext_out_of_every_table(airflow_env, tmp_path) -> None:
    """The plaintext input and result appear in no table of the metadata database after a run."""
    import secrets as _secrets

    secret = f"confidential-{_secrets.token_hex(8)}"
    source, target = tmp_path / "input.txt", tmp_path / "result.txt"
    source.write_text(secret)
    run_dag(
        airflow_env, "ethernity_confidential", {"input_path": f"file://{source}", "result_path": f"file://{target}"}
    )
    assert target.read_text() == secret.upper()
    with sqlite3.connect(Path(airflow_env["AIRFLOW_HOME"]) / "airflow.db") as db:
        dump = "\n".join(db.iterdump())
    assert str(source) in dump, "the run was not recorded"
    for plaintext in (secret, secret.upper()):
        assert plaintext not in dump, f"{plaintext!r} is stored in Airflow's metadata database"
