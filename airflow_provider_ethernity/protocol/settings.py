"""Everything a client needs to reach a network, validated up front (no Airflow here)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_ethernity.protocol.errors import ConfigurationError, shown, shown_url
from airflow_provider_ethernity.protocol.ipfs import normalize_api_url
from airflow_provider_ethernity.protocol.networks import Network, check_trustedzone_pairing, get_network

_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def _check_address(name: str, value: object, required: bool) -> str | None:
    value = _text_field(name, value)
    if not value:
        if required:
            raise ConfigurationError(f"{name} is required for this network (a 0x-prefixed 20-byte hex address)")
        return None
    if not _ADDRESS.fullmatch(value.strip()):
        raise ConfigurationError(f"{name}={shown(value)} is not a 0x-prefixed 20-byte hex address")
    from eth_utils import to_checksum_address

    return to_checksum_address(value.strip())


#: Default and upper bound of the connection's ``max_input_mb``: sealing makes an input about 2.7x larger
#: (AES-GCM, hex, base64), and a sealed artefact may be at most 256 MiB (``client.MAX_ARTEFACT_BYTES``).
DEFAULT_MAX_INPUT_MB = 90
MAX_INPUT_MB_LIMIT = 90
#: Bounds of ``rpc_timeout`` and ``ipfs_timeout`` (seconds per request).
DEFAULT_RPC_TIMEOUT = 30.0
DEFAULT_IPFS_TIMEOUT = 60.0
MAX_TIMEOUT_SECONDS = 3600.0
#: The runner reads a result until max(deadline, closed + 120 s) before calling it an operator fault.
DEFAULT_RESULT_READ_SECONDS = 120.0
#: Block time overrides (devnet profiles run faster than the real networks they reproduce).
MAX_BLOCK_TIME = 600.0
#: Largest chain id EIP-2294 allows.
MAX_CHAIN_ID = 2**63 - 1 - 36

_INTEGER = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")


def _unset(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _strict_int(value: object) -> int | None:
    """An int, an integral float or a string of ASCII digits as an int; None for anything else (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _strict_float(value: object) -> float | None:
    """A finite int/float or an ASCII decimal string as a float; None for anything else (bools, NaN, "fast")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        number = float(value.strip())
    else:
        return None
    return number if math.isfinite(number) else None


def _chain_id(value: object) -> int | None:
    if _unset(value):
        return None
    number = _strict_int(value)
    if number is None or not 1 <= number <= MAX_CHAIN_ID:
        raise ConfigurationError(
            f"chain_id={shown(value)} is invalid: allowed a positive integer (1 to {MAX_CHAIN_ID}, EIP-2294)"
        )
    return number


def _timeout(name: str, value: object, default: float) -> float:
    if _unset(value):
        return default
    number = _strict_float(value)
    if number is None or not 0 < number <= MAX_TIMEOUT_SECONDS:
        raise ConfigurationError(
            f"{name}={shown(value)} is invalid: allowed a number of seconds greater than 0 and at most "
            f"{MAX_TIMEOUT_SECONDS:g} (default {default:g})"
        )
    return number


def _max_input_bytes(value: object) -> int:
    if _unset(value):
        return DEFAULT_MAX_INPUT_MB * 1024**2
    megabytes = _strict_int(value)
    if megabytes is None or not 1 <= megabytes <= MAX_INPUT_MB_LIMIT:
        raise ConfigurationError(
            f"max_input_mb={shown(value)} is invalid: allowed an integer from 1 to {MAX_INPUT_MB_LIMIT}"
        )
    return megabytes * 1024**2


def _text_field(name: str, value: object) -> str | None:
    """A connection text field stripped of surrounding whitespace (a pasted newline); None when empty."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, got {type(value).__name__}")
    return value.strip() or None


def image_name(name: str, value: object) -> str | None:
    """An image registry name (``trustedzone``, ``securelock``) stripped; None when empty. It travels in the
    colon-separated image metadata, so a colon, whitespace or a control character is refused, naming ``name``."""
    text = _text_field(name, value)
    if text is None:
        return None
    bad = next((c for c in text if c == ":" or c.isspace() or not c.isprintable()), None)
    if bad is not None:
        kind = "a colon" if bad == ":" else "whitespace" if bad.isspace() else "a control character"
        raise ConfigurationError(
            f"{name}={shown(text)} is not an image registry name: it contains {kind}; allowed a name such as "
            "etny-pynithy-testnet (no colon, no whitespace)"
        )
    return text


def _header_problem(value: str) -> str | None:
    """Why ``value`` is not a legal HTTP header value (RFC 9110 field-value: visible ASCII, with spaces or tabs
    inside), naming the position and the kind of character but never the character itself; None if legal."""
    for index, char in enumerate(value):
        if char in " \t" and 0 < index < len(value) - 1:
            continue
        if "\x21" <= char <= "\x7e":
            continue
        if char in " \t":
            kind = "leading or trailing whitespace"
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            kind = "a control character (a pasted newline?)"
        else:
            kind = "a non-ASCII character"
        return f"character {index + 1} of {len(value)} is {kind}"
    return None


def check_ipfs_token(value: object) -> str | None:
    """The IPFS token stripped of surrounding whitespace and checked to be a legal HTTP header value.

    Raises :class:`ConfigurationError` naming ``ipfs_token``; the message never contains the token (nor any
    character of it): only its length and the position of the first illegal character.
    """
    token = _text_field("ipfs_token", value)
    if token is None:
        return None
    problem = _header_problem(token)
    if problem:
        raise ConfigurationError(
            f"ipfs_token is not a legal HTTP header value: {problem}; allowed visible ASCII characters, "
            "with spaces or tabs only inside (the token is sent as the Authorization header)"
        )
    return token


def _flag(name: str, value: object) -> bool | None:
    """A connection boolean: true/false (JSON or text, yes/no, 1/0); None when unset."""
    if _unset(value):
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ConfigurationError(f"{name}={shown(value)} is invalid: allowed true or false")


def _private_host(url: str) -> bool:
    """Whether ``url``'s host is loopback, private, link-local or a single-label name (no node could reach it)."""
    import ipaddress
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "") or host.endswith((".local", ".localhost", ".internal", ".lan")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host
    return address.is_private or address.is_loopback or address.is_link_local


def ipfs_reachable_by_nodes(network: Network, ipfs_api_url: str | None, explicit: bool | None) -> bool:
    """Whether nodes can fetch what the requester adds through ``ipfs_api_url``.

    ``ipfs_public`` set in the connection wins. Otherwise: on the plain ``devnet`` the node shares the
    requester's IPFS (True); elsewhere an API on a loopback, private or link-local address is private (a real
    node fetches artefacts through public gateways and its own Kubo peered with Ethernity's IPFS, never a
    user's LAN), any other host is taken as public.
    """
    if explicit is not None:
        return explicit
    if network.name == "devnet":
        return True
    return bool(ipfs_api_url) and not _private_host(ipfs_api_url or "")


def _http_url(name: str, value: object) -> str | None:
    url = _text_field(name, value)
    if url is None:
        return None
    if not url.startswith(("http://", "https://")) or any(c.isspace() or not c.isprintable() for c in url):
        raise ConfigurationError(f"{name}={shown_url(url)!r} is not an http(s) URL")
    return url


@dataclass(frozen=True)
class ClientSettings:
    """A resolved network plus the wallet and storage to use. The key and token never appear in ``repr``."""

    network: Network
    rpc_url: str
    private_key: str | None = field(default=None, repr=False)
    ipfs_api_url: str | None = None
    ipfs_token: str | None = field(default=None, repr=False)
    trustedzone: str | None = None
    #: The connection's default securelock (a dApp image of the registry run inside the trustedzone); None: the
    #: trustedzone's own image.
    securelock: str | None = None
    rpc_timeout: float = DEFAULT_RPC_TIMEOUT
    ipfs_timeout: float = DEFAULT_IPFS_TIMEOUT
    #: Largest input dataset accepted (bytes of UTF-8); the enclave reads the whole dataset into memory.
    max_input_bytes: int = DEFAULT_MAX_INPUT_MB * 1024**2
    #: Whether nodes can read what is added through ``ipfs_api_url`` (a public or peered Kubo). False: the
    #: artefacts go through the network's public intake, or the submission fails before paying. See
    #: :func:`ipfs_reachable_by_nodes` for the default.
    ipfs_public: bool = True
    #: Where artefacts go when ``ipfs_public`` is False (the network's public intake unless overridden).
    ipfs_intake_url: str | None = None
    #: Gateway tried after the API when a result is read (``<url>/ipfs/<cid>``); None: the API only.
    ipfs_gateway_url: str | None = None
    #: How long after the order closed an unreadable result is still waited for (the runner's closed + 120 s);
    #: after that it is the operator's fault (its bytes were never pinned) and the task is resubmitted.
    result_read_seconds: float = DEFAULT_RESULT_READ_SECONDS

    @property
    def uses_intake(self) -> bool:
        """Artefacts are POSTed to the public intake after the request's receipt (not added to the API)."""
        return not self.ipfs_public and bool(self.ipfs_intake_url)

    @classmethod
    def build(
        cls,
        network: str = "bloxberg_testnet",
        *,
        rpc_url: str | None = None,
        private_key: str | None = None,
        ipfs_api_url: str | None = None,
        ipfs_token: str | None = None,
        trustedzone: str | None = None,
        securelock: str | None = None,
        protocol_address: str | None = None,
        token_address: str | None = None,
        image_registry_address: str | None = None,
        chain_id: int | str | None = None,
        rpc_timeout: float | str | None = None,
        ipfs_timeout: float | str | None = None,
        max_input_mb: int | str | None = None,
        ipfs_public: bool | str | None = None,
        ipfs_intake_url: str | None = None,
        ipfs_gateway_url: str | None = None,
        result_read_seconds: float | str | None = None,
        block_time: float | str | None = None,
        **_ignored: Any,
    ) -> ClientSettings:
        """Resolve a network name and overrides into validated settings; raises ConfigurationError.

        Every field is checked strictly and named in its error: text fields are stripped (a pasted newline),
        ``chain_id`` is a positive integer, the timeouts positive numbers of seconds, ``ipfs_token`` a legal
        header value. No message repeats the key or the token, nor more of a URL than its scheme and host.
        """
        base = get_network(network)
        custom = base.name == "custom" or base.is_devnet
        chain = _chain_id(chain_id)
        protocol = _check_address("protocol_address", protocol_address, custom)
        # Without a separate token (bloxberg style) the protocol contract is the token.
        token = _check_address("token_address", token_address, False) or (protocol if custom else None)
        resolved = base.with_overrides(
            rpc_url=_http_url("rpc_url", rpc_url),
            protocol_address=protocol,
            token_address=token,
            image_registry_address=_check_address("image_registry_address", image_registry_address, custom),
            trustedzone=image_name("trustedzone", trustedzone),
            chain_id=chain,
            block_time=None if _unset(block_time) else _timeout("block_time", block_time, base.block_time),
        )
        if not resolved.rpc_url:
            raise ConfigurationError(f"rpc_url is required for network {base.name!r}")
        check_trustedzone_pairing(resolved, resolved.trustedzone)
        _http_url("rpc_url", resolved.rpc_url)
        key = _text_field("private key (connection password)", private_key)
        if key is not None and not _KEY.fullmatch(key):
            raise ConfigurationError(
                "the wallet private key (connection password) is malformed: expected 64 hex characters, "
                "optionally 0x-prefixed"
            )
        ipfs_url = _http_url("ipfs_api_url", ipfs_api_url)
        api_url = normalize_api_url(ipfs_url) if ipfs_url else None
        intake = _http_url("ipfs_intake_url", ipfs_intake_url) or resolved.ipfs_intake_url
        gateway = _http_url("ipfs_gateway_url", ipfs_gateway_url) or resolved.ipfs_gateway_url
        return cls(
            ipfs_public=ipfs_reachable_by_nodes(resolved, api_url, _flag("ipfs_public", ipfs_public)),
            ipfs_intake_url=intake.rstrip("/") if intake else None,
            ipfs_gateway_url=gateway.rstrip("/") if gateway else None,
            result_read_seconds=_timeout("result_read_seconds", result_read_seconds, DEFAULT_RESULT_READ_SECONDS),
            max_input_bytes=_max_input_bytes(max_input_mb),
            network=resolved,
            rpc_url=resolved.rpc_url,
            private_key=key,
            ipfs_api_url=api_url,
            ipfs_token=check_ipfs_token(ipfs_token),
            trustedzone=resolved.trustedzone,
            securelock=image_name("securelock", securelock),
            rpc_timeout=_timeout("rpc_timeout", rpc_timeout, DEFAULT_RPC_TIMEOUT),
            ipfs_timeout=_timeout("ipfs_timeout", ipfs_timeout, DEFAULT_IPFS_TIMEOUT),
        )

    @property
    def rpc_url_shown(self) -> str:
        """``rpc_url`` as error messages and logs may show it (scheme, host and port: no key in a path)."""
        return shown_url(self.rpc_url)


#: Connection ``extra`` fields of the storage model and the devnet profiles (the hook reads these too).
STORAGE_EXTRA_FIELDS = ("ipfs_public", "ipfs_intake_url", "ipfs_gateway_url", "result_read_seconds", "block_time")
