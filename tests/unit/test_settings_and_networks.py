import pytest

from airflow_provider_ethernity.get_provider_info import NETWORK_CHOICES, get_provider_info
from airflow_provider_ethernity.protocol.errors import ConfigurationError
from airflow_provider_ethernity.protocol.networks import NETWORKS, get_network
from airflow_provider_ethernity.protocol.settings import ClientSettings

ADDR = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_every_official_network_is_known():
    bloxberg = get_network("BLOXBERG/TESTNET")
    assert bloxberg.chain_id == 8995 and bloxberg.token_is_protocol and not bloxberg.gas.eip1559
    polygon = get_network("polygon_mainnet")
    assert polygon.chain_id == 137 and polygon.gas.eip1559 and not polygon.token_is_protocol
    assert set(NETWORK_CHOICES) == set(NETWORKS)


def test_unknown_network_lists_the_allowed_ones():
    with pytest.raises(ConfigurationError, match=r"network=.moon. is unknown: allowed .*bloxberg_testnet"):
        get_network("moon")


def test_devnet_needs_addresses():
    with pytest.raises(ConfigurationError, match="protocol_address is required"):
        ClientSettings.build("devnet", rpc_url="http://127.0.0.1:8545")


def test_malformed_address_and_key_are_refused_without_echoing_the_key():
    with pytest.raises(ConfigurationError, match="image_registry_address='0x123'"):
        ClientSettings.build("devnet", rpc_url="http://x", protocol_address=ADDR, image_registry_address="0x123")
    secret = "zz" * 32
    with pytest.raises(ConfigurationError, match=r"private key .* malformed") as info:
        ClientSettings.build("bloxberg_testnet", private_key=secret)
    assert secret not in str(info.value)


def test_settings_repr_hides_secrets():
    settings = ClientSettings.build(
        "devnet",
        rpc_url="http://127.0.0.1:1",
        protocol_address=ADDR,
        image_registry_address=ADDR,
        private_key="0x" + "ab" * 32,
        ipfs_api_url="http://127.0.0.1:5001",
        ipfs_token="tok-secret",
    )
    assert "ab" * 32 not in repr(settings) and "tok-secret" not in repr(settings)
    assert settings.ipfs_api_url == "http://127.0.0.1:5001/api/v0"
    assert settings.network.token_address == ADDR  # no separate token: the protocol is the token


def test_provider_info_declares_the_connection_form():
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-ethernity"
    (conn,) = info["connection-types"]
    assert conn["connection-type"] == "ethernity"
    fields = conn["conn-fields"]
    for name in (
        "network",
        "rpc_url",
        "ipfs_api_url",
        "ipfs_token",
        "trustedzone",
        "protocol_address",
        "token_address",
        "image_registry_address",
    ):
        assert name in fields
    assert fields["ipfs_token"]["schema"]["format"] == "password"
    assert fields["network"]["schema"]["enum"] == NETWORK_CHOICES
    assert conn["ui-field-behaviour"]["relabeling"]["password"] == "Wallet private key"
