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
def default_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One local Ethernity network (the default profile) for the whole session, on free loopback ports; stopped
    at the end."""
    from airflow_provider_ethernity.devnet.network import Devnet

    net = Devnet(tmp_path_factory.mktemp("devnet"), agent_max_task_seconds=20)
    net.start()
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture(scope="session")
def devnet(default_devnet: object) -> object:
    """The devnet a test runs on: the session's default one. A module that runs on every profile overrides it
    with a module-scoped ``devnet`` over ``tests/profile_devnets.EVERY_PROFILE`` (``test_faults.py``,
    ``test_watcher_faults.py``)."""
    return default_devnet
