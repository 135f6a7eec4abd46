"""Devnet profiles: the local network made as hard as a real one (``ethernity-devnet up --profile NAME``).

``default`` is today's fast devnet (instant mining, one shared IPFS, a node that waits for approval forever).
``bloxberg`` and ``polygon`` reproduce those networks' behaviour as the official runner 0.5.26 and the node
agent (mvp-pox-node) see it; each knob is one field of :class:`DevnetProfile`, documented below and in the
README ("Devnet profiles" and the fidelity table). Any knob can be overridden:
``get_profile("bloxberg").with_overrides(block_time=1)`` or ``Devnet(profile="bloxberg", block_time=1)``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from airflow_provider_ethernity.devnet.errors import DevnetError


@dataclass(frozen=True)
class DevnetProfile:
    #: Profile name (``default``, ``bloxberg``, ``polygon``).
    name: str
    #: Network entry the connection names (``protocol/networks.py``): gas model, token model, confirmations and
    #: block time the client uses. ``devnet_bloxberg`` / ``devnet_polygon`` are the real entries on chain 31337.
    network: str = "devnet"
    #: Seconds between blocks (anvil ``--block-time``); None mines each transaction at once.
    block_time: float | None = None
    #: Token model. True: the protocol contract IS the ERC-20 (``EthernityProtocolToken``, bloxberg: no approve,
    #: ``token_address == protocol_address``). False: a separate ERC-20 with an allowance (polygon, default).
    token_is_protocol: bool = False
    #: anvil ``--hardfork``; None: anvil's latest. (``berlin``, which has no base fee at all, cannot run the
    #: committed contracts: they are compiled for cancun.)
    hardfork: str | None = None
    #: anvil ``--base-fee`` in wei; None: anvil's default. bloxberg: 0, so the legacy ``gasPrice`` of 2,000,000 wei
    #: the runner and the ``devnet_bloxberg`` network send is accepted (a zero base fee stays zero); polygon:
    #: 30 gwei, so EIP-1559 fee caps matter.
    base_fee_wei: int | None = None
    #: The node abandons an order not approved within this many seconds (the real node checks
    #: ``int(60 / block_time)`` times, ``block_time`` apart, then leaves the escrow in a booked request).
    #: None: it waits forever.
    approval_window: float | None = None
    #: Seconds between the node recording a result CID on chain and its bytes becoming readable (a real node pins
    #: in the background). 0: at once.
    result_pin_delay: float = 0.0
    #: A second IPFS service stands for the public IPFS network: the node reads artefacts only from it and
    #: pins results there; the requester's IPFS (the connection's ``ipfs_api_url``) is private to it, and a
    #: gateway (``GET /ipfs/<cid>``) serves the public one. False: one IPFS shared by requester and node.
    public_ipfs: bool = False
    #: The public intake (``POST /payload/<network>/<doRequest>/<cid>``, CIDs named by the request only) in front
    #: of the public IPFS; the connection uploads there (``ipfs_public: false`` + ``ipfs_intake_url``), as the
    #: runner does on bloxberg testnet. False: the connection's IPFS API is the public one (polygon).
    intake: bool = False
    #: A chain front (``devnet/chain_front.py``) between the requester and anvil: replica lag, hidden close
    #: events, reorgs on demand. The node keeps its own direct RPC.
    chain_front: bool = False
    #: Reads (``eth_getLogs``, ``eth_call`` at ``latest``) served by a replica this many blocks behind the head.
    replica_lag: int = 0
    #: ``_orderClosedEV`` is left out of ``eth_getLogs`` answers for orders whose id is a multiple of this
    #: (a close only visible through ``_getOrder``); 0: never.
    hide_close_every: int = 0

    def with_overrides(self, **overrides: Any) -> DevnetProfile:
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            allowed = ", ".join(sorted(known))
            raise DevnetError(f"unknown profile knob(s) {', '.join(sorted(unknown))}: allowed {allowed}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def describe(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


PROFILES: dict[str, DevnetProfile] = {
    "default": DevnetProfile("default"),
    "bloxberg": DevnetProfile(
        "bloxberg",
        network="devnet_bloxberg",
        block_time=5.0,
        token_is_protocol=True,
        base_fee_wei=0,
        approval_window=60.0,
        result_pin_delay=10.0,
        public_ipfs=True,
        intake=True,
        chain_front=True,
        replica_lag=1,
        hide_close_every=3,
    ),
    "polygon": DevnetProfile(
        "polygon",
        network="devnet_polygon",
        block_time=2.0,
        token_is_protocol=False,
        base_fee_wei=30 * 10**9,
        approval_window=60.0,
        result_pin_delay=6.0,
        public_ipfs=True,
        intake=False,
        chain_front=True,
        replica_lag=2,
        hide_close_every=3,
    ),
}


def get_profile(profile: str | DevnetProfile | None) -> DevnetProfile:
    if isinstance(profile, DevnetProfile):
        return profile
    try:
        return PROFILES[(profile or "default").strip().lower()]
    except KeyError:
        raise DevnetError(f"profile={profile!r} is unknown: allowed {', '.join(PROFILES)}") from None


def anvil_flags(profile: DevnetProfile) -> list[str]:
    """anvil's flags for a profile's gas model (``--hardfork berlin``: legacy gasPrice only; ``--base-fee``)."""
    flags = []
    if profile.hardfork:
        flags += ["--hardfork", profile.hardfork]
    if profile.base_fee_wei is not None:
        flags += ["--base-fee", str(profile.base_fee_wei)]
    return flags
