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
import io
import json
from base64 import a85decode, a85encode
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from airflow_provider_ethernity.protocol.errors import ConfigurationError, ResultDecryptionError
from airflow_provider_ethernity.protocol.input_file import InputFile

if TYPE_CHECKING:  # pycryptodome and PyNaCl load on first use: DAG files import this module
    from Crypto.PublicKey import ECC
    from nacl.public import PrivateKey

CURVE = "P-384"  # secp384r1
#: sha256 of the empty string: the input checksum of a task without an input dataset.
ZERO_CHECKSUM = hashlib.sha256(b"").hexdigest()


#: Piece size for streamed sealing, hashing and decoding: memory stays near the payload, not a multiple.
STREAM_CHUNK = 1 << 20
#: Piece size for Ascii85 decoding (the stdlib decoder holds ~10x its input in small objects while it runs).
A85_CHUNK = 64 << 10


def _utf8_pieces(data: str | bytes | bytearray | memoryview | InputFile) -> Iterator[bytes | memoryview]:
    """``data`` as UTF-8 in pieces of about STREAM_CHUNK (a large string is never encoded whole, a staged
    input file never read whole)."""
    if isinstance(data, InputFile):
        yield from data.pieces()
    elif isinstance(data, str):
        for start in range(0, len(data), STREAM_CHUNK):
            yield data[start : start + STREAM_CHUNK].encode("utf-8")
    else:
        view = memoryview(data)
        for start in range(0, len(view), STREAM_CHUNK):
            yield view[start : start + STREAM_CHUNK]


def sha256_hex(data: str | bytes | bytearray | InputFile) -> str:
    """Hex sha256 of ``data`` (strings are hashed as UTF-8), as the protocol's checksums are written."""
    if isinstance(data, InputFile):
        return data.sha256  # hashed while it was staged
    digest = hashlib.sha256()
    for piece in _utf8_pieces(data):
        digest.update(piece)
    return digest.hexdigest()


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


class _Base64Writer:
    """Base64-encode a byte stream into ``out`` piece by piece (the same bytes as one ``b64encode``)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.carry = b""
        self.written = 0

    def write(self, data: bytes) -> None:
        data = self.carry + data if self.carry else data
        whole = len(data) - len(data) % 3
        if whole:
            encoded = base64.b64encode(data[:whole])
            self.out.write(encoded)
            self.written += len(encoded)
        self.carry = data[whole:]

    def close(self) -> int:
        if self.carry:
            encoded = base64.b64encode(self.carry)
            self.out.write(encoded)
            self.written += len(encoded)
            self.carry = b""
        return self.written


def seal_for_enclave_into(data: str | bytes | InputFile, certificate_pem: str | ECC.EccKey, out: IO[bytes]) -> int:
    """Seal ``data`` (a string is sealed as UTF-8) for the enclave into ``out``; returns the bytes written.

    The output is byte for byte :func:`seal_for_enclave`'s: base64 of the JSON envelope
    ``{"ciphertext": hex, "nonce": hex, "authTag": hex, "x": hex, "y": hex}``, produced in pieces so a
    large input never exists as hex, JSON or base64 in memory.
    """
    from Crypto.Cipher import AES
    from Crypto.PublicKey import ECC

    enclave_key = (
        certificate_pem if isinstance(certificate_pem, ECC.EccKey) else load_enclave_public_key(certificate_pem)
    )
    ephemeral = ECC.generate(curve=CURVE)
    shared = enclave_key.pointQ * int(ephemeral.d)
    cipher = AES.new(_aes_key(shared), AES.MODE_GCM)
    writer = _Base64Writer(out)
    writer.write(b'{"ciphertext": "')
    for piece in _utf8_pieces(data):
        writer.write(binascii.hexlify(cipher.encrypt(piece)))
    tag = cipher.digest()
    tail = {
        "nonce": binascii.hexlify(cipher.nonce).decode(),
        "authTag": binascii.hexlify(tag).decode(),
        "x": hex(int(ephemeral.pointQ.x)),
        "y": hex(int(ephemeral.pointQ.y)),
    }
    writer.write(b'"' + "".join(f', "{k}": "{v}"' for k, v in tail.items()).encode() + b"}")
    return writer.close()


def seal_for_enclave(data: bytes, certificate_pem: str | ECC.EccKey) -> bytes:
    """Seal ``data`` for the enclave holding the certificate's key; returns the base64 ASCII bytes to upload."""
    out = io.BytesIO()
    seal_for_enclave_into(data, certificate_pem, out)
    return out.getvalue()


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


def requester_box_secret(eth_private_key: str) -> bytes:
    """The requester's X25519 secret (what opens a result box), derived from the wallet key."""
    return bytes(_requester_box_key(eth_private_key))


def requester_public_key_hex(eth_private_key: str) -> str:
    """The requester's X25519 public key (``0x`` + 64 hex) that the enclave seals the result for."""
    return "0x" + bytes(_requester_box_key(eth_private_key).public_key).hex()


class TruncatedHexError(ValueError):
    """The hex text ended inside a byte (an odd number of hex digits): it was cut short."""


class HexDecoder:
    """Collects a hex text stream (optional ``0x`` and surrounding whitespace) as bytes, piece by piece."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self._carry = b""
        self._started = False

    def write(self, chunk: bytes) -> None:
        text = self._carry + bytes(chunk).translate(None, b" \t\r\n")
        if not self._started:
            if len(text) < 2 and text in (b"", b"0"):
                self._carry = text
                return
            self._started = True
            if text[:2].lower() == b"0x":
                text = text[2:]
        whole = len(text) - len(text) % 2
        self._carry = text[whole:]
        if whole:
            self.emit(binascii.unhexlify(text[:whole]))

    def emit(self, data: bytes) -> None:
        """Take the next decoded bytes (kept in :attr:`buffer`; a streaming subclass passes them on)."""
        self.buffer += data

    def finish(self) -> bytearray:
        """The decoded bytes; :class:`TruncatedHexError` when the text ended inside a byte."""
        self.check_complete()
        return self.buffer

    def check_complete(self) -> None:
        """:class:`TruncatedHexError` when the text ended inside a byte."""
        if self._carry:
            raise TruncatedHexError("the hex text is truncated: it ends with an odd number of hex digits")


#: Ascii85 characters that are not part of a 5-character group: ``z`` (a whole zero group) and whitespace.
_A85_OUTSIDE_GROUPS = b"z \t\n\r\v"


def _a85decode_into(view: memoryview, out: bytearray) -> None:
    """``base64.a85decode`` (no Adobe framing) of ``view`` appended to ``out``, in pieces of whole groups."""
    skip = frozenset(_A85_OUTSIDE_GROUPS)
    start, end_all = 0, len(view)
    while start < end_all:
        end = min(start + A85_CHUNK, end_all)
        piece = view[start:end].tobytes()
        if end < end_all:
            groups = len(piece) - sum(piece.count(c) for c in _A85_OUTSIDE_GROUPS)
            while groups % 5 and end < end_all:  # extend to the end of the group
                c = view[end]
                piece += bytes((c,))
                end += 1
                if c not in skip:
                    groups += 1
        out += a85decode(piece)
        start = end


#: Smallest result blob: ephemeral public key (32) + nonce (24) + Poly1305 tag (16).
MIN_RESULT_BLOB = 32 + 24 + 16


def _undecryptable(reason: str) -> ResultDecryptionError:
    """The result does not open. Its reasons describe the bytes, never the key: the requester key is derived
    from the same wallet key that submitted the task, so a blob that does not open is a damaged blob."""
    return ResultDecryptionError(f"the result did not decrypt: {reason}")


def open_result_buffer(blob: bytearray, eth_private_key: str) -> bytearray:
    """Open a result blob (ephemeral public key || nonce || NaCl box, as bytes) in place; returns the UTF-8
    plaintext. ``blob`` is consumed (decrypted over itself), so a large result is held about twice, not
    five times. Raises :class:`ResultDecryptionError` saying what is wrong with the bytes."""
    from nacl.bindings import crypto_box_beforenm
    from nacl.exceptions import CryptoError

    if len(blob) < MIN_RESULT_BLOB:
        raise _undecryptable(f"it is {len(blob)} bytes, shorter than the {MIN_RESULT_BLOB} of an empty sealed box")
    secret = requester_box_secret(eth_private_key)
    try:
        from nacl._sodium import ffi, lib

        box_key = crypto_box_beforenm(bytes(blob[:32]), secret)
        nonce = bytes(blob[32:56])
        length = len(blob) - 56
        pointer = ffi.from_buffer("unsigned char[]", blob, require_writable=True)
        opened = lib.crypto_box_open_easy_afternm(pointer + 56, pointer + 56, length, nonce, box_key) == 0
        del pointer
    except (CryptoError, ValueError, TypeError):
        opened = False
    if not opened:
        raise _undecryptable("the sealed box fails its authentication check: the result bytes are corrupted")
    plaintext = bytearray()
    try:
        _a85decode_into(memoryview(blob)[56 : 56 + length - 16], plaintext)
    except ValueError:
        raise _undecryptable("the opened box does not hold Ascii85 text: the enclave sealed damaged bytes") from None
    return plaintext


def open_result(blob_hex: str | bytes, eth_private_key: str) -> str:
    """Decrypt a result blob (hex of ephemeral public key || NaCl box) and decode its Ascii85 plaintext."""
    try:
        decoder = HexDecoder()
        decoder.write(blob_hex.encode("ascii") if isinstance(blob_hex, str) else blob_hex)
        blob = decoder.finish()
    except TruncatedHexError as exc:
        raise _undecryptable(str(exc)) from None
    except (ValueError, TypeError):  # binascii.Error and UnicodeEncodeError are ValueErrors
        raise _undecryptable("it is not hex text") from None
    plaintext = open_result_buffer(blob, eth_private_key)
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise _undecryptable("the decrypted result is not UTF-8 text") from None


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

    return str(Account.from_key(challenge_wallet_key(client_challenge, enclave_challenge)).address)
