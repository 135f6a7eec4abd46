"""A distributed Airflow deployment on this machine, on the session's devnet.

PostgreSQL (from a wheel, 127.0.0.1) as the metadata DB; the Edge executor (``apache-airflow-providers-edge3``):
its workers fetch jobs from the api-server over HTTP, so no broker is needed; two ``airflow edge worker``
processes and two triggerers, each as its own "machine" (own HOME, TMPDIR, ETHERNITY_LOCK_DIR, process group);
one api-server, scheduler and dag-processor. Every RPC call of the provider goes through a counting proxy that
records each raw transaction's answer (nonce collisions between the machines).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_ethernity.devnet.network import Devnet
from tests.distributed.postgres import PostgresServer
from tests.distributed.wallet_audit import SendLog
from tests.services.airflow_services import AirflowServices
from tests.services.deployments import assert_stopped_cleanly, distributed_services, running

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = (
    ROOT / "example_dags" / "ethernity_fan_out.py",
    Path(__file__).with_name("dags") / "ethernity_sensor_wait.py",
)
DAG_IDS = ("ethernity_fan_out", "ethernity_sensor_wait")
WORKERS = 2
TRIGGERERS = 2


def connection_via(devnet: Devnet, rpc_url: str, **extra: object) -> str:
    conn = json.loads(devnet.connection_json())
    conn["extra"]["rpc_url"] = rpc_url
    conn["extra"].update(extra)
    return json.dumps(conn)


@pytest.fixture(scope="module")
def send_log(devnet: Devnet) -> Iterator[SendLog]:
    assert devnet.state is not None
    with SendLog(devnet.state.rpc_url) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def deployment(
    devnet: Devnet, send_log: SendLog, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowServices]:
    home = tmp_path_factory.mktemp("airflow-distributed")
    dags = home / "dags"
    dags.mkdir()
    for path in DAG_FILES:
        shutil.copy(path, dags / path.name)
    key = devnet.requester_key or ""
    postgres = PostgresServer().start()
    services = distributed_services(
        home / "airflow",
        connection_via(devnet, send_log.url),
        [key],
        str(dags),
        db_url=postgres.url,
        edge_workers=WORKERS,
        triggerers=TRIGGERERS,
    )
    try:
        with running(services, DAG_IDS, timeout=400):
            yield services
    finally:
        postgres.stop()
    assert_stopped_cleanly(services, key, nothing_killed=False)
