"""Airflow's real services on 127.0.0.1: api-server, scheduler, dag-processor and triggerer.

``AirflowServices(home, env).start()`` migrates a fresh SQLite metadata DB in ``home``, starts the four
services (each in its own process group, output in ``home/<service>.log``), and waits until the api-server
answers and ``/api/v2/monitor/health`` reports every component healthy. ``stop()`` ends every process
they started (process groups first, then anything left that carries this AIRFLOW_HOME in its environment)
and checks that no listener is left on the api-server's port.

Executor: Airflow 3.3 allows the ``LocalExecutor`` with SQLite (tasks talk to the api-server's execution
API, not to the DB), so no PostgreSQL is needed; ``parallelism`` is kept small for a 2-core machine.

A distributed deployment is the same class with options: ``db_url`` (e.g. PostgreSQL), ``executor`` (e.g.
``EDGE_EXECUTOR``), ``triggerers`` (HA: several ``airflow triggerer`` processes), ``edge_workers`` (``airflow
edge worker`` processes talking to the api-server over HTTP) and ``separate_machines``: every triggerer and
worker then runs as its own "machine", with its own HOME, TMPDIR and ``ETHERNITY_LOCK_DIR`` (so the wallet's
``flock`` and nonce file do not cross them) under ``home/machines/<name>``; edge workers keep their task logs
there too (they push them to the api-server, as on a real remote machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_ethernity.devnet.ports import free_port, is_listening
from tests.services.processes import descends_from, own_processes, signal_group

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
EDGE_EXECUTOR = "airflow.providers.edge3.executors.EdgeExecutor"
HEALTH_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
USERNAME = "admin"


def redact(text: str, *secrets_: str | None) -> str:
    """``text`` with every secret (and its form without ``0x``) replaced by ``***``."""
    for secret in secrets_:
        if secret:
            text = text.replace(secret, "***")
            if secret.startswith("0x"):
                text = text.replace(secret[2:], "***")
    return text


@dataclass
class AirflowServices:
    home: Path
    dags_folder: str
    extra_env: dict[str, str] = field(default_factory=dict)
    parallelism: int = 8
    secret_values: tuple[str, ...] = ()
    port: int = 0
    password: str = ""
    #: the deployment: executor, metadata DB (default: SQLite in ``home``), how many triggerers and edge workers
    executor: str = "LocalExecutor"
    db_url: str | None = None
    triggerers: int = 1
    edge_workers: int = 0
    edge_concurrency: int = 8
    #: triggerers and workers each with their own HOME, TMPDIR and ETHERNITY_LOCK_DIR (see the module doc)
    separate_machines: bool = False
    #: the CPUs of each edge worker's "machine": worker i's process tree (its task processes included) runs only
    #: on ``edge_worker_cpus[(i - 1) % len]`` (``taskset``; children inherit the affinity); empty: any CPU
    edge_worker_cpus: tuple[int, ...] = ()
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: what the last ``stop`` (through :func:`.deployments.running`) had to kill outside the process groups
    killed: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ configuration
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def services(self) -> tuple[str, ...]:
        """The processes of this deployment, in start order."""
        triggerers = ["triggerer", *(f"triggerer-{i}" for i in range(2, self.triggerers + 1))]
        workers = [f"edge-worker-{i}" for i in range(1, self.edge_workers + 1)]
        return ("api-server", "scheduler", "dag-processor", *triggerers, *workers)

    def machine_dir(self, name: str) -> Path:
        """The private directory of a triggerer or worker running as its own machine."""
        return self.home / "machines" / name

    def service_env(self, name: str) -> dict[str, str]:
        """The environment of one service: the deployment's, plus its own machine's directories."""
        env = self.env()
        if self.separate_machines and (name.startswith("triggerer") or name.startswith("edge-worker")):
            machine = self.machine_dir(name)
            for sub in ("home", "tmp", "locks"):
                (machine / sub).mkdir(parents=True, exist_ok=True)
            env.update(
                {
                    "HOME": str(machine / "home"),
                    "TMPDIR": str(machine / "tmp"),
                    "ETHERNITY_LOCK_DIR": str(machine / "locks"),
                }
            )
        if name.startswith("edge-worker"):
            logs = self.machine_dir(name) / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(logs)  # pushed to the api-server's log folder
        return env

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": self.dags_folder,
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url or f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": f"{self.base_url}/",
                "AIRFLOW__API__SECRET_KEY": self._secret("secret_key"),
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt_secret"),
                "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
                # quick pick-up of new DAG files and runs on a slow machine
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.executor == EDGE_EXECUTOR:
            env.update(
                {
                    "AIRFLOW__EDGE__API_ENABLED": "True",
                    "AIRFLOW__EDGE__API_URL": f"{self.base_url}/edge_worker/v1/rpcapi",
                    "AIRFLOW__EDGE__JOB_POLL_INTERVAL": "1",
                    "AIRFLOW__EDGE__HEARTBEAT_INTERVAL": "5",
                    "AIRFLOW__EDGE__WORKER_CONCURRENCY": str(self.edge_concurrency),
                    # an edge worker signs each request with a token valid this long; on a starved machine a
                    # request can wait longer than the default 30 s, then the api-server answers 403 and the
                    # worker exits
                    "AIRFLOW__API_AUTH__JWT_LEEWAY": "300",
                }
            )
        env.update(self.extra_env)
        return env

    @property
    def fernet_key(self) -> str:
        from cryptography.fernet import Fernet

        return self._secret("fernet_key", lambda: Fernet.generate_key().decode())

    def _secret(self, name: str, make: Callable[[], str] = lambda: secrets.token_urlsafe(32)) -> str:
        path = self.home / f".{name}"
        if not path.exists():
            path.write_text(make())
            path.chmod(0o600)
        return path.read_text()

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 300.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.password = secrets.token_urlsafe(16)
        pw_file = self.home / "passwords.json"
        pw_file.write_text(json.dumps({USERNAME: self.password}) + "\n")
        pw_file.chmod(0o600)
        env = self.env()
        migrate = subprocess.run(
            [AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600, start_new_session=True
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{self.redact(migrate.stdout + migrate.stderr)[-4000:]}")
        try:
            for name in self.services:
                self._spawn(name, self.service_env(name))
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, env: dict[str, str]) -> None:
        commands = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            "scheduler": ["scheduler", "--skip-serve-logs"],
            "dag-processor": ["dag-processor"],
            "triggerer": ["triggerer", "--skip-serve-logs"],
        }
        if name.startswith("triggerer"):
            command = commands["triggerer"]
        elif name.startswith("edge-worker"):
            command = [
                "edge", "worker", "--edge-hostname", name, "--concurrency", str(self.edge_concurrency),
                "--pid", str(self.machine_dir(name) / "worker.pid"),
            ]  # fmt: skip
        else:
            command = commands[name]
        cpus = self.cpus_of(name)
        pin = ["taskset", "--cpu-list", ",".join(map(str, sorted(cpus)))] if cpus else []  # taskset execs airflow
        with open(self.home / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [*pin, AIRFLOW, *command],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
                start_new_session=True,
            )

    def cpus_of(self, name: str) -> set[int]:
        """The CPUs ``name`` is confined to (children inherit it); empty: any."""
        if not (self.edge_worker_cpus and name.startswith("edge-worker-")):
            return set()
        index = int(name.rsplit("-", 1)[1]) - 1
        return {self.edge_worker_cpus[index % len(self.edge_worker_cpus)]}

    def restart(self, name: str, grace: float = 30.0) -> None:
        """Stop one service (its whole process group, SIGTERM then SIGKILL) and start it again."""
        proc = self.procs[name]
        signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        signal_group(proc.pid, signal.SIGKILL)  # children the service left behind
        self._spawn(name, self.service_env(name))

    def task_processes(self) -> list[int]:
        """Pids of running task processes (``airflow worker -- <ti id>``) under this scheduler. Found by
        ancestry: ``setproctitle`` overwrites a task process's environment block, so no marker is left there."""
        scheduler = self.procs["scheduler"].pid
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                title = (entry / "cmdline").read_bytes()
                # not the LocalExecutor's own workers ("airflow worker -- LocalExecutor: <idle>"): an idle one
                # blocks in the task queue holding its lock, and killing it wedges the executor for good
                task = title.startswith(b"airflow worker -- ") and not title.startswith(b"airflow worker -- Local")
                if task and descends_from(int(entry.name), scheduler):
                    pids.append(int(entry.name))
        return pids

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def health(self) -> dict[str, Any] | None:
        try:
            response = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=10)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def wait_healthy(self, timeout: float) -> dict[str, Any]:
        """Poll the health endpoint until the DB, scheduler, triggerer and dag-processor are healthy."""
        deadline = time.monotonic() + timeout
        health: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            self.check_alive()
            health = self.health()
            if health and all((health.get(c) or {}).get("status") == "healthy" for c in HEALTH_COMPONENTS):
                if self.edge_workers and len(self.edge_workers_online()) < self.edge_workers:
                    time.sleep(1)
                    continue
                return health
            time.sleep(1)
        raise TimeoutError(f"Airflow not healthy within {timeout:g} s: {health}\n{self.log_tail('api-server')}")

    def edge_workers_online(self) -> list[str]:
        """Names of the edge workers the api-server knows as running or idle."""
        try:
            with self.client() as api:
                response = api.get(f"{self.base_url}/edge_worker/ui/worker", timeout=10)
        except httpx.HTTPError:
            return []
        if response.status_code != 200:
            return []
        return [
            w["worker_name"]
            for w in response.json().get("workers", [])
            if w.get("state") in ("idle", "running", "starting")
        ]

    def stop(self, grace: float = 30.0) -> list[str]:
        """SIGTERM every service's process group, SIGKILL after ``grace`` s; returns the leftovers killed."""
        for proc in self.procs.values():
            signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        for proc in self.procs.values():  # children (task workers) left in the groups
            signal_group(proc.pid, signal.SIGKILL)
        self.procs.clear()
        leftovers = self._kill_leftovers()
        if self.port:
            deadline = time.monotonic() + 15
            while is_listening(self.port) and time.monotonic() < deadline:
                time.sleep(0.2)
        return leftovers

    def _kill_leftovers(self) -> list[str]:
        """Kill any process still carrying this AIRFLOW_HOME (e.g. one that left its process group)."""
        marker = f"AIRFLOW_HOME={self.home}".encode()
        killed: list[str] = []
        for pid in own_processes(marker):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                os.kill(pid, signal.SIGKILL)
                killed.append(f"{pid} {cmdline.strip()}")
            except (ProcessLookupError, FileNotFoundError):
                continue
        return killed

    def processes_left(self) -> list[int]:
        return own_processes(f"AIRFLOW_HOME={self.home}".encode())

    # ------------------------------------------------------------------ helpers
    def redact(self, text: str) -> str:
        return redact(text, self.password, *self.secret_values)

    def files_containing(self, secret: str) -> list[str]:
        """Log and config files under AIRFLOW_HOME that contain ``secret`` (with or without ``0x``)."""
        needle = (secret[2:] if secret.startswith("0x") else secret).lower().encode()
        found = []
        for path in self.home.rglob("*"):
            readable = path.is_file() and (".log" in path.name or path.suffix in (".cfg", ".json", ".txt"))
            if readable and needle and needle in path.read_bytes().lower():
                found.append(str(path.relative_to(self.home)))
        return found

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.home / f"{name}.log"
        return self.redact(path.read_text(errors="replace")[-chars:]) if path.exists() else ""

    def token(self) -> str:
        response = httpx.post(
            f"{self.base_url}/auth/token", json={"username": USERNAME, "password": self.password}, timeout=30
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def stored_connection(self, conn_id: str) -> dict[str, Any]:
        """The connection row as stored in the metadata DB, password and extra decrypted with the Fernet key."""
        import sqlite3

        from cryptography.fernet import Fernet

        with contextlib.closing(sqlite3.connect(self.home / "airflow.db")) as db:
            row = db.execute(
                "SELECT conn_type, password, is_encrypted, extra, is_extra_encrypted FROM connection WHERE conn_id = ?",
                (conn_id,),
            ).fetchone()
        if row is None:
            raise KeyError(conn_id)
        conn_type, password, is_encrypted, extra, is_extra_encrypted = row
        fernet = Fernet(self.fernet_key.encode())
        if password and is_encrypted:
            password = fernet.decrypt(password.encode()).decode()
        if extra and is_extra_encrypted:
            extra = fernet.decrypt(extra.encode()).decode()
        return {"conn_type": conn_type, "password": password, "extra": json.loads(extra or "{}")}

    def client(self) -> httpx.Client:
        """An httpx client for the public REST API (``/api/v2``) with a bearer token."""
        return httpx.Client(
            base_url=f"{self.base_url}/api/v2", headers={"Authorization": f"Bearer {self.token()}"}, timeout=60
        )
