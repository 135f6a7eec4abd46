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
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_ethernity.devnet.network import Devnet
from airflow_provider_ethernity.devnet.ports import is_listening
from tests.distributed.postgres import PostgresServer
from tests.distributed.wallet_audit import SendLog
from tests.services.airflow_services import EDGE_EXECUTOR, AirflowServices

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
    postgres = PostgresServer().start()
    services = AirflowServices(
        home=home / "airflow",
        dags_folder=str(dags),
        executor=EDGE_EXECUTOR,
        db_url=postgres.url,
        triggerers=TRIGGERERS,
        edge_workers=WORKERS,
        edge_concurrency=6,
        parallelism=16,
        separate_machines=True,
        extra_env={
            "AIRFLOW_CONN_ETHERNITY_DEFAULT": connection_via(devnet, send_log.url),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # see tests/services/conftest.py: Airflow 3.3.2's stale-event race (apache/airflow#71580) fails a
            # deferred task now and then; the retry re-attaches to the request already paid for.
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "8",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "2",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
            "AIRFLOW__API__MAXIMUM_PAGE_LIMIT": "500",  # one page for the 100 mapped task instances
            "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "10",  # the api-server serves every task and worker
            "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "20",
        },
        secret_values=(devnet.requester_key or "",),
    )
    try:
        services.start(timeout=400)
        with services.client() as api:
            deadline = time.monotonic() + 300
            missing = list(DAG_IDS)
            while missing and time.monotonic() < deadline:
                services.check_alive()
                missing = [dag for dag in DAG_IDS if api.get(f"/dags/{dag}").status_code != 200]
                time.sleep(1)
            assert not missing, f"the dag-processor did not register {missing}:\n{services.log_tail('dag-processor')}"
        yield services
    finally:
        services.stop()
        left = services.processes_left()
        postgres.stop()
        assert not left, f"processes of the Airflow services still alive: {left}"
        assert not is_listening(services.port), f"something still listens on the api-server port {services.port}"
        leaked = services.files_containing(devnet.requester_key or "")
        assert not leaked, f"the wallet key is written in {leaked}"
