"""Two machines sharing one wallet: two processes with separate lock directories (the per-wallet ``flock`` does
not cross machines), each running tasks on threads at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]

_MACHINE = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from airflow_provider_ethernity.hooks.ethernity import EthernityHook
code, count, conn_id, price = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def one(_):
    try:
        return EthernityHook(conn_id).run_task(code, resources={"taskPrice": price}, poll_interval=0.2).value
    except Exception as exc:
        return f"FAILED {type(exc).__name__}: {exc}"
with ThreadPoolExecutor(count) as pool:
    print(json.dumps(list(pool.map(one, range(count)))))
"""


def run_on_two_machines(lock_root: Path, code: str, tasks_each: int, conn_id: str, price: int) -> list[str]:
    """Every task's value (or ``FAILED <error>``), machine by machine."""
    machines = [
        subprocess.Popen(
            [sys.executable, "-c", _MACHINE, code, str(tasks_each), conn_id, str(price)],
            env={**os.environ, "ETHERNITY_LOCK_DIR": str(lock_root / f"machine-{index}")},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    try:
        outputs = [machine.communicate(timeout=900) for machine in machines]
    finally:  # a machine still running (a timeout) must not go on spending after the test
        for machine in machines:
            if machine.poll() is None:
                machine.kill()
                machine.wait()
    values: list[str] = []
    for machine, (out, err) in zip(machines, outputs, strict=True):
        assert machine.returncode == 0 and out.strip(), f"a machine crashed (exit {machine.returncode}): {err[-2000:]}"
        values += json.loads(out.strip().splitlines()[-1])
    return values
