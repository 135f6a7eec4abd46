"""Every example DAG, deferrable and not, on the devnet profiles that stand for the real networks.

One devnet per profile (``bloxberg``: the protocol contract is the token, legacy gas, artefacts through the
public intake; ``polygon``: a separate ERC-20 with an allowance, EIP-1559, a public IPFS), with 1 s blocks, an
8 s approval window, results pinned 3 s after the close, and the profile's chain front (replica lag, closes
seen only through ``_getOrder``). The DAGs reach the chain through that front (``AIRFLOW_CONN_ETHERNITY_DEFAULT``
is the connection ``ethernity-devnet up --profile`` writes); the ledger that checks the money reads anvil
directly. Each run asserts the money invariant on chain: one DO request per task instance, the balance down by
exactly the prices, nothing left unsettled.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_ethernity.devnet.network import Devnet
from tests.integration.deferral import Ledger
from tests.system.test_example_dags import AIRFLOW, DAGS_FOLDER, last_value, run_dag

pytestmark = pytest.mark.integration

#: DAG id: (Ethernity task instances, tokens they pay, a task to read, its value); the confidential DAG is read
#: from its result file
CASES = {
    "ethernity_hello": (1, 2, "hello", ["Hello, Python World!"]),
    "ethernity_pipeline": (3, 6, "report", ["primes: sum 41 -> 410, max 13 -> 130"]),
    "ethernity_fan_out": (6, 6, "total", [175]),
    "ethernity_params": (1, 2, "run", ["HELLO CONFIDENTIAL WORLD"]),
    "ethernity_confidential": (1, 2, None, None),
}


@pytest.fixture(scope="module", params=["bloxberg", "polygon"])
def profile_net(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    net = Devnet(
        tmp_path_factory.mktemp(f"devnet-{request.param}"),
        profile=request.param,
        block_time=1,
        approval_window=8.0,
        result_pin_delay=3.0,
        agent_max_task_seconds=20,
    )
    net.start()
    try:
        net.hide_closes(net.profile.hide_close_every)
        net.set_replica_lag(net.profile.replica_lag)
        yield net
    finally:
        net.stop()


@pytest.fixture(scope="module")
def profile_airflow(profile_net: Devnet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import os

    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": DAGS_FOLDER,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_ETHERNITY_DEFAULT": profile_net.connection_json(),
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
@pytest.mark.parametrize("dag_id", sorted(CASES))
def test_every_example_dag_on_the_profile(
    dag_id: str, deferrable: bool, profile_net: Devnet, profile_airflow: dict, monkeypatch, tmp_path: Path
) -> None:
    conn = json.loads(profile_net.connection_json())
    direct = {**conn, "extra": {**conn["extra"], "rpc_url": profile_net.state.anvil_rpc_url}}
    monkeypatch.setenv("AIRFLOW_CONN_ETHERNITY_DEFAULT", json.dumps(direct))  # the ledger: anvil, no lag
    tasks, tokens, task_id, expected = CASES[dag_id]
    env = {**profile_airflow, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(deferrable)}
    ledger = Ledger()
    if dag_id == "ethernity_confidential":
        source, target = tmp_path / "input.txt", tmp_path / "out" / "result.txt"
        source.write_text(f"on {profile_net.profile.name}")
        output = run_dag(env, dag_id, {"input_path": f"file://{source}", "result_path": f"file://{target}"})
        assert target.read_text() == f"ON {profile_net.profile.name.upper()}"
    else:
        output = run_dag(env, dag_id)
        assert last_value(env, dag_id, task_id) == expected
    if deferrable:
        assert "Deferring" in output or "execute_complete" in output, "no task deferred"
    assert ledger.requests_placed() == tasks, f"{ledger.requests_placed()} DO requests for {tasks} task instances"
    assert ledger.tokens_spent() == tokens, f"{ledger.tokens_spent()} tokens spent, expected {tokens}"
    assert ledger.unsettled() == [], f"unsettled escrow: {ledger.unsettled()}"
