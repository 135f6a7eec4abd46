"""Benchmark: ``ethernity_fan_out`` on a distributed Airflow, 1 vs 2 machines, one wallet vs a wallet pool.

The deployment of ``tests/distributed`` (PostgreSQL from a wheel, the Edge executor, two triggerers, every
triggerer and worker its own "machine": own HOME, TMPDIR and ``ETHERNITY_LOCK_DIR``), on a devnet with a block
per transaction. Each worker is a machine of fixed size: the same number of task slots and one CPU of its own
(worker 1 on the first allowed CPU, worker 2 on the second: its process tree, task processes included, is
pinned with ``taskset``), so 2 workers have twice the slots and twice the CPU of one. Without the pinning, one
worker would be a 2-core machine and two workers two machines sharing the same 2 cores: the same compute, so
no comparison of 1 vs 2 machines. The control plane (api-server, scheduler, PostgreSQL, the triggerers, the
devnet) is not pinned: it shares both CPUs with the workers, which costs the 2-worker run more (its second CPU
is not free). Configurations, each on a fresh metadata DB:

* 1 worker, one wallet (the single-machine baseline: every send of a worker coordinated by its ``flock``;
  the triggerers are still separate machines);
* 2 workers, one wallet (the shared wallet across machines);
* 2 workers, a pool of 4 wallets in the same connection (a deterministic wallet per task instance).

``--smoke``: one deployment (2 workers, one wallet) and 4 mapped tasks: it works and pays once; no comparison.

Per configuration: wall time from the run's creation to its end (tasks per minute), the money invariant (one DO
request per task instance, tokens down by the prices), the wallets' transactions (nonce delta, reverted, gas
per task), and nonce collisions: answers "nonce too low" / "already known" / "replacement underpriced" to raw
transactions, counted at an RPC proxy all services use.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.procstats import tree_cpu
from benchmarks.table import Figure

TASK_PRICE = 1
SLOTS_PER_WORKER = 4
#: the CPU of each worker's machine (see the module doc); empty on a 1-CPU machine (no pinning)
WORKER_CPUS: tuple[int, ...] = tuple(sorted(os.sched_getaffinity(0))[:2]) if len(os.sched_getaffinity(0)) >= 2 else ()
POOL = 4
SPEEDUP_GOAL = 1.6
EXTRA_GAS_GOAL = 2.0  # percent over a single machine
ROOT = Path(__file__).resolve().parents[1]


def _fund_pool(net: Any, count: int, tasks: int) -> list[str]:
    """``count`` new wallets, each with enough tokens for every task and native coin for gas, from the requester."""
    from eth_account import Account

    from benchmarks.common import client_for

    client = client_for(net)
    w3 = client.w3
    keys = ["0x" + secrets.token_hex(32) for _ in range(count)]
    sender = Account.from_key(net.requester_key)
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    hashes = []
    for key in keys:
        address = Account.from_key(key).address
        gas_price = w3.eth.gas_price * 2
        coin = {"to": address, "value": 10 * 10**18, "gas": 21000, "gasPrice": gas_price, "nonce": nonce,
                "chainId": w3.eth.chain_id}  # fmt: skip
        hashes.append(w3.eth.send_raw_transaction(sender.sign_transaction(coin).raw_transaction))
        nonce += 1
        call = client.token.functions.transfer(address, (tasks + 2) * TASK_PRICE * 10**18)
        tx = call.build_transaction({"from": sender.address, "nonce": nonce, "gasPrice": gas_price,
                                     "chainId": w3.eth.chain_id})  # fmt: skip
        hashes.append(w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))
        nonce += 1
    for tx_hash in hashes:
        if w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)["status"] != 1:
            raise RuntimeError("funding a pool wallet failed")
    return keys


def _run_config(net: Any, postgres: Any, name: str, workers: int, keys: list[str], count: int) -> dict[str, Any]:
    from eth_account import Account

    from benchmarks.common import client_for
    from tests.distributed.wallet_audit import SendLog, WalletAudit, selectors
    from tests.services.deployments import distributed_services, running, trigger_and_wait

    client = client_for(net)
    addresses = [Account.from_key(k).address for k in keys]
    audit = WalletAudit(client.w3, addresses)
    first_request = int(client.protocol.functions._getDORequestsCount().call())
    balances = {a: client.token_balance(a) for a in addresses}
    db_url = postgres.create_database(f"bench_{name}")
    with tempfile.TemporaryDirectory(prefix="etny-bench-dist-") as tmp, SendLog(net.state.rpc_url) as proxy:
        dags = Path(tmp) / "dags"
        dags.mkdir()
        shutil.copy(ROOT / "example_dags" / "ethernity_fan_out.py", dags)
        conn = json.loads(net.connection_json())
        conn["extra"]["rpc_url"] = proxy.url
        conn["password"] = "\n".join(keys)
        services = distributed_services(
            Path(tmp) / "airflow",
            json.dumps(conn),
            keys,
            str(dags),
            db_url=db_url,
            edge_workers=workers,
            edge_concurrency=SLOTS_PER_WORKER,
            edge_worker_cpus=WORKER_CPUS,
        )
        with running(services, ["ethernity_fan_out"], timeout=400):
            roots = _cpu_roots(net, postgres, services)
            cpu_before = {name: tree_cpu(pid) for name, pid in roots.items()}
            state, seconds, tis = trigger_and_wait(services, "ethernity_fan_out", {"count": count}, timeout=3600)
            cpu = _cpu_by_role({name: tree_cpu(pid) - cpu_before[name] for name, pid in roots.items()})
    tasks = count + 1
    report = audit.finish(selectors(client.protocol, client.token))
    requests = int(client.protocol.functions._getDORequestsCount().call()) - first_request
    spent = sum(balances[a] - client.token_balance(a) for a in addresses) / 10**18
    return {
        "name": name,
        "workers": workers,
        "wallets": len(keys),
        "state": state,
        "seconds": seconds,
        "tasks": tasks,
        "paid_once": state == "success" and requests == tasks and spent == tasks * TASK_PRICE,
        "requests": requests,
        "spent": spent,
        "retries": sum(ti["try_number"] - 1 for ti in tis if ti["task_id"] == "squares"),
        "wallet": report,
        "collisions": proxy.collisions(),
        "send_errors": dict(proxy.send_errors),
        "raw_sends": proxy.sends,
        "cpu_seconds": cpu,
    }


#: Roles of the CPU spent during a run: each Airflow service by its name's prefix, the devnet, PostgreSQL.
ROLES = ("edge-worker", "triggerer", "scheduler", "dag-processor", "api-server", "postgres", "devnet")


def _cpu_roots(net: Any, postgres: Any, services: Any) -> dict[str, int]:
    """The top process of every service whose CPU the run spends (each counted with its whole tree)."""
    roots = {name: proc.pid for name, proc in services.procs.items()}
    roots["postgres"] = postgres.proc.pid
    roots.update({f"devnet-{name}": pid for name, pid in net.state.pids.items()})
    return roots


def _cpu_by_role(spent: dict[str, float]) -> dict[str, float]:
    by_role = {role: 0.0 for role in ROLES}
    for name, seconds in spent.items():
        role = next(r for r in ROLES if name.startswith(r))
        by_role[role] += seconds
    return {role: round(seconds, 1) for role, seconds in by_role.items()}


def run(net: Any, smoke: bool = False) -> list[Figure]:
    """``net``: a running devnet with a block per transaction, registered as ``ethernity_default``."""
    from tests.distributed.postgres import PostgresServer

    results = []
    with PostgresServer() as postgres:
        one_wallet = [net.requester_key]
        if smoke:  # CI: the deployment works and pays once; no comparison (one deployment, 4 tasks)
            results.append(_run_config(net, postgres, "two_machines", 2, one_wallet, 4))
            return _figures(results)
        results.append(_run_config(net, postgres, "one_machine", 1, one_wallet, 100))
        results.append(_run_config(net, postgres, "two_machines", 2, one_wallet, 100))
        pool = _fund_pool(net, POOL, 100)
        results.append(_run_config(net, postgres, "two_machines_pool", 2, pool, 100))
    return _figures(results)


def _figures(results: list[dict[str, Any]]) -> list[Figure]:
    base = results[0]
    figures = []
    gas_base = base["wallet"]["gas used"] / base["tasks"]
    for r in results:
        label = f"{r['workers']} worker(s), {r['wallets']} wallet(s)"
        tx_expected = 3 * r["tasks"]
        extra_tx = r["wallet"]["nonce delta"] - tx_expected
        gas = r["wallet"]["gas used"] / r["tasks"]
        extra_gas = (gas / gas_base - 1) * 100
        per_min = r["tasks"] / r["seconds"] * 60
        figures += [
            Figure("distributed", f"{label}: run, DO requests, tokens",
                   f"{r['state']}, {r['requests']}, {r['spent']:g}", "", f"success, {r['tasks']}, {r['tasks']}",
                   bool(r["paid_once"])),
            Figure("distributed", f"{label}: throughput", round(per_min, 1), "tasks/min",
                   note=f"{r['tasks']} tasks in {r['seconds']:.0f} s; {r['retries']} Airflow retries"),
            Figure("distributed", f"{label}: failed/reverted transactions", len(r["wallet"]["reverted"]), "",
                   "0", not r["wallet"]["reverted"]),
            Figure("distributed", f"{label}: extra transactions (nonce delta - 3 per task)", extra_tx, "",
                   note=f"{r['wallet']['nonce delta']} sent for {r['tasks']} tasks: "
                   f"{r['wallet']['by method']}; {r['wallet']['wallets used']} wallet(s) used"),
            Figure("distributed", f"{label}: nonce collisions per task", round(r["collisions"] / r["tasks"], 3), "",
                   note=f"{r['collisions']} of {r['raw_sends']} raw sends; errors {r['send_errors']}"),
            Figure("distributed", f"{label}: gas per task", round(gas), "gas", f"<= +{EXTRA_GAS_GOAL:g}% vs 1 worker",
                   extra_gas <= EXTRA_GAS_GOAL, f"{extra_gas:+.2f}% vs 1 worker"),
            _cpu_figure(label, r),
        ]  # fmt: skip
    two = next((r for r in results if r["name"] == "two_machines"), None)
    if two is not None and base is not two:
        speedup = base["seconds"] / two["seconds"]
        cpu = "1 own CPU" if WORKER_CPUS else "any CPU"
        note = f"{SLOTS_PER_WORKER} task slots and {cpu} per worker; the control plane shares the CPUs"
        figures.append(Figure("distributed", "throughput 2 workers / 1 worker (one wallet)", round(speedup, 2),
                              "x", f">= {SPEEDUP_GOAL:g}", speedup >= SPEEDUP_GOAL, note))  # fmt: skip
    return figures


def _cpu_figure(label: str, r: dict[str, Any]) -> Figure:
    """CPU seconds per task, by role, and how busy the machine's CPUs were during the run."""
    cpu = r["cpu_seconds"]
    total = sum(cpu.values())
    busy = total / (r["seconds"] * len(os.sched_getaffinity(0))) * 100
    roles = ", ".join(f"{role} {seconds / r['tasks']:.2f}" for role, seconds in cpu.items())
    return Figure("distributed", f"{label}: CPU seconds per task", round(total / r["tasks"], 2), "s",
                  note=f"the CPUs {busy:.0f}% busy; per task: {roles}")  # fmt: skip
