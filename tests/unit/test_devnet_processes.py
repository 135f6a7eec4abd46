"""Process identities and ``down``'s safety, with real processes: a pid the devnet recorded is stopped only
while it still runs the recorded process (same start time and command line)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_ethernity.devnet.network import Devnet
from airflow_provider_ethernity.devnet.process import ProcessIdentity
from airflow_provider_ethernity.devnet.state import STATE_FILE, DevnetState, ProcessRecord, ProcessStatus
from tests.devnet_cli import devnet_cli


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process (``sleep``), killed and reaped at the end."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


def state_with(workdir: Path, processes: dict[str, ProcessRecord]) -> DevnetState:
    state = DevnetState(
        workdir=str(workdir),
        rpc_url="http://127.0.0.1:8545",
        ipfs_api_url="http://127.0.0.1:5001/api/v0",
        chain_id=31337,
        protocol_address="0x" + "1" * 40,
        token_address="0x" + "2" * 40,
        image_registry_address="0x" + "3" * 40,
        trustedzone="etny-pynithy-devnet",
        requester_address="0x" + "4" * 40,
        node_address="0x" + "5" * 40,
        started_at="2026-01-01T00:00:00+00:00",
        processes=processes,
    )
    state.save()
    return state


def exited_record(tmp_path: Path) -> ProcessRecord:
    """The record of a devnet process that has exited since (a real one: its start time and command line)."""
    gone = subprocess.Popen(["sleep", "30"])
    record = ProcessRecord.of(gone.pid, tmp_path / "anvil.log")
    gone.kill()
    gone.wait()
    return record


def test_identity_of_a_running_process_and_of_none() -> None:
    me = ProcessIdentity.of(os.getpid())
    assert me is not None and me == ProcessIdentity.of(os.getpid()) and me.is_running()
    assert "pytest" in me.command or "python" in me.command
    assert ProcessIdentity.from_dict(me.to_dict()) == me


def test_identity_of_an_exited_child_is_none() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert ProcessIdentity.of(child.pid) is None


def test_down_leaves_a_reused_pid_alone(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    """A stale state file whose pid now belongs to an unrelated process: ``down`` must not signal it."""
    recorded = exited_record(tmp_path)
    reused = ProcessRecord(pid=sleeper.pid, log=recorded.log, start_time=recorded.start_time, command=recorded.command)
    state = state_with(tmp_path, {"anvil": reused})
    assert state.statuses() == {"anvil": ProcessStatus.REUSED}

    done = devnet_cli(tmp_path, "down")

    assert done.returncode == 0, done.stderr
    assert f"anvil (pid {sleeper.pid}): not running (its pid now belongs to another process); left alone" in done.stdout
    assert sleeper.poll() is None, "down killed an unrelated process"
    assert not (tmp_path / STATE_FILE).exists()


def test_down_stops_the_recorded_process(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    state_with(tmp_path, {"agent": ProcessRecord.of(sleeper.pid, tmp_path / "agent.log")})
    assert Devnet.stop_from_state(tmp_path) == [f"agent (pid {sleeper.pid}): stopped"]
    assert sleeper.wait(timeout=10) is not None


def test_old_state_file_without_identities_is_left_alone(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    """State files of earlier versions hold bare pids: they cannot be verified, so nothing is signalled."""
    old_format = {
        **{name: "" for name in ("protocol_address", "token_address", "image_registry_address", "trustedzone")},
        **{name: "" for name in ("requester_address", "node_address", "started_at")},
        "workdir": str(tmp_path),
        "rpc_url": "http://127.0.0.1:1",
        "ipfs_api_url": "http://127.0.0.1:2/api/v0",
        "chain_id": 31337,
        "pids": {"anvil": sleeper.pid},
    }
    (tmp_path / STATE_FILE).write_text(json.dumps(old_format))
    lines = Devnet.stop_from_state(tmp_path)
    assert lines == [f"anvil (pid {sleeper.pid}): unverifiable (state file without process identity); left alone"]
    assert sleeper.poll() is None


def test_status_names_each_process_and_its_log(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    state_with(
        tmp_path,
        {"ipfs": ProcessRecord.of(sleeper.pid, tmp_path / "ipfs.log"), "anvil": exited_record(tmp_path)},
    )
    (tmp_path / "connection.env").write_text("export AIRFLOW_CONN_ETHERNITY_DEFAULT='{}'\n")
    done = devnet_cli(tmp_path, "status")
    assert done.returncode == 1  # not every process runs
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"ipfs   pid {sleeper.pid}") and "running" in lines[0] and "ipfs.log" in lines[0]
    assert lines[1].startswith("anvil") and "not running" in lines[1] and "anvil.log" in lines[1]
    assert "export AIRFLOW_CONN_ETHERNITY_DEFAULT='{}'" in done.stdout
    assert sleeper.poll() is None
