"""The devnet's child processes: whether one still runs, stopping it, and telling it from a reused pid.

A pid alone does not name a process: once the devnet's process has exited, the system may hand its pid to
an unrelated one. A :class:`ProcessIdentity` adds the process's start time and command line, recorded once
the process runs; ``ethernity-devnet down`` stops a pid only while both still match.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


def stop_pid(pid: int, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns when the process is gone.

    Only for processes this process started itself (a child cannot be replaced by another process while
    unreaped); for a process recorded in a state file, use :meth:`ProcessIdentity.stop`.
    """
    _terminate(pid, lambda: pid_alive(pid), grace)


def _terminate(pid: int, running: Any, grace: float) -> None:
    if not running():
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not running():
            return
        time.sleep(0.05)
    if not running():
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while running():
        time.sleep(0.05)


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as the devnet recorded it: pid, start time and command line (see the module docstring)."""

    pid: int
    start_time: str
    command: str

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The identity of whatever runs as ``pid`` now (None if nothing does, or only a zombie)."""
        proc = Path("/proc") / str(pid)
        if Path("/proc/self/stat").exists():
            return _from_proc(pid, proc)
        return _from_ps(pid)

    def is_running(self) -> bool:
        """True while the recorded process itself runs (not another one that got its pid)."""
        return ProcessIdentity.of(self.pid) == self

    def stop(self, grace: float = 5.0) -> bool:
        """Stop the recorded process if it still runs; False (and nothing signalled) if it does not."""
        if not self.is_running():
            return False
        _terminate(self.pid, self.is_running, grace)
        return True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessIdentity:
        return cls(pid=int(data["pid"]), start_time=str(data["start_time"]), command=str(data["command"]))


def _from_proc(pid: int, proc: Path) -> ProcessIdentity | None:
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name (field 2) may hold spaces and parentheses
    if fields[0] in ("Z", "X") and not _threads_alive(proc):  # gone, only its exit status is left
        return None
    start_ticks = fields[19]  # field 22: start time in clock ticks since boot
    return ProcessIdentity(pid, start_ticks, " ".join(cmdline.rstrip(b"\0").decode(errors="replace").split("\0")))


def _threads_alive(proc: Path) -> bool:
    """True while a thread of the process still runs: a multi-threaded process's main thread can be a zombie
    while the others are still exiting and still hold its files (a listening socket, say)."""
    try:
        tasks = list((proc / "task").iterdir())
    except OSError:
        return False
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2 :].split()[0] not in ("Z", "X"):
            return True
    return False


def _from_ps(pid: int) -> ProcessIdentity | None:
    """Systems without /proc (macOS): ``ps`` tells the start time to the second, and the command line."""
    done = subprocess.run(
        ["ps", "-ww", "-p", str(pid), "-o", "stat=", "-o", "lstart=", "-o", "command="],
        capture_output=True,
        text=True,
        check=False,
    )
    line = done.stdout.strip()
    if done.returncode != 0 or not line or line.startswith("Z"):
        return None
    parts = line.split(None, 6)  # stat, then lstart's five words ("Mon Dec  1 11:15:02 2026"), then the command
    if len(parts) < 7:
        return None
    return ProcessIdentity(pid, " ".join(parts[1:6]), parts[6])
