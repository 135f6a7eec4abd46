"""Benchmark: N deferred sensors held by ONE real ``airflow triggerer`` process (not a simulated event loop).

A SQLite metadata DB (``airflow db migrate``) holds a DAG with two mapped sensors of N map indexes each:
``EthernityTaskSensor`` and Airflow's own ``TimeDeltaSensor(deferrable=True)``. Instead of running N worker
processes to make them defer (Airflow 3.3.2 cannot start a *mapped* task from the triggerer), the benchmark
writes what a deferral writes: N task instances in state ``deferred``, each with its trigger row
(``EthernityTaskCompletedTrigger`` of a real approved order on the devnet, resp. ``TimeDeltaTrigger`` of one
hour). Then one ``airflow triggerer`` runs them, as in production, RPC through a counting proxy.

Per kind, with a fresh triggerer each: the RSS of the triggerer's process group idle, then with the N
triggers running (per deferred task: the difference / N; goal: ours <= 1.5x ``TimeDeltaTrigger``'s). For the
Ethernity triggers, over a window of new 1 s blocks: HTTP requests at the proxy per new block (goal <= 3),
CPU time of the trigger runner process (the event loop) per block, and, as the orders close over time
(pre-signed ``_addResultToOrder``), each trigger's detection delay: the "Trigger fired event" time in its log
minus the timestamp of the block holding ``_orderClosedEV`` (anvil stamps whole seconds: reads up to 1 s high).
No scheduler runs, so the fired tasks are never resumed (the benchmark measures the triggerer only).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from benchmarks.orders import OrderFactory, send_raw_over_time
from benchmarks.procstats import group_stats, runner_cpu, settled_rss
from benchmarks.rpc_proxy import CountingRpcProxy
from benchmarks.stats import median, percentile
from benchmarks.table import Figure

CONN_ID = "ethernity_bench_proxy"
DAG_ID = "bench_triggerer_real"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
RSS_RATIO_GOAL = 1.5
RPC_GOAL = 3.0

DAG_FILE = """
import datetime as dt
from airflow.sdk import DAG
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow_provider_ethernity.sensors.ethernity import EthernityTaskSensor

with DAG(dag_id={dag_id!r}, schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False):
    EthernityTaskSensor.partial(task_id="ethernity", challenge_salt="00", ethernity_conn_id={conn!r}).expand(
        order_id=list(range({n}))
    )
    TimeDeltaSensor.partial(task_id="timedelta", delta=dt.timedelta(hours=1), deferrable=True).expand(
        poke_interval=[60] * {n}
    )
"""

SEED = """
import json, sys, datetime as dt
from sqlalchemy import select
from airflow.models.dagbag import DBDagBag
from airflow.models.taskinstance import TaskInstance
from airflow.models.trigger import Trigger
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState, TaskInstanceState
from airflow.utils.types import DagRunTriggeredByType, DagRunType

args = json.loads(sys.stdin.read())
with create_session() as session:
    dag = DBDagBag().get_latest_version_of_dag(args["dag_id"], session=session)
    run_id = "bench_" + args["task_id"] + "_" + args["run"]
    run = dag.create_dagrun(run_id=run_id, run_after=dt.datetime.now(dt.timezone.utc), run_type=DagRunType.MANUAL,
                            triggered_by=DagRunTriggeredByType.TEST, state=DagRunState.RUNNING, session=session)
    session.flush()
    tis = session.scalars(select(TaskInstance).where(TaskInstance.run_id == run_id,
                                                      TaskInstance.task_id == args["task_id"])).all()
    by_index = {ti.map_index: ti for ti in tis}
    offset = args["offset"]
    missing = [i for i in range(offset, offset + len(args["triggers"])) if i not in by_index]
    if missing:
        task = dag.get_task(args["task_id"])
        for i in missing:
            ti = TaskInstance(task, run_id=run_id, map_index=i, dag_version_id=tis[0].dag_version_id if tis else None)
            session.add(ti)
            by_index[i] = ti
        session.flush()
    for i, (classpath, kwargs) in enumerate(args["triggers"], start=offset):
        if "moment" in kwargs:
            kwargs["moment"] = dt.datetime.fromisoformat(kwargs["moment"])
        trigger = Trigger(classpath=classpath, kwargs=kwargs)
        session.add(trigger)
        session.flush()
        ti = by_index[i]
        ti.state = TaskInstanceState.DEFERRED
        ti.try_number = 1
        ti.trigger_id = trigger.id
        ti.next_method = "execute_complete"
        ti.start_date = dt.datetime.now(dt.timezone.utc)
    print(json.dumps({"run_id": run_id, "tis": len(by_index)}))
"""


class Deployment:
    """A migrated SQLite DB with the benchmark DAG, and a triggerer that can be started and stopped."""

    def __init__(self, home: Path, n: int, conn_json: str) -> None:
        self.home = home
        self.n = n
        dags = home / "dags"
        dags.mkdir(parents=True)
        (dags / "bench_triggerer_real.py").write_text(DAG_FILE.format(dag_id=DAG_ID, conn=CONN_ID, n=n))
        from cryptography.fernet import Fernet

        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN"))}
        self.env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__TRIGGERER__CAPACITY": str(max(1000, n + 10)),
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
                f"AIRFLOW_CONN_{CONN_ID.upper()}": conn_json,
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def airflow(self, *args: str, timeout: float = 900) -> str:
        done = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed: {(done.stdout + done.stderr)[-2000:]}")
        return done.stdout

    def prepare(self) -> None:
        self.airflow("db", "migrate")
        self.airflow("dags", "reserialize")

    def seed(self, task_id: str, triggers: list[tuple[str, dict[str, Any]]], run: str, offset: int = 0) -> None:
        """Defer map indexes ``offset``.. of ``task_id`` in a new run ``run``, one trigger each."""
        args = {"dag_id": DAG_ID, "task_id": task_id, "triggers": triggers, "run": run, "offset": offset}
        args = json.dumps(args, default=str)
        done = subprocess.run([sys.executable, "-c", SEED], input=args, env=self.env, capture_output=True,
                              text=True, timeout=900)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"seeding {task_id} failed: {done.stderr[-2000:]}")

    def assigned(self) -> int:
        import sqlite3

        with sqlite3.connect(self.home / "airflow.db") as db:
            return int(db.execute("SELECT count(*) FROM trigger WHERE triggerer_id IS NOT NULL").fetchone()[0])

    def start_triggerer(self) -> int:
        log = open(self.home / "triggerer.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen([AIRFLOW, "triggerer", "--skip-serve-logs"], env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.home,
                                     start_new_session=True)  # fmt: skip
        log.close()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # idle: the runner child is up
            if self.proc.poll() is not None:
                raise RuntimeError(f"the triggerer exited: {(self.home / 'triggerer.log').read_text()[-2000:]}")
            if any(s["ppid"] == self.proc.pid for s in group_stats(self.proc.pid).values()):
                break
            time.sleep(1)
        time.sleep(5)
        return self.proc.pid

    def stop_triggerer(self) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.proc.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def delete_triggers(self) -> None:
        import sqlite3

        with sqlite3.connect(self.home / "airflow.db") as db:
            db.execute("UPDATE task_instance SET trigger_id = NULL, state = 'success' WHERE trigger_id IS NOT NULL")
            db.execute("DELETE FROM trigger")

    def waiting(self, task_id: str) -> int:
        """Triggers of ``task_id`` waiting in the shared watcher: their log says "Waiting for TASK_COMPLETED",
        written once the connection is read and just before the wait registers (a trigger that has only
        started still reads its connection, then registers and catches up: start-up, not steady state)."""
        count = 0
        for path in (self.home / "logs").rglob(f"task_id={task_id}/map_index=*/attempt=*.log.trigger.*"):
            with open(path, errors="replace") as fh:
                count += any("Waiting for TASK_COMPLETED" in line for line in fh)
        return count

    def fired_times(self, task_id: str) -> dict[int, float]:
        """map index -> time of "Trigger fired event" in that task instance's trigger log."""
        from datetime import datetime

        fired: dict[int, float] = {}
        for path in (self.home / "logs").rglob(f"task_id={task_id}/map_index=*/attempt=*.log.trigger.*"):
            index = int(path.parent.name.split("=", 1)[1])
            for line in path.read_text(errors="replace").splitlines():
                if "Trigger fired event" in line:
                    try:
                        stamp = json.loads(line)["timestamp"]
                    except (ValueError, KeyError):
                        continue
                    fired[index] = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                    break
        return fired


def _marginalgroup_rss(dep: Deployment, pgid: int, task_id: str, triggers: list[tuple[str, dict[str, Any]]]) -> dict:
    """Seed one trigger (the kind's fixed cost: its modules, a shared watcher), then the other N-1: their RSS
    per deferred task is the marginal cost of one more waiting task."""
    idle = settled_rss(pgid)
    dep.seed(task_id, triggers[:1], run="warmup")
    _wait_running(dep, 1, 300)
    warm = settled_rss(pgid)
    dep.seed(task_id, triggers[1:], run="main", offset=1)
    _wait_running(dep, len(triggers), 900)
    loaded = settled_rss(pgid)
    return {"idle": idle, "first": warm - idle, "per_task": (loaded - warm) / max(1, len(triggers) - 1)}


def _wait_running(dep: Deployment, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while dep.assigned() < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the triggerer took {dep.assigned()} of {n} triggers in {timeout:g} s")
        time.sleep(1)


def measure(net: Any, n: int, close_seconds: float, window: float) -> dict[str, Any]:
    from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

    from airflow_provider_ethernity.triggers.ethernity import EthernityTaskCompletedTrigger

    factory = OrderFactory(net.state.rpc_url, net.state, net.requester_key)
    out: dict[str, Any] = {"n": n}
    with (
        tempfile.TemporaryDirectory(prefix="etny-bench-triggerer-") as tmp,
        CountingRpcProxy(net.state.rpc_url) as proxy,
    ):
        conn = json.loads(net.connection_json())
        conn["extra"]["rpc_url"] = proxy.url
        dep = Deployment(Path(tmp), n, json.dumps(conn))
        dep.prepare()
        # Airflow's own TimeDeltaTrigger: the memory yardstick
        pgid = dep.start_triggerer()
        try:
            import datetime as dt

            timedelta_triggers = [TimeDeltaTrigger(dt.timedelta(hours=1)).serialize() for _ in range(n)]
            timedelta_triggers = [(c, {**k, "moment": k["moment"].isoformat()}) for c, k in timedelta_triggers]
            out["timedelta"] = _marginalgroup_rss(dep, pgid, "timedelta", timedelta_triggers)
        finally:
            dep.stop_triggerer()
        dep.delete_triggers()

        # ours: N approved orders, N EthernityTaskCompletedTriggers
        batch = factory.create(n)
        raws = factory.sign_closes(batch.order_ids)
        triggers = [
            EthernityTaskCompletedTrigger(
                ethernity_conn_id=CONN_ID, order_id=o, from_block=batch.from_block, poll_interval=1.0
            ).serialize()
            for o in batch.order_ids
        ]
        pgid = dep.start_triggerer()
        try:
            out["ethernity"] = _marginalgroup_rss(dep, pgid, "ethernity", triggers)
            deadline = time.monotonic() + 300
            while dep.waiting("ethernity") < n and time.monotonic() < deadline:  # every trigger is waiting
                time.sleep(2)
            out["started"] = dep.waiting("ethernity")
            time.sleep(5)  # the catch-up from from_block is over
            w3 = factory.w3
            head0, (req0, calls0), cpu0 = w3.eth.block_number, proxy.snapshot(), runner_cpu(pgid)
            time.sleep(window)
            head1, (req1, calls1), cpu1 = w3.eth.block_number, proxy.snapshot(), runner_cpu(pgid)
            out["blocks"] = head1 - head0
            out["http_requests"] = req1 - req0
            out["calls"] = {k: v - calls0.get(k, 0) for k, v in calls1.items() if v - calls0.get(k, 0)}
            out["cpu_s"] = cpu1 - cpu0
            out["window_s"] = window
            send_raw_over_time(net.state.rpc_url, raws, close_seconds)
            deadline = time.monotonic() + close_seconds + 180
            fired: dict[int, float] = {}
            while time.monotonic() < deadline:
                fired = dep.fired_times("ethernity")
                if len(fired) >= n:
                    break
                time.sleep(2)
            closed = factory.close_blocks(batch.from_block)
            stamps = factory.block_timestamps({closed[o] for o in batch.order_ids if o in closed})
            delays = [fired[i] - stamps[closed[o]] for i, o in enumerate(batch.order_ids) if i in fired and o in closed]
            out["fired"] = len(fired)
            out["delays"] = delays
        finally:
            dep.stop_triggerer()
    return out


def run(net: Any, smoke: bool = False) -> list[Figure]:
    """``net``: a running devnet with 1 s blocks."""
    sizes = [10] if smoke else [200, 1000]
    figures: list[Figure] = []
    net.set_agent(mode="idle")
    try:
        for n in sizes:
            try:
                m = measure(net, n, close_seconds=4.0 if smoke else 20.0, window=8.0 if smoke else 20.0)
            except Exception as exc:  # one size failing keeps the others' figures
                figures.append(Figure(f"triggerer_real N={n}", "benchmark failed", f"{type(exc).__name__}: {exc}"[:300],
                                      "", "runs", False))  # fmt: skip
                continue
            figures += _figures(m)
    finally:
        net.set_agent()
    return figures


def _figures(m: dict[str, Any]) -> list[Figure]:
    n = m["n"]
    name = f"triggerer_real N={n}"
    blocks = max(1, m["blocks"])
    per_block = m["http_requests"] / blocks
    ours, theirs = m["ethernity"]["per_task"] / 1024, m["timedelta"]["per_task"] / 1024
    ratio = ours / theirs if theirs > 0 else float("inf")
    delays = m["delays"]
    calls = ", ".join(f"{k} {v}" for k, v in sorted(m["calls"].items()))
    return [
        Figure(name, "all triggers fired in the real triggerer", f"{m['fired']}/{n}", "", f"{n}/{n}",
               m["fired"] == n),
        Figure(name, "RPC requests per new block (HTTP, at the proxy)", round(per_block, 2), "", f"<= {RPC_GOAL:g}",
               per_block <= RPC_GOAL, f"{m['http_requests']} requests over {m['blocks']} blocks: {calls}; "
                                      f"{m['started']}/{n} triggers running"),
        Figure(name, "triggerer RSS per deferred task: ours", round(ours, 1), "KB",
               note=f"idle triggerer {m['ethernity']['idle'] / 2**20:.0f} MiB (supervisor + runner); the first "
                    f"trigger adds {m['ethernity']['first'] / 2**20:.1f} MiB once (web3, the shared watcher)"),
        Figure(name, "triggerer RSS per deferred task: TimeDeltaTrigger", round(theirs, 1), "KB",
               note=f"idle triggerer {m['timedelta']['idle'] / 2**20:.0f} MiB; the first trigger adds "
                    f"{m['timedelta']['first'] / 2**20:.1f} MiB once"),
        Figure(name, "RSS per deferred task, ours / TimeDeltaTrigger", round(ratio, 2), "x",
               f"<= {RSS_RATIO_GOAL:g}", ratio <= RSS_RATIO_GOAL),
        Figure(name, "trigger runner (event loop) CPU per block", round(m["cpu_s"] / blocks * 1000, 1), "ms",
               note=f"{m['cpu_s']:.2f} s CPU over {m['window_s']:g} s, {m['blocks']} blocks"),
        Figure(name, "detection delay from block timestamp, median", round(median(delays), 2), "s"),
        Figure(name, "detection delay from block timestamp, p95", round(percentile(delays, 95), 2), "s"),
    ]  # fmt: skip


if __name__ == "__main__":  # pragma: no cover - a manual run: python -m benchmarks --only triggerer_real
    print(textwrap.dedent(__doc__ or ""))
