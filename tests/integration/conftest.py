"""The devnet, started once per test session on free loopback ports, stopped at the end."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_provider_ethernity.devnet.network import Devnet


@pytest.fixture
def agent(devnet: Devnet) -> Iterator[Devnet]:
    """The devnet with its node agent reset to normal after the test (for failure injection)."""
    devnet.set_agent()
    yield devnet
    devnet.set_agent()


@pytest.fixture
def devnet_conn(devnet: Devnet, monkeypatch: pytest.MonkeyPatch) -> dict:
    """``ethernity_default`` pointing at the devnet; returns the connection as a dict."""
    monkeypatch.setenv("AIRFLOW_CONN_ETHERNITY_DEFAULT", devnet.connection_json())
    return json.loads(devnet.connection_json())


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, base: dict, password: str | None = None, **extra) -> None:
    """Register a variant of the devnet connection under ``conn_id``."""
    conn = {**base, "extra": {**base["extra"], **extra}}
    if password is not None:
        conn["password"] = password
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
