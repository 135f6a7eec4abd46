"""``ethernity-devnet up/status/down`` on real devnets (anvil, IPFS, node agent), run as a user runs them.

Ports: the tests pass free ports explicitly (the CLI's stable defaults 8545/5001 may be taken on a shared
machine, and parallel tests must not collide).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_ethernity.devnet.ports import free_port
from airflow_provider_ethernity.devnet.process import ProcessIdentity
from airflow_provider_ethernity.devnet.state import STATE_FILE, connection_line
from tests.devnet_cli import devnet_cli, stderr_lines

pytestmark = pytest.mark.integration


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A devnet workdir; whatever runs from it is stopped at the end."""
    yield tmp_path
    if (tmp_path / STATE_FILE).exists():
        devnet_cli(tmp_path, "down")


def identities(workdir: Path) -> dict[str, ProcessIdentity]:
    state = json.loads((workdir / STATE_FILE).read_text())
    return {name: ProcessIdentity.from_dict(record) for name, record in state["processes"].items()}


def test_up_keeps_a_running_devnet_restart_replaces_it_and_the_connection_survives(workdir: Path) -> None:
    ports = ["--rpc-port", str(free_port()), "--ipfs-port", str(free_port())]
    first = devnet_cli(workdir, "up", *ports)
    assert first.returncode == 0, first.stderr
    connection = connection_line(workdir)
    started = identities(workdir)
    assert connection and connection in first.stdout and all(p.is_running() for p in started.values())

    again = devnet_cli(workdir, "up")  # no options: keep whatever runs
    assert again.returncode == 0, again.stderr
    assert "already running; kept it" in again.stdout and connection in again.stdout
    assert identities(workdir) == started and all(p.is_running() for p in started.values())

    other_port = devnet_cli(workdir, "up", "--rpc-port", str(free_port()))
    assert other_port.returncode == 1 and "add --restart" in stderr_lines(other_port)[0]
    assert all(p.is_running() for p in started.values())

    restarted = devnet_cli(workdir, "up", "--restart", *ports)
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.startswith("restarting: agent (pid")
    replaced = identities(workdir)
    assert not any(p.is_running() for p in started.values())
    assert all(p.is_running() for p in replaced.values()) and set(replaced.values()).isdisjoint(started.values())
    # Same ports, same requester key, same contract addresses: a saved Airflow connection still works.
    assert connection_line(workdir) == connection

    status = devnet_cli(workdir, "status")
    assert status.returncode == 0 and status.stdout.count(" running ") == 3 and connection in status.stdout
    for log in ("anvil.log", "ipfs.log", "agent.log"):
        assert log in status.stdout

    down = devnet_cli(workdir, "down")
    assert down.returncode == 0 and down.stdout.count(": stopped") == 3
    assert not any(p.is_running() for p in replaced.values())
    assert not (workdir / STATE_FILE).exists()


def test_up_replaces_a_devnet_whose_process_died(workdir: Path) -> None:
    first = devnet_cli(workdir, "up", "--rpc-port", "0", "--ipfs-port", "0")
    assert first.returncode == 0, first.stderr
    started = identities(workdir)
    assert started["agent"].stop()  # the node agent dies

    status = devnet_cli(workdir, "status")
    assert status.returncode == 1 and "agent  pid" in status.stdout and "not running" in status.stdout

    second = devnet_cli(workdir, "up", "--rpc-port", "0", "--ipfs-port", "0")
    assert second.returncode == 0, second.stderr
    assert "replacing a devnet that is not fully running" in second.stdout
    assert not any(p.is_running() for p in started.values())
    assert all(p.is_running() for p in identities(workdir).values())
