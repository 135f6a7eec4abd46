"""The devnet's EVM node: anvil (see :mod:`~airflow_provider_ethernity.devnet.tools`) on a 127.0.0.1 port."""

from __future__ import annotations

from pathlib import Path

from airflow_provider_ethernity.devnet.child_process import LoopbackChild
from airflow_provider_ethernity.devnet.tools import find_anvil


class AnvilProcess(LoopbackChild):
    """``anvil`` as a child process in its own session. ``block_time=None`` mines each transaction at once.

    ``port=None`` (or 0) picks a free port (retried if another process takes it first); a given port is
    used as is, and a DevnetError says so when it is taken.
    """

    log_name = "anvil.log"
    what = "anvil"

    def __init__(
        self,
        *,
        workdir: str | Path,
        chain_id: int = 31337,
        block_time: float | None = None,
        port: int | None = None,
        accounts: int = 10,
        extra_args: list[str] | None = None,
    ) -> None:
        super().__init__(workdir, port)
        self.chain_id = chain_id
        self.block_time = block_time
        self.accounts = accounts
        #: More anvil flags (a profile's ``--hardfork berlin``, ``--base-fee N``).
        self.extra_args = list(extra_args or [])
        self._binary: Path | None = None

    @property
    def rpc_url(self) -> str:
        return self.url

    def command(self, port: int) -> list[str]:
        cmd = [
            str(self._binary or find_anvil()),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--chain-id", str(self.chain_id),
            "--accounts", str(self.accounts),
            "--no-request-size-limit",
        ]  # fmt: skip
        if self.block_time:
            cmd += ["--block-time", f"{self.block_time:g}"]
        return cmd + self.extra_args

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._binary = find_anvil()  # may install it on first use, before any port is picked
        super().start(timeout)
