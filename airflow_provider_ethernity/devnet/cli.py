"""``ethernity-devnet up|status|down|hello``: the local Ethernity network from the command line.

Every failure is one line on stderr (``ethernity-devnet: ...``) and exit code 1, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

from airflow_provider_ethernity.devnet.errors import DevnetError
from airflow_provider_ethernity.devnet.ports import DEFAULT_IPFS_PORT, DEFAULT_RPC_PORT, wait_port_free
from airflow_provider_ethernity.devnet.profiles import PROFILES
from airflow_provider_ethernity.devnet.state import (
    CONNECTION_FILE,
    DevnetState,
    ProcessStatus,
    connection_line,
    default_workdir,
)

PROG = "ethernity-devnet"
#: How long ``up`` waits for the ports of a devnet it just stopped to be released: the stopped anvil's closing
#: connections (FIN-WAIT) hold its port for a moment.
PORT_RELEASE_GRACE = 15.0


def _workdir(args: argparse.Namespace) -> Path:
    return Path(args.workdir or default_workdir()).resolve()


def _print_devnet(state: DevnetState, headline: str) -> None:
    """The addresses, the log files and the Airflow connection line of a running devnet."""
    workdir = Path(state.workdir)
    print(f"{headline} (workdir {workdir})")
    print(f"  RPC        {state.rpc_url}  (chain id {state.chain_id})")
    print(f"  IPFS API   {state.ipfs_api_url}")
    print(f"  protocol   {state.protocol_address}")
    print(f"  token      {state.token_address}")
    print(f"  registry   {state.image_registry_address}  (trustedzone {state.trustedzone})")
    print(f"  requester  {state.requester_address}  (funded; throwaway devnet key)")
    print(f"  node       {state.node_address}")
    print(f"  logs       {', '.join(record.log for record in state.processes.values() if record.log)}")
    print(f"Airflow connection (also in {workdir / CONNECTION_FILE}):")
    print(connection_line(workdir) or "(connection file missing)", flush=True)


def _requested_port(value: int | None, default: int, option: str, grace: float = 0.0) -> int:
    """The port to use: the option's value (0: any free port) or the stable default; fails if it is taken
    (after waiting up to ``grace`` seconds for it, when a devnet on it was just stopped)."""
    port = default if value is None else value
    if port and not wait_port_free(port, grace):
        raise DevnetError(
            f"127.0.0.1:{port} is in use: pass {option} N to listen elsewhere, or {option} 0 for any free port"
        )
    return port


def _keep_running(state: DevnetState, args: argparse.Namespace) -> int:
    """``up`` on a running devnet: keep it, unless other ports were asked for."""
    asked = ((args.rpc_port, state.rpc_port, "--rpc-port"), (args.ipfs_port, state.ipfs_port, "--ipfs-port"))
    for value, actual, option in asked:
        if value not in (None, 0, actual):
            raise DevnetError(f"the devnet already runs with {option} {actual}: add --restart to restart it on {value}")
    _print_devnet(state, "Ethernity devnet is already running; kept it (`up --restart` replaces it)")
    return 0


def _up(args: argparse.Namespace) -> int:
    from airflow_provider_ethernity.devnet.network import Devnet

    workdir = _workdir(args)
    previous = DevnetState.load(workdir)
    grace = 0.0
    if previous is not None:
        if previous.all_running() and not args.restart:
            return _keep_running(previous, args)
        reason = "restarting" if previous.all_running() else "replacing a devnet that is not fully running"
        print(f"{reason}: " + "; ".join(Devnet.stop_from_state(workdir)), flush=True)
        grace = PORT_RELEASE_GRACE
    rpc_port = _requested_port(args.rpc_port, DEFAULT_RPC_PORT, "--rpc-port", grace)
    ipfs_port = _requested_port(args.ipfs_port, DEFAULT_IPFS_PORT, "--ipfs-port", grace)
    overrides = {
        "approval_window": args.approval_window,
        "result_pin_delay": args.result_pin_delay,
        "replica_lag": args.replica_lag,
    }
    devnet = Devnet(
        workdir,
        block_time=args.block_time,
        ipfs_token=args.ipfs_token,
        rpc_port=rpc_port,
        ipfs_port=ipfs_port,
        profile=args.profile,
        **{name: value for name, value in overrides.items() if value is not None},
    )
    state = devnet.start()
    _print_devnet(state, "Ethernity devnet is up")
    if args.foreground:
        print("Running in the foreground; Ctrl-C stops it.", flush=True)
        signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        try:
            signal.sigwait(signals)
        finally:
            devnet.stop()
        return 0
    devnet.detach()  # the services run in their own sessions and outlive this command; `down` stops them
    return 0


def _status(args: argparse.Namespace) -> int:
    """Each process (pid, state, log file) and the connection; exit 0 only if every process runs."""
    workdir = _workdir(args)
    state = DevnetState.load(workdir)
    if state is None:
        print(f"devnet is down (no state in {workdir})")
        return 1
    statuses = state.statuses()
    for name, status in statuses.items():
        record = state.processes[name]
        print(f"{name:6} pid {record.pid:<8} {status.value:<10} log {record.log or '-'}")
    print(f"RPC {state.rpc_url}  IPFS API {state.ipfs_api_url}  since {state.started_at}")
    print(f"Airflow connection (also in {workdir / CONNECTION_FILE}):")
    print(connection_line(workdir) or "(connection file missing)")
    return 0 if statuses and all(s is ProcessStatus.RUNNING for s in statuses.values()) else 1


def _down(args: argparse.Namespace) -> int:
    from airflow_provider_ethernity.devnet.network import Devnet

    lines = Devnet.stop_from_state(_workdir(args))
    print("\n".join(lines) if lines else "devnet was not running")
    return 0


def _hello(args: argparse.Namespace) -> int:
    """Run the hello-world task on the running devnet through EthernityHook and print the result."""
    workdir = _workdir(args)
    state = DevnetState.load(workdir)
    line = connection_line(workdir)
    if state is None or line is None or not state.all_running():
        raise DevnetError(f"no devnet runs in {workdir}: run `{PROG} up` first")
    os.environ["AIRFLOW_CONN_ETHERNITY_DEFAULT"] = line.split("=", 1)[1].strip().strip("'")
    from airflow_provider_ethernity.hooks.ethernity import EthernityHook

    result = EthernityHook().run_task('___etny_result___("Hello, Python World!")', order_wait_timeout=120, timeout=300)
    print(f"order {result.order_id}: {result.task_code_name} -> {result.value}")
    return 0 if result.success else 1


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """A usage error is one line too (argparse prints the usage and exits 2 by default)."""
        _fail(f"{message} (see {PROG} --help)")


def _fail(message: str) -> NoReturn:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"{PROG}: {first_line}", file=sys.stderr, flush=True)
    sys.exit(1)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {port}")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="The local Ethernity network (anvil, contracts, IPFS, a node agent).")
    parser.add_argument("--workdir", help="state directory (default $ETHERNITY_DEVNET_HOME or ~/.ethernity-devnet)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    up = sub.add_parser("up", help="start anvil, IPFS, the contracts and the node agent (keeps a running one)")
    up.add_argument("--block-time", type=float, default=None, help="seconds per block (default: the profile's)")
    up.add_argument("--ipfs-token", default=None, help="require this token on the IPFS API")
    up.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="default",
        help="real-network behaviour to reproduce (default: the fast devnet; see README 'Devnet profiles')",
    )
    up.add_argument("--approval-window", type=float, default=None, help="seconds before the node abandons an order")
    up.add_argument("--result-pin-delay", type=float, default=None, help="seconds before a result's bytes are readable")
    up.add_argument("--replica-lag", type=int, default=None, help="blocks the chain front's reads lag behind the head")
    up.add_argument("--rpc-port", type=_port, default=None, help=f"RPC port (default {DEFAULT_RPC_PORT}; 0: any)")
    up.add_argument("--ipfs-port", type=_port, default=None, help=f"IPFS port (default {DEFAULT_IPFS_PORT}; 0: any)")
    up.add_argument("--restart", action="store_true", help="replace a running devnet instead of keeping it")
    up.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops the devnet")
    up.set_defaults(func=_up)
    sub.add_parser("status", help="each process, the connection and the log files").set_defaults(func=_status)
    sub.add_parser("down", help="stop the devnet's processes (only its own)").set_defaults(func=_down)
    sub.add_parser("hello", help="run the hello-world task through EthernityHook").set_defaults(func=_hello)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except DevnetError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted")
    except Exception as exc:  # anything else is still one line: the type says where to look
        _fail(f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
