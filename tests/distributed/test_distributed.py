"""The provider on a distributed Airflow: PostgreSQL, the Edge executor with two workers and two triggerers, each
its own machine (see conftest), one wallet.

``ethernity_fan_out`` with 100 mapped tasks: every result right, one DO request per task instance, the balance
down by exactly the prices, nothing left OPEN/AVAILABLE/BOOKED, and every transaction the wallet sent accounted
for: 3 per task (token ``approve``, ``_addDORequest``, ``_approveOrder``) and none reverted. Nonce collisions
between the machines (answers of the node to raw transactions, at the proxy) are reported, not asserted: they
cost time, not money, since the transaction layer resolves them by hash.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from airflow_provider_ethernity.devnet.network import Devnet
from tests.distributed.wallet_audit import SendLog, WalletAudit, selectors
from tests.services.airflow_services import AirflowServices
from tests.services.test_airflow_services import run_fan_out, run_path, task_instances, wait_for_run, xcom

pytestmark = [pytest.mark.distributed, pytest.mark.integration]

COUNT = 100
TX_PER_TASK = 3  # approve, _addDORequest, _approveOrder
REPORT = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def chain(devnet: Devnet):
    from airflow_provider_ethernity.hooks.ethernity import EthernityHook

    client = EthernityHook().client
    return client, selectors(client.protocol, client.token)


@pytest.mark.timeout(2400)
def test_fan_out_of_100_on_two_edge_workers_one_wallet(deployment: AirflowServices, devnet: Devnet,
                                                       send_log: SendLog, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
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
    # every transaction accounted for: none reverted, none extra (a replaced or re-signed one that got mined)
    assert report["reverted"] == [], f"reverted transactions: {report['reverted']}"
    assert report["nonce delta"] == report["mined"], report
    assert report["by method"].get("_addDORequest") == tasks, report
    assert report["by method"].get("_approveOrder") == tasks, report
    assert report["nonce delta"] == TX_PER_TASK * tasks, f"{report['nonce delta']} transactions for {tasks} tasks: {report}"
    assert len(workers_used(deployment)) == 2, "both edge workers should have run tasks"


def workers_used(services: AirflowServices) -> set[str]:
    """Edge workers that ran at least one job (their own task log folders)."""
    return {
        path.name
        for path in (services.home / "machines").iterdir()
        if path.name.startswith("edge-worker") and any((path / "logs").rglob("attempt=*.log"))
    }
