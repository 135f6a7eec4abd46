"""The task's value out of a verified result envelope, written to a destination without loading it whole.

The enclave's plaintext is ``{"ecld": 1, "type": ..., "data": ..., "esr": ...}`` (``json.dumps`` of a dict). For
the ``text`` and ``base64`` types (what tasks return) :func:`copy_result_text` decodes the ``data`` string piece
by piece with the standard library's C string scanner and checks the rest of the object; anything it cannot
prove to be such an envelope takes the in-memory path of :func:`~.results.decode_envelope` or, when it is no
JSON at all, is copied as it is. The value written is exactly what ``decode_envelope`` returns.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import IO, Any

from airflow_provider_ethernity.protocol.results import decode_envelope

PIECE = 1 << 20
#: The standard library's string scanner (C): ``scanstring(text, index after the opening quote, strict)``
#: returns the decoded string and the index after its closing quote (untyped in typeshed).
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_WS = rb"[ \t\n\r]*"  # JSON whitespace only (a bytes ``\s`` also takes \f and \v, which json.loads refuses)
#: The start of an envelope whose data is a string, as the enclave writes it.
_ENVELOPE_HEAD = re.compile(
    rb"\A" + _WS + rb"\{" + _WS + rb'"ecld"' + _WS + rb":" + _WS + rb"1" + _WS + rb"," + _WS + rb'"type"' + _WS
    + rb":" + _WS + rb'"(text|base64)"' + _WS + rb"," + _WS + rb'"data"' + _WS + rb":" + _WS + rb'"'
)  # fmt: skip
#: The longest escape (a surrogate pair, ``\uD83D\uDE00``): a piece is never cut inside one.
_LONGEST_ESCAPE = 12
_HEAD_BYTES = 4096

#: Opens the destination for writing, from its start (a second call starts it over).
Opener = Callable[[], AbstractContextManager[IO[bytes]]]


class _NotAnEnvelope(Exception):
    """The plaintext only looked like an envelope: as in ``decode_envelope``, it is the value itself."""


class _JsonStringStream:
    """Decodes the body of a JSON string (after its opening quote) piece by piece, as ``json.loads`` does."""

    def __init__(self) -> None:
        self._carry = ""
        self.rest: str | None = None  # what follows the closing quote, once it was seen

    def feed(self, text: str, final: bool = False) -> str:
        buf, self._carry = self._carry + text, ""
        if final:
            try:
                value, end = _scanstring(buf, 0, True)
            except ValueError:
                raise _NotAnEnvelope from None
            self.rest = buf[end:]
            return value
        for back in range(min(_LONGEST_ESCAPE, len(buf)) + 1):
            cut = len(buf) - back
            try:  # the quote added ends the piece unless a real one comes first
                value, end = _scanstring(buf[:cut] + '"', 0, True)
            except ValueError as exc:
                if getattr(exc, "pos", -1) < cut - _LONGEST_ESCAPE and getattr(exc, "pos", -1) != -1:
                    raise _NotAnEnvelope from None  # a bad escape or control character, not the cut
                continue  # the cut fell inside an escape: cut earlier
            if end <= cut:  # the string's own closing quote
                self.rest = buf[end:]
                return value
            if value and "\ud800" <= value[-1] <= "\udbff":
                continue  # a surrogate pair cut in two: cut before its first half
            self._carry = buf[cut:]
            return value
        raise _NotAnEnvelope


class _Counted:
    def __init__(self, out: IO[bytes]) -> None:
        self.out, self.size = out, 0

    def write(self, text: str) -> None:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"the result's value holds a lone surrogate (U+{ord(text[exc.start]):04X}, from a \\u escape): it "
                "cannot be written as UTF-8"
            ) from None
        self.size += len(data)
        self.out.write(data)


def _pieces(fh: IO[bytes]) -> Iterator[bytes]:
    while piece := fh.read(PIECE):
        yield piece


def copy_result_text(plaintext: IO[bytes], open_out: Opener) -> tuple[str, int]:
    """Write the task's value (as :func:`decode_envelope` reads the verified ``plaintext``) as UTF-8 to
    ``open_out()``; returns its type and size in bytes. ``text``/``base64`` envelopes and plain text stream;
    anything else (a ``json`` envelope, an unusual layout) is decoded in memory. A ``ValueError`` for a value
    that cannot be UTF-8 (a lone surrogate escape); errors of the destination are raised as they are."""
    plaintext.seek(0)
    head = plaintext.read(_HEAD_BYTES)
    match = _ENVELOPE_HEAD.match(head)
    if match is not None:
        with open_out() as raw_out:
            out = _Counted(raw_out)
            try:
                _copy_data_string(plaintext, match.end(), out)
                return match.group(1).decode(), out.size
            except _NotAnEnvelope:
                pass  # not an envelope after all: the plaintext is the value (written again from the start)
    stripped = head.lstrip(b" \t\n\r")
    if stripped.startswith(b"{") or (not stripped and len(head) == _HEAD_BYTES):  # JSON, maybe: in memory
        plaintext.seek(0)
        kind, _, text = decode_envelope(plaintext.read().decode("utf-8"))
        with open_out() as raw_out:
            out = _Counted(raw_out)
            out.write(text)
        return kind, out.size
    plaintext.seek(0)  # no JSON object: json.loads fails on it, so the plaintext is the value
    size = 0
    with open_out() as raw_out:
        for piece in _pieces(plaintext):
            size += len(piece)
            raw_out.write(piece)
    return "text", size


def _copy_data_string(fh: IO[bytes], start: int, out: _Counted) -> None:
    """Decode the envelope's data string from ``start`` (after its opening quote) into ``out``, then check that
    the rest closes the object and names none of ``ecld``, ``type``, ``data`` again (json.loads keeps the
    last of duplicate keys)."""
    fh.seek(start)
    utf8 = codecs.getincrementaldecoder("utf-8")()
    string = _JsonStringStream()
    for piece in _pieces(fh):
        out.write(string.feed(utf8.decode(piece)))
        if string.rest is not None:
            break
    else:
        out.write(string.feed(utf8.decode(b"", final=True), final=True))
    if string.rest is None:
        raise _NotAnEnvelope
    rest = string.rest + utf8.decode(fh.read(), final=True)
    objects: list[list[tuple[str, Any]]] = []

    def keep(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        objects.append(pairs)
        return dict(pairs)

    try:
        json.loads('{"data": 0' + rest, object_pairs_hook=keep)
    except ValueError:
        raise _NotAnEnvelope from None
    top = objects[-1]  # the outermost object is completed last
    if any(key in ("ecld", "type", "data") for key, _ in top[1:]):
        raise _NotAnEnvelope
