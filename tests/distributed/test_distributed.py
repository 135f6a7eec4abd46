"""The provider on a distributed Airflow: PostgreSQL, the Edge executor with two workers and two triggerers, each
its own machine (see conftest), one wallet.

``ethernity_fan_out`` with 100 mapped tasks: every result right, one DO request per task instance, the balance
down by exactly the prices, nothing left OPEN/AVAILABLE/BOOKED, and every transaction the wallet sent accounted
for: 3 per task (token ``approve``, ``_addDORequest``, ``_approveOrder``) plus the re-approvals of allowance
races between machines (measured: 5 for 101 tasks), none reverted, no nonce skipped. Nonce collisions
between the machines (answers of the node to raw transactions, at the proxy) are reported, not asserted: they
cost time, not money, since the transaction layer resolves them by hash.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_ethernity.devnet.network import Devnet
from tests.distributed.wallet_audit import SendLog, WalletAudit, selectors
from tests.services.airflow_services import AirflowServices
from tests.services.test_airflow_services import run_fan_out, task_instances, wait_for_run, xcom

pytestmark = [pytest.mark.distributed, pytest.mark.integration]

COUNT = 100
TX_PER_TASK = 3  # approve, _addDORequest, _approveOrder
REPORT = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def chain(devnet: Devnet):
    from airflow_provider_ethernity.hooks.ethernity import EthernityHook

    client = EthernityHook().client
    return client, selectors(client.protocol, client.token)


def task_process_ti_ids(services: AirflowServices) -> set[str]:
    """Task instance ids of the running task processes (``airflow worker -- <ti id>``) of the deployment."""
    ids = set()
    for pid in services.task_processes():
        try:
            ids.add(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode().rsplit(" ", 1)[-1])
        except OSError:
            continue
    return ids


@pytest.mark.timeout(900)
def test_sensor_starts_and_ends_in_the_triggerer(deployment: AirflowServices, devnet: Devnet,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """``EthernityTaskSensor(start_from_trigger=True)``: the scheduler defers it straight to the triggerer, which
    renders the submitting task's XComs, waits, verifies and decrypts the result and ends the task: its task
    instance never had a worker process (none seen while polling, no worker log on any machine)."""
    from tests.integration.deferral import Ledger

    monkeypatch.setenv("AIRFLOW_CONN_ETHERNITY_DEFAULT", devnet.connection_json())
    ledger = Ledger()
    dag_id = "ethernity_sensor_wait"
    seen: set[str] = set()
    sensor_states: list[str] = []

    def poll(tis: list[dict]) -> None:
        seen.update(task_process_ti_ids(deployment))
        sensor_states.extend(ti["state"] for ti in tis if ti["task_id"] == "collect" and ti["state"])

    with deployment.client() as api:
        response = api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None})
        assert response.status_code == 200, response.text
        run_id = response.json()["dag_run_id"]
        run = wait_for_run(deployment, api, dag_id, run_id, timeout=600, on_poll=poll)
        tis = {ti["task_id"]: ti for ti in task_instances(api, dag_id, run_id)}
        assert run["state"] == "success", {k: (v["state"], v["try_number"]) for k, v in tis.items()}
        assert xcom(api, dag_id, run_id, "collect") == "waited in the triggerer"
        collect = tis["collect"]
        assert collect["try_number"] == 1, collect
    assert "deferred" in sensor_states, sensor_states
    assert collect["id"] not in seen, "the sensor's task instance had a worker process"
    folder = f"dag_id={dag_id}/run_id={run_id}/task_id=collect"
    worker_logs = [
        p for p in deployment.home.rglob("attempt=*.log") if folder in str(p) and ".log.trigger." not in p.name
    ]
    trigger_logs = [
        p for p in deployment.home.rglob("attempt=*.log*") if folder in str(p) and ".log.trigger." in p.name
    ]
    assert worker_logs == [], f"the sensor ran in a worker: {worker_logs}"
    assert trigger_logs, "no triggerer log for the sensor"
    text = "".join(p.read_text(errors="replace") for p in trigger_logs)
    assert "verified and decrypted in the triggerer" in text
    ledger.assert_paid_once(tasks=1, price=1)


@pytest.mark.timeout(2400)
def test_fan_out_of_100_on_two_edge_workers_one_wallet(
    deployment: AirflowServices, devnet: Devnet, send_log: SendLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ETHERNITY_DEFAULT", devnet.connection_json())
    client, names = chain(devnet)
    audit = WalletAudit(client.w3, [client.address])
    sends_before, errors_before = send_log.sends, sum(send_log.send_errors.values())
    summary = run_fan_out(deployment, devnet, monkeypatch, COUNT)
    report = audit.finish(names)
    tasks = COUNT + 1
    figures = {
        **summary,
        "tasks": tasks,
        "wallet": report,
        "proxy": send_log.summary(),
        "raw sends in this run": send_log.sends - sends_before,
        "send errors in this run": sum(send_log.send_errors.values()) - errors_before,
        "collisions": send_log.collisions(),
        "workers used": sorted(workers_used(deployment)),
    }
    print("\ndistributed fan-out:", json.dumps(figures, indent=1))
    # every transaction accounted for: none reverted, no nonce skipped or replaced (every nonce used is a mined
    # transaction of the wallet), one _addDORequest and one _approveOrder per task, and one approve per task plus
    # the re-approvals of allowance races between machines (two machines' approvals of one wallet overwrite each
    # other's allowance: the loser approves again; the only extra gas a shared wallet can cost)
    methods = report["by method"]
    extra_approvals = methods.get("approve", 0) - tasks
    assert report["reverted"] == [], f"reverted transactions: {report['reverted']}"
    assert report["nonce delta"] == report["mined"], report
    assert set(methods) == {"approve", "_addDORequest", "_approveOrder"}, report
    assert methods["_addDORequest"] == tasks and methods["_approveOrder"] == tasks, report
    assert report["nonce delta"] == TX_PER_TASK * tasks + extra_approvals, report
    assert 0 <= extra_approvals <= tasks // 5, f"{extra_approvals} re-approvals for {tasks} tasks: {report}"
    assert len(workers_used(deployment)) == 2, "both edge workers should have run tasks"
    # every mined transaction went through the counting proxy (else its collision figures mean nothing)
    assert figures["raw sends in this run"] >= report["mined"], figures


def workers_used(services: AirflowServices) -> set[str]:
    """Edge workers that ran at least one job (their own task log folders)."""
    return {
        path.name
        for path in (services.home / "machines").iterdir()
        if path.name.startswith("edge-worker") and any((path / "logs").rglob("attempt=*.log"))
    }
