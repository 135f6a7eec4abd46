"""Write tests/golden/vectors.json from the OFFICIAL Ethernity Cloud packages (run once, in the reference venv).

    tests/golden/setup_ref_venv.sh && .venv-ref/bin/python tests/golden/make_golden.py

Every output in the vectors was produced by the official code (``ethernity-cloud-runner-py`` 0.5.26 on the
requester side, ``ethernity-cloud-sdk-py`` 0.9.23's securelock sources on the enclave side); see ``producer``
on each entry. Keys are fixed and public test material: a secp384r1 enclave key with a self-signed
certificate (made the way the securelock makes its own, stored in the vectors and reused on a re-run) and
anvil's public test key #2 as the requester wallet. Never put a real secret here.

What the official code seals carries fresh randomness (ephemeral keys, nonces): those outputs are stored as
produced, and tests/unit/test_golden.py checks that our openers open them. The ``_addResultToOrder``
transaction is signed here with eth-account (web3 7.6.0's) using the runner's own key derivation, because
neither official package contains the trustedzone's signing code; the runner's own result path
(``get_result_from_order``) accepts every positive vector and its verdict on every vector is stored.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import official_open as official  # noqa: E402  (tests/golden/official_open.py)

#: anvil's public test account #2: a well-known key, never a real secret.
ETH_PRIVATE_KEY = "0x59c6995e998f97a5a0044966f0945389dc9b86dae88c7a8412f4603b6b78690d"
IMAGE_CID = "QmeQiWVb6mXw3Ee3ZbYSaXM5CZPz4KfW6HMJm2hcdoE1Vd"  # any CID-shaped strings: the registry's answer
COMPOSE_CID = "QmPUw6aG5EbBEAW9bMkqWkpPnTbxfDaVGZY6Fi9nEV7z2z"
CODE = (
    'import json\n\ndef main(x):\n    return {"sum": sum(x), "note": "héllo ✓"}\n\n___etny_result___(main([1, 2, 3]))\n'
)
INPUT = '{"rows": [1, 2, 3], "label": "Zürich"}'


def enclave_key(existing: dict[str, Any] | None) -> tuple[str, str]:
    """(private key PEM PKCS#8, certificate PEM): reused from the vectors, else made like the securelock's."""
    if existing and existing.get("enclave_private_key_pem"):
        return existing["enclave_private_key_pem"], existing["enclave_certificate_pem"]
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SecureLock Enclave")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .not_valid_before(datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc))
        .not_valid_after(datetime.datetime(2035, 1, 1, tzinfo=datetime.timezone.utc))
        .serial_number(0xE7)
        .public_key(key.public_key())
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"00" * 32), False)
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return private_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def intake_storage(held_dir: str) -> Any:
    """The runner's own IPFSClient in public-intake mode: CIDs computed locally (ipfs.unixfs_cid), bytes kept."""
    from ethernity_cloud_runner_py.held_cache import HeldCache
    from ethernity_cloud_runner_py.ipfs import IPFSClient

    return IPFSClient(
        "http://intake.invalid/api/v0",
        "",
        intake_url="http://intake.invalid",
        network="bloxberg_testnet",
        held_cache=HeldCache(held_dir),
    )


def official_task_results() -> list[dict[str, Any]]:
    """Result plaintexts made by the SDK's executor (etny_exec.execute_task_v3), as the enclave returns them."""
    official.sdk_src()
    with official.quiet(), contextlib.redirect_stderr(io.StringIO()):
        import etny_exec

        runs = [
            ("text", '___etny_result___("hello " + ___etny_data_set___)', "wörld ✓"),
            ("json", '___etny_result___({"answer": 42, "items": [1, 2.5, "x"], "ok": True})', None),
            ("base64", '___etny_result___(b"\\x00\\x01\\xfebinary")', None),
            ("expressions", '1 + 1\n"two"\n{"k": [3]}', None),
            ("key_error", '{}["missing-key"]', None),
        ]
        return [
            {"name": name, "code": code, "input": data, "task": list(etny_exec.execute_task_v3(code, data))}
            for name, code, data in runs
        ]


def sign_result(order_id: int, result_string: str, key: str, to: str, chain_id: int | None) -> str:
    """A legacy signed ``_addResultToOrder`` call (the runner's ABI encodes the call; eth-account signs)."""
    from eth_account import Account
    from ethernity_cloud_runner_py.contract.abi.polygonProtocolAbi import contract as protocol_abi
    from web3 import Web3

    data = Web3().eth.contract(abi=protocol_abi["abi"]).encode_abi("_addResultToOrder", [order_id, result_string])
    tx = {"nonce": 0, "gasPrice": 1_000_000_000, "gas": 1_000_000, "to": Web3.to_checksum_address(to), "value": 0}
    tx["data"] = data
    if chain_id is not None:
        tx["chainId"] = chain_id
    return Account.sign_transaction(tx, key).raw_transaction.hex()


def build(existing: dict[str, Any] | None) -> dict[str, Any]:
    from ethernity_cloud_runner_py import crypto as rcrypto
    from ethernity_cloud_runner_py import enums, ipfs, utils
    from ethernity_cloud_runner_py.state_cache import parse_result_envelope
    from web3 import Web3

    sdk = official.sdk_crypto()
    private_pem, cert_pem = enclave_key((existing or {}).get("keys"))
    from eth_account import Account

    vectors: dict[str, Any] = {
        "meta": {
            "generated_by": "tests/golden/make_golden.py (reference venv: tests/golden/setup_ref_venv.sh)",
            "versions": official.versions(),
            "note": "Outputs are what the official packages produced; sealed outputs carry their own randomness.",
        },
        "keys": {
            "enclave_private_key_pem": private_pem,
            "enclave_certificate_pem": cert_pem,
            "eth_private_key": ETH_PRIVATE_KEY,
            "eth_address": Account.from_key(ETH_PRIVATE_KEY).address,
        },
    }

    # ---- checksums: runner crypto.sha256(value, as_hex=True)
    samples = ["", "hello world", CODE, INPUT, '{"ecld": 1, "type": "text", "data": "x", "esr": null}', "ü✓\n"]
    vectors["sha256"] = {
        "producer": "ethernity_cloud_runner_py.crypto.sha256(value, True)",
        "cases": [{"input": s, "hex": rcrypto.sha256(s, True)} for s in samples],
        "zero_checksum": enums.ZERO_CHECKSUM,
    }

    # ---- requester X25519 public key: EthernityCloudRunner.get_current_wallet_public_key
    vectors["requester_public_key"] = {
        "producer": "EthernityCloudRunner.get_current_wallet_public_key",
        "eth_private_key": ETH_PRIVATE_KEY,
        "public_key": official.runner_public_key(ETH_PRIVATE_KEY),
    }

    # ---- challenge wallet: utils.generate_wallet + crypto.sha256 twice
    random.seed(20240601)
    pairs = [(utils.generate_random_hex_of_size(20), utils.generate_random_hex_of_size(20)) for _ in range(3)]
    pairs.append(("0123456789abcdef0123", "zq8x0k1m2n3b4v5c6x7z"))
    vectors["challenge_wallet"] = {
        "producer": "ethernity_cloud_runner_py.utils.generate_wallet / crypto.sha256(crypto.sha256(c+e, True), True)",
        "cases": [{"client_challenge": c, "enclave_challenge": e, **official.runner_wallet(c, e)} for c, e in pairs],
    }

    # ---- artefacts sealed for the enclave + v3 metadata, through the runner's own methods
    with tempfile.TemporaryDirectory() as held:
        runner = official.make_runner("BLOXBERG", "TESTNET", ETH_PRIVATE_KEY)
        runner.enclave_public_key = cert_pem
        runner.enclave_image_ipfs_hash = IMAGE_CID
        runner.enclave_docker_compose_ipfs_hash = COMPOSE_CID
        runner.ipfs_client = intake_storage(held)
        random.seed(7)
        challenge = utils.generate_random_hex_of_size(20)  # as create_task makes it
        with official.quiet():
            image_md = runner.get_v3_image_metadata(challenge.encode("utf-8"))
            code_md = runner.get_v3_code_metadata(CODE)
            runner.input_data = INPUT
            input_md = runner.get_v3_input_metadata()
            runner.input_data = None
            empty_input_md = runner.get_v3_input_metadata()
        pending = dict(runner.ipfs_client.pending)
    cids = {
        "challenge": runner.challenge_ipfs_hash,
        "code": runner.script_hash,
        "input": runner.file_set_hash or input_md.split(":")[1],
    }
    plaintexts = {"challenge": challenge.encode(), "code": CODE.encode(), "input": INPUT.encode()}
    sealed_cases = []
    for name in ("challenge", "code", "input"):
        blob = pending[cids[name]].decode("ascii")
        assert ipfs.unixfs_cid(blob.encode()) == cids[name]
        assert official.sdk_open_sealed(blob, private_pem) == plaintexts[name]
        sealed_cases.append({"name": name, "plaintext_hex": plaintexts[name].hex(), "sealed": blob, "cid": cids[name]})
    # a bigger artefact (many GCM blocks), sealed with the runner's encrypt()
    big = ("row,value\n" + "".join(f"{i},{i * i}\n" for i in range(1500))).encode()
    big_blob = rcrypto.encrypt(big, cert_pem).decode("ascii")
    assert official.sdk_open_sealed(big_blob, private_pem) == big
    sealed_cases.append(
        {"name": "large", "plaintext_hex": big.hex(), "sealed": big_blob, "cid": ipfs.unixfs_cid(big_blob.encode())}
    )
    # the SDK's own sealer (etny_crypto.encrypt_with_pub_key + encrypted_data_to_base64_json), same wire format
    sdk_blob = sdk.encrypted_data_to_base64_json(sdk.encrypt_with_pub_key(cert_pem, b"sealed by the SDK")).decode()
    sealed_cases.append(
        {"name": "sdk_sealer", "plaintext_hex": b"sealed by the SDK".hex(), "sealed": sdk_blob, "cid": None}
    )
    vectors["sealed_for_enclave"] = {
        "producer": "EthernityCloudRunner._seal_artefact -> crypto.encrypt (challenge/code/input), crypto.encrypt "
        "(large), SDK etny_crypto.encrypt_with_pub_key (sdk_sealer); CIDs: ipfs.unixfs_cid via IPFSClient",
        "certificate_pem": cert_pem,
        "cases": sealed_cases,
    }
    vectors["metadata"] = {
        "producer": "EthernityCloudRunner.get_v3_image_metadata / get_v3_code_metadata / get_v3_input_metadata",
        "image_cid": IMAGE_CID,
        "compose_cid": COMPOSE_CID,
        "trustedzone": runner.trustedZoneImage,
        "client_challenge": challenge,
        "challenge_cid": cids["challenge"],
        "requester_public_key": runner.get_current_wallet_public_key(),
        "code": CODE,
        "code_cid": cids["code"],
        "input": INPUT,
        "input_cid": cids["input"],
        "image_metadata": image_md,
        "code_metadata": code_md,
        "input_metadata": input_md,
        "empty_input_metadata": empty_input_md,
        "enclave_view": official.sdk_parse_metadata(
            {"metadata1": image_md, "metadata2": code_md, "metadata3": input_md, "metadata4": ""}
        ),
    }

    # ---- metadata4: utils.normalize_node_address then Web3.to_checksum_address (create_do_request)
    def metadata4(value: str) -> str:
        address = utils.normalize_node_address(value)
        return Web3.to_checksum_address(address) if address else ""

    nodes = [
        "",
        "   ",
        "0x" + "0" * 40,
        "0x8626f6940e2eb28930efb4cef49b2d1f2c9c1199",
        Account.from_key(ETH_PRIVATE_KEY).address,
    ]
    vectors["node_address"] = {
        "producer": "utils.normalize_node_address + Web3.to_checksum_address (EthernityCloudRunner.create_do_request)",
        "cases": [{"input": n, "metadata4": metadata4(n)} for n in nodes],
    }

    # ---- results sealed by the enclave side for the requester: SDK etny_crypto.encrypt_nacl
    requester_pub = official.runner_public_key(ETH_PRIVATE_KEY)
    tasks = official_task_results()
    sealed_results = []
    for task in tasks:
        code, plaintext = task["task"]
        blob = sdk.encrypt_nacl(requester_pub, plaintext.encode("utf-8"))
        opened = official.runner_open_result(blob, ETH_PRIVATE_KEY)
        assert opened == {"success": True, "data": plaintext}, opened
        sealed_results.append(
            {
                "name": task["name"],
                "task_code": code,
                "plaintext": plaintext,
                "blob_hex": blob,
                "producer": "SDK etny_exec.execute_task_v3 -> etny_crypto.encrypt_nacl",
            }
        )
    for name, text in (("runner_sealer", "sealed by the runner's encrypt_nacl"), ("empty", "")):
        blob = rcrypto.encrypt_nacl(requester_pub, text.encode())
        assert official.runner_open_result(blob, ETH_PRIVATE_KEY)["data"] == text
        sealed_results.append(
            {
                "name": name,
                "task_code": 0,
                "plaintext": text,
                "blob_hex": blob,
                "producer": "runner crypto.encrypt_nacl",
            }
        )
    vectors["sealed_results"] = {
        "eth_private_key": ETH_PRIVATE_KEY,
        "requester_public_key": requester_pub,
        "cases": sealed_results,
    }

    # ---- result envelopes: state_cache.parse_result_envelope
    raws = [r["plaintext"] for r in sealed_results] + ["legacy plain result", '{"not": "an envelope"}', "{broken"]
    vectors["envelopes"] = {
        "producer": "ethernity_cloud_runner_py.state_cache.parse_result_envelope",
        "cases": [{"raw": raw, **official._jsonable(parse_result_envelope(raw))} for raw in raws],
    }

    # ---- on-chain result strings, verified by the runner's get_result_from_order
    by_name = {r["name"]: r for r in sealed_results}
    nets = {
        "bloxberg": ("BLOXBERG", "TESTNET"),
        "amoy": ("POLYGON", "AMOY"),
    }

    def config(net: str) -> Any:
        network, network_type = nets[net]
        return getattr(getattr(enums.ECNetwork, network), network_type)

    specs = [
        # defaults: order 7, the tx for that order, the network's contract and chain id, the right signer, the
        # sealed result's own task code and checksum, tx hex without 0x, no extra result fields
        dict(name="success_text", net="bloxberg", result="text", expect="ok"),
        dict(name="success_json_amoy", net="amoy", result="json", order=4242, prefix="0x", expect="ok"),
        dict(name="success_base64_pre_eip155", net="bloxberg", result="base64", chain=None, expect="ok"),
        dict(
            name="success_expressions_esr_fields", net="bloxberg", result="expressions", extra=":esr:1:2", expect="ok"
        ),
        dict(name="task_error_key_error", net="bloxberg", result="key_error", code=2, expect="ok"),
        dict(name="operator_fault_37", net="bloxberg", result="text", code=37, expect="operator_fault"),
        dict(name="wrong_order", net="bloxberg", result="text", tx_order=8, expect="binding"),
        dict(name="wrong_contract", net="bloxberg", result="text", to="0x" + "ab" * 20, expect="binding"),
        dict(name="wrong_chain", net="bloxberg", result="text", chain=137, expect="binding"),
        dict(name="wrong_signer", net="bloxberg", result="text", signer_client="ffffffffffffffffffff", expect="signer"),
        dict(name="checksum_mismatch", net="bloxberg", result="text", checksum_of="tampered", expect="checksum"),
    ]
    order_results = []
    for spec in specs:
        cfg = config(spec["net"])
        order_id = spec.get("order", 7)
        sealed = by_name[spec["result"]]
        client = pairs[0][0]
        enclave = "k3j5h7g9f1d2s4a6p8o0"
        checksum = rcrypto.sha256(spec.get("checksum_of", sealed["plaintext"]), True)
        code = spec.get("code", sealed["task_code"])
        result_string = f"v3:{code}:{checksum}:{enclave}{spec.get('extra', '')}"
        key = official.runner_wallet(spec.get("signer_client", client), enclave)["private_key"]
        tx_hex = sign_result(
            spec.get("tx_order", order_id),
            result_string,
            key,
            spec.get("to", cfg.PROTOCOL_ADDRESS),
            spec.get("chain", cfg.CHAIN_ID),
        )
        result_cid = ipfs.unixfs_cid(sealed["blob_hex"].encode())
        entry = {
            "name": spec["name"],
            "expect": spec["expect"],
            "network": nets[spec["net"]][0],
            "network_type": nets[spec["net"]][1],
            "protocol_address": cfg.PROTOCOL_ADDRESS,
            "chain_id": cfg.CHAIN_ID,
            "order_id": order_id,
            "client_challenge": client,
            "enclave_challenge": enclave,
            "task_code": code,
            "plaintext": sealed["plaintext"],
            "blob_hex": sealed["blob_hex"],
            "result_cid": result_cid,
            "result_string": result_string,
            "order_result": f"v3:{spec.get('prefix', '')}{tx_hex}:{result_cid}",
            "eth_private_key": ETH_PRIVATE_KEY,
        }
        entry["official"] = official.runner_verify_order_result(entry)
        assert entry["official"]["ok"] == (spec["expect"] == "ok"), (spec["name"], entry["official"])
        order_results.append(entry)
    # what a node records when the enclave timed out (build_result_format_v3("[WARN]", "Task execution timed out"))
    timeout_entry = {
        "name": "node_timeout_marker",
        "expect": "parse",
        "network": "BLOXBERG",
        "network_type": "TESTNET",
        "protocol_address": config("bloxberg").PROTOCOL_ADDRESS,
        "chain_id": config("bloxberg").CHAIN_ID,
        "order_id": 7,
        "client_challenge": pairs[0][0],
        "order_result": "v3:Task execution timed out:[WARN]",
        "blob_hex": "",
        "eth_private_key": ETH_PRIVATE_KEY,
    }
    timeout_entry["official"] = official.runner_verify_order_result(timeout_entry)
    assert not timeout_entry["official"]["ok"]
    order_results.append(timeout_entry)
    vectors["order_results"] = {
        "producer": "EthernityCloudRunner.get_result_from_order (parse_order_result, parse_transaction_bytes, "
        "_result_binding_error, OPERATOR_FAULT_CODES, generate_wallet, decrypt_nacl, sha256, _apply_envelope); "
        "tx signed with eth-account using the runner's key derivation",
        "cases": order_results,
    }

    # ---- task code names: enums.task_status_name / OPERATOR_FAULT_CODES
    vectors["task_codes"] = {
        "producer": "ethernity_cloud_runner_py.enums.task_status_name / OPERATOR_FAULT_CODES",
        "names": {str(c): enums.task_status_name(c) for c in range(46)},
        "operator_fault_codes": sorted(enums.OPERATOR_FAULT_CODES),
    }
    return vectors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(HERE / "vectors.json"))
    parser.add_argument("--new-enclave-key", action="store_true", help="do not reuse the stored enclave key")
    args = parser.parse_args()
    out = Path(args.out)
    existing = None if args.new_enclave_key or not out.exists() else json.loads(out.read_text())
    os.environ.setdefault("ETHERNITY_CLOUD_HELD_DIR", tempfile.mkdtemp(prefix="etny-held-"))
    vectors = build(existing)
    out.write_text(json.dumps(vectors, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
