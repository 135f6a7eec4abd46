import json
import subprocess
import sys

import pytest

from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.protocol.errors import ConfigurationError

KEY = "0x" + "5a" * 32
ADDR = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _set_conn(monkeypatch, conn_id="ethernity_default", password=KEY, **extra):
    value = json.dumps({"conn_type": "ethernity", "password": password, "extra": extra})
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)


def test_hook_identity():
    assert EthernityHook.conn_type == "ethernity"
    assert EthernityHook.conn_name_attr == "ethernity_conn_id"
    assert EthernityHook.default_conn_name == "ethernity_default"
    assert EthernityHook.hook_name == "Ethernity Cloud"


def test_settings_from_connection_accept_plain_and_prefixed_extras(monkeypatch):
    _set_conn(
        monkeypatch,
        network="devnet",
        rpc_url="http://127.0.0.1:8545",
        extra__ethernity__protocol_address=ADDR,
        image_registry_address=ADDR,
        chain_id="31337",
        ipfs_api_url="http://127.0.0.1:5001",
    )
    settings = EthernityHook().settings
    assert settings.network.name == "devnet" and settings.network.chain_id == 31337
    assert settings.network.protocol_address == ADDR
    assert settings.ipfs_api_url == "http://127.0.0.1:5001/api/v0"
    assert settings.private_key == KEY


def test_official_network_defaults(monkeypatch):
    _set_conn(monkeypatch, network="bloxberg_testnet")
    settings = EthernityHook().settings
    assert settings.rpc_url == "https://bloxberg.ethernity.cloud"
    assert settings.trustedzone == "etny-pynithy-testnet"


def test_unknown_network_names_the_field(monkeypatch):
    _set_conn(monkeypatch, network="atlantis")
    with pytest.raises(ConfigurationError, match="network='atlantis' is unknown"):
        _ = EthernityHook().settings


def test_missing_connection_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NOPE", raising=False)
    with pytest.raises(Exception, match="nope"):
        _ = EthernityHook("nope").settings


def test_test_connection_with_unreachable_rpc_fails_without_the_key(monkeypatch):
    _set_conn(
        monkeypatch,
        network="devnet",
        rpc_url="http://127.0.0.1:9",
        protocol_address=ADDR,
        image_registry_address=ADDR,
        ipfs_api_url="http://127.0.0.1:9",
    )
    from airflow_provider_ethernity.protocol.retry import RetryPolicy

    ok, message = EthernityHook(retry=RetryPolicy(attempts=2, initial=0.01, max_wait=0.02)).test_connection()
    assert not ok
    assert "127.0.0.1:9" in message and "unreachable" in message
    assert KEY not in message and KEY[2:] not in message


def test_test_connection_with_malformed_key(monkeypatch):
    _set_conn(monkeypatch, password="not-a-key", network="bloxberg_testnet")
    ok, message = EthernityHook().test_connection()
    assert not ok and "private key" in message and "not-a-key" not in message


def test_importing_the_hook_module_is_cheap_enough_for_dag_files():
    """The protocol client imports web3 lazily: the hook module itself must not import it."""
    code = "import sys, airflow_provider_ethernity.hooks.ethernity; print('web3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture(scope="module")
def api_client():
    """The real Airflow API app (in process) over a freshly migrated metadata DB in the test AIRFLOW_HOME."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    return TestClient(create_app("core"))


def test_api_server_hook_meta_serves_the_ethernity_form(api_client):
    response = api_client.get("/ui/connections/hook_meta")
    assert response.status_code == 200
    (meta,) = [m for m in response.json() if m["connection_type"] == "ethernity"]
    assert meta["hook_name"] == "Ethernity Cloud"
    assert meta["standard_fields"]["password"] == {
        "hidden": False,
        "title": "Wallet private key",
        "placeholder": "0x… private key of the paying wallet (64 hex characters)",
    }
    assert meta["standard_fields"]["host"]["hidden"] and meta["standard_fields"]["login"]["hidden"]
    extra = meta["extra_fields"]
    assert extra["network"]["schema"]["enum"][-2:] == ["devnet", "custom"]
    assert extra["ipfs_token"]["schema"]["format"] == "password"
    assert extra["rpc_url"]["schema"]["title"] == "RPC URL"
    assert {"ipfs_api_url", "trustedzone", "protocol_address", "token_address", "image_registry_address"} <= set(extra)
