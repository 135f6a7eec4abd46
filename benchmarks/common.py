"""What every benchmark shares: a devnet of its own in a temp dir, the Airflow connection, the task code."""

from __future__ import annotations

import contextlib
import os
import resource
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HELLO = '___etny_result___("Hello, Python World!")'
CONN_ID = "ethernity_default"


@contextlib.contextmanager
def devnet(block_time: float | None = None, **kwargs: Any) -> Iterator[Any]:
    """A fresh devnet in a temp dir, registered as ``ethernity_default``; stopped (all processes) at the end."""
    from airflow_provider_ethernity.devnet.network import Devnet

    with tempfile.TemporaryDirectory(prefix="etny-bench-") as tmp:
        net = Devnet(Path(tmp) / "devnet", block_time=block_time, agent_max_task_seconds=120, **kwargs)
        net.start()
        old = os.environ.get("AIRFLOW_CONN_ETHERNITY_DEFAULT")
        os.environ["AIRFLOW_CONN_ETHERNITY_DEFAULT"] = net.connection_json()
        try:
            yield net
        finally:
            if old is None:
                os.environ.pop("AIRFLOW_CONN_ETHERNITY_DEFAULT", None)
            else:
                os.environ["AIRFLOW_CONN_ETHERNITY_DEFAULT"] = old
            net.stop()


def client_for(net: Any, rpc_url: str | None = None) -> Any:
    """The requester's protocol client on ``net`` (optionally through another RPC URL, e.g. a proxy)."""
    from airflow_provider_ethernity.protocol.client import EthernityClient
    from airflow_provider_ethernity.protocol.settings import ClientSettings

    state = net.state
    extra = state.connection_extra()
    extra.pop("network")
    if rpc_url:
        extra["rpc_url"] = rpc_url
    return EthernityClient(ClientSettings.build("devnet", private_key=net.requester_key, **extra))


def max_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux ``clear_refs`` 5) so ``ru_maxrss`` measures from now on."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
