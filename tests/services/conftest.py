"""One set of real Airflow services (api-server, scheduler, dag-processor, triggerer) per module, on the devnet."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_ethernity.devnet.network import Devnet
from airflow_provider_ethernity.devnet.ports import is_listening
from tests.services.airflow_services import AirflowServices

DAGS_FOLDER = str(Path(__file__).resolve().parents[2] / "example_dags")  # the repository's example_dags/
EXAMPLE_DAGS = ("ethernity_fan_out", "ethernity_params")


@pytest.fixture(scope="module")
def airflow(devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServices]:
    """The four services on 127.0.0.1 with a fresh SQLite DB, the example DAGs, the devnet's connection as
    ``ethernity_default`` (environment variable) and ``[operators] default_deferrable = True``."""
    services = AirflowServices(
        home=tmp_path_factory.mktemp("airflow-services"),
        dags_folder=DAGS_FOLDER,
        extra_env={
            "AIRFLOW_CONN_ETHERNITY_DEFAULT": devnet.connection_json(),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # Airflow 3.3.2 can fail a deferred task whose trigger fires before the scheduler has processed
            # the worker's exit after defer() ("state mismatch", apache/airflow#71580, #72716); the devnet's
            # events come within a second, so it happens often here (up to 3 times in a row for one task
            # seen). The retry re-attaches to the request already paid for (task_state_store): nothing is
            # paid twice, which the fan-out test checks on chain.
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "8",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "2",
        },
        secret_values=(devnet.requester_key or "",),
    )
    services.start(timeout=300)
    try:
        with services.client() as api:
            deadline = time.monotonic() + 300
            missing = list(EXAMPLE_DAGS)
            while missing and time.monotonic() < deadline:
                services.check_alive()
                missing = [dag for dag in EXAMPLE_DAGS if api.get(f"/dags/{dag}").status_code != 200]
                time.sleep(1)
            assert not missing, f"the dag-processor did not register {missing}:\n{services.log_tail('dag-processor')}"
        yield services
    finally:
        killed = services.stop()
        left = services.processes_left()
        assert not left, f"processes of the Airflow services still alive: {left}"
        assert not is_listening(services.port), f"something still listens on the api-server port {services.port}"
        assert not killed, "processes had to be killed outside their process groups:\n" + json.dumps(killed)
        leaked = services.files_containing(devnet.requester_key or "")
        assert not leaked, f"the wallet key is written in {leaked}"
