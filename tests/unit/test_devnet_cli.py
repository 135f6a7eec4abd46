"""``ethernity-devnet`` failures: each is one line on stderr and exit code 1, without a traceback (run as a
separate process, as users run it). Starting real devnets: tests/integration/test_devnet_cli.py."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_ethernity.devnet.cli import _requested_port
from airflow_provider_ethernity.devnet.errors import DevnetError
from airflow_provider_ethernity.devnet.ports import port_is_free
from airflow_provider_ethernity.devnet.state import STATE_FILE
from tests.devnet_cli import devnet_cli, stderr_lines


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something listens on (a socket of this process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def assert_one_line_failure(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = stderr_lines(done)
    assert len(lines) == 1 and lines[0].startswith("ethernity-devnet: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_busy_port_names_the_option(tmp_path: Path, busy_port: int) -> None:
    done = devnet_cli(tmp_path, "up", "--rpc-port", str(busy_port), "--ipfs-port", "0")
    assert_one_line_failure(done, f"127.0.0.1:{busy_port} is in use", "--rpc-port N", "--rpc-port 0")
    assert not (tmp_path / STATE_FILE).exists()


def test_busy_default_port_fails_naming_the_option(busy_port: int) -> None:
    """The stable default is not swapped for another port silently (a saved connection would go stale)."""
    assert not port_is_free(busy_port)
    with pytest.raises(DevnetError, match=rf"127\.0\.0\.1:{busy_port} is in use: pass --ipfs-port N"):
        _requested_port(None, busy_port, "--ipfs-port")
    assert _requested_port(0, busy_port, "--ipfs-port") == 0  # 0: any free port


def test_missing_anvil_is_one_line(tmp_path: Path) -> None:
    done = devnet_cli(tmp_path, "up", "--rpc-port", "0", "--ipfs-port", "0", env={"ETHERNITY_ANVIL": "/nonexistent"})
    assert_one_line_failure(done, "ETHERNITY_ANVIL=/nonexistent is not an executable file")
    assert not (tmp_path / STATE_FILE).exists()


def test_hello_without_devnet(tmp_path: Path) -> None:
    assert_one_line_failure(devnet_cli(tmp_path, "hello"), "no devnet runs in", "ethernity-devnet up")


def test_usage_error_is_one_line(tmp_path: Path) -> None:
    assert_one_line_failure(devnet_cli(tmp_path, "up", "--rpc-port", "http"), "not a port number: 'http'", "--help")


def test_corrupt_state_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    assert_one_line_failure(devnet_cli(tmp_path, "status"), f"cannot read {tmp_path / STATE_FILE}")


def test_down_and_status_when_nothing_runs(tmp_path: Path) -> None:
    down = devnet_cli(tmp_path, "down")
    assert (down.returncode, down.stdout.strip()) == (0, "devnet was not running")
    status = devnet_cli(tmp_path, "status")
    assert status.returncode == 1 and status.stdout.startswith("devnet is down")
