"""The devnet's EVM node: anvil (see :mod:`~airflow_provider_ethernity.devnet.tools`) on a 127.0.0.1 port."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from airflow_provider_ethernity.devnet.errors import DevnetError
from airflow_provider_ethernity.devnet.ports import free_port, wait_listening, wait_port_free
from airflow_provider_ethernity.devnet.process import stop_pid
from airflow_provider_ethernity.devnet.tools import find_anvil

#: How long a start on a given port waits for it to be released (see ``start``).
PORT_RELEASE_GRACE = 5.0


class AnvilProcess:
    """``anvil`` as a child process in its own session. ``block_time=None`` mines each transaction at once.

    ``port=None`` (or 0) picks a free port (retried if another process takes it first); a given port is
    used as is, and a DevnetError says so when it is taken.
    """

    def __init__(
        self,
        *,
        workdir: str | Path,
        chain_id: int = 31337,
        block_time: float | None = None,
        port: int | None = None,
        accounts: int = 10,
        extra_args: list[str] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.chain_id = chain_id
        self.block_time = block_time
        self.port = port or None
        self.accounts = accounts
        #: More anvil flags (a profile's ``--hardfork berlin``, ``--base-fee N``).
        self.extra_args = list(extra_args or [])
        self._binary: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_file(self) -> Path:
        return self.workdir / "anvil.log"

    def command(self) -> list[str]:
        cmd = [
            str(self._binary or find_anvil()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--accounts", str(self.accounts),
            "--no-request-size-limit",
        ]  # fmt: skip
        if self.block_time:
            cmd += ["--block-time", f"{self.block_time:g}"]
        return cmd + self.extra_args

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._binary = find_anvil()  # may install it on first use, before any port is picked
        fixed_port = self.port is not None
        # anvil's closing connections hold its port for a moment after it stopped (a restart on the same port)
        if fixed_port and not wait_port_free(self.port, PORT_RELEASE_GRACE):  # type: ignore[arg-type]
            raise DevnetError(f"anvil did not start: 127.0.0.1:{self.port} is already in use")
        for _attempt in range(1 if fixed_port else 3):  # another process may grab a free port between pick and bind
            self.port = self.port if fixed_port else free_port()
            with open(self.log_file, "ab") as log:
                self._proc = subprocess.Popen(
                    self.command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            alive: Callable[[], bool] = lambda: self._proc is not None and self._proc.poll() is None  # noqa: E731
            if wait_listening(self.port, timeout, alive):  # type: ignore[arg-type]
                return
            self.stop()
        tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
        raise DevnetError(f"anvil did not start on 127.0.0.1:{self.port}; see {self.log_file}:\n{tail}")

    def stop(self) -> None:
        if self._proc is not None:
            stop_pid(self._proc.pid)
            self._proc.wait()
            self._proc = None
