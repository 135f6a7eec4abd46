"""Benchmark 5: many tasks submitted at once from ONE wallet, in threads and in separate processes.

Every task is a real hello-world task run end to end through ``EthernityHook.run_task`` (submit, order,
approve, result). Processes are forked workers that each build their own hook, as mapped Airflow tasks
would (their nonces only meet on the chain and in the cross-process nonce lock). Throughput is compared to
running the same tasks one after another.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.common import HELLO
from benchmarks.table import Figure

TASK_KWARGS: dict[str, Any] = {"resources": {"taskPrice": 1}, "order_wait_timeout": 300, "timeout": 300}


def one_task(_index: int = 0) -> tuple[bool, str]:
    """Run one task with a fresh hook; (ok, error text). Never raises."""
    from airflow_provider_ethernity.hooks.ethernity import EthernityHook

    try:
        result = EthernityHook().run_task(HELLO, **TASK_KWARGS)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"[:300]
    if result.value != "Hello, Python World!":
        return False, f"wrong result {result.value!r}"
    return True, ""


def _process_main(index: int, queue: Any, lock_dir: str | None = None) -> None:
    if lock_dir is not None:  # this process is on "another machine": its own wallet locks and nonce file
        import os

        from airflow_provider_ethernity.protocol.transactions import LOCK_DIR_ENV

        os.environ[LOCK_DIR_ENV] = lock_dir
    try:
        queue.put((index, *one_task(index)))
    except BaseException:  # report, never hang the parent
        queue.put((index, False, traceback.format_exc(limit=2)[-300:]))


def run_sequential(count: int) -> tuple[float, list[tuple[bool, str]]]:
    started = time.perf_counter()
    outcomes = [one_task(i) for i in range(count)]
    return time.perf_counter() - started, outcomes


def run_threads(count: int) -> tuple[float, list[tuple[bool, str]]]:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="bench-task") as pool:
        outcomes = list(pool.map(one_task, range(count)))
    return time.perf_counter() - started, outcomes


def run_processes(
    count: int, timeout: float = 600, lock_dirs: list[str] | None = None
) -> tuple[float, list[tuple[bool, str]]]:
    """``count`` processes; with ``lock_dirs``, process i uses ``lock_dirs[i % len]`` (one per "machine")."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    started = time.perf_counter()
    procs = [
        ctx.Process(target=_process_main, args=(i, queue, lock_dirs[i % len(lock_dirs)] if lock_dirs else None),
                    daemon=True)
        for i in range(count)
    ]  # fmt: skip
    for proc in procs:
        proc.start()
    outcomes: dict[int, tuple[bool, str]] = {}
    deadline = time.monotonic() + timeout
    while len(outcomes) < count and time.monotonic() < deadline:
        try:
            index, ok, error = queue.get(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:
            break
        outcomes[index] = (ok, error)
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    return elapsed, [outcomes.get(i, (False, "no answer from the process")) for i in range(count)]


def run(net: Any, smoke: bool = False) -> list[Figure]:
    """``net``: a running automine devnet registered as ``ethernity_default``."""
    count, sequential_count = (3, 2) if smoke else (50, 6)
    seq_time, seq_out = run_sequential(sequential_count)
    per_task = seq_time / sequential_count
    figures = [
        Figure("parallel", f"sequential: {sequential_count} tasks", round(seq_time, 2), "s"),
        Figure("parallel", "sequential throughput", round(sequential_count / seq_time, 3), "tasks/s"),
    ]
    failures_total = sum(not ok for ok, _ in seq_out)
    errors = [e for ok, e in seq_out if not ok]
    for mode, runner in (("threads", run_threads), ("processes", run_processes)):
        elapsed, outcomes = runner(count)
        failures = sum(not ok for ok, _ in outcomes)
        failures_total += failures
        errors += [e for ok, e in outcomes if not ok]
        speedup = (count / elapsed) / (1 / per_task)
        figures += [
            Figure("parallel", f"{mode}: {count} tasks at once, wall time", round(elapsed, 2), "s"),
            Figure("parallel", f"{mode}: failures", failures, "", "0", failures == 0),
            Figure(
                "parallel",
                f"{mode}: throughput vs sequential",
                round(speedup, 2),
                "x",
                ">= 1.5x",
                speedup >= 1.5,
                f"{count / elapsed:.3f} tasks/s",
            ),
        ]
    machine_figures, machine_errors = two_machines(net, 2 if smoke else 25)
    figures += machine_figures
    errors += machine_errors
    if errors:
        figures.append(Figure("parallel", "first errors", " | ".join(sorted(set(errors))[:3])))
    return figures


def two_machines(net: Any, per_machine: int) -> tuple[list[Figure], list[str]]:
    """Two "machines" (separate lock directories: no shared flock, no shared nonce file), one wallet,
    ``per_machine`` processes each, all at once. Counts failures, DO requests and transactions beyond the
    three a task needs (allowance, request, approval)."""
    import tempfile

    from benchmarks.common import client_for

    client = client_for(net)
    requests_before = int(client.protocol.functions._getDORequestsCount().call())
    nonce_before = client.w3.eth.get_transaction_count(client.address)
    count = 2 * per_machine
    with tempfile.TemporaryDirectory(prefix="etny-machines-") as tmp:
        elapsed, outcomes = run_processes(count, lock_dirs=[f"{tmp}/machine-a", f"{tmp}/machine-b"])
    failures = sum(not ok for ok, _ in outcomes)
    requests = int(client.protocol.functions._getDORequestsCount().call()) - requests_before
    transactions = client.w3.eth.get_transaction_count(client.address) - nonce_before
    extra = transactions - 3 * count
    return [
        Figure("parallel", f"two machines, one wallet: 2 x {per_machine} tasks, wall time", round(elapsed, 2), "s"),
        Figure("parallel", "two machines: failures", failures, "", "0", failures == 0),
        Figure("parallel", "two machines: extra DO requests", requests - count, "", "0", requests == count),
        Figure("parallel", "two machines: extra transactions", extra, "",
               note=f"{transactions} sent for {count} tasks (3 each: allowance, request, approval); "
               "extra ones are re-approvals after a race"),
    ], [e for ok, e in outcomes if not ok]  # fmt: skip
