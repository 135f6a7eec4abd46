"""Golden vectors: byte compatibility of ``airflow_provider_ethernity.protocol`` with the official packages.

(a) official -> ours (always runs): ``tests/golden/vectors.json`` holds what ``ethernity-cloud-runner-py`` 0.5.26
    and ``ethernity-cloud-sdk-py`` 0.9.23 produced (tests/golden/make_golden.py); our functions must reproduce
    the deterministic outputs and open/verify the sealed and signed ones.
(b) ours -> official (needs the reference venv): our sealed artefacts, sealed results, metadata strings and
    signed result transactions are opened/verified by the official code (tests/golden/official_open.py).
    Without the venv the tests skip locally and FAIL when ``CI`` is set; create it with
    ``tests/golden/setup_ref_venv.sh``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ethernity.protocol.crypto import (
    ZERO_CHECKSUM,
    challenge_wallet_address,
    challenge_wallet_key,
    load_enclave_public_key,
    open_result,
    open_sealed,
    requester_public_key_hex,
    seal_for_enclave,
    seal_result,
    sha256_hex,
)
from airflow_provider_ethernity.protocol.errors import ResultVerificationError
from airflow_provider_ethernity.protocol.metadata import (
    code_metadata,
    image_metadata,
    input_metadata,
    new_challenge,
    normalize_node_address,
    parse_artefact_metadata,
    parse_image_metadata,
)
from airflow_provider_ethernity.protocol.results import (
    TaskResult,
    build_task_result,
    decode_envelope,
    decode_result_transaction,
    parse_order_result,
    sign_result_transaction,
    verify_binding,
    verify_checksum,
    verify_signer,
)
from airflow_provider_ethernity.protocol.task_codes import OPERATOR_FAULT_CODES, is_operator_fault, task_code_name

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
VECTORS: dict[str, Any] = json.loads((GOLDEN / "vectors.json").read_text(encoding="utf-8"))
KEYS = VECTORS["keys"]
ETH_KEY = KEYS["eth_private_key"]


def _ids(cases: list[dict[str, Any]], key: str = "name") -> list[str]:
    return [str(case[key]) for case in cases]


# =============================================================================================================
# (a) official -> ours
# =============================================================================================================
def test_vectors_come_from_the_pinned_official_versions():
    versions = VECTORS["meta"]["versions"]
    assert versions["ethernity-cloud-runner-py"] == "0.5.26"
    assert versions["ethernity-cloud-sdk-py"] == "0.9.23"


@pytest.mark.parametrize("case", VECTORS["sha256"]["cases"], ids=lambda c: repr(c["input"][:12]))
def test_sha256_hex_matches_runner(case):
    assert sha256_hex(case["input"]) == case["hex"]
    assert sha256_hex(case["input"].encode("utf-8")) == case["hex"]


def test_zero_checksum_matches_runner():
    assert VECTORS["sha256"]["zero_checksum"] == ZERO_CHECKSUM


def test_requester_public_key_matches_runner():
    vector = VECTORS["requester_public_key"]
    assert requester_public_key_hex(vector["eth_private_key"]) == vector["public_key"]
    assert requester_public_key_hex(vector["eth_private_key"][2:]) == vector["public_key"]


@pytest.mark.parametrize("case", VECTORS["challenge_wallet"]["cases"], ids=lambda c: c["client_challenge"])
def test_challenge_wallet_matches_runner(case):
    assert challenge_wallet_key(case["client_challenge"], case["enclave_challenge"]) == case["private_key"]
    assert challenge_wallet_address(case["client_challenge"], case["enclave_challenge"]) == case["address"]


def test_enclave_certificate_is_accepted():
    key = load_enclave_public_key(VECTORS["sealed_for_enclave"]["certificate_pem"])
    assert not key.has_private()


@pytest.mark.parametrize(
    "case", VECTORS["sealed_for_enclave"]["cases"], ids=_ids(VECTORS["sealed_for_enclave"]["cases"])
)
def test_open_sealed_opens_official_blobs(case):
    plaintext = open_sealed(case["sealed"], KEYS["enclave_private_key_pem"])
    assert plaintext == bytes.fromhex(case["plaintext_hex"])
    assert open_sealed(case["sealed"].encode("ascii"), KEYS["enclave_private_key_pem"].encode()) == plaintext


def test_our_sealed_envelope_has_the_official_shape():
    """Same JSON keys, hex encodings and sizes (16-byte nonce and tag) as the runner's envelope."""
    official = json.loads(base64.b64decode(VECTORS["sealed_for_enclave"]["cases"][0]["sealed"]))
    ours = json.loads(base64.b64decode(seal_for_enclave(b"x", VECTORS["sealed_for_enclave"]["certificate_pem"])))
    assert list(ours) == list(official)
    for field in ("nonce", "authTag"):
        assert len(bytes.fromhex(ours[field])) == len(bytes.fromhex(official[field])) == 16
    for field in ("x", "y"):
        assert ours[field].startswith("0x") and official[field].startswith("0x")


def test_metadata_builders_match_runner():
    m = VECTORS["metadata"]
    assert requester_public_key_hex(ETH_KEY) == m["requester_public_key"]
    ours = image_metadata(
        m["image_cid"], m["trustedzone"], m["compose_cid"], m["challenge_cid"], m["requester_public_key"]
    )
    assert ours == m["image_metadata"]
    assert code_metadata(m["code_cid"], m["code"]) == m["code_metadata"]
    assert input_metadata(m["input_cid"], m["input"]) == m["input_metadata"]
    assert input_metadata(None, None) == m["empty_input_metadata"]
    assert input_metadata("", "") == m["empty_input_metadata"]


def test_metadata_parsers_read_runner_strings_like_the_enclave():
    m = VECTORS["metadata"]
    enclave = m["enclave_view"]
    image = parse_image_metadata(m["image_metadata"])
    assert (image.image_cid, image.trustedzone, image.compose_cid) == (
        enclave["image_hash"],
        enclave["trustedzone_image_name"],
        enclave["docker_compose_hash"],
    )
    assert (image.challenge_cid, image.requester_public_key) == (enclave["challenge_hash"], enclave["public_key"])
    code = parse_artefact_metadata(m["code_metadata"])
    assert (code.cid, code.checksum) == (enclave["payload_ipfs_hash"], enclave["payload_checksum"])
    data = parse_artefact_metadata(m["input_metadata"])
    assert (data.cid, data.checksum) == (enclave["input_ipfs_hash"], enclave["input_checksum"])


def test_client_challenge_has_the_runner_shape():
    official = VECTORS["metadata"]["client_challenge"]
    ours = new_challenge()
    assert len(ours) == len(official) == 20
    assert set(ours) <= set("0123456789abcdef") and set(official) <= set("0123456789abcdef")


@pytest.mark.parametrize("case", VECTORS["node_address"]["cases"], ids=lambda c: repr(c["input"]))
def test_metadata4_matches_runner(case):
    assert normalize_node_address(case["input"]) == case["metadata4"]


@pytest.mark.parametrize("case", VECTORS["sealed_results"]["cases"], ids=_ids(VECTORS["sealed_results"]["cases"]))
def test_open_result_opens_official_results(case):
    assert requester_public_key_hex(ETH_KEY) == VECTORS["sealed_results"]["requester_public_key"]
    assert open_result(case["blob_hex"], ETH_KEY) == case["plaintext"]
    assert open_result(case["blob_hex"].encode("ascii"), ETH_KEY) == case["plaintext"]


def _official_view_of(value: Any) -> Any:
    return value["base64"] if isinstance(value, dict) and set(value) == {"base64"} else value


@pytest.mark.parametrize("case", VECTORS["envelopes"]["cases"], ids=lambda c: repr(c["raw"][:24]))
def test_envelope_decoding_matches_runner(case):
    kind, value, text = decode_envelope(case["raw"])
    assert kind == case["type"]
    assert text == case["legacy"]
    assert value == _official_view_of(case["data"])  # base64: we keep the text, the runner decodes to bytes


def _verify_like_the_client(case: dict[str, Any]) -> tuple[str, TaskResult | None, Any]:
    """Our verification, in the order EthernityClient.get_result runs it; returns (verdict, result, tx)."""
    order_id = case["order_id"]
    try:
        parsed = parse_order_result(case["order_result"])
        tx = decode_result_transaction(parsed.transaction_bytes)
    except ResultVerificationError:
        return "parse", None, None
    try:
        verify_binding(tx, order_id, case["protocol_address"], case["chain_id"])
    except ResultVerificationError:
        return "binding", None, tx
    if is_operator_fault(tx.task_code):
        return "operator_fault", None, tx
    try:
        verify_signer(tx, order_id, case["client_challenge"])
    except ResultVerificationError:
        return "signer", None, tx
    assert parsed.result_cid == case["result_cid"]
    plaintext = open_result(case["blob_hex"], case["eth_private_key"])
    try:
        verify_checksum(tx, order_id, plaintext)
    except ResultVerificationError:
        return "checksum", None, tx
    return "ok", build_task_result(tx, order_id, plaintext, parsed.result_cid), tx


@pytest.mark.parametrize("case", VECTORS["order_results"]["cases"], ids=_ids(VECTORS["order_results"]["cases"]))
def test_order_results_verify_like_the_runner(case):
    official = case["official"]
    verdict, result, tx = _verify_like_the_client(case)
    assert verdict == case["expect"]
    assert (verdict == "ok") == official["ok"], official.get("fault")
    if tx is not None:  # the decoded transaction equals the runner's parse_transaction_bytes
        otx = official["transaction"]
        assert tx.sender == otx["from"]
        assert tx.to == otx["to"]
        assert tx.chain_id == otx["chain_id"]
        assert tx.order_id == otx["order_id"]
        assert (tx.version, tx.task_code, tx.task_code_name) == (
            otx["version"],
            otx["task_code_int"],
            otx["task_code_string"],
        )
        assert (tx.checksum, tx.enclave_challenge) == (otx["checksum"], otx["enclave_challenge"])
    if result is None:
        assert official["fault"]
        return
    expected = official["result"]
    assert result.order_id == expected["order_id"]
    assert result.success is expected["success"]
    assert (result.task_code, result.task_code_name) == (expected["result_task_code_int"], expected["result_task_code"])
    assert result.result_cid == expected["result_hash"]
    assert result.text == expected["value"]
    assert result.raw == expected["result_raw"]
    assert result.result_type == expected["result_type"]
    assert result.value == _official_view_of(expected["result_data"])


def test_task_code_names_match_runner():
    for code, name in VECTORS["task_codes"]["names"].items():
        assert task_code_name(int(code)) == name
    assert sorted(OPERATOR_FAULT_CODES) == VECTORS["task_codes"]["operator_fault_codes"]


# =============================================================================================================
# (b) ours -> official
# =============================================================================================================
ANVIL_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # public anvil test key


def _ref_python() -> Path | None:
    """``$REF_VENV`` when set (relative to the repository root), else ``.venv-ref`` at the repository root."""
    venv = ROOT / os.environ.get("REF_VENV", ".venv-ref")
    python = venv / "bin" / "python"
    return python if python.exists() else None


@pytest.fixture(scope="module")
def ref_python() -> Path:
    python = _ref_python()
    if python is None:
        message = (
            "the reference venv with the official packages is missing ($REF_VENV or .venv-ref): "
            "run tests/golden/setup_ref_venv.sh"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python


def _envelope(kind: str, data: Any) -> str:
    return json.dumps({"ecld": 1, "type": kind, "data": data, "esr": None})


@pytest.fixture(scope="module")
def exchange(ref_python) -> tuple[dict[str, Any], dict[str, Any]]:
    """Our artefacts, and what the official code made of them (one run of official_open.py)."""
    cert = KEYS["enclave_certificate_pem"]
    pem = KEYS["enclave_private_key_pem"]
    code = "def f(rows):\n    return sum(rows)\n\n___etny_result___(f([1, 2, 3]))  # ✓ ünïcode\n"
    data = '{"rows": [1, 2, 3], "city": "Zürich"}'
    plaintexts = [new_challenge().encode(), code.encode(), data.encode(), bytes(range(256)) * 40]
    challenge = plaintexts[0].decode()
    results = [
        _envelope("text", "hello from our enclave ✓"),
        _envelope("json", {"a": [1, 2.5, None], "b": "ü"}),
        "plain legacy result",
        "",
    ]
    bloxberg = ("BLOXBERG", "TESTNET", "0x02882F03097fE8cD31afbdFbB5D72a498B41112c", 8995)
    amoy = ("POLYGON", "AMOY", "0x1579b37C5a69ae02dDd23263A2b1318DE66a27C3", 80002)
    orders = []
    for name, net, order_id, tx_order, code_, plaintext, expect_ok in (
        ("success", bloxberg, 11, 11, 0, results[0], True),
        ("success_json_amoy", amoy, 12, 12, 0, results[1], True),
        ("task_error", bloxberg, 13, 13, 4, "BASE_EXCEPTION: ValueError('boom')", True),
        ("wrong_order", bloxberg, 14, 15, 0, results[0], False),
    ):
        network, network_type, protocol, chain_id = net
        enclave_challenge = new_challenge()
        blob = seal_result(plaintext, requester_public_key_hex(ETH_KEY))
        tx_hex = sign_result_transaction(
            order_id=tx_order,
            task_code=code_,
            checksum=sha256_hex(plaintext),
            client_challenge=challenge,
            enclave_challenge=enclave_challenge,
            protocol_address=protocol,
            chain_id=chain_id,
        )
        orders.append(
            {
                "name": name,
                "expect_ok": expect_ok,
                "plaintext": plaintext,
                "task_code": code_,
                "network": network,
                "network_type": network_type,
                "order_id": order_id,
                "client_challenge": challenge,
                "order_result": f"v3:{tx_hex}:bafkreiour{name.replace('_', '')}",
                "blob_hex": blob,
                "eth_private_key": ETH_KEY,
            }
        )
    m = VECTORS["metadata"]
    metadata = [
        {
            "metadata1": image_metadata(
                "QmImage", "etny-pynithy-testnet", "QmCompose", "bafkreichallenge", requester_public_key_hex(ETH_KEY)
            ),
            "metadata2": code_metadata("bafkreicode", code),
            "metadata3": input_metadata("bafkreiinput", data),
            "metadata4": normalize_node_address("0x8626f6940e2eb28930efb4cef49b2d1f2c9c1199"),
        },
        {
            "metadata1": m["image_metadata"],
            "metadata2": code_metadata("bafkreicode", code),
            "metadata3": input_metadata(None, None),
            "metadata4": normalize_node_address(None),
        },
    ]
    wallets = [{"client_challenge": new_challenge(), "enclave_challenge": new_challenge()} for _ in range(3)]
    request = {
        "sealed": [
            {"sealed": seal_for_enclave(p, cert).decode("ascii"), "private_key_pem": pem, "plaintext_hex": p.hex()}
            for p in plaintexts
        ],
        "results": [
            {"blob_hex": seal_result(p, requester_public_key_hex(ETH_KEY)), "eth_private_key": ETH_KEY, "plaintext": p}
            for p in results
        ],
        "metadata": metadata,
        "order_results": orders,
        "wallets": wallets,
        "public_keys": [ETH_KEY, ANVIL_KEY_0],
    }
    proc = subprocess.run(
        [str(ref_python), str(GOLDEN / "official_open.py")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return request, json.loads(proc.stdout)


def test_official_opener_is_the_pinned_version(exchange):
    _, answer = exchange
    assert answer["versions"]["ethernity-cloud-runner-py"] == "0.5.26"
    assert answer["versions"]["ethernity-cloud-sdk-py"] == "0.9.23"


def test_enclave_opens_our_sealed_artefacts(exchange):
    request, answer = exchange
    for ours, official in zip(request["sealed"], answer["sealed"], strict=True):
        for opener in ("sdk", "runner"):  # the securelock's etny_crypto.decrypt and the runner's crypto.decrypt
            assert official[opener] == {"ok": True, "plaintext_hex": ours["plaintext_hex"]}, opener


def test_runner_opens_our_sealed_results(exchange):
    request, answer = exchange
    for ours, official in zip(request["results"], answer["results"], strict=True):
        assert official == {"success": True, "data": ours["plaintext"]}


def test_enclave_parses_our_metadata(exchange):
    request, answer = exchange
    for ours, official in zip(request["metadata"], answer["metadata"], strict=True):
        assert official["ok"], official
        image = parse_image_metadata(ours["metadata1"])
        assert official["image_hash"] == image.image_cid
        assert official["trustedzone_image_name"] == image.trustedzone
        assert official["docker_compose_hash"] == image.compose_cid
        assert official["challenge_hash"] == image.challenge_cid
        assert official["public_key"] == image.requester_public_key == requester_public_key_hex(ETH_KEY)
        code = parse_artefact_metadata(ours["metadata2"])
        assert (official["payload_version"], official["payload_ipfs_hash"], official["payload_checksum"]) == (
            "v3",
            code.cid,
            code.checksum,
        )
        data = parse_artefact_metadata(ours["metadata3"])
        assert (official["input_version"], official["input_ipfs_hash"]) == ("v3", data.cid)
        assert official["input_checksum"] == data.checksum  # the ZERO_CHECKSUM too: the enclave checks it
        assert official["node_address"] == ours["metadata4"]


def test_runner_verifies_our_signed_results(exchange):
    request, answer = exchange
    for ours, official in zip(request["order_results"], answer["order_results"], strict=True):
        assert official["ok"] is ours["expect_ok"], (ours["name"], official.get("fault"), official.get("error"))
        if not ours["expect_ok"]:
            assert "is for order" in official["fault"]
            continue
        result = official["result"]
        assert result["order_id"] == ours["order_id"]
        assert result["result_task_code_int"] == ours["task_code"]
        assert result["success"] is (ours["task_code"] == 0)
        assert result["result_raw"] == ours["plaintext"]
        assert official["transaction"]["chain_id"] == official["chain_id"]
        assert official["transaction"]["to"] == official["protocol_address"]


def test_runner_derives_our_challenge_wallets(exchange):
    request, answer = exchange
    for ours, official in zip(request["wallets"], answer["wallets"], strict=True):
        assert official["private_key"] == challenge_wallet_key(ours["client_challenge"], ours["enclave_challenge"])
        assert official["address"] == challenge_wallet_address(ours["client_challenge"], ours["enclave_challenge"])


def test_runner_derives_our_requester_public_keys(exchange):
    request, answer = exchange
    assert answer["public_keys"] == [requester_public_key_hex(key) for key in request["public_keys"]]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
