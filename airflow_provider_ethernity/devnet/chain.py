"""The devnet's EVM node: anvil from the pinned npm package, on a free 127.0.0.1 port."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from airflow_provider_ethernity.devnet.ports import free_port, wait_listening
from airflow_provider_ethernity.devnet.process import stop_pid
from airflow_provider_ethernity.devnet.tools import find_anvil


class AnvilProcess:
    """``anvil`` as a child process in its own session. ``block_time=None`` mines each transaction at once."""

    def __init__(
        self,
        *,
        workdir: str | Path,
        chain_id: int = 31337,
        block_time: float | None = None,
        port: int | None = None,
        accounts: int = 10,
    ) -> None:
        self.workdir = Path(workdir)
        self.chain_id = chain_id
        self.block_time = block_time
        self.port = port
        self.accounts = accounts
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        cmd = [
            str(find_anvil()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--accounts", str(self.accounts),
            "--no-request-size-limit",
        ]  # fmt: skip
        if self.block_time:
            cmd += ["--block-time", f"{self.block_time:g}"]
        return cmd

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):  # another process may grab the free port between pick and bind
            self.port = self.port or free_port()
            log = open(self.workdir / "anvil.log", "ab")  # noqa: SIM115 - the child owns it
            self._proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
            log.close()
            alive: Callable[[], bool] = lambda: self._proc is not None and self._proc.poll() is None  # noqa: E731
            if wait_listening(self.port, timeout, alive):
                return
            self.stop()
            self.port = None
        tail = (self.workdir / "anvil.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"anvil did not start; see {self.workdir / 'anvil.log'}:\n{tail}")

    def stop(self) -> None:
        if self._proc is not None:
            stop_pid(self._proc.pid)
            self._proc.wait()
            self._proc = None
