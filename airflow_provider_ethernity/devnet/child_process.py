"""A devnet helper server run as a child process in its own session, on a free loopback port."""

from __future__ import annotations

import subprocess
from pathlib import Path

from airflow_provider_ethernity.devnet.errors import DevnetError
from airflow_provider_ethernity.devnet.ports import free_port, wait_listening, wait_port_free
from airflow_provider_ethernity.devnet.process import stop_pid

#: How long a fixed port may stay held by a previous server's closing connections (a restart on that port).
PORT_RELEASE_GRACE = 5.0


class LoopbackChild:
    """Start, URL, pid, log file and stop of one child server on 127.0.0.1; subclasses give its command.

    ``port=None`` picks a free port (retried up to 3 times: another process may take it between the pick and
    the bind); a given port is used as is (waiting a moment for a previous server's closing connections to
    release it), and a DevnetError says so when it is taken."""

    log_name = "child.log"
    what = "the devnet child"

    def __init__(self, workdir: str | Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.port: int | None = port or None
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
        fixed_port = self.port is not None
        if fixed_port and not wait_port_free(self.port, PORT_RELEASE_GRACE):  # type: ignore[arg-type]
            raise DevnetError(f"{self.what} did not start: 127.0.0.1:{self.port} is already in use")
        for _attempt in range(1 if fixed_port else 3):
            port = self.port if fixed_port else free_port()
            assert port is not None
            self.port = port
            command = self.command(port)
            with open(self.log_file, "ab") as out:
                self._proc = subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
                )
            if wait_listening(port, timeout, lambda: self._proc is not None and self._proc.poll() is None):
                return
            self.stop()
        tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
        raise DevnetError(f"{self.what} did not start on 127.0.0.1:{self.port}; see {self.log_file}:\n{tail}")

    def stop(self) -> None:
        if self._proc is not None:
            stop_pid(self._proc.pid)
            self._proc.wait()
            self._proc = None
