"""Deploy the devnet contracts from their committed build, register the trustedzone, fund wallets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from web3 import Web3

from airflow_provider_ethernity.devnet.compile import load_build


@dataclass(frozen=True)
class DeployedContracts:
    protocol: str
    token: str
    image_registry: str


def send(w3: Web3, key: str, call: Any = None, *, to: str | None = None, value: int = 0, data: str = "0x") -> Any:
    """Sign with ``key``, send, wait for the receipt and fail loudly on a revert."""
    account = Account.from_key(key)
    tx: Any
    if call is not None:
        tx = call.build_transaction({"from": account.address, "nonce": w3.eth.get_transaction_count(account.address)})
    else:
        tx = {
            "from": account.address,
            "to": to,
            "value": value,
            "data": data,
            "nonce": w3.eth.get_transaction_count(account.address),
            "chainId": w3.eth.chain_id,
            "gasPrice": w3.eth.gas_price,
        }
        tx["gas"] = w3.eth.estimate_gas(tx)
    signed = account.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction), timeout=60)
    if receipt["status"] != 1:
        raise RuntimeError(f"devnet transaction reverted: {receipt['transactionHash'].hex()}")
    return receipt


def deploy(w3: Web3, key: str, name: str, *args: Any) -> str:
    build = load_build(name)
    factory = w3.eth.contract(abi=build["abi"], bytecode=build["bytecode"])
    receipt = send(w3, key, factory.constructor(*args))
    return str(receipt["contractAddress"])


def contract(w3: Web3, name: str, address: str) -> Any:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_build(name)["abi"])


def deploy_contracts(w3: Web3, key: str, *, token_is_protocol: bool = False) -> DeployedContracts:
    """The protocol, its token and the image registry. ``token_is_protocol`` (the bloxberg model): one
    ``EthernityProtocolToken`` contract is both, so ``token == protocol`` and no allowance is ever needed."""
    if token_is_protocol:
        protocol = deploy(w3, key, "EthernityProtocolToken")
        registry = deploy(w3, key, "ImageRegistry")
        return DeployedContracts(protocol=protocol, token=protocol, image_registry=registry)
    token = deploy(w3, key, "EthernityToken")
    protocol = deploy(w3, key, "EthernityProtocol", token)
    registry = deploy(w3, key, "ImageRegistry")
    return DeployedContracts(protocol=protocol, token=token, image_registry=registry)


def register_image(
    w3: Web3,
    registry: str,
    key: str,
    name: str,
    version: str,
    ipfs_hash: str,
    cert_pem: str,
    compose_hash: str,
) -> None:
    """Publish an image (a trustedzone, or a dApp image run in one) with its enclave certificate and compose file:
    what the registry's v3 lookups return."""
    send(
        w3,
        key,
        contract(w3, "ImageRegistry", registry).functions.addImage(ipfs_hash, cert_pem, version, name, compose_hash),
    )


def fund(w3: Web3, token: str, key: str, to: str, eth_wei: int, tokens: int) -> None:
    """Give ``to`` gas money and ``tokens`` whole devnet tokens."""
    to = Web3.to_checksum_address(to)
    if eth_wei:
        send(w3, key, to=to, value=eth_wei)
    if tokens:
        send(w3, key, contract(w3, "EthernityToken", token).functions.mint(to, tokens * 10**18, "devnet"))
