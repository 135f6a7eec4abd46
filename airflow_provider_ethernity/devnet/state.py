"""The running devnet as files in its workdir: ``devnet.json`` (addresses, ports, processes) and
``connection.env`` (the Airflow connection), and what each recorded process is doing now.

Other processes (``ethernity-devnet status|down|hello``, a second ``up``) read these files; each process is
recorded with its identity (:class:`~airflow_provider_ethernity.devnet.process.ProcessIdentity`) so that a
pid reused by an unrelated process is never taken for the devnet's.
"""

from __future__ import annotations

import enum
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_ethernity.devnet.errors import DevnetError
from airflow_provider_ethernity.devnet.process import ProcessIdentity, pid_alive

STATE_FILE = "devnet.json"
CONNECTION_FILE = "connection.env"
#: The order ``down`` stops them in: the agent first (it uses the other two), the chain last.
PROCESS_NAMES = ("agent", "chain_front", "ipfs_front", "public_ipfs", "ipfs", "anvil")


def default_workdir() -> Path:
    return Path(os.environ.get("ETHERNITY_DEVNET_HOME", Path.home() / ".ethernity-devnet"))


@dataclass
class ProcessRecord:
    """One devnet process as recorded: its identity (None in state files written before identities were
    recorded) and its log file."""

    pid: int
    log: str
    start_time: str | None = None
    command: str | None = None

    @property
    def identity(self) -> ProcessIdentity | None:
        if self.start_time is None or self.command is None:
            return None
        return ProcessIdentity(self.pid, self.start_time, self.command)

    @classmethod
    def of(cls, pid: int, log: Path) -> ProcessRecord:
        """The record of a running process (its identity read now; right after exec the kernel may show an
        empty command line for a moment, so wait for it)."""
        deadline = time.monotonic() + 5.0
        while True:
            identity = ProcessIdentity.of(pid)
            if identity is None:
                raise DevnetError(f"the devnet process {pid} exited while starting; see {log}")
            if identity.command or time.monotonic() > deadline:
                return cls(pid=pid, log=str(log), start_time=identity.start_time, command=identity.command)
            time.sleep(0.01)


class ProcessStatus(enum.Enum):
    RUNNING = "running"
    EXITED = "not running"
    REUSED = "not running (its pid now belongs to another process)"
    UNVERIFIABLE = "unverifiable (state file without process identity)"


@dataclass
class DevnetState:
    workdir: str
    rpc_url: str
    ipfs_api_url: str
    chain_id: int
    protocol_address: str
    token_address: str
    image_registry_address: str
    trustedzone: str
    requester_address: str
    node_address: str
    started_at: str
    processes: dict[str, ProcessRecord] = field(default_factory=dict)
    #: The profile (``devnet/profiles.py``) and what it adds to the connection; defaults are today's devnet.
    profile: str = "default"
    network: str = "devnet"
    block_time: float | None = None
    anvil_rpc_url: str | None = None
    private_ipfs_api_url: str | None = None
    public_ipfs_api_url: str | None = None
    ipfs_public: bool | None = None
    ipfs_intake_url: str | None = None
    ipfs_gateway_url: str | None = None
    #: The dApp image (securelock) published in the registry beside the trustedzone (``securelock=`` of a task).
    securelock: str | None = None

    @property
    def pids(self) -> dict[str, int]:
        return {name: record.pid for name, record in self.processes.items()}

    @property
    def rpc_port(self) -> int:
        return int(self.rpc_url.rsplit(":", 1)[1])

    @property
    def ipfs_port(self) -> int:
        return int(self.ipfs_api_url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])

    def connection_extra(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "rpc_url": self.rpc_url,
            "ipfs_api_url": self.ipfs_api_url,
            "chain_id": self.chain_id,
            "protocol_address": self.protocol_address,
            "token_address": self.token_address,
            "image_registry_address": self.image_registry_address,
            "trustedzone": self.trustedzone,
            **{
                name: value
                for name, value in (
                    ("ipfs_public", self.ipfs_public),
                    ("ipfs_intake_url", self.ipfs_intake_url),
                    ("ipfs_gateway_url", self.ipfs_gateway_url),
                    ("block_time", self.block_time if self.profile != "default" else None),
                )
                if value is not None
            },
        }

    def statuses(self) -> dict[str, ProcessStatus]:
        """What each recorded process is doing now, in :data:`PROCESS_NAMES` order."""
        return {name: process_status(self.processes[name]) for name in PROCESS_NAMES if name in self.processes}

    def all_running(self) -> bool:
        statuses = self.statuses()
        return bool(statuses) and all(status is ProcessStatus.RUNNING for status in statuses.values())

    def save(self) -> None:
        (Path(self.workdir) / STATE_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, workdir: str | Path) -> DevnetState | None:
        """The state in ``workdir``, or None when no devnet was started there (or it was stopped)."""
        path = Path(workdir) / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise DevnetError(f"cannot read {path}: {exc}") from None
        try:
            if "processes" in data:
                data["processes"] = {name: ProcessRecord(**record) for name, record in data["processes"].items()}
            else:  # written before process identities were recorded: pids only
                pids = data.pop("pids", {})
                data["processes"] = {name: ProcessRecord(pid=pid, log="") for name, pid in pids.items()}
            return cls(**data)
        except (TypeError, KeyError) as exc:
            raise DevnetError(f"{path} is not a devnet state file: {exc}") from None


def process_status(record: ProcessRecord) -> ProcessStatus:
    identity = record.identity
    if identity is None:
        return ProcessStatus.UNVERIFIABLE if pid_alive(record.pid) else ProcessStatus.EXITED
    now = ProcessIdentity.of(record.pid)
    if now is None:
        return ProcessStatus.EXITED
    return ProcessStatus.RUNNING if now == identity else ProcessStatus.REUSED


def stop_recorded(state: DevnetState) -> list[str]:
    """Stop the state's processes that are still the devnet's own; one line per process says what happened.

    A process is signalled only while its pid, start time and command line all match the record.
    """
    lines = []
    for name, status in state.statuses().items():
        record = state.processes[name]
        identity = record.identity
        if status is ProcessStatus.RUNNING and identity is not None and identity.stop():
            lines.append(f"{name} (pid {record.pid}): stopped")
        elif status is ProcessStatus.RUNNING:
            lines.append(f"{name} (pid {record.pid}): exited meanwhile")
        elif status is ProcessStatus.EXITED:
            lines.append(f"{name} (pid {record.pid}): was not running")
        else:
            lines.append(f"{name} (pid {record.pid}): {status.value}; left alone")
    return lines


def connection_line(workdir: str | Path) -> str | None:
    """The ``export AIRFLOW_CONN_ETHERNITY_DEFAULT=...`` line of the devnet in ``workdir``."""
    path = Path(workdir) / CONNECTION_FILE
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
