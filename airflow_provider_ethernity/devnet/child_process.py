"""A devnet helper server run as a child process in its own session, on a free loopback port."""

from __future__ import annotations

import subprocess
from pathlib import Path

from airflow_provider_ethernity.devnet.errors import DevnetError
from airflow_provider_ethernity.devnet.ports import free_port, wait_listening
from airflow_provider_ethernity.devnet.process import stop_pid


class LoopbackChild:
    """Start (up to 3 free ports), URL, pid, log file and stop of one child server; subclasses give its command."""

    log_name = "child.log"
    what = "the devnet child"

    def __init__(self, workdir: str | Path) -> None:
        self.workdir = Path(workdir)
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_file(self) -> Path:
        return self.workdir / self.log_name

    def command(self, port: int) -> list[str]:
        """The command line that serves on ``port`` (written for that port, e.g. its config file)."""
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        for _attempt in range(3):
            self.port = free_port()
            command = self.command(self.port)
            with open(self.log_file, "ab") as out:
                self._proc = subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
                )
            if wait_listening(self.port, timeout, lambda: self._proc is not None and self._proc.poll() is None):
                return
            self.stop()
        raise DevnetError(f"{self.what} did not start; see {self.log_file}")

    def stop(self) -> None:
        if self._proc is not None:
            stop_pid(self._proc.pid)
            self._proc.wait()
            self._proc = None
