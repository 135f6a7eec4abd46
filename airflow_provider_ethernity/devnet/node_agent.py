"""The devnet's node agent: plays the node operator and the trustedzone enclave.

Loop: watch DO requests -> for each one it may take (unpinned, or pinned to this node), register a DP request
and place an order -> once the order is PROCESSING (approved, or delegated when pinned), fetch the sealed
challenge, code and input from IPFS, open them with the enclave key, check their checksums, run the code in
a child process with memory and time limits, seal the result for the requester (NaCl box), add it to IPFS,
sign the ``_addResultToOrder`` statement with the challenge wallet and record ``v3:<signed tx>:<cid>``.

Failure injection is read from a JSON control file on every loop (see :class:`AgentControl`):
``mode`` "normal" or "idle" (places no orders: the "no node" case), ``fault_codes`` (a queue: the next
orders return these operator-fault codes instead of running), ``delay_seconds`` (a slow node), ``tamper``
(a queue: the next results are forged in one of the :data:`TAMPER_KINDS` ways, as a dishonest node would, or
their stored bytes damaged in one of the :data:`BLOB_TAMPER_KINDS` ways).

Run: ``python -m airflow_provider_ethernity.devnet.node_agent CONFIG_JSON``.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_ethernity.protocol import metadata
from airflow_provider_ethernity.protocol.cid import compute_cid
from airflow_provider_ethernity.protocol.client import EthernityClient
from airflow_provider_ethernity.protocol.crypto import open_sealed, seal_result, sha256_hex
from airflow_provider_ethernity.protocol.errors import StorageError, TransientError
from airflow_provider_ethernity.protocol.events import ORDER_PLACED_TOPIC, OrderStatus, RequestStatus
from airflow_provider_ethernity.protocol.results import sign_result_transaction
from airflow_provider_ethernity.protocol.settings import ClientSettings
from airflow_provider_ethernity.protocol.task_codes import TaskCode

log = logging.getLogger("ethernity.devnet.agent")

EXECUTION_TIMEOUT = int(TaskCode.EXECUTION_TIMEOUT)
PAYLOAD_CHECKSUM_ERROR = int(TaskCode.PAYLOAD_CHECKSUM_ERROR)
INPUT_CHECKSUM_ERROR = int(TaskCode.INPUT_CHECKSUM_ERROR)
#: How a dishonest node can forge a result: a checksum that is not the result's, a statement signed by a
#: wallet other than the challenge's, or a statement for another order, contract or chain.
TAMPER_KINDS = ("checksum", "signer", "order", "contract", "chain")
#: How a node can damage the result bytes it stores on IPFS under an honest statement: flip bits in the sealed
#: box ("corrupt_bytes") or cut its hex text short by one digit ("truncate_bytes").
BLOB_TAMPER_KINDS = ("corrupt_bytes", "truncate_bytes")


class ArtefactUnavailable(Exception):
    """The node cannot read an artefact from its IPFS (a requester's private IPFS): it gives the order up."""


@dataclass
class AgentConfig:
    rpc_url: str
    chain_id: int
    protocol_address: str
    token_address: str
    image_registry_address: str
    ipfs_api_url: str
    node_private_key: str = field(repr=False)
    enclave_key_file: str
    control_file: str
    poll_interval: float = 0.2
    #: Upper bound of one task's run time on the devnet (the request's duration is in hours).
    max_task_seconds: float = 300.0
    workers: int = 4
    #: The IPFS API's token when the devnet requires one (``ethernity-devnet up --ipfs-token``); this file
    #: is written 0600, like the node key it already holds.
    ipfs_token: str | None = field(default=None, repr=False)
    #: The network entry the node's client uses (a profile's gas model: ``devnet_bloxberg`` sends legacy gasPrice).
    network: str = "devnet"
    #: The chain's block time when it differs from the network entry's (profiles run faster than the real ones).
    block_time: float | None = None
    #: Seconds an order may wait for the requester's approval before the node abandons it (the real node checks
    #: ``int(60 / block_time)`` times, ``block_time`` apart); None: wait forever.
    approval_window: float | None = None
    #: Seconds between recording a result CID on chain and adding its bytes to IPFS (a real node pins late).
    result_pin_delay: float = 0.0
    #: How many times an artefact read is tried before the node gives up on the order (the real node: 5).
    artefact_read_attempts: int = 5

    @classmethod
    def load(cls, path: str | Path) -> AgentConfig:
        return cls(**json.loads(Path(path).read_text()))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))
        os.chmod(path, 0o600)


@dataclass
class AgentControl:
    mode: str = "normal"  # "normal" | "idle"
    fault_codes: list[int] = field(default_factory=list)
    delay_seconds: float = 0.0
    tamper: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: str | Path) -> AgentControl:
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return cls()

    def write(self, path: str | Path) -> None:
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)


def forged_statement(kind: str, honest: dict[str, Any]) -> dict[str, Any]:
    """The fields a dishonest node changes in the signed result statement, for one of :data:`TAMPER_KINDS`."""
    if kind == "checksum":
        return {"checksum": sha256_hex("not the result")}
    if kind == "signer":
        return {"client_challenge": secrets.token_hex(16)}  # signs with a wallet the requester never derived
    if kind == "order":
        return {"order_id": honest["order_id"] + 1000}
    if kind == "contract":
        from eth_utils import to_checksum_address

        return {"protocol_address": to_checksum_address("0x" + "ab" * 20)}
    if kind == "chain":
        return {"chain_id": honest["chain_id"] + 1}
    raise ValueError(f"tamper={kind!r} is unknown: allowed {', '.join(TAMPER_KINDS)}")


def forged_blob(kind: str, sealed_hex: str) -> str:
    """The sealed result's hex text damaged in one of the :data:`BLOB_TAMPER_KINDS` ways."""
    if kind == "corrupt_bytes":
        middle = len(sealed_hex) // 2
        flipped = format(int(sealed_hex[middle : middle + 2], 16) ^ 0xFF, "02x")
        return sealed_hex[:middle] + flipped + sealed_hex[middle + 2 :]
    if kind == "truncate_bytes":
        return sealed_hex[:-1]
    raise ValueError(f"tamper={kind!r} is unknown: allowed {', '.join(BLOB_TAMPER_KINDS)}")


def run_code(code: str, input_data: str | None, timeout: float, memory_gb: int) -> tuple[int, str]:
    """Run task code in a child Python with an address-space and CPU limit and a wall-clock timeout."""
    limit = max(1, memory_gb) * 1024**3

    def limits() -> None:  # runs in the child before exec
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        cpu = int(timeout) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        os.setsid()

    with tempfile.TemporaryDirectory(prefix="etny-task-") as tmp:
        task_file, result_file = Path(tmp, "task.json"), Path(tmp, "result.json")
        task_file.write_text(json.dumps({"code": code, "input": input_data}))
        cmd = [sys.executable, "-m", "airflow_provider_ethernity.devnet.enclave_exec", str(task_file), str(result_file)]
        proc = subprocess.Popen(cmd, cwd=tmp, preexec_fn=limits, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return EXECUTION_TIMEOUT, f"EXECUTION_TIMEOUT: the task ran longer than {timeout:g} s"
        if not result_file.exists():
            tail = output.decode(errors="replace")[-2000:]
            return 1, f"SYSTEM_ERROR: the task process exited with {proc.returncode}\n{tail}"
        outcome = json.loads(result_file.read_text())
        return int(outcome["task_code"]), str(outcome["result"])


class NodeAgent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        settings = ClientSettings.build(
            config.network,
            block_time=config.block_time,
            rpc_url=config.rpc_url,
            private_key=config.node_private_key,
            ipfs_api_url=config.ipfs_api_url,
            ipfs_token=config.ipfs_token,
            protocol_address=config.protocol_address,
            token_address=config.token_address,
            image_registry_address=config.image_registry_address,
            chain_id=config.chain_id,
        )
        self.client = EthernityClient(settings, logger=log)
        self.enclave_key = Path(config.enclave_key_file).read_bytes()
        self.next_do_request = 0
        self.claimed: set[int] = set()
        self.running: set[int] = set()
        self.placed_at: dict[int, float] = {}
        self.abandoned: set[int] = set()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="etny-task")

    @property
    def protocol(self) -> Any:
        return self.client.protocol

    def register(self) -> int:
        """A DP request offering this node's resources (the protocol's proof that it is a node)."""
        call = self.protocol.functions._addDPRequest(255, 255, 255, 255, 65535, 0, "devnet", "", "", "")
        tx = self.client.transact(call, "_addDPRequest")
        receipt = self.client.wait_receipt(tx, "_addDPRequest")
        return int(receipt["logs"][-1]["data"][-32:].hex(), 16)

    def control(self) -> AgentControl:
        return AgentControl.read(self.config.control_file)

    def step(self) -> None:
        control = self.control()
        count = int(self.protocol.functions._getDORequestsCount().call())
        if control.mode != "idle":
            for do_request in range(self.next_do_request, count):
                self.consider(do_request)
            self.next_do_request = count
        for order_id in list(self.claimed - self.running):
            status = self.client.get_order(order_id).status
            window = self.config.approval_window
            if status == OrderStatus.OPEN and window is not None:
                if time.monotonic() - self.placed_at.get(order_id, time.monotonic()) > window:
                    # the real node stops checking: the order stays OPEN, its escrow in a booked request
                    self.claimed.discard(order_id)
                    self.abandoned.add(order_id)
                    log.warning("order %s not approved within %g s: abandoned", order_id, window)
                continue
            if status == OrderStatus.PROCESSING:
                with self.lock:
                    self.running.add(order_id)
                self.pool.submit(self.process_safely, order_id)
            elif status in (OrderStatus.CLOSED, OrderStatus.CANCELED):
                self.claimed.discard(order_id)

    def consider(self, do_request: int) -> None:
        row = self.protocol.functions._getDORequest(do_request).call()
        if int(row[7]) != RequestStatus.AVAILABLE:
            return
        pinned = self.protocol.functions._getDORequestMetadata(do_request).call()[4]
        if pinned and pinned.lower() != self.client.address.lower():
            return
        dp_request = self.register()
        tx = self.client.transact(self.protocol.functions._placeOrder(do_request, dp_request), "_placeOrder")
        receipt = self.client.wait_receipt(tx, "_placeOrder")
        for entry in receipt["logs"]:
            if entry["topics"] and entry["topics"][0].to_0x_hex() == ORDER_PLACED_TOPIC:
                order_id = int.from_bytes(bytes(entry["data"])[:32], "big")
                self.claimed.add(order_id)
                self.placed_at[order_id] = time.monotonic()
                log.info("placed order %s for DO request %s", order_id, do_request)

    def process_safely(self, order_id: int) -> None:
        try:
            self.process(order_id)
        except ArtefactUnavailable as exc:  # the real node gives the order up: no result, the requester waits
            log.error("order %s abandoned: %s", order_id, exc)
            self.abandoned.add(order_id)
        except Exception:
            log.exception("order %s failed in the agent", order_id)
        finally:
            with self.lock:
                self.running.discard(order_id)
                self.claimed.discard(order_id)

    def _fetch(self, cid: str) -> bytes:
        """Bytes from the node's IPFS (tried a few times, as the real node does); ArtefactUnavailable at last."""
        for attempt in range(max(1, self.config.artefact_read_attempts)):
            try:
                return self.client.ipfs.cat(cid)
            except (StorageError, TransientError):
                if attempt == self.config.artefact_read_attempts - 1:
                    raise ArtefactUnavailable(f"cannot download files from IPFS: {cid}") from None
                time.sleep(1.0)
        raise AssertionError("unreachable")

    def _open(self, cid: str) -> str:
        """Fetch a sealed artefact and open it with the trustedzone's key (the payload is sealed for it)."""
        return open_sealed(self._fetch(cid), self.enclave_key).decode("utf-8")

    def _check_image(self, order_id: int, image: metadata.ImageMetadata) -> None:
        """Before running: the trustedzone named is registered, and the image and compose file named (the
        trustedzone's own or a securelock's) can be pulled from IPFS; ArtefactUnavailable (order given up) if not."""
        zone = self.client.image_registry.functions.getLatestTrustedZoneImageCertPublicKey(image.trustedzone, "v3")
        image_cid, cert, compose_cid = zone.call()
        if not (image_cid and cert and image.image_cid and image.compose_cid):
            raise ArtefactUnavailable(f"trustedzone {image.trustedzone!r} is not registered, or no image is named")
        for cid in (image.image_cid, image.compose_cid):
            self._fetch(cid)
        kind = "its own" if (image.image_cid, image.compose_cid) == (image_cid, compose_cid) else "a securelock"
        log.info("order %s: trustedzone %s runs %s image %s", order_id, image.trustedzone, kind, image.image_cid)

    def process(self, order_id: int) -> None:
        order = self.client.get_order(order_id)
        _owner, m1, m2, m3, _m4 = self.protocol.functions._getDORequestMetadata(order.do_request_id).call()
        request = self.protocol.functions._getDORequest(order.do_request_id).call()
        image = metadata.parse_image_metadata(m1)
        code_meta, input_meta = metadata.parse_artefact_metadata(m2), metadata.parse_artefact_metadata(m3)
        self._check_image(order_id, image)
        challenge = self._open(image.challenge_cid)
        control = self.control()
        if control.delay_seconds:
            time.sleep(control.delay_seconds)
        task_code, result = self._execute(control, code_meta, input_meta, memory_gb=int(request[2]))
        tamper = None
        if control.tamper:
            tamper = control.tamper.pop(0)
            control.write(self.config.control_file)
        self.record(order_id, challenge, image.requester_public_key, task_code, result, tamper)

    def _execute(
        self,
        control: AgentControl,
        code_meta: metadata.ArtefactMetadata,
        input_meta: metadata.ArtefactMetadata,
        memory_gb: int,
    ) -> tuple[int, str]:
        if control.fault_codes:
            fault = control.fault_codes.pop(0)
            control.write(self.config.control_file)
            return fault, f"operator fault {fault} injected by the devnet"
        code = self._open(code_meta.cid)
        if sha256_hex(code) != code_meta.checksum:
            return PAYLOAD_CHECKSUM_ERROR, "the code does not match its checksum"
        input_data = self._open(input_meta.cid) if input_meta.cid else None
        if input_data is not None and sha256_hex(input_data) != input_meta.checksum:
            return INPUT_CHECKSUM_ERROR, "the input dataset does not match its checksum"
        return run_code(code, input_data, self.config.max_task_seconds, memory_gb)

    def record(
        self, order_id: int, challenge: str, requester_key: str, task_code: int, result: str, tamper: str | None = None
    ) -> None:
        sealed = seal_result(result, requester_key)
        if tamper in BLOB_TAMPER_KINDS:
            sealed, tamper = forged_blob(tamper, sealed), None
            log.warning("order %s: damaging the stored result bytes, as injected", order_id)
        delay = self.config.result_pin_delay
        cid = compute_cid(sealed.encode()) if delay else self.client.ipfs.add(sealed)
        statement: dict[str, Any] = {
            "order_id": order_id,
            "task_code": task_code,
            "checksum": sha256_hex(result),
            "client_challenge": challenge,
            "enclave_challenge": secrets.token_hex(10),
            "protocol_address": self.config.protocol_address,
            "chain_id": self.config.chain_id,
        }
        if tamper:
            statement.update(forged_statement(tamper, statement))
            log.warning("order %s: forging the result (%s), as injected", order_id, tamper)
        signed = sign_result_transaction(**statement)
        call = self.protocol.functions._addResultToOrder(order_id, f"v3:{signed}:{cid}")
        self.client.wait_receipt(self.client.transact(call, "_addResultToOrder"), "_addResultToOrder")
        log.info("order %s closed with task code %s (result %s)", order_id, task_code, cid)
        if delay:  # the CID is on chain; the bytes become readable only now + delay
            timer = threading.Timer(delay, self._pin_late, (order_id, sealed, cid))
            timer.daemon = True
            timer.start()

    def _pin_late(self, order_id: int, sealed: str, cid: str) -> None:
        try:
            added = self.client.ipfs.add(sealed)
            log.info("order %s: result %s pinned %g s after the close", order_id, added, self.config.result_pin_delay)
            if added != cid:
                log.error("order %s: the late pin gave %s, not %s", order_id, added, cid)
        except Exception:
            log.exception("order %s: the late pin of %s failed", order_id, cid)

    def run(self) -> None:
        self.register()
        log.info("node agent %s ready", self.client.address)
        while not self.stop_event.is_set():
            try:
                self.step()
            except Exception:
                log.exception("agent step failed; continuing")
            self.stop_event.wait(self.config.poll_interval)
        self.pool.shutdown(wait=False, cancel_futures=True)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    agent = NodeAgent(AgentConfig.load(argv[1]))
    signal.signal(signal.SIGTERM, lambda *_: agent.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stop_event.set())
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
