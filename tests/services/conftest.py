"""One set of real Airflow services (api-server, scheduler, dag-processor, triggerer) per module, on the devnet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_ethernity.devnet.network import Devnet
from tests.services.airflow_services import AirflowServices
from tests.services.deployments import assert_stopped_cleanly, local_services, running

EXAMPLE_DAGS = ("ethernity_fan_out", "ethernity_params")


@pytest.fixture(scope="module")
def airflow(devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServices]:
    """The four services on 127.0.0.1 with a fresh SQLite DB, the example DAGs, the devnet's connection as
    ``ethernity_default`` (environment variable), ``[operators] default_deferrable = True`` and task retries
    (``deployments.RETRY_ENV``: Airflow 3.3.2's deferral race)."""
    key = devnet.requester_key or ""
    services = local_services(tmp_path_factory.mktemp("airflow-services"), devnet.connection_json(), [key])
    with running(services, EXAMPLE_DAGS):
        yield services
    assert_stopped_cleanly(services, key)
