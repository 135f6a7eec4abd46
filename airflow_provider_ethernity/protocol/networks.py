"""The networks the provider can talk to: every network of the official runner, ``devnet`` and ``custom``.

``devnet`` and ``custom`` have no fixed addresses: they come from the connection (the devnet CLI writes them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from airflow_provider_ethernity.protocol.errors import ConfigurationError


@dataclass(frozen=True)
class GasPolicy:
    """How transactions are priced: legacy ``gasPrice`` or EIP-1559 with caps (in wei)."""

    eip1559: bool
    gas_price_wei: int = 0
    max_fee_per_gas_wei: int = 0
    max_priority_fee_per_gas_wei: int = 0


@dataclass(frozen=True)
class Network:
    name: str
    chain_id: int | None
    rpc_url: str | None
    protocol_address: str | None
    token_address: str | None
    image_registry_address: str | None
    token_name: str
    trustedzone: str | None
    block_time: float
    gas: GasPolicy
    poa: bool = False
    mainnet: bool = False
    explorer_url: str | None = None
    #: Blocks an event must be deep before the triggers' watcher acts on it (reorg safety); 0 acts at once.
    confirmations: int = 0
    #: The public intake (``<url>/<network>/<doRequest>/<cid>``, POSTed after the request's receipt) where the
    #: official runner uploads artefacts when no own IPFS API is given; None: this network has none.
    ipfs_intake_url: str | None = None
    #: Public gateway (``<url>/ipfs/<cid>``) tried after the IPFS API when a result is read, as the runner does.
    ipfs_gateway_url: str | None = "https://ipfs.io"

    @property
    def intake_name(self) -> str:
        """The network's name in intake URLs (the runner's ``<network>_<type>`` in lower case)."""
        return self.name.lower()

    @property
    def is_devnet(self) -> bool:
        """The local devnet or one of its profiles (``devnet_bloxberg``, ``devnet_polygon``)."""
        return self.name == "devnet" or self.name.startswith("devnet_")

    @property
    def is_unsafe(self) -> bool:
        """An -unsafe network (``*_unsafe``): the chain and contracts of its base network, with the trustedzones
        that run without a CAS. It runs only -unsafe trustedzones (see :func:`check_trustedzone_pairing`)."""
        return self.name.endswith(UNSAFE_NETWORK_SUFFIX)

    @property
    def token_is_protocol(self) -> bool:
        """On bloxberg the protocol contract is the token: no ERC-20 approve is needed."""
        return bool(self.token_address) and (self.token_address or "").lower() == (self.protocol_address or "").lower()

    def with_overrides(self, **overrides: object) -> Network:
        clean = {k: v for k, v in overrides.items() if v not in (None, "")}
        return replace(self, **clean)  # type: ignore[arg-type]


GWEI = 10**9
#: The runner's pairing rule (runner.py ``_resolve_trustedzone``): a trustedzone whose name ends in "-unsafe" runs
#: without a CAS, only on an -unsafe network (a name ending in "_unsafe"), and such a network runs no other.
UNSAFE_TRUSTEDZONE_SUFFIX = "-unsafe"
UNSAFE_NETWORK_SUFFIX = "_unsafe"

_BLOXBERG_LEGACY = GasPolicy(eip1559=False, gas_price_wei=2_000_000)
#: The runner's public intake (ipfs.py INTAKE_NETWORKS: bloxberg testnet, LitVM, Sepolia and their -unsafe twins).
ETHERNITY_INTAKE = "https://ipfs.ethernity.cloud/payload"

BLOXBERG_TESTNET = Network(
    name="bloxberg_testnet",
    chain_id=8995,
    rpc_url="https://bloxberg.ethernity.cloud",
    protocol_address="0x02882F03097fE8cD31afbdFbB5D72a498B41112c",
    token_address="0x02882F03097fE8cD31afbdFbB5D72a498B41112c",
    image_registry_address="0xa372a6e1Eb7Fcf343AF6b91E809b900C55001CD1",
    token_name="tETNY",
    trustedzone="etny-pynithy-testnet",
    block_time=5,
    gas=_BLOXBERG_LEGACY,
    poa=True,
    explorer_url="https://blockexplorer.bloxberg.org",
    confirmations=1,
    ipfs_intake_url=ETHERNITY_INTAKE,
)

BLOXBERG_TESTNET_UNSAFE = replace(
    BLOXBERG_TESTNET, name="bloxberg_testnet_unsafe", trustedzone="etny-pynithy-testnet-unsafe"
)

BLOXBERG_MAINNET = Network(
    name="bloxberg_mainnet",
    chain_id=8995,
    rpc_url="https://bloxberg.ethernity.cloud",
    protocol_address="0x549A6E06BB2084100148D50F51CF77a3436C3Ae7",
    token_address="0x549A6E06BB2084100148D50F51CF77a3436C3Ae7",
    image_registry_address="0x15D73a742529C3fb11f3FA32EF7f0CC3870ACA31",
    token_name="ETNY",
    trustedzone="etny-pynithy",
    block_time=5,
    gas=_BLOXBERG_LEGACY,
    poa=True,
    mainnet=True,
    explorer_url="https://blockexplorer.bloxberg.org",
    confirmations=1,
)

POLYGON_MAINNET = Network(
    name="polygon_mainnet",
    chain_id=137,
    rpc_url="https://polygon-bor-rpc.publicnode.com",
    protocol_address="0x439945BE73fD86fcC172179021991E96Beff3Cc4",
    token_address="0xc6920888988cAcEeA7ACCA0c96f2D65b05eE22Ba",
    image_registry_address="0x689f3806874d3c8A973f419a4eB24e6fBA7E830F",
    token_name="ECLD",
    trustedzone="ecld-pynithy",
    block_time=2,
    gas=GasPolicy(eip1559=True, max_fee_per_gas_wei=200 * GWEI, max_priority_fee_per_gas_wei=32 * GWEI),
    poa=True,
    mainnet=True,
    explorer_url="https://polygonscan.com",
    confirmations=5,
)

POLYGON_AMOY = Network(
    name="polygon_amoy",
    chain_id=80002,
    rpc_url="https://polygon-amoy-bor-rpc.publicnode.com",
    protocol_address="0x1579b37C5a69ae02dDd23263A2b1318DE66a27C3",
    token_address="0x9927809B61122B2af3f3b3A3303875e0687b8eE3",
    image_registry_address="0xeFA33c3976f31961285Ae4f5D10188616C912728",
    token_name="tECLD",
    trustedzone="ecld-pynithy-amoy",
    block_time=2,
    gas=GasPolicy(eip1559=True, max_fee_per_gas_wei=64 * GWEI, max_priority_fee_per_gas_wei=32 * GWEI),
    poa=True,
    explorer_url="https://amoy.polygonscan.com",
    confirmations=5,
)

IOTEX_TESTNET = Network(
    name="iotex_testnet",
    chain_id=4690,
    rpc_url="https://babel-api.testnet.iotex.io",
    protocol_address="0xD56385A97413Ed80E28B1b54A193b98F2C49c975",
    token_address="0x95Aa17fCFaAB75e8ed7d7DF218045795dCeB9c50",
    image_registry_address="0xa7467A6391816be9367a1cC52E0ef0c15FfE3cCC",
    token_name="tECLD",
    trustedzone="ecld-pynithy-iotex-testnet",
    block_time=5,
    gas=GasPolicy(eip1559=True, max_fee_per_gas_wei=1500 * GWEI, max_priority_fee_per_gas_wei=1 * GWEI),
    explorer_url="https://testnet.iotexscan.io",
    confirmations=2,
)

ETHEREUM_SEPOLIA = Network(
    name="ethereum_sepolia",
    chain_id=11155111,
    rpc_url="https://ethereum-sepolia-rpc.publicnode.com",
    protocol_address="0x798975F9FdD90A21Cb11Ac26F1377e1542c58f9c",
    token_address="0x2E27677fb67531eb09134fE331C27899f87ADe10",
    image_registry_address="0xa7E43a269E3307cf9d246b07df2B89CAA1b4C42F",
    token_name="tECLD",
    trustedzone="ecld-pynithy-ethereum-sepolia",
    block_time=30,
    gas=GasPolicy(eip1559=True, max_fee_per_gas_wei=15 * GWEI, max_priority_fee_per_gas_wei=1 * GWEI),
    explorer_url="https://sepolia.etherscan.io",
    confirmations=3,
    ipfs_intake_url=ETHERNITY_INTAKE,
)

ETHEREUM_SEPOLIA_UNSAFE = replace(
    ETHEREUM_SEPOLIA, name="ethereum_sepolia_unsafe", trustedzone="ecld-pynithy-ethereum-sepolia-unsafe"
)

LITVM_LITEFORGE = Network(
    name="litvm_liteforge",
    chain_id=4441,
    rpc_url="https://liteforge.rpc.caldera.xyz/infra-partner-http",
    protocol_address="0xE35991de1f2A435e29E70406FA2781b1AffCb168",
    token_address="0x95Aa17fCFaAB75e8ed7d7DF218045795dCeB9c50",
    image_registry_address="0xAf8Ce29103E1f59feDD49688ff070Ffc2346AF1D",
    token_name="tECLD",
    trustedzone="ecld-pynithy-litvm-testnet",
    block_time=1,
    gas=GasPolicy(eip1559=True, max_fee_per_gas_wei=2 * GWEI, max_priority_fee_per_gas_wei=0),
    confirmations=2,
    ipfs_intake_url=ETHERNITY_INTAKE,
)

LITVM_LITEFORGE_UNSAFE = replace(
    LITVM_LITEFORGE, name="litvm_liteforge_unsafe", trustedzone="ecld-pynithy-litvm-testnet-unsafe"
)

# Local devnet: addresses, RPC and chain id come from the connection `ethernity-devnet up` writes.
DEVNET = Network(
    name="devnet",
    chain_id=31337,
    rpc_url=None,
    protocol_address=None,
    token_address=None,
    image_registry_address=None,
    token_name="tETNY",
    trustedzone="etny-pynithy-devnet",
    block_time=1,
    gas=GasPolicy(eip1559=True, max_fee_per_gas_wei=100 * GWEI, max_priority_fee_per_gas_wei=1 * GWEI),
    ipfs_gateway_url=None,  # no internet: the devnet's gateway (if any) comes from the connection
)

# Any other EVM deployment of the protocol: everything comes from the connection.
CUSTOM = Network(
    name="custom",
    chain_id=None,
    rpc_url=None,
    protocol_address=None,
    token_address=None,
    image_registry_address=None,
    token_name="ETNY",
    trustedzone=None,
    block_time=5,
    gas=GasPolicy(eip1559=True, max_fee_per_gas_wei=500 * GWEI, max_priority_fee_per_gas_wei=2 * GWEI),
)

#: Every network by name (the ``*_unsafe`` ones are their base with the unsafe trustedzone).
NETWORKS: dict[str, Network] = {
    n.name: n
    for n in (
        BLOXBERG_TESTNET,
        BLOXBERG_TESTNET_UNSAFE,
        BLOXBERG_MAINNET,
        POLYGON_MAINNET,
        POLYGON_AMOY,
        IOTEX_TESTNET,
        ETHEREUM_SEPOLIA,
        ETHEREUM_SEPOLIA_UNSAFE,
        LITVM_LITEFORGE,
        LITVM_LITEFORGE_UNSAFE,
        DEVNET,
        CUSTOM,
    )
}


def _devnet_twin(real: Network, name: str) -> Network:
    """A devnet profile's network: the real network's behaviour (gas model, token model, block time,
    confirmations, POA) on the devnet's chain, with addresses, RPC and storage from the connection."""
    return replace(
        real,
        name=name,
        chain_id=DEVNET.chain_id,
        rpc_url=None,
        protocol_address=None,
        token_address=None,
        image_registry_address=None,
        trustedzone=DEVNET.trustedzone,
        mainnet=False,
        explorer_url=None,
        ipfs_intake_url=None,
        ipfs_gateway_url=None,
    )


# ``ethernity-devnet up --profile bloxberg|polygon`` writes these names into the connection.
NETWORKS["devnet_bloxberg"] = _devnet_twin(BLOXBERG_TESTNET, "devnet_bloxberg")
NETWORKS["devnet_polygon"] = _devnet_twin(POLYGON_AMOY, "devnet_polygon")


def check_trustedzone_pairing(network: Network, trustedzone: str | None) -> None:
    """The official runner's pairing rule, checked before anything is sent: a trustedzone ending in "-unsafe"
    runs without a CAS and only on an -unsafe network (``bloxberg_testnet_unsafe``, ...), and an -unsafe network
    runs only -unsafe trustedzones. ConfigurationError naming ``trustedzone`` and the network to use instead (the
    -unsafe twin, or the base network, when it exists). ``custom`` is not checked: its deployment is unknown.
    """
    if not trustedzone or network.name == "custom":
        return
    unsafe_zone = trustedzone.endswith(UNSAFE_TRUSTEDZONE_SUFFIX)
    if unsafe_zone and not network.is_unsafe:
        twin = NETWORKS.get(network.name + UNSAFE_NETWORK_SUFFIX)
        if twin is not None:
            raise ConfigurationError(
                f"trustedzone={trustedzone!r} runs without a CAS, only on an -unsafe network: use network "
                f"{twin.name!r} (the -unsafe twin of {network.name!r}) instead of {network.name!r}"
            )
        unsafe = ", ".join(sorted(n for n in NETWORKS if n.endswith(UNSAFE_NETWORK_SUFFIX)))
        raise ConfigurationError(
            f"trustedzone={trustedzone!r} runs without a CAS, only on an -unsafe network, and network "
            f"{network.name!r} has no -unsafe twin (the -unsafe networks: {unsafe}); use a trustedzone provisioned "
            "by a CAS on this network"
        )
    if network.is_unsafe and not unsafe_zone:
        base = network.name.removesuffix(UNSAFE_NETWORK_SUFFIX)
        default = NETWORKS.get(network.name, network).trustedzone
        raise ConfigurationError(
            f"trustedzone={trustedzone!r} is provisioned by a CAS, and network {network.name!r} runs only -unsafe "
            f"trustedzones (such as {default!r}): use network {base!r} for this trustedzone"
        )


def get_network(name: str) -> Network:
    """Look a network up by name (case-insensitive; ``BLOXBERG/TESTNET`` style also accepted)."""
    key = (name or "").strip().lower().replace("/", "_").replace("-", "_")
    try:
        return NETWORKS[key]
    except KeyError:
        raise ConfigurationError(f"network={name!r} is unknown: allowed {', '.join(sorted(NETWORKS))}") from None
