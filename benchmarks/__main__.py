"""``python -m benchmarks [--smoke] [--only NAME ...] [--profile NAME] [--json PATH]``: run the benchmarks.

Starts what it needs (a devnet with a block per transaction, and one with 1 s blocks, each in a temp dir)
and stops every process it started. With ``--profile bloxberg|polygon`` every devnet benchmark runs on one
devnet of that profile instead (its block time, gas and token model, public IPFS, intake, chain front).
Exit status 1 when a goal is missed or a benchmark failed.
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_JSON = Path(__file__).with_name("results") / "latest.json"
#: name -> (devnet block time: None automine, 1.0, or "none" for no devnet)
BENCHMARKS: dict[str, float | str | None] = {
    "parse_cost": "none",
    "vs_runner": None,
    "parallel": None,
    "payload": None,
    "latency": 1.0,
    "triggerer_scale": 1.0,
    "approval_latency": 1.0,
    "triggerer_real": 1.0,
    "distributed": None,
}
#: too heavy for ``--smoke`` (CI): PostgreSQL and a distributed Airflow; ``tests/distributed`` checks that
#: deployment in CI, and ``--smoke --only distributed`` still runs its tiny configuration
NOT_IN_SMOKE = frozenset({"distributed"})


def _prepare_environment() -> None:
    """A throwaway AIRFLOW_HOME (before Airflow is imported) and quiet task logs."""
    if "AIRFLOW_HOME" not in os.environ:
        home = tempfile.mkdtemp(prefix="etny-bench-airflow-")
        os.environ["AIRFLOW_HOME"] = home
        atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")


def _quiet_logs() -> None:
    for name in ("airflow", "airflow.task", "airflow_provider_ethernity", "ethernity", "httpx", "web3"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _scrub(text: str) -> str:
    """No wallet key of a registered connection leaves in a failure message."""
    for name, value in os.environ.items():
        if not name.startswith("AIRFLOW_CONN_"):
            continue
        try:
            password = str(json.loads(value).get("password") or "")
        except (ValueError, AttributeError):
            continue
        for form in {password, password.removeprefix("0x")}:
            if len(form) >= 8:
                text = text.replace(form, "***")
    return text


def _runner(name: str) -> Callable[..., Any]:
    module = __import__(f"benchmarks.{name}", fromlist=["run"])
    return module.run


def run_selected(
    names: list[str], smoke: bool, log: Callable[[str], None] = print, profile: str = "default"
) -> tuple[list[Any], dict]:
    """Run ``names`` (in table order), grouping those that share a devnet; returns (figures, timings).

    ``profile`` other than ``default``: the devnet benchmarks share one devnet of that profile."""
    from benchmarks.common import devnet
    from benchmarks.table import Figure

    figures: list[Figure] = []
    timings: dict[str, float] = {}

    def one(name: str, *args: Any) -> None:
        log(f"== {name}{' (smoke)' if smoke else ''} ...")
        started = time.perf_counter()
        try:
            figures.extend(_runner(name)(*args, smoke=smoke))
        except Exception as exc:  # a failed benchmark is a row, the others still run
            text = _scrub(f"{type(exc).__name__}: {exc}")
            figures.append(Figure(name, "benchmark failed", text[:300], "", "runs", False))
        timings[name] = round(time.perf_counter() - started, 1)
        log(f"   {name}: {timings[name]} s")

    ordered = [n for n in BENCHMARKS if n in names]
    for name in ordered:
        if BENCHMARKS[name] == "none":
            one(name)
    if profile != "default":
        group = [n for n in ordered if BENCHMARKS[n] != "none"]
        if group:
            log(f"== starting a devnet of profile {profile}")
            with devnet(profile=profile) as net:
                for name in group:
                    one(name, net)
        return figures, timings
    for block_time in (None, 1.0):
        group = [n for n in ordered if BENCHMARKS[n] == block_time]
        if not group:
            continue
        log(f"== starting a devnet ({'1 s blocks' if block_time else 'a block per transaction'})")
        with devnet(block_time=block_time) as net:
            for name in group:
                one(name, net)
    return figures, timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny configurations (what CI runs; not distributed)")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument(
        "--profile",
        default="default",
        choices=["default", "bloxberg", "polygon"],
        help="devnet profile the devnet benchmarks run on (default: the fast devnets)",
    )
    parser.add_argument(
        "--json", type=Path, default=None,
        help=f"where to write the results (default {DEFAULT_JSON}, latest-<profile>.json for a profile)",
    )  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="keep the provider's INFO logs")
    args = parser.parse_args(argv)
    if args.verbose:
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
    _prepare_environment()
    if not args.verbose:
        _quiet_logs()
    from benchmarks.table import machine, render, write_json

    names = args.only or [name for name in BENCHMARKS if not (args.smoke and name in NOT_IN_SMOKE)]
    started = time.perf_counter()
    load_before = os.getloadavg()
    figures, timings = run_selected(names, args.smoke, profile=args.profile)
    total = time.perf_counter() - started
    print()
    print(render(figures))
    info = machine()
    print(
        f"\n{len(figures)} figures in {total:.0f} s on {info['cores']} cores ({info['cpu_model']}), "
        f"{info['ram_gib']} GiB RAM; load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}"
    )
    default_json = DEFAULT_JSON if args.profile == "default" else DEFAULT_JSON.with_name(f"latest-{args.profile}.json")
    path = args.json or (default_json if not args.smoke else Path(tempfile.gettempdir()) / "etny-bench-smoke.json")
    write_json(path, figures, {"smoke": args.smoke, "seconds": round(total, 1), "timings": timings,
                               "load_average_before": load_before, "benchmarks": names,
                               "profile": args.profile})  # fmt: skip
    print(f"results written to {path}")
    return 1 if any(f.met is False for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
