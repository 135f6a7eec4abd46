"""Benchmark 3: the import cost a DAG file pays for the operator and sensor, over a bare ``import airflow.sdk``.

Each measurement is a fresh interpreter (``python -X importtime`` would distort it; wall time of the imports
is taken inside the child with ``time.perf_counter``). Best of several runs for both, so a busy machine
inflates neither side.
"""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.table import Figure

PROVIDER_MODULES = ("airflow_provider_ethernity.operators.ethernity", "airflow_provider_ethernity.sensors.ethernity")
#: Modules the provider's DAG-facing modules must not load (they load when a task runs); airflow.sdk itself
#: may have loaded some of them already (cryptography), which is not counted against the provider.
HEAVY_MODULES = ("web3", "eth_account", "Crypto", "nacl", "aiohttp", "cryptography")

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
before = set(sys.modules)
mods = {mods!r}
for name in mods:
    __import__(name)
t2 = time.perf_counter()
heavy = sorted(m for m in {heavy!r} if m in sys.modules and m not in before)
print(json.dumps({{"sdk": t1 - t0, "provider": t2 - t1, "heavy": heavy}}))
"""


def measure_once(modules: tuple[str, ...] = PROVIDER_MODULES) -> dict[str, float | list[str]]:
    code = _CHILD.format(mods=list(modules), heavy=list(HEAVY_MODULES))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(smoke: bool = False) -> list[Figure]:
    runs = [measure_once() for _ in range(2 if smoke else 7)]
    sdk = min(float(r["sdk"]) for r in runs)
    added = min(float(r["provider"]) for r in runs)
    heavy = sorted({m for r in runs for m in r["heavy"]})  # type: ignore[union-attr]
    return [
        Figure("parse_cost", "import airflow.sdk (best)", round(sdk * 1000, 1), "ms"),
        Figure(
            "parse_cost",
            "operator+sensor import over airflow.sdk (best)",
            round(added * 1000, 1),
            "ms",
            "<= 50 ms",
            added <= 0.050,
            f"best of {len(runs)} fresh processes",
        ),
        Figure("parse_cost", "heavy modules the import adds", ", ".join(heavy) or "none", "", "none", not heavy),
    ]
