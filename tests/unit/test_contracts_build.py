"""The committed contract build is what the committed Solidity sources compile to."""

from __future__ import annotations

import json

import pytest

from airflow_provider_ethernity.devnet import compile as devnet_compile
from airflow_provider_ethernity.devnet.tools import ToolNotFoundError, find_solcjs
from airflow_provider_ethernity.protocol.abi import IMAGE_REGISTRY, PROTOCOL, load_abi


def _signatures(abi: list[dict]) -> set[str]:
    def kind(entry: dict) -> str:
        return entry.get("type", "function")

    return {
        f"{kind(e)} {e.get('name', '')}({','.join(i['type'] for i in e.get('inputs', []))})"
        f"->({','.join(o['type'] for o in e.get('outputs', []))})"
        for e in abi
        if kind(e) in ("function", "event")
    }


def test_fresh_compile_matches_committed_build(require_npm_tools: None) -> None:
    built = devnet_compile.compile_contracts()
    for name, data in built.items():
        assert devnet_compile.load_build(name) == data, (
            f"{name}: run python -m airflow_provider_ethernity.devnet.compile"
        )


# The functions and events the requester (the official runner and this provider) and the node use.
USED_PROTOCOL = {
    "_addDORequest", "_addDPRequest", "_approveOrder", "_cancelDORequest", "_placeOrder", "_addResultToOrder",
    "_getDORequest", "_getDORequestMetadata", "_getDPRequestMetadata", "_getOrder", "_getOrdersCount",
    "_getResultFromOrder", "_getMyDPRequests", "_getMyDOOrders", "_getMetadataCountForDPRequest",
    "_getMetadataValueForDPRequest", "_addMetadataToRequest", "_getMetadataCountForRequest",
    "_getMetadataValueForRequest", "_getDORequestsCount", "_getDPRequestsCount",
    "_addDORequestEV", "_orderPlacedEV", "_orderClosedEV", "_orderApprovedEV", "_placeOrderEV",
}  # fmt: skip


def test_devnet_protocol_speaks_the_official_abi() -> None:
    official = {s for s in _signatures(load_abi(PROTOCOL)) if s.split(" ")[1].split("(")[0] in USED_PROTOCOL}
    ours = _signatures(devnet_compile.load_build("EthernityProtocol")["abi"])
    assert len(official) == len(USED_PROTOCOL)
    assert official <= ours, sorted(official - ours)


def test_devnet_registry_speaks_the_official_abi() -> None:
    used = {"getLatestTrustedZoneImageCertPublicKey", "getLatestImageVersionPublicKey", "addImage", "ImageAdded"}
    official = {s for s in _signatures(load_abi(IMAGE_REGISTRY)) if s.split(" ")[1].split("(")[0] in used}
    assert len(official) == len(used)
    assert official <= _signatures(devnet_compile.load_build("ImageRegistry")["abi"])


def test_build_files_are_complete() -> None:
    for name in devnet_compile.CONTRACTS:
        data = json.loads((devnet_compile.BUILD_DIR / f"{name}.json").read_text())
        assert data["bytecode"].startswith("0x") and len(data["bytecode"]) > 1000
        assert data["abi"]


@pytest.fixture
def require_npm_tools() -> None:
    try:
        find_solcjs()
    except ToolNotFoundError as exc:
        import os

        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
