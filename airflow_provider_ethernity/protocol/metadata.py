"""The v3 metadata strings of a DO request (metadata1..4), written and read exactly as the protocol does.

* image (metadata1): ``v3:<image_cid>:<trustedzone>:<compose_cid>:<challenge_cid>:<requester_x25519_pubkey>``
* code (metadata2): ``v3:<code_cid>:<sha256 hex of the code>``
* input (metadata3): ``v3:<input_cid>:<sha256 hex>`` or ``v3::<sha256 of empty>`` without input
* node (metadata4): the checksummed address of the pinned node, or empty for any node
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from airflow_provider_ethernity.protocol.crypto import ZERO_CHECKSUM, sha256_hex
from airflow_provider_ethernity.protocol.errors import ConfigurationError
from airflow_provider_ethernity.protocol.input_file import InputFile

VERSION = "v3"
CHALLENGE_LENGTH = 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def new_challenge() -> str:
    """A fresh client challenge: 20 lowercase hex characters, as the official runner makes them."""
    return secrets.token_hex(CHALLENGE_LENGTH // 2)


def derive_challenge(eth_private_key: str, salt: str) -> str:
    """The client challenge of a submission: HMAC-SHA256 of a public salt under the wallet key, 20 hex
    characters (the official runner's format).

    The challenge is the secret that makes the result's signer check meaningful (a node that knows it could
    sign a result without the enclave), so it never leaves the key holder: XCom and the task state hold only
    the salt, and whoever holds the key re-derives the challenge.
    """
    import hmac

    key = bytes.fromhex(eth_private_key.removeprefix("0x"))
    return hmac.new(key, b"ethernity-challenge:" + salt.encode(), "sha256").hexdigest()[:CHALLENGE_LENGTH]


def image_metadata(
    image_cid: str, trustedzone: str, compose_cid: str, challenge_cid: str, requester_public_key: str
) -> str:
    return f"{VERSION}:{image_cid}:{trustedzone}:{compose_cid}:{challenge_cid}:{requester_public_key}"


def artefact_metadata(cid: str, checksum: str) -> str:
    """Metadata of the code or the input dataset: the CID of the sealed bytes and the plain sha256."""
    if not _HEX64.fullmatch(checksum):
        raise ValueError(f"checksum {checksum!r} is not a sha256 hex digest")
    return f"{VERSION}:{cid}:{checksum}"


def code_metadata(code_cid: str, code: str) -> str:
    return artefact_metadata(code_cid, sha256_hex(code))


def input_metadata(input_cid: str | None, input_data: str | InputFile | None) -> str:
    if not input_data:
        return f"{VERSION}::{ZERO_CHECKSUM}"
    return artefact_metadata(input_cid or "", sha256_hex(input_data))


def normalize_node_address(node_address: str | None) -> str:
    """metadata4: "" for any node (the zero address too), else the checksummed address."""
    address = (node_address or "").strip()
    if not address:
        return ""
    if not _ADDRESS.fullmatch(address):
        raise ConfigurationError(f"node_address={address!r} is not a 0x-prefixed 20-byte hex address")
    if int(address, 16) == 0:
        return ""
    from eth_utils import to_checksum_address

    return to_checksum_address(address)


@dataclass(frozen=True)
class ImageMetadata:
    version: str
    image_cid: str
    trustedzone: str
    compose_cid: str
    challenge_cid: str
    requester_public_key: str


@dataclass(frozen=True)
class ArtefactMetadata:
    version: str
    cid: str
    checksum: str


def parse_image_metadata(text: str) -> ImageMetadata:
    parts = text.split(":")
    if len(parts) != 6 or not parts[0].startswith(VERSION):
        raise ValueError(f"not a v3 image metadata string: {text!r}")
    return ImageMetadata(*parts)


def parse_artefact_metadata(text: str) -> ArtefactMetadata:
    parts = text.split(":")
    if len(parts) != 3 or not parts[0].startswith(VERSION):
        raise ValueError(f"not a v3 artefact metadata string: {text!r}")
    return ArtefactMetadata(*parts)
