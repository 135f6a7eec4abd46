"""Every example DAG, deferrable and not, on the devnet profiles that stand for the real networks.

One devnet per profile (``bloxberg``: the protocol contract is the token, legacy gas, artefacts through the
public intake; ``polygon``: a separate ERC-20 with an allowance, EIP-1559, a public IPFS), with 1 s blocks, an
8 s approval window, results pinned 3 s after the close, and the profile's chain front (replica lag, closes
seen only through ``_getOrder``). The DAGs reach the chain through that front (``AIRFLOW_CONN_ETHERNITY_DEFAULT``
is the connection ``ethernity-devnet up --profile`` writes); the ledger that checks the money reads anvil
directly. All five example DAGs run at once (one ``airflow dags test`` each, on one wallet), once with and once
without ``default_deferrable``; the money invariant is asserted on chain over all of them: one DO request per
task instance, the balance down by exactly the prices, nothing left unsettled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from airflow_provider_ethernity.devnet.network import Devnet
from tests.integration.deferral import Ledger
from tests.profile_devnets import profile_devnet
from tests.system.test_example_dags import AIRFLOW, DAGS_FOLDER, last_value

pytestmark = pytest.mark.integration

#: DAG id: (Ethernity task instances, tokens they pay, a task to read, its value); the confidential DAG's
#: value is its result file
CASES: dict[str, tuple[int, int, str | None, list | None]] = {
    "ethernity_hello": (1, 2, "hello", ["Hello, Python World!"]),
    "ethernity_pipeline": (3, 6, "report", ["primes: sum 41 -> 410, max 13 -> 130"]),
    "ethernity_fan_out": (6, 6, "total", [175]),
    "ethernity_params": (1, 2, "run", ["HELLO CONFIDENTIAL WORLD"]),
    "ethernity_confidential": (1, 2, None, None),
}


@pytest.fixture(scope="module", params=["bloxberg", "polygon"])
def profile_net(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    net = profile_devnet(request.param, tmp_path_factory.mktemp(f"devnet-{request.param}"))
    net.start()
    try:
        net.hide_closes(net.profile.hide_close_every)
        net.set_replica_lag(net.profile.replica_lag)
        yield net
    finally:
        net.stop()


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated metadata database, copied for each concurrent run (SQLite takes one writer at a time)."""
    home = tmp_path_factory.mktemp("airflow-template")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return home / "airflow.db"


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_every_example_dag_at_once_on_the_profile(
    deferrable: bool, profile_net: Devnet, migrated_db: Path, monkeypatch, tmp_path: Path
) -> None:
    conn = json.loads(profile_net.connection_json())
    direct = {**conn, "extra": {**conn["extra"], "rpc_url": profile_net.state.anvil_rpc_url}}
    monkeypatch.setenv("AIRFLOW_CONN_ETHERNITY_DEFAULT", json.dumps(direct))  # the ledger: anvil, no lag
    name = profile_net.profile.name
    source, target = tmp_path / "input.txt", tmp_path / "out" / "result.txt"
    source.write_text(f"on {name}")
    ledger = Ledger()
    runs: dict[str, tuple[subprocess.Popen, dict[str, str], IO[str]]] = {}
    for dag_id in CASES:
        home = tmp_path / dag_id
        home.mkdir()
        shutil.copy(migrated_db, home / "airflow.db")
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": DAGS_FOLDER,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_ETHERNITY_DEFAULT": profile_net.connection_json(),  # the DAGs: through the chain front
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(deferrable),
        }
        command = [AIRFLOW, "dags", "test", dag_id]
        if dag_id == "ethernity_confidential":
            command += ["-c", json.dumps({"input_path": f"file://{source}", "result_path": f"file://{target}"})]
        log = (tmp_path / f"{dag_id}.log").open("w")
        runs[dag_id] = (subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), env, log)
    for dag_id, (process, env, log) in runs.items():
        try:
            process.wait(timeout=1500)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
        output = (tmp_path / f"{dag_id}.log").read_text()
        assert process.returncode == 0 and "state=success" in output, f"{dag_id}:\n{output[-5000:]}"
        if deferrable:
            assert "Deferring" in output or "execute_complete" in output, f"{dag_id}: no task deferred"
        _tasks, _tokens, task_id, expected = CASES[dag_id]
        if task_id is not None:
            assert last_value(env, dag_id, task_id) == expected, dag_id
    assert target.read_text() == f"ON {name.upper()}"
    tasks = sum(case[0] for case in CASES.values())
    tokens = sum(case[1] for case in CASES.values())
    assert ledger.requests_placed() == tasks, f"{ledger.requests_placed()} DO requests for {tasks} task instances"
    assert ledger.tokens_spent() == tokens, f"{ledger.tokens_spent()} tokens spent, expected {tokens}"
    assert ledger.unsettled() == [], f"unsettled escrow: {ledger.unsettled()}"
