"""The task's code and input dataset, checked before anything is sealed, uploaded or paid.

Both travel as UTF-8 text sealed for the enclave, so each must be a ``str`` that encodes as UTF-8 (no lone
surrogate). Errors name the parameter (``code`` or ``input_data``) and, for a bad character, its position
and code point only: the text itself may be confidential and is never repeated.

An empty input (``input_data=""``) is refused. The protocol cannot carry an empty input dataset: the input
metadata of a request without one is ``v3::<sha256 of "">``, and the official runner (0.5.26,
``get_v3_input_metadata``: ``if not input_data``) sends an empty string exactly that way, so the enclave would
see no input at all (``___etny_data_set___`` undefined), not an empty one. Pass ``None`` for no input.
"""

from __future__ import annotations

from airflow_provider_ethernity.protocol.errors import ConfigurationError
from airflow_provider_ethernity.protocol.input_file import InputFile

#: Characters encoded per piece when measuring or checking a large text (memory stays near the text).
_PIECE = 1 << 20


def _type_name(value: object) -> str:
    return type(value).__name__


def utf8_size(field: str, text: str) -> int:
    """The UTF-8 size of ``text`` in bytes, encoded piece by piece (a large string is never encoded whole).

    Raises :class:`ConfigurationError` naming ``field`` and the position of a lone surrogate.
    """
    if text.isascii():
        return len(text)
    size = 0
    for start in range(0, len(text), _PIECE):
        piece = text[start : start + _PIECE]
        try:
            size += len(piece.encode("utf-8"))
        except UnicodeEncodeError as exc:
            index = start + exc.start
            raise ConfigurationError(
                f"{field} is not valid Unicode text: a lone surrogate U+{ord(text[index]):04X} at character "
                f"{index + 1} of {len(text)}; allowed text that encodes as UTF-8 (decode bytes with "
                "errors='strict' or 'replace', never 'surrogateescape')"
            ) from None
    return size


def validate_code(code: object) -> str:
    """The task's Python source, unchanged, once it is a non-empty ``str`` that encodes as UTF-8 without NUL.

    Raises :class:`ConfigurationError` naming ``code``: ``code must be a str, got bytes``, ``code is empty``,
    a lone surrogate or a NUL character with its position.
    """
    if not isinstance(code, str):
        hint = " (decode it: code.decode('utf-8'))" if isinstance(code, (bytes, bytearray)) else ""
        raise ConfigurationError(f"code must be a str, got {_type_name(code)}{hint}")
    if not code.strip():
        raise ConfigurationError("code is empty: give the Python source of the task")
    utf8_size("code", code)
    nul = code.find("\0")
    if nul >= 0:
        raise ConfigurationError(
            f"code contains a NUL character at character {nul + 1} of {len(code)}: Python source cannot "
            "contain NUL; allowed printable source text"
        )
    return code


def validate_input_data(input_data: object, limit_bytes: int) -> str | InputFile | None:
    """The task's input dataset, unchanged: ``None`` (no input) or a non-empty ``str`` that encodes as UTF-8
    in at most ``limit_bytes`` bytes (the connection's ``max_input_mb``).

    Raises :class:`ConfigurationError` naming ``input_data``: not a str, empty (see the module's docstring),
    a lone surrogate with its position, or over the size limit with both sizes.
    """
    if input_data is None or isinstance(input_data, InputFile):  # a staged file was checked as it was staged
        return input_data
    if not isinstance(input_data, str):
        raise ConfigurationError(f"input_data must be a str or None, got {_type_name(input_data)}")
    if input_data == "":
        raise ConfigurationError(
            "input_data is an empty string: the protocol has no empty input dataset (it would be sent as no "
            "input, as the official runner does); allowed None for no input, or a non-empty string"
        )
    if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, int) or limit_bytes < 1:
        raise ValueError(f"limit_bytes={limit_bytes!r}: allowed a positive int")
    size = utf8_size("input_data", input_data)
    if size > limit_bytes:
        raise ConfigurationError(
            f"input_data is {size / 1024**2:.1f} MiB: allowed at most {limit_bytes / 1024**2:g} MiB "
            "(the connection's max_input_mb)"
        )
    return input_data
