"""The Airflow deployments the tests and benchmarks run the provider in, built in one place.

* :func:`local_services`: api-server, scheduler, dag-processor and one triggerer, the LocalExecutor on SQLite
  (``tests/services``, ``benchmarks/approval_latency.py``);
* :func:`distributed_services`: the same on PostgreSQL with the Edge executor, ``edge_workers`` workers and
  two triggerers, each its own "machine" (``tests/distributed``, ``benchmarks/distributed.py``).

Both take the ``ethernity_default`` connection as JSON, unpause new DAGs and give tasks retries (see
:data:`RETRY_ENV`). :func:`running` starts a deployment, waits for its DAGs and always stops it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow_provider_ethernity.devnet.ports import is_listening
from tests.services.airflow_services import EDGE_EXECUTOR, AirflowServices

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS_FOLDER = str(ROOT / "example_dags")

#: Airflow 3.3.2 can fail a deferred task whose trigger fires before the scheduler has processed the worker's
#: exit after defer() ("state mismatch", apache/airflow#71580, #72716); the devnet's events come within a second,
#: so it happens often here (up to 3 times in a row for one task seen). The retry re-attaches to the request
#: already paid for (task_state_store): nothing is paid twice, which the fan-out tests check on chain.
RETRY_ENV = {
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "8",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "2",
}
#: What a distributed deployment of 100 concurrent tasks needs (see docs/scale.md, "Executors").
DISTRIBUTED_ENV = {
    "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
    "AIRFLOW__API__MAXIMUM_PAGE_LIMIT": "500",  # one page for the 100 mapped task instances
    "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "10",  # the api-server serves every task and worker
    "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "20",
}


def local_services(
    home: Path, connection_json: str, secret_values: Iterable[str], dags_folder: str = EXAMPLE_DAGS_FOLDER
) -> AirflowServices:
    """One machine: the LocalExecutor on SQLite in ``home``."""
    return AirflowServices(
        home=home,
        dags_folder=dags_folder,
        extra_env={"AIRFLOW_CONN_ETHERNITY_DEFAULT": connection_json, **RETRY_ENV},
        secret_values=tuple(secret_values),
    )


def distributed_services(
    home: Path,
    connection_json: str,
    secret_values: Iterable[str],
    dags_folder: str,
    *,
    db_url: str,
    edge_workers: int = 2,
    edge_concurrency: int = 6,
    triggerers: int = 2,
    edge_worker_cpus: tuple[int, ...] = (),
) -> AirflowServices:
    """The Edge executor on the PostgreSQL ``db_url``; every worker and triggerer its own machine (with
    ``edge_worker_cpus``, each worker's machine has its own CPU: see ``AirflowServices.edge_worker_cpus``)."""
    return AirflowServices(
        home=home,
        dags_folder=dags_folder,
        executor=EDGE_EXECUTOR,
        db_url=db_url,
        triggerers=triggerers,
        edge_workers=edge_workers,
        edge_concurrency=edge_concurrency,
        edge_worker_cpus=edge_worker_cpus,
        parallelism=16,
        separate_machines=True,
        extra_env={"AIRFLOW_CONN_ETHERNITY_DEFAULT": connection_json, **RETRY_ENV, **DISTRIBUTED_ENV},
        secret_values=tuple(secret_values),
    )


def wait_for_dags(services: AirflowServices, dag_ids: Iterable[str], timeout: float = 300.0) -> None:
    """Until the dag-processor has registered every one of ``dag_ids`` (RuntimeError after ``timeout``)."""
    missing = list(dag_ids)
    with services.client() as api:
        deadline = time.monotonic() + timeout
        while missing:
            services.check_alive()
            missing = [dag for dag in missing if api.get(f"/dags/{dag}").status_code != 200]
            if missing and time.monotonic() > deadline:
                raise RuntimeError(
                    f"the dag-processor did not register {missing}:\n{services.log_tail('dag-processor')}"
                )
            time.sleep(1 if missing else 0)


@contextmanager
def running(services: AirflowServices, dag_ids: Iterable[str], timeout: float = 300.0) -> Iterator[AirflowServices]:
    """Start ``services``, wait for ``dag_ids``, yield; stop every process on the way out (what ``stop`` had to
    kill is left in ``services.killed``)."""
    services.start(timeout=timeout)
    try:
        wait_for_dags(services, dag_ids)
        yield services
    finally:
        services.killed = services.stop()


def assert_stopped_cleanly(services: AirflowServices, secret: str, *, nothing_killed: bool = True) -> None:
    """After :func:`running`: no process of the deployment, no listener on its port, ``secret`` in no file."""
    left = services.processes_left()
    assert not left, f"processes of the Airflow services still alive: {left}"
    assert not is_listening(services.port), f"something still listens on the api-server port {services.port}"
    if nothing_killed:
        assert not services.killed, "processes had to be killed outside their process groups:\n" + "\n".join(
            services.killed
        )
    leaked = services.files_containing(secret)
    assert not leaked, f"the wallet key is written in {leaked}"


def trigger_and_wait(
    services: AirflowServices, dag_id: str, conf: dict[str, Any], timeout: float
) -> tuple[str, float, list[dict[str, Any]]]:
    """Trigger a run of ``dag_id`` with ``conf`` through the REST API and wait for its end: (state, seconds
    from its creation, its task instances). The state is the last one seen when ``timeout`` passes."""
    with services.client() as api:
        started = time.monotonic()
        response = api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        response.raise_for_status()
        path = f"/dags/{dag_id}/dagRuns/{response.json()['dag_run_id']}"
        state = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            services.check_alive()
            state = api.get(path).json().get("state", "")
            if state in ("success", "failed"):
                break
            time.sleep(2)
        seconds = time.monotonic() - started
        tis = api.get(f"{path}/taskInstances", params={"limit": 500}).json()["task_instances"]
    return state, seconds, list(tis)
