"""Open and verify OUR artefacts with the OFFICIAL Ethernity Cloud code (run with the reference venv's python).

    .venv-ref/bin/python tests/golden/official_open.py < request.json > answer.json

The reference venv (tests/golden/setup_ref_venv.sh) holds ``ethernity-cloud-runner-py`` (requester side) and
``ethernity-cloud-sdk-py`` (enclave side: ``commands/pynithy/build/securelock/src``). Nothing here is part of
the provider; the provider never imports this file. ``make_golden.py`` reuses the helpers below.

Request (every key optional)::

    {"sealed":  [{"sealed": "<base64 ascii as uploaded>", "private_key_pem": "..."}],
     "results": [{"blob_hex": "<result blob as stored on IPFS>", "eth_private_key": "0x..."}],
     "metadata": [{"metadata1": "...", "metadata2": "...", "metadata3": "...", "metadata4": "..."}],
     "order_results": [{"order_result": "v3:<tx>:<cid>", "order_id": 1, "client_challenge": "...",
                        "network": "BLOXBERG", "network_type": "TESTNET", "blob_hex": "...",
                        "eth_private_key": "0x..."}],
     "wallets": [{"client_challenge": "...", "enclave_challenge": "..."}],
     "public_keys": ["0x<eth private key>"]}

Answer: the same keys, one entry per request entry, each saying what the official code made of it. Everything
the official code prints goes to stderr; stdout carries only the JSON answer.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

RUNNER_VERSION = "0.5.26"
SDK_VERSION = "0.9.23"


# --------------------------------------------------------------------------------------------- plumbing
@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The official code prints diagnostics to stdout: send them to stderr."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def sdk_src() -> str:
    """The SDK's enclave sources (securelock/src), made importable as top-level modules as in the enclave."""
    import ethernity_cloud_sdk_py

    path = str(Path(ethernity_cloud_sdk_py.__file__).parent / "commands" / "pynithy" / "build" / "securelock" / "src")
    if path not in sys.path:
        sys.path.insert(0, path)
    return path


def sdk_crypto() -> Any:
    sdk_src()
    from etny_crypto import etny_crypto

    return etny_crypto


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {
        name: version(name)
        for name in ("ethernity-cloud-runner-py", "ethernity-cloud-sdk-py", "web3", "eth-account", "pynacl")
    }


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


# --------------------------------------------------------------------------------------------- sealed artefacts
def sdk_open_sealed(sealed: str, private_key_pem: str) -> bytes:
    """The enclave's opener (securelock ``__get_file_content_and_decrypt``): base64 JSON -> tuple -> ECDH + GCM."""
    crypto = sdk_crypto()
    encrypted = crypto.encrypted_data_from_base64_json(sealed.encode("utf-8"))
    return crypto.decrypt(private_key_pem.encode("utf-8"), encrypted)


def runner_open_sealed(sealed: str, private_key_pem: str) -> bytes:
    """The runner's own inverse of its ``encrypt`` (crypto.decrypt reads the PEM from a file)."""
    from ethernity_cloud_runner_py import crypto

    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as handle:
        handle.write(private_key_pem)
    try:
        with quiet():
            return crypto.decrypt(handle.name, crypto.encrypted_data_from_base64_json(sealed))
    finally:
        os.unlink(handle.name)


def open_sealed_entry(entry: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, opener in (("sdk", sdk_open_sealed), ("runner", runner_open_sealed)):
        try:
            out[name] = {"ok": True, "plaintext_hex": opener(entry["sealed"], entry["private_key_pem"]).hex()}
        except Exception as exc:
            out[name] = {"ok": False, "error": _error(exc)}
    return out


# --------------------------------------------------------------------------------------------- results
def runner_open_result(blob_hex: str, eth_private_key: str) -> dict[str, Any]:
    """The runner's ``decrypt_nacl`` (NaCl box, key = PrivateKey.from_seed(eth key), Ascii85 plaintext)."""
    from ethernity_cloud_runner_py.crypto import decrypt_nacl

    with quiet():
        return decrypt_nacl(eth_private_key, blob_hex)


def runner_public_key(eth_private_key: str) -> str:
    """The requester X25519 key the runner writes into metadata1 (``get_current_wallet_public_key``)."""
    from ethernity_cloud_runner_py.runner import EthernityCloudRunner

    runner = EthernityCloudRunner("BLOXBERG", "TESTNET")
    runner.set_private_key(eth_private_key)
    return runner.get_current_wallet_public_key()


def runner_wallet(client_challenge: str, enclave_challenge: str) -> dict[str, Any]:
    """The runner's challenge wallet: ``generate_wallet`` and the key it derives (``crypto.sha256`` twice)."""
    from ethernity_cloud_runner_py.crypto import sha256
    from ethernity_cloud_runner_py.utils import generate_wallet

    with quiet():
        address = generate_wallet(client_challenge, enclave_challenge)
    key = sha256(sha256(client_challenge + enclave_challenge, True), True)
    return {"address": address, "private_key": key}


def sdk_parse_metadata(entry: dict[str, Any]) -> dict[str, Any]:
    """The enclave's parser of the DO request metadata (securelock models.DOReqMetadata)."""
    sdk_src()
    import models

    req = ["0x" + "00" * 20, entry["metadata1"], entry["metadata2"], entry["metadata3"], entry.get("metadata4", "")]
    try:
        parsed = models.DOReqMetadata(req, 1)
        return {
            "ok": True,
            "image_hash": parsed.image_hash,
            "trustedzone_image_name": parsed.trustedzone_image_name,
            "challenge_hash": parsed.image_metadata.split(":")[4],  # the trustedzone reads field 4
            "docker_compose_hash": parsed.image_metadata.split(":")[3],
            "public_key": parsed.public_key,
            "payload_version": parsed.payload_metadata_obj.version,
            "payload_ipfs_hash": parsed.payload_metadata_obj.ipfs_hash,
            "payload_checksum": parsed.payload_metadata_obj.checksum,
            "input_version": parsed.input_metadata_obj.version,
            "input_ipfs_hash": parsed.input_metadata_obj.ipfs_hash,
            "input_checksum": parsed.input_metadata_obj.checksum,
            "input_has_checksum": parsed.input_metadata_obj.has_checksum,
            "node_address": parsed.node_address,
        }
    except Exception as exc:
        return {"ok": False, "error": _error(exc)}


def make_runner(network: str, network_type: str, eth_private_key: str) -> Any:
    """An offline EthernityCloudRunner: no RPC is made by the code paths the golden scripts use."""
    from ethernity_cloud_runner_py.contract.abi.polygonProtocolAbi import contract as protocol_abi
    from ethernity_cloud_runner_py.runner import EthernityCloudRunner

    runner = EthernityCloudRunner(network, network_type)
    runner.set_private_key(eth_private_key)
    runner.protocol_abi = protocol_abi.get("abi")  # what connect() sets
    return runner


class _MemoryStorage:
    """Stands in for the runner's IPFSClient when it reads the result: serves the one known blob."""

    def __init__(self, runner: Any, blobs: dict[str, str]) -> None:
        self.runner = runner
        self.blobs = blobs

    def get_file_content(self, cid: str) -> str | None:
        if cid in self.blobs:
            return self.blobs[cid]
        self.runner.running = False  # unknown CID: end _read_result's wait at once
        return None


def runner_verify_order_result(entry: dict[str, Any]) -> dict[str, Any]:
    """Run the runner's own result path, ``EthernityCloudRunner.get_result_from_order``, on a result string.

    Chain reads are answered from the entry (the order is closed; ``_getResultFromOrder`` returns
    ``order_result``); IPFS serves ``blob_hex`` under the CID named in the result. Everything else (parsing, the
    decoding of the signed transaction, the order/contract/chain binding, the operator-fault codes, the
    challenge-wallet signer check, NaCl decryption, the checksum, the envelope) is the runner's code.
    """
    order_id = int(entry["order_id"])
    runner = make_runner(entry["network"], entry["network_type"], entry["eth_private_key"])
    protocol = runner.network_config.PROTOCOL_ADDRESS
    runner.contract = SimpleNamespace(
        get_status_from_order=lambda _order: 2,
        get_result_from_order=lambda _order: entry["order_result"],
        get_protocol_address=lambda: protocol,
    )
    runner.protocol_contract = SimpleNamespace(
        caller=lambda: SimpleNamespace(_getDPRequestMetadata=lambda _dp: ("", "", "", "", ""))
    )
    runner.order = ("0x" + "11" * 20, "0x" + "22" * 20, 1, 1, 2)
    runner.resources = {"duration": 1}
    runner.challenge_hash = entry["client_challenge"].encode("utf-8")
    runner.running = True
    out: dict[str, Any] = {"protocol_address": protocol, "chain_id": runner.network_config.CHAIN_ID}
    try:
        parsed = runner.parse_order_result(entry["order_result"])
        out["parsed_order_result"] = parsed
        result_cid = parsed["result_ipfs_hash"]
    except Exception as exc:
        out["parsed_order_result"] = {"error": _error(exc)}
        result_cid = ""
    try:
        with quiet():
            tx = runner.parse_transaction_bytes(runner.hex_to_bytes(out["parsed_order_result"]["transaction_bytes"]))
        out["transaction"] = _jsonable(tx)
    except Exception as exc:
        out["transaction"] = {"error": _error(exc)}
    runner.ipfs_client = _MemoryStorage(runner, {result_cid: entry.get("blob_hex", "")})
    try:
        with quiet():
            result = runner.get_result_from_order(order_id)
    except Exception as exc:
        out.update(ok=False, fault=None, error=_error(exc), traceback=traceback.format_exc())
        return out
    out["ok"] = result is not None
    out["fault"] = runner._fault
    if result is not None:
        keep = (
            "order_id",
            "success",
            "result_hash",
            "result_task_code",
            "result_task_code_int",
            "value",
            "result_type",
            "result_data",
            "result_esr",
            "result_raw",
        )
        out["result"] = _jsonable({key: result.get(key) for key in keep})
    return out


# --------------------------------------------------------------------------------------------- main
def answer(request: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"versions": versions()}
    if "sealed" in request:
        out["sealed"] = [open_sealed_entry(entry) for entry in request["sealed"]]
    if "results" in request:
        out["results"] = [runner_open_result(e["blob_hex"], e["eth_private_key"]) for e in request["results"]]
    if "metadata" in request:
        out["metadata"] = [sdk_parse_metadata(entry) for entry in request["metadata"]]
    if "order_results" in request:
        out["order_results"] = [runner_verify_order_result(entry) for entry in request["order_results"]]
    if "wallets" in request:
        out["wallets"] = [runner_wallet(e["client_challenge"], e["enclave_challenge"]) for e in request["wallets"]]
    if "public_keys" in request:
        out["public_keys"] = [runner_public_key(key) for key in request["public_keys"]]
    return out


def main() -> int:
    request = json.load(sys.stdin)
    with quiet():
        result = answer(request)
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
