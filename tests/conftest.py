"""Test-wide settings (a throwaway AIRFLOW_HOME, no example DAGs) and the session's devnet."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

_home = tempfile.mkdtemp(prefix="etny-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _home)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One local Ethernity network for the whole session, on free loopback ports; stopped at the end."""
    from airflow_provider_ethernity.devnet.network import Devnet

    net = Devnet(tmp_path_factory.mktemp("devnet"), agent_max_task_seconds=20)
    net.start()
    try:
        yield net
    finally:
        net.stop()
