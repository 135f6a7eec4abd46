"""Processes of a deployment under test: process groups, ancestry, and the processes carrying a marker."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def descends_from(pid: int, ancestor: int) -> bool:
    for _ in range(32):
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state: the parent's pid
        if pid <= 1:
            return False
    return False


def own_processes(marker: bytes) -> list[int]:
    """Pids of live processes whose environment holds ``marker`` (``NAME=value``), except this one."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            status = (entry / "status").read_text()
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        if "State:\tZ" in status:
            continue
        if marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids
