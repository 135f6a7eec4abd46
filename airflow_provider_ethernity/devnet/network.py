"""The whole local network: anvil + contracts + IPFS service + registered trustedzone + node agent.

``Devnet(workdir).start()`` brings everything up (on free loopback ports unless ``rpc_port``/``ipfs_port``
are given) and writes ``devnet.json`` (the state, including each process's identity) and ``connection.env``
(the Airflow connection). ``stop()`` stops every process it started; ``detach()`` leaves them running for
``Devnet.stop_from_state(workdir)`` (``ethernity-devnet down``) to stop from another process.

The requester key is kept in the workdir (``requester.key``, mode 0600) and reused by the next start
there, so with fixed ports the Airflow connection stays the same across restarts (the contracts land on
the same addresses on a fresh chain).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from airflow_provider_ethernity.devnet.chain_front import ChainFrontProcess
from airflow_provider_ethernity.devnet.chain_front import admin as chain_front_admin
from airflow_provider_ethernity.devnet.enclave_identity import make_enclave_identity
from airflow_provider_ethernity.devnet.errors import DevnetError
from airflow_provider_ethernity.devnet.node_agent import AgentConfig, AgentControl
from airflow_provider_ethernity.devnet.process import stop_pid
from airflow_provider_ethernity.devnet.profiles import DevnetProfile, anvil_flags, get_profile
from airflow_provider_ethernity.devnet.public_ipfs import PublicIpfsFront
from airflow_provider_ethernity.devnet.state import (
    CONNECTION_FILE,
    STATE_FILE,
    DevnetState,
    ProcessRecord,
    connection_line,
    default_workdir,
    stop_recorded,
)
from airflow_provider_ethernity.protocol.settings import check_ipfs_token

__all__ = ["CONNECTION_FILE", "STATE_FILE", "Devnet", "DevnetState", "connection_line", "default_workdir"]

log = logging.getLogger("ethernity.devnet")

TRUSTEDZONE = "etny-pynithy-devnet"
#: A dApp image (securelock) published in the registry beside the trustedzone: run it with ``securelock=SECURELOCK``
#: (the request names its image and compose file; the payload is still sealed for the trustedzone).
SECURELOCK = "etny-devnet-dapp"
CHAIN_ID = 31337
REQUESTER_KEY_FILE = "requester.key"
#: anvil's well-known development keys #0 and #2 (public, from its test mnemonic; devnet only).
DEPLOYER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
NODE_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
REQUESTER_TOKENS = 10_000
REQUESTER_ETH_WEI = 100 * 10**18


class Devnet:
    """Start and stop the local Ethernity network. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        block_time: float | None = None,
        ipfs_token: str | None = None,
        agent_max_task_seconds: float = 300.0,
        rpc_port: int | None = None,
        ipfs_port: int | None = None,
        profile: str | DevnetProfile | None = None,
        **profile_overrides: Any,
    ) -> None:
        """``rpc_port``/``ipfs_port``: None or 0 picks any free port (what tests want: no collisions).

        ``profile``: ``default`` (today's fast devnet), ``bloxberg`` or ``polygon`` (:mod:`.profiles`), or a
        :class:`DevnetProfile`; ``block_time`` and any other knob given here override the profile's."""
        self.workdir = Path(workdir or default_workdir()).resolve()
        self.profile = get_profile(profile).with_overrides(block_time=block_time, **profile_overrides)
        self.block_time = self.profile.block_time
        # stripped and checked once: the IPFS service, the node agent and the connection all use this value
        self.ipfs_token = check_ipfs_token(ipfs_token)
        self.rpc_port = rpc_port or None
        self.ipfs_port = ipfs_port or None
        self.agent_max_task_seconds = agent_max_task_seconds
        self.state: DevnetState | None = None
        self.requester_key: str | None = None
        self._anvil: Any = None
        self._ipfs: Any = None
        self._agent: subprocess.Popen[bytes] | None = None
        self._public_ipfs: Any = None
        self._ipfs_front: Any = None
        self._chain_front: Any = None
        self._detached = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> DevnetState:
        from eth_account import Account
        from web3 import Web3

        from airflow_provider_ethernity.devnet import deploy
        from airflow_provider_ethernity.devnet.chain import AnvilProcess
        from airflow_provider_ethernity.devnet.ipfs_service import IpfsService
        from airflow_provider_ethernity.protocol.ipfs import IpfsClient

        self.workdir.mkdir(parents=True, exist_ok=True)
        existing = self.workdir / STATE_FILE
        if existing.exists():
            self.stop_from_state(self.workdir)
        started = time.monotonic()
        profile = self.profile
        try:
            self._anvil = AnvilProcess(
                block_time=self.block_time,
                workdir=self.workdir,
                chain_id=CHAIN_ID,
                port=self.rpc_port,
                extra_args=anvil_flags(profile),
            )
            self._anvil.start()
            # with a public IPFS beside it, the requester's own IPFS misses results quickly (its cat times out)
            private_cat_timeout = {"cat_timeout": 2.0} if profile.public_ipfs else {}
            self._ipfs = IpfsService(
                self.workdir / "ipfs", token=self.ipfs_token, port=self.ipfs_port, **private_cat_timeout
            )
            self._ipfs.start()
            if profile.public_ipfs:
                self._public_ipfs = IpfsService(self.workdir / "ipfs-public", cat_timeout=2.0)
                self._public_ipfs.start()
            w3 = Web3(Web3.HTTPProvider(self._anvil.rpc_url))
            contracts = deploy.deploy_contracts(w3, DEPLOYER_KEY, token_is_protocol=profile.token_is_protocol)

            enclave_key, certificate = make_enclave_identity(TRUSTEDZONE)
            key_file = self.workdir / "enclave-key.pem"
            key_file.write_bytes(enclave_key)
            key_file.chmod(0o600)
            image = b"ethernity devnet enclave image (the node agent plays the enclave)"
            compose = b"services: {etny-securelock: {image: devnet}}\n"
            dapp_image = b"ethernity devnet dApp image (a securelock the node agent runs in the trustedzone)"
            dapp_compose = b"services: {etny-securelock: {image: devnet-dapp}}\n"
            ipfs = IpfsClient(self._ipfs.api_url, self.ipfs_token)
            cids = [ipfs.add(blob) for blob in (image, compose, dapp_image, dapp_compose)]
            ipfs.close()
            if self._public_ipfs is not None:  # published images are on the public network
                public = IpfsClient(self._public_ipfs.api_url)
                for blob in (image, compose, dapp_image, dapp_compose):
                    public.add(blob)
                public.close()
            deploy.register_image(
                w3, contracts.image_registry, DEPLOYER_KEY, TRUSTEDZONE, "v3", cids[0], certificate, cids[1]
            )
            # the dApp's own certificate is registered with it, as a published securelock's is; requests that
            # run it are still sealed for the trustedzone's certificate (the registry lookup of the runner)
            _dapp_key, dapp_certificate = make_enclave_identity(SECURELOCK)
            deploy.register_image(
                w3, contracts.image_registry, DEPLOYER_KEY, SECURELOCK, "v3", cids[2], dapp_certificate, cids[3]
            )

            requester = Account.from_key(self._requester_key())
            self.requester_key = requester.key.to_0x_hex()
            node_address = Account.from_key(NODE_KEY).address
            deploy.fund(w3, contracts.token, DEPLOYER_KEY, requester.address, REQUESTER_ETH_WEI, REQUESTER_TOKENS)
            rpc_url = self._anvil.rpc_url
            if profile.chain_front:
                self._chain_front = ChainFrontProcess(
                    self.workdir,
                    self._anvil.rpc_url,
                    lag=profile.replica_lag,
                    hide_close_every=profile.hide_close_every,
                )
                self._chain_front.start()
                rpc_url = self._chain_front.url
            node_ipfs = self._public_ipfs.api_url if self._public_ipfs is not None else self._ipfs.api_url
            if self._public_ipfs is not None:
                self._ipfs_front = PublicIpfsFront(
                    self.workdir,
                    network=profile.network,
                    ipfs_api_url=self._public_ipfs.api_url,
                    rpc_url=self._anvil.rpc_url,
                    protocol_address=contracts.protocol,
                )
                self._ipfs_front.start()

            control_file = self.workdir / "agent-control.json"
            AgentControl().write(control_file)
            agent_config = AgentConfig(
                rpc_url=self._anvil.rpc_url,
                chain_id=CHAIN_ID,
                protocol_address=contracts.protocol,
                token_address=contracts.token,
                image_registry_address=contracts.image_registry,
                ipfs_api_url=node_ipfs,
                ipfs_token=self.ipfs_token if self._public_ipfs is None else None,
                node_private_key=NODE_KEY,
                enclave_key_file=str(key_file),
                control_file=str(control_file),
                max_task_seconds=self.agent_max_task_seconds,
                network=profile.network,
                block_time=self.block_time if profile.name != "default" else None,
                approval_window=profile.approval_window,
                result_pin_delay=profile.result_pin_delay,
            )
            agent_config.save(self.workdir / "agent.json")
            self._agent = self._start_agent()

            public_api = self._public_ipfs.api_url if self._public_ipfs is not None else None
            self.state = DevnetState(
                workdir=str(self.workdir),
                rpc_url=rpc_url,
                # bloxberg: the requester's own (private) IPFS + the intake; polygon: the public IPFS's API
                ipfs_api_url=public_api if (public_api and not profile.intake) else self._ipfs.api_url,
                chain_id=CHAIN_ID,
                protocol_address=contracts.protocol,
                token_address=contracts.token,
                image_registry_address=contracts.image_registry,
                trustedzone=TRUSTEDZONE,
                securelock=SECURELOCK,
                requester_address=requester.address,
                node_address=node_address,
                started_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                profile=profile.name,
                network=profile.network,
                block_time=self.block_time,
                anvil_rpc_url=self._anvil.rpc_url,
                private_ipfs_api_url=self._ipfs.api_url,
                public_ipfs_api_url=public_api,
                ipfs_public=None if public_api is None else not profile.intake,
                ipfs_intake_url=self._ipfs_front.intake_url if (self._ipfs_front and profile.intake) else None,
                ipfs_gateway_url=self._ipfs_front.url if self._ipfs_front else None,
            )
            self._wait_agent_ready(w3, node_address)
            self.state.processes = {  # recorded once each runs (a forked child shows its parent's command line)
                "anvil": ProcessRecord.of(self._anvil.pid, self._anvil.log_file),
                "ipfs": ProcessRecord.of(self._ipfs.pid, self._ipfs.log_file),
                "agent": ProcessRecord.of(self._agent.pid, self.workdir / "agent.log"),
            }
            for name, service in (
                ("public_ipfs", self._public_ipfs),
                ("ipfs_front", self._ipfs_front),
                ("chain_front", self._chain_front),
            ):
                if service is not None:
                    self.state.processes[name] = ProcessRecord.of(service.pid, service.log_file)
            self._write_state()
        except BaseException:
            self.stop()
            raise
        log.info("devnet up in %.1f s at %s", time.monotonic() - started, self.workdir)
        return self.state

    def _requester_key(self) -> str:
        """The workdir's requester key (created on the first start there)."""
        from eth_account import Account

        path = self.workdir / REQUESTER_KEY_FILE
        if path.exists():
            return path.read_text().strip()
        key = Account.create().key.to_0x_hex()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        return key

    def _start_agent(self) -> subprocess.Popen[bytes]:
        log_file = open(self.workdir / "agent.log", "ab")  # noqa: SIM115 - handed to the child
        return subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_ethernity.devnet.node_agent", str(self.workdir / "agent.json")],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            start_new_session=True,
        )

    def _wait_agent_ready(self, w3: Any, node_address: str, timeout: float = 60.0) -> None:
        """The agent is ready once it has registered its first DP request."""
        from airflow_provider_ethernity.protocol.abi import PROTOCOL, load_abi

        protocol = w3.eth.contract(address=self.state.protocol_address, abi=load_abi(PROTOCOL))  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._agent is not None and self._agent.poll() is not None:
                raise DevnetError(f"the node agent exited; see {self.workdir / 'agent.log'}:\n{self._agent_log_tail()}")
            if protocol.functions._getMyDPRequests().call({"from": node_address}):
                return
            time.sleep(0.1)
        raise DevnetError(f"the node agent did not register within {timeout:g} s:\n{self._agent_log_tail()}")

    def _agent_log_tail(self) -> str:
        path = self.workdir / "agent.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def _write_state(self) -> None:
        assert self.state is not None
        self.state.save()
        conn_file = self.workdir / CONNECTION_FILE
        conn_file.write_text(f"export AIRFLOW_CONN_ETHERNITY_DEFAULT='{self.connection_json()}'\n")
        conn_file.chmod(0o600)

    def stop(self) -> None:
        """Stop the agent, IPFS and anvil; leaves no process behind. Does nothing after :meth:`detach`."""
        if self._detached:
            return
        if self._agent is not None:
            stop_pid(self._agent.pid)
            self._agent.wait()
            self._agent = None
        for service in (self._chain_front, self._ipfs_front, self._public_ipfs, self._ipfs, self._anvil):
            if service is not None:
                service.stop()
        self._ipfs = self._anvil = self._public_ipfs = self._ipfs_front = self._chain_front = None
        (self.workdir / STATE_FILE).unlink(missing_ok=True)

    def detach(self) -> None:
        """Leave the started processes running after this object (and this process) is gone.

        They run in their own sessions; the state file stays, so ``Devnet.stop_from_state(workdir)``
        (``ethernity-devnet down``) stops them later. After this, :meth:`stop` does nothing.
        """
        self._detached = True
        self._anvil = self._ipfs = self._agent = None
        self._public_ipfs = self._ipfs_front = self._chain_front = None

    @staticmethod
    def stop_from_state(workdir: str | Path | None = None) -> list[str]:
        """Stop a devnet another process started (``ethernity-devnet down``): only the processes that are still
        the ones it recorded (pid, start time and command line). Returns one line per process saying what
        happened (empty if no devnet state is in ``workdir``); removes the state file."""
        workdir = Path(workdir or default_workdir())
        state = DevnetState.load(workdir)
        if state is None:
            return []
        lines = stop_recorded(state)
        (workdir / STATE_FILE).unlink(missing_ok=True)
        return lines

    def __enter__(self) -> Devnet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers for users and tests
    def connection_json(self) -> str:
        """The Airflow connection (JSON form) for ``AIRFLOW_CONN_ETHERNITY_DEFAULT``."""
        assert self.state is not None and self.requester_key is not None
        extra = self.state.connection_extra()
        if self.ipfs_token:
            extra["ipfs_token"] = self.ipfs_token
        return json.dumps({"conn_type": "ethernity", "password": self.requester_key, "extra": extra})

    @property
    def control_file(self) -> Path:
        return self.workdir / "agent-control.json"

    def set_agent(
        self,
        mode: str = "normal",
        fault_codes: list[int] | None = None,
        delay_seconds: float = 0,
        tamper: list[str] | None = None,
    ) -> None:
        """Failure injection: "idle" places no orders; the next orders return ``fault_codes``, or deliver
        results forged in the ``tamper`` ways (``node_agent.TAMPER_KINDS``: the signed statement;
        ``node_agent.BLOB_TAMPER_KINDS``: the stored bytes); ``delay_seconds`` slows every task down."""
        AgentControl(
            mode=mode, fault_codes=list(fault_codes or []), delay_seconds=delay_seconds, tamper=list(tamper or [])
        ).write(self.control_file)

    # ------------------------------------------------------------------ profile behaviours on demand
    def _front(self, method: str, *params: Any) -> Any:
        assert self.state is not None
        if self.state.anvil_rpc_url == self.state.rpc_url:
            raise DevnetError(f"profile {self.profile.name!r} runs no chain front (DevnetProfile.chain_front)")
        return chain_front_admin(self.state.rpc_url, method, *params)

    def reorg(self, depth: int, reinclude: bool = True) -> list[str]:
        """Roll the chain back ``depth`` blocks; their transactions are re-mined in the last new block (or
        dropped). Returns the moved transaction hashes. Needs a profile with a chain front."""
        return list(self._front("devnet_reorg", depth, reinclude))

    def set_replica_lag(self, blocks: int) -> None:
        self._front("devnet_setLag", blocks)

    def hide_closes(self, every: int = 0, order_ids: list[int] | None = None) -> None:
        """Leave ``_orderClosedEV`` out of log answers for ids multiple of ``every`` and for ``order_ids``."""
        self._front("devnet_hideCloses", every, list(order_ids or []))

    def front_stats(self) -> dict[str, Any]:
        return dict(self._front("devnet_frontStats"))

    def read_state(self) -> dict[str, Any]:
        return json.loads((self.workdir / STATE_FILE).read_text())

    def connection_line(self) -> str | None:
        """The ``export AIRFLOW_CONN_ETHERNITY_DEFAULT=...`` line written to ``connection.env``."""
        return connection_line(self.workdir)
