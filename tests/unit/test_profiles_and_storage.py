"""Devnet profiles as records, and the storage rules decided before paying (no devnet needed)."""

from __future__ import annotations

import pytest

from airflow_provider_ethernity.devnet.errors import DevnetError
from airflow_provider_ethernity.devnet.profiles import PROFILES, anvil_flags, get_profile
from airflow_provider_ethernity.protocol.errors import ConfigurationError
from airflow_provider_ethernity.protocol.networks import get_network
from airflow_provider_ethernity.protocol.settings import ClientSettings
from airflow_provider_ethernity.protocol.storage import named_cids, require_reachable_storage

ADDR = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DEVNET = dict(protocol_address=ADDR, image_registry_address=ADDR, rpc_url="http://127.0.0.1:8545")


def test_the_default_profile_is_todays_devnet():
    default = get_profile(None)
    assert default == PROFILES["default"] and default.network == "devnet" and default.block_time is None
    assert not (default.chain_front or default.public_ipfs or default.intake or default.approval_window)
    assert anvil_flags(default) == []


def test_profiles_reproduce_their_networks_and_take_overrides():
    bloxberg, polygon = get_profile("bloxberg"), get_profile("POLYGON")
    assert bloxberg.token_is_protocol and bloxberg.intake and bloxberg.block_time == 5
    assert anvil_flags(bloxberg) == ["--base-fee", "0"]
    assert not polygon.token_is_protocol and not polygon.intake and polygon.block_time == 2
    fast = bloxberg.with_overrides(block_time=1, approval_window=8, replica_lag=None)
    assert fast.block_time == 1 and fast.approval_window == 8 and fast.replica_lag == bloxberg.replica_lag
    with pytest.raises(DevnetError, match="unknown profile knob"):
        bloxberg.with_overrides(colour="blue")
    with pytest.raises(DevnetError, match="profile='moon' is unknown"):
        get_profile("moon")


def test_devnet_twins_behave_as_the_real_networks_on_the_devnet_chain():
    twin, real = get_network("devnet_bloxberg"), get_network("bloxberg_testnet")
    assert twin.chain_id == 31337 and twin.gas == real.gas and twin.confirmations == real.confirmations
    assert twin.protocol_address is None and twin.is_devnet
    settings = ClientSettings.build("devnet_bloxberg", **DEVNET)  # the protocol is the token without token_address
    assert settings.network.token_is_protocol and not settings.network.gas.eip1559
    polygon = ClientSettings.build("devnet_polygon", token_address="0x" + "11" * 20, block_time="1", **DEVNET)
    assert polygon.network.gas.eip1559 and not polygon.network.token_is_protocol and polygon.network.block_time == 1


@pytest.mark.parametrize(
    ("network", "api", "explicit", "public"),
    [
        ("devnet", "http://127.0.0.1:5001", None, True),  # the plain devnet's node shares the requester's IPFS
        ("polygon_amoy", "http://127.0.0.1:5001", None, False),
        ("polygon_amoy", "http://192.168.1.20:5001", None, False),
        ("polygon_amoy", "http://kubo:5001", None, False),
        ("polygon_amoy", "https://ipfs.example.com", None, True),
        ("polygon_amoy", "http://127.0.0.1:5001", "true", True),
        ("polygon_amoy", "https://ipfs.example.com", False, False),
    ],
)
def test_whether_nodes_can_read_the_ipfs_api(network, api, explicit, public):
    extra = DEVNET if network == "devnet" else {}
    settings = ClientSettings.build(network, ipfs_api_url=api, ipfs_public=explicit, **extra)
    assert settings.ipfs_public is public


def test_a_private_ipfs_is_refused_before_paying_unless_the_network_has_an_intake():
    private = ClientSettings.build("polygon_amoy", ipfs_api_url="http://127.0.0.1:5001")
    with pytest.raises(ConfigurationError, match=r"is private .*no public intake.*Nothing was sent"):
        require_reachable_storage(private)
    bloxberg = ClientSettings.build("bloxberg_testnet", ipfs_api_url="http://127.0.0.1:5001")
    assert bloxberg.uses_intake and bloxberg.ipfs_intake_url == "https://ipfs.ethernity.cloud/payload"
    require_reachable_storage(bloxberg)
    own = ClientSettings.build("bloxberg_testnet", ipfs_api_url="https://ipfs.example.com")
    assert not own.uses_intake  # a public API of one's own: uploads go there, as the runner's set_storage_ipfs
    with pytest.raises(ConfigurationError, match=r"ipfs_public=.maybe. is invalid"):
        ClientSettings.build("polygon_amoy", ipfs_public="maybe")


def test_named_cids_are_the_requests_challenge_code_and_input():
    m1 = "v3:bafyimage:etny-pynithy-devnet:bafycompose:bafkchallenge:0xabc"
    assert named_cids(m1, "v3:bafkcode:" + "0" * 64, "v3::" + "0" * 64) == ["bafkchallenge", "bafkcode"]
    assert named_cids("garbage", "v3:bafkcode:x", "v3:bafkinput:y") == ["bafkcode", "bafkinput"]
