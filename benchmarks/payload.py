"""Benchmark 6: a large input dataset and a large result, and the submitting process's peak memory.

Each direction runs in a fresh child process (``python -m benchmarks.payload CHILD ...``) so ``ru_maxrss``
is that run's own peak. The baseline is taken after a small warm-up task (libraries, connection pools and
the chain check are then loaded) and the peak is reset there (``/proc/self/clear_refs``), so the delta is
what the payload itself costs; the payload string the caller holds is part of it (1x). Goals: delta <= 3x the
payload for an input dataset and for a result returned as a value, <= 1.5x for a result streamed to an
``ObjectStoragePath`` (decrypted while it downloads, never held whole).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.table import Figure

MIB = 1 << 20
#: The task code of each direction: "input" gets the large dataset and answers its length; "result" gets
#: the size as its dataset and answers a string of that many characters.
CODES = {
    "input": "___etny_result___(len(___etny_data_set___))",
    "result": '___etny_result___("r" * int(___etny_data_set___))',
}
CODES["staged"] = CODES["input"]  # the same input, read from an ObjectStoragePath (file://), staged on disk
CODES["storage"] = CODES["result"]  # the same result, streamed to an ObjectStoragePath (file://)
#: The goal of each direction, in payloads of peak RSS over the baseline.
GOALS = {"input": 3.0, "staged": 1.5, "result": 3.0, "storage": 1.5}
LABELS = {
    "input": "input dataset (a str)",
    "staged": "input from ObjectStoragePath",
    "result": "result (XCom value)",
    "storage": "result to ObjectStoragePath",
}
RESOURCES = {"taskPrice": 1, "memory": 4}


def _child(direction: str, size: int) -> dict[str, Any]:
    from airflow_provider_ethernity.hooks.ethernity import EthernityHook
    from benchmarks.common import current_rss_bytes, max_rss_bytes, reset_peak_rss

    hook = EthernityHook()
    warm = hook.run_task(CODES["input"], "warm-up", RESOURCES, timeout=300, order_wait_timeout=300)
    assert warm.value == len("warm-up"), warm.value
    source = Path(tempfile.mkdtemp(prefix="ethernity-payload-")) / "input.txt"
    if direction == "staged":  # written before the baseline: the file is the user's, not the provider's memory
        with source.open("wb") as fh:
            for _ in range(size // MIB):
                fh.write(b"0123456789abcdef" * (MIB // 16))
    gc.collect()
    reset = reset_peak_rss()  # the warm-up's own peak must not hide the payload's
    baseline = current_rss_bytes() if reset else max(max_rss_bytes(), current_rss_bytes())
    client = hook.client
    started = time.perf_counter()
    staged = None
    if direction == "input":
        payload: str | None = "0123456789abcdef" * (size // 16)
        code, data = CODES["input"], payload
    elif direction == "staged":
        payload, code = None, CODES["staged"]
        staged = hook.stage_input(f"file://{source}")
    else:
        payload = None
        code, data = CODES["result"], str(size)
    task = client.submit_task(code, staged or data, RESOURCES)
    if staged is not None:
        staged.discard()
    shutil.rmtree(source.parent)
    submitted = time.perf_counter()
    order_id = client.wait_for_order(task, timeout=300)
    assert order_id is not None, "no order"
    client.approve_order(order_id)
    assert client.wait_closed(order_id, task.from_block, timeout=600), "not closed"
    closed = time.perf_counter()
    if direction == "storage":
        target = Path(tempfile.mkdtemp(prefix="ethernity-payload-")) / "result.txt"
        stored = client.write_result(
            order_id, hook.result_destination(f"file://{target}"), challenge_salt=task.challenge_salt
        )
        fetched = time.perf_counter()
        ok, result_len = stored.success and _all_r(target, size), stored.size
        shutil.rmtree(target.parent)
    else:
        result = client.get_result(order_id, challenge_salt=task.challenge_salt)
        fetched = time.perf_counter()
        if direction in ("input", "staged"):
            ok = result.value == size
        else:  # checked without building a second copy of the expected string
            ok = isinstance(result.value, str) and len(result.value) == size and result.value.count("r") == size
        result_len = len(result.value) if isinstance(result.value, str) else 0
        del result
    del payload
    return {
        "ok": ok,
        "baseline": baseline,
        "peak": max_rss_bytes(),
        "submit_s": submitted - started,
        "task_s": closed - submitted,
        "fetch_s": fetched - closed,
        "total_s": fetched - started,
        "result_len": result_len,
    }


def _all_r(path: Path, size: int) -> bool:
    """Whether ``path`` holds exactly ``size`` times "r" (read in pieces: the check adds no memory)."""
    seen = 0
    with path.open("rb") as fh:
        while piece := fh.read(MIB):
            if piece.count(b"r") != len(piece):
                return False
            seen += len(piece)
    return seen == size


def measure(direction: str, size: int) -> dict[str, Any]:
    """Run one direction in a fresh process against ``ethernity_default`` (the env connection)."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.payload", "CHILD", direction, str(size)],
        capture_output=True,
        text=True,
        timeout=900,
        env=os.environ.copy(),
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"payload child failed ({out.returncode}): {out.stderr[-1500:]}")
    return json.loads(lines[-1])


def run(net: Any, smoke: bool = False) -> list[Figure]:
    """``net``: a running devnet registered as ``ethernity_default``."""
    size = (1 if smoke else 64) * MIB
    figures: list[Figure] = []
    for direction in ("input", "staged", "result", "storage"):
        m = measure(direction, size)
        ratio = (m["peak"] - m["baseline"]) / size
        goal = GOALS[direction]
        label = f"{size // MIB} MiB {LABELS[direction]}"
        figures += [
            Figure("payload", f"{label}: correct result", "yes" if m["ok"] else "no", "", "yes", bool(m["ok"])),
            Figure(
                "payload",
                f"{label}: peak RSS over baseline",
                round(ratio, 2),
                "x payload",
                f"<= {goal:g}x",
                ratio <= goal,
                f"{(m['peak'] - m['baseline']) / MIB:.0f} MiB",
            ),
            Figure(
                "payload",
                f"{label}: time (submit / task / fetch)",
                f"{m['submit_s']:.1f} / {m['task_s']:.1f} / {m['fetch_s']:.1f}",
                "s",
            ),
        ]
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "CHILD":
        import logging

        logging.disable(logging.INFO)
        print(json.dumps(_child(sys.argv[2], int(sys.argv[3]))))
