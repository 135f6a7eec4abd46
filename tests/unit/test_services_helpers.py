"""The services tests' process finder, on real processes: task processes are found by ancestry and title."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from tests.services.airflow_services import AirflowServices

GRANDCHILD = """
import os, sys, time
from setproctitle import setproctitle
if os.fork() == 0:
    setproctitle("airflow worker -- 0123")  # what Airflow's task runner does (it also clobbers environ)
    time.sleep(60)
    os._exit(0)
if os.fork() == 0:
    setproctitle("airflow worker -- LocalExecutor: <idle> 0123")  # the executor's own worker: never a victim
    time.sleep(60)
    os._exit(0)
time.sleep(60)
"""


def test_task_processes_are_found_under_the_scheduler_by_their_title(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", GRANDCHILD])
    stranger = subprocess.Popen([sys.executable, "-c", GRANDCHILD])  # same title, not under "the scheduler"
    try:
        services = AirflowServices(home=tmp_path, dags_folder=str(tmp_path))
        services.procs["scheduler"] = SimpleNamespace(pid=parent.pid)  # type: ignore[assignment]
        deadline = time.monotonic() + 30
        found: list[int] = []
        while not found and time.monotonic() < deadline:
            found = services.task_processes()
            time.sleep(0.1)
        assert len(found) == 1 and found[0] not in (parent.pid, stranger.pid)
        assert Path(f"/proc/{found[0]}/cmdline").read_bytes().startswith(b"airflow worker -- ")
    finally:
        for proc in (parent, stranger):
            proc.kill()
            proc.wait()
        subprocess.run(["pkill", "-f", "airflow worker -- 0123"], check=False)
        subprocess.run(["pkill", "-f", "airflow worker -- LocalExecutor: <idle> 0123"], check=False)
