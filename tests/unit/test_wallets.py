"""Wallet pools in one connection: parsing, the deterministic wallet per task instance, and the hook's choice."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import pytest

from airflow_provider_ethernity import wallets
from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.protocol.errors import ConfigurationError

KEYS = ["0x" + f"{i:064x}" for i in range(1, 5)]


def conn(password: str) -> SimpleNamespace:
    extra = {"network": "devnet", "rpc_url": "http://127.0.0.1:8545", "ipfs_api_url": "http://127.0.0.1:5001",
             "protocol_address": "0x" + "11" * 20, "token_address": "0x" + "22" * 20, "chain_id": 31337,
             "image_registry_address": "0x" + "33" * 20, "trustedzone": "etny-pynithy-testnet"}  # fmt: skip
    return SimpleNamespace(password=password, extra_dejson=extra, host=None)


@pytest.mark.parametrize(
    "password", [json.dumps(KEYS), "\n".join(KEYS), ",".join(KEYS), "\n " + "\n\n".join(KEYS) + "\n"]
)
def test_pool_forms(password: str) -> None:
    assert wallets.parse_keys(password) == KEYS


def test_single_key_and_errors() -> None:
    assert wallets.parse_keys(KEYS[0]) == [KEYS[0]]
    assert wallets.parse_keys("") == []
    with pytest.raises(ValueError, match="same private key twice"):
        wallets.parse_keys("\n".join([KEYS[0], KEYS[0].removeprefix("0x")]))
    with pytest.raises(ValueError, match="JSON"):
        wallets.parse_keys("[not json")


def test_a_task_instance_keeps_its_wallet_and_tasks_spread() -> None:
    slots = [wallets.slot("dag", "run", "squares", i) for i in range(400)]
    chosen = [wallets.choose_key(KEYS, s) for s in slots]
    assert chosen == [wallets.choose_key(KEYS, s) for s in slots]  # deterministic, every try and process
    assert set(Counter(chosen)) == set(KEYS) and min(Counter(chosen).values()) > 60  # about 100 each
    assert wallets.choose_key(KEYS, None) == wallets.choose_key(KEYS, wallets.FIRST) == KEYS[0]
    assert wallets.choose_key([KEYS[0]], "anything") == KEYS[0]


def test_by_address() -> None:
    address = wallets.address_of(KEYS[2])
    assert wallets.choose_key(KEYS, address) == KEYS[2]
    assert wallets.choose_key(KEYS, address.lower()) == KEYS[2]
    with pytest.raises(ValueError, match="not in the connection's wallet pool"):
        wallets.choose_key(KEYS, "0x" + "ab" * 20)


def test_slot_of_task_instances() -> None:
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=3)
    assert wallets.slot_of(ti) == "d/r/t/3"
    assert wallets.slot_of(SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=None)) == "d/r/t/-1"
    assert wallets.slot_of(object()) is None
    assert wallets.current_slot() is None  # outside a running task


def test_the_hook_signs_with_the_chosen_wallet() -> None:
    pool = conn("\n".join(KEYS))
    slot = wallets.slot("dag", "run", "squares", 7)
    settings = EthernityHook.settings_from_connection(pool, slot)
    assert settings.private_key == wallets.choose_key(KEYS, slot)
    assert EthernityHook.settings_from_connection(pool).private_key == KEYS[0]
    assert EthernityHook.settings_from_connection(conn(KEYS[1]), slot).private_key == KEYS[1]  # one key: as before
    with pytest.raises(ConfigurationError, match="connection password"):
        EthernityHook.settings_from_connection(conn(json.dumps([*KEYS, KEYS[0]])))


def test_key_for_and_pool_keys_are_what_the_hook_uses() -> None:
    assert wallets.key_for(KEYS[0], "d/r/t/1") == KEYS[0]  # one key: itself, whatever the slot
    assert wallets.key_for(None, None) is None
    assert wallets.key_for("\n".join(KEYS), wallets.FIRST) == KEYS[0]
    assert wallets.pool_keys(KEYS[0]) == [] and wallets.pool_keys(json.dumps(KEYS)) == KEYS
    assert wallets.pool_keys("[not json") == []  # malformed: nothing to scrub, and key_for names the field
    with pytest.raises(ConfigurationError, match="connection password"):
        wallets.key_for("[not json", None)
