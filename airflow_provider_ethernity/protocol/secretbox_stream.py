"""Opening a NaCl box piece by piece, so a large result is never held whole in memory.

A box (``crypto_box_easy``, what the enclave seals a result with) is XSalsa20-Poly1305 under the key
``crypto_box_beforenm`` derives: ``subkey = HSalsa20(key, nonce[:16])``, then Salsa20 under ``subkey`` and
``nonce[16:]``; the first 32 bytes of that keystream are the Poly1305 key, the rest is XORed with the
message, and the 16-byte tag comes first. libsodium does all of this in one call over the whole message;
here HSalsa20 is a one-block function in Python, Salsa20 is pycryptodome's streaming cipher and Poly1305
is ``cryptography``'s incremental MAC. The plaintext a caller receives before :meth:`BoxStream.verify` is
UNAUTHENTICATED: keep it out of sight until then.
"""

from __future__ import annotations

import struct

_MASK = 0xFFFFFFFF
_SIGMA = struct.unpack("<4I", b"expand 32-byte k")


def _rotl(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (32 - shift))) & _MASK


def _quarter(x: list[int], a: int, b: int, c: int, d: int) -> None:
    x[b] ^= _rotl((x[a] + x[d]) & _MASK, 7)
    x[c] ^= _rotl((x[b] + x[a]) & _MASK, 9)
    x[d] ^= _rotl((x[c] + x[b]) & _MASK, 13)
    x[a] ^= _rotl((x[d] + x[c]) & _MASK, 18)


def hsalsa20(key: bytes, nonce16: bytes) -> bytes:
    """The HSalsa20 core: a 32-byte subkey from a 32-byte key and a 16-byte nonce (no final addition)."""
    if len(key) != 32 or len(nonce16) != 16:
        raise ValueError("hsalsa20 needs a 32-byte key and a 16-byte nonce")
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", nonce16)
    x = [_SIGMA[0], *k[:4], _SIGMA[1], *n, _SIGMA[2], *k[4:], _SIGMA[3]]
    for _ in range(10):  # 20 rounds: a column round and a row round each
        _quarter(x, 0, 4, 8, 12)
        _quarter(x, 5, 9, 13, 1)
        _quarter(x, 10, 14, 2, 6)
        _quarter(x, 15, 3, 7, 11)
        _quarter(x, 0, 1, 2, 3)
        _quarter(x, 5, 6, 7, 4)
        _quarter(x, 10, 11, 8, 9)
        _quarter(x, 15, 12, 13, 14)
    return struct.pack("<8I", x[0], x[5], x[10], x[15], x[6], x[7], x[8], x[9])


class BoxStream:
    """Decrypts a box's ciphertext (what follows its 16-byte tag) in pieces; :meth:`verify` checks the tag."""

    TAG_BYTES = 16

    def __init__(self, box_key: bytes, nonce: bytes, tag: bytes) -> None:
        from Crypto.Cipher import Salsa20
        from cryptography.hazmat.primitives.poly1305 import Poly1305

        if len(nonce) != 24 or len(tag) != self.TAG_BYTES:
            raise ValueError("a box needs a 24-byte nonce and a 16-byte tag")
        self._cipher = Salsa20.new(key=hsalsa20(box_key, nonce[:16]), nonce=nonce[16:])
        self._mac = Poly1305(self._cipher.encrypt(bytes(32)))  # keystream bytes 0-31; the message starts at 32
        self._tag = tag

    def update(self, ciphertext: bytes | memoryview) -> bytes:
        """The plaintext of the next ciphertext piece (unauthenticated until :meth:`verify`)."""
        self._mac.update(ciphertext)
        return self._cipher.decrypt(ciphertext)

    def verify(self) -> bool:
        """Whether the tag matches everything passed to :meth:`update` (call once, at the end)."""
        from cryptography.exceptions import InvalidSignature

        try:
            self._mac.verify(self._tag)
        except InvalidSignature:
            return False
        return True
