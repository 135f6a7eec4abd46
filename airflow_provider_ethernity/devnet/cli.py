"""``ethernity-devnet up|status|down|hello``: the local Ethernity network from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from airflow_provider_ethernity.devnet.network import CONNECTION_FILE, STATE_FILE, Devnet, default_workdir
from airflow_provider_ethernity.devnet.process import pid_alive


def _up(args: argparse.Namespace) -> int:
    devnet = Devnet(args.workdir, block_time=args.block_time, ipfs_token=args.ipfs_token)
    state = devnet.start()
    conn_line = f"export AIRFLOW_CONN_ETHERNITY_DEFAULT='{devnet.connection_json()}'"
    print(f"Ethernity devnet is up (workdir {state.workdir})")
    print(f"  RPC        {state.rpc_url}  (chain id {state.chain_id})")
    print(f"  IPFS API   {state.ipfs_api_url}")
    print(f"  protocol   {state.protocol_address}")
    print(f"  token      {state.token_address}")
    print(f"  registry   {state.image_registry_address}  (trustedzone {state.trustedzone})")
    print(f"  requester  {state.requester_address}  (funded; throwaway devnet key)")
    print(f"  node       {state.node_address}")
    print(f"Airflow connection (also in {Path(state.workdir) / CONNECTION_FILE}):")
    print(conn_line)
    if args.foreground:
        print("Running in the foreground; Ctrl-C stops it.", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        devnet.stop()
        return 0
    # Detach: the services were started in their own sessions and outlive this command.
    devnet._anvil = devnet._ipfs = devnet._agent = None
    return 0


def _status(args: argparse.Namespace) -> int:
    path = Path(args.workdir or default_workdir()) / STATE_FILE
    if not path.exists():
        print("devnet is down")
        return 1
    state = json.loads(path.read_text())
    alive = {name: pid_alive(pid) for name, pid in state["pids"].items()}
    for name, pid in state["pids"].items():
        print(f"{name:6} pid {pid:<8} {'running' if alive[name] else 'DEAD'}")
    print(f"rpc {state['rpc_url']}  ipfs {state['ipfs_api_url']}  since {state['started_at']}")
    return 0 if all(alive.values()) else 1


def _down(args: argparse.Namespace) -> int:
    stopped = Devnet.stop_from_state(args.workdir)
    print("stopped: " + ", ".join(stopped) if stopped else "devnet was not running")
    return 0


def _hello(args: argparse.Namespace) -> int:
    """Run the hello-world task on the running devnet through EthernityHook and print the result."""
    import os

    workdir = Path(args.workdir or default_workdir())
    conn_file = workdir / CONNECTION_FILE
    if not (workdir / STATE_FILE).exists():
        print("devnet is down: run `ethernity-devnet up` first", file=sys.stderr)
        return 1
    os.environ["AIRFLOW_CONN_ETHERNITY_DEFAULT"] = conn_file.read_text().split("=", 1)[1].strip().strip("'")
    from airflow_provider_ethernity.hooks.ethernity import EthernityHook

    result = EthernityHook().run_task('___etny_result___("Hello, Python World!")', order_wait_timeout=120, timeout=300)
    print(f"order {result.order_id}: {result.task_code_name} -> {result.value}")
    return 0 if result.success else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ethernity-devnet", description=__doc__)
    parser.add_argument("--workdir", help="state directory (default $ETHERNITY_DEVNET_HOME or ~/.ethernity-devnet)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start anvil, IPFS, the contracts and the node agent")
    up.add_argument("--block-time", type=float, default=None, help="seconds per block (default: instant mining)")
    up.add_argument("--ipfs-token", default=None, help="require this token on the IPFS API")
    up.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops the devnet")
    up.set_defaults(func=_up)
    sub.add_parser("status", help="show whether the devnet's processes run").set_defaults(func=_status)
    sub.add_parser("down", help="stop every devnet process").set_defaults(func=_down)
    sub.add_parser("hello", help="run the hello-world task through EthernityHook").set_defaults(func=_hello)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
