"""The protocol's cryptography, byte-compatible with the official runner and trustedzone enclave.

Requester side:
  * :func:`seal_for_enclave` seals an artefact (challenge, code, input) for the enclave certificate
    (ECDH on secp384r1 with an ephemeral key, AES-256-GCM keyed with sha256 of the decimal strings of the
    shared point's coordinates; wire format: base64 of a JSON object with hex fields).
  * :func:`open_result` opens a result the enclave sealed with NaCl Box for the requester's X25519 key,
    which is derived from the wallet private key used as a seed. The plaintext is Ascii85 text.
  * :func:`challenge_wallet_address` is the wallet that must have signed the result transaction.

Enclave side (used by the devnet's node agent and the golden tests): :func:`open_sealed`, :func:`seal_result`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from base64 import a85decode, a85encode
from typing import TYPE_CHECKING

from airflow_provider_ethernity.protocol.errors import ConfigurationError, ResultDecryptionError

if TYPE_CHECKING:  # pycryptodome and PyNaCl load on first use: DAG files import this module
    from Crypto.PublicKey import ECC
    from nacl.public import PrivateKey

CURVE = "P-384"  # secp384r1
#: sha256 of the empty string: the input checksum of a task without an input dataset.
ZERO_CHECKSUM = hashlib.sha256(b"").hexdigest()


def sha256_hex(data: str | bytes) -> str:
    """Hex sha256 of ``data`` (strings are hashed as UTF-8), as the protocol's checksums are written."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def _strip_0x(value: str) -> str:
    return value[2:] if value[:2].lower() == "0x" else value


def _aes_key(point: ECC.EccPoint) -> bytes:
    return hashlib.sha256((str(int(point.x)) + str(int(point.y))).encode()).digest()


def load_enclave_public_key(certificate_pem: str) -> ECC.EccKey:
    """The enclave's secp384r1 public key from its X.509 certificate (or a bare public key PEM)."""
    from Crypto.PublicKey import ECC

    try:
        key = ECC.import_key(certificate_pem)
    except (ValueError, IndexError, TypeError) as exc:
        raise ConfigurationError(f"enclave certificate is not a valid EC certificate: {exc}") from None
    if key.curve not in ("NIST P-384", "p384", "P-384", "secp384r1"):
        raise ConfigurationError(f"enclave certificate uses curve {key.curve}, expected secp384r1")
    return key


def seal_for_enclave(data: bytes, certificate_pem: str | ECC.EccKey) -> bytes:
    """Seal ``data`` for the enclave holding the certificate's key; returns the base64 ASCII bytes to upload."""
    from Crypto.Cipher import AES
    from Crypto.PublicKey import ECC

    enclave_key = (
        certificate_pem if isinstance(certificate_pem, ECC.EccKey) else load_enclave_public_key(certificate_pem)
    )
    ephemeral = ECC.generate(curve=CURVE)
    shared = enclave_key.pointQ * int(ephemeral.d)
    cipher = AES.new(_aes_key(shared), AES.MODE_GCM)
    ciphertext, tag = cipher.encrypt_and_digest(data)
    envelope = {
        "ciphertext": binascii.hexlify(ciphertext).decode(),
        "nonce": binascii.hexlify(cipher.nonce).decode(),
        "authTag": binascii.hexlify(tag).decode(),
        "x": hex(int(ephemeral.pointQ.x)),
        "y": hex(int(ephemeral.pointQ.y)),
    }
    return base64.b64encode(json.dumps(envelope).encode("utf-8"))


def open_sealed(sealed: bytes | str, private_key_pem: str | bytes) -> bytes:
    """Enclave side of :func:`seal_for_enclave`: open a sealed artefact with the enclave's private key."""
    from Crypto.Cipher import AES
    from Crypto.PublicKey import ECC

    key = ECC.import_key(private_key_pem)
    envelope = json.loads(base64.b64decode(sealed).decode("utf-8"))
    ephemeral_point = ECC.EccPoint(int(envelope["x"], 16), int(envelope["y"], 16), curve=CURVE)
    shared = ephemeral_point * int(key.d)
    cipher = AES.new(_aes_key(shared), AES.MODE_GCM, nonce=bytes.fromhex(envelope["nonce"]))
    return cipher.decrypt_and_verify(bytes.fromhex(envelope["ciphertext"]), bytes.fromhex(envelope["authTag"]))


def _requester_box_key(eth_private_key: str) -> PrivateKey:
    from nacl.public import PrivateKey

    try:
        seed = bytes.fromhex(_strip_0x(eth_private_key))
        return PrivateKey.from_seed(seed)
    except (ValueError, TypeError):
        raise ConfigurationError("the wallet private key is not 32 bytes of hex") from None


def requester_public_key_hex(eth_private_key: str) -> str:
    """The requester's X25519 public key (``0x`` + 64 hex) that the enclave seals the result for."""
    return "0x" + bytes(_requester_box_key(eth_private_key).public_key).hex()


def open_result(blob_hex: str | bytes, eth_private_key: str) -> str:
    """Decrypt a result blob (hex of ephemeral public key || NaCl box) and decode its Ascii85 plaintext."""
    from nacl.exceptions import CryptoError
    from nacl.public import Box, PublicKey

    try:
        text = blob_hex.decode("ascii") if isinstance(blob_hex, bytes) else blob_hex
        blob = bytes.fromhex(_strip_0x(text.strip()))
        box = Box(_requester_box_key(eth_private_key), PublicKey(blob[:32]))
        return a85decode(box.decrypt(blob[32:])).decode("utf-8")
    except (CryptoError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ResultDecryptionError(
            f"the result cannot be decrypted with this wallet's key ({type(exc).__name__})"
        ) from None


def seal_result(plaintext: str, requester_public_key: str) -> str:
    """Enclave side of :func:`open_result`: seal a result for the requester; returns the hex blob."""
    from nacl.public import Box, PrivateKey, PublicKey

    ephemeral = PrivateKey.generate()
    box = Box(ephemeral, PublicKey(bytes.fromhex(_strip_0x(requester_public_key))))
    return (bytes(ephemeral.public_key) + box.encrypt(a85encode(plaintext.encode("utf-8")))).hex()


def challenge_wallet_key(client_challenge: str, enclave_challenge: str) -> str:
    """The private key of the wallet that signs a result: sha256(sha256(client + enclave challenge)) in hex."""
    return sha256_hex(sha256_hex(client_challenge + enclave_challenge))


def challenge_wallet_address(client_challenge: str, enclave_challenge: str) -> str:
    from eth_account import Account

    return Account.from_key(challenge_wallet_key(client_challenge, enclave_challenge)).address
