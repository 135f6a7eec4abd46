"""The securelock (a dApp image run inside the trustedzone) and the runner's -unsafe trustedzone pairing rule:
the registry lookups, the task spec and its fingerprint, the connection field, the operator parameter."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_ethernity.get_provider_info import get_provider_info
from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator
from airflow_provider_ethernity.protocol.client import EthernityClient
from airflow_provider_ethernity.protocol.errors import ConfigurationError, EnclaveLookupError
from airflow_provider_ethernity.protocol.networks import NETWORKS, check_trustedzone_pairing, get_network
from airflow_provider_ethernity.protocol.resources import Resources
from airflow_provider_ethernity.protocol.settings import ClientSettings
from airflow_provider_ethernity.protocol.submission import TaskSpec

KEY = "0x" + "5a" * 32
ADDR = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
TZ, TZ_CERT = "etny-pynithy-devnet", "-----BEGIN CERTIFICATE-----\ntrustedzone\n-----END CERTIFICATE-----"
DAPP = "my-dapp"


# ------------------------------------------------------------------ the -unsafe pairing rule
def test_an_unsafe_trustedzone_on_a_network_with_a_twin_names_the_twin() -> None:
    with pytest.raises(ConfigurationError) as err:
        check_trustedzone_pairing(get_network("bloxberg_testnet"), "etny-pynithy-testnet-unsafe")
    message = str(err.value)
    assert message.startswith("trustedzone='etny-pynithy-testnet-unsafe' runs without a CAS")
    assert "use network 'bloxberg_testnet_unsafe'" in message


@pytest.mark.parametrize("network", ["polygon_mainnet", "polygon_amoy", "bloxberg_mainnet", "devnet", "devnet_polygon"])
def test_an_unsafe_trustedzone_on_a_network_without_a_twin_says_so(network: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        check_trustedzone_pairing(get_network(network), "ecld-pynithy-unsafe")
    message = str(err.value)
    assert (
        message.startswith("trustedzone='ecld-pynithy-unsafe'")
        and f"network {network!r} has no -unsafe twin" in message
    )
    assert "bloxberg_testnet_unsafe" in message  # where -unsafe trustedzones do run


@pytest.mark.parametrize(
    ("network", "base"),
    [
        ("bloxberg_testnet_unsafe", "bloxberg_testnet"),
        ("ethereum_sepolia_unsafe", "ethereum_sepolia"),
        ("litvm_liteforge_unsafe", "litvm_liteforge"),
    ],
)
def test_a_cas_trustedzone_on_an_unsafe_network_names_the_base_network(network: str, base: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        check_trustedzone_pairing(get_network(network), "etny-pynithy-testnet")
    message = str(err.value)
    assert message.startswith("trustedzone='etny-pynithy-testnet' is provisioned by a CAS")
    assert f"runs only -unsafe trustedzones (such as {NETWORKS[network].trustedzone!r})" in message
    assert f"use network {base!r}" in message


@pytest.mark.parametrize("name", sorted(n for n in NETWORKS if n != "custom"))
def test_every_network_pairs_with_its_own_trustedzone(name: str) -> None:
    check_trustedzone_pairing(NETWORKS[name], NETWORKS[name].trustedzone)


def test_custom_and_unset_are_not_checked() -> None:
    check_trustedzone_pairing(get_network("custom"), "anything-unsafe")
    check_trustedzone_pairing(get_network("custom"), "anything")
    check_trustedzone_pairing(get_network("bloxberg_testnet_unsafe"), None)


def test_the_connection_pairing_is_checked_when_its_settings_are_built() -> None:
    with pytest.raises(ConfigurationError, match="use network 'ethereum_sepolia_unsafe'"):
        ClientSettings.build("ethereum_sepolia", trustedzone="ecld-pynithy-ethereum-sepolia-unsafe")
    with pytest.raises(ConfigurationError, match="use network 'bloxberg_testnet'"):
        ClientSettings.build("bloxberg_testnet_unsafe", trustedzone="etny-pynithy-testnet")
    assert ClientSettings.build("bloxberg_testnet_unsafe").trustedzone == "etny-pynithy-testnet-unsafe"


def _client(network: str = "devnet", **extra: Any) -> EthernityClient:
    if network == "devnet" or network.startswith("devnet_"):
        extra = {"rpc_url": "http://127.0.0.1:1", "protocol_address": ADDR, "image_registry_address": ADDR, **extra}
    return EthernityClient(ClientSettings.build(network, private_key=KEY, **extra))


def test_a_task_trustedzone_is_checked_against_the_network_before_anything_is_sent() -> None:
    """The templated path: the operator's rendered trustedzone reaches the protocol core's task_spec."""
    client = _client("bloxberg_testnet")
    with pytest.raises(ConfigurationError, match="use network 'bloxberg_testnet_unsafe'"):
        client.task_spec("___etny_result___(1)", trustedzone="etny-pynithy-testnet-unsafe")
    unsafe = _client("bloxberg_testnet_unsafe")
    with pytest.raises(ConfigurationError, match="use network 'bloxberg_testnet'"):
        unsafe.task_spec("___etny_result___(1)", trustedzone="etny-pynithy-testnet")
    assert unsafe.task_spec("___etny_result___(1)").trustedzone == "etny-pynithy-testnet-unsafe"


def test_the_operator_checks_the_rendered_trustedzone_before_sending() -> None:
    op = EthernityRunTaskOperator(task_id="t", code="___etny_result___(1)", trustedzone="{{ params.tz }}")
    op.render_template_fields({"params": {"tz": "etny-pynithy-testnet-unsafe"}})
    hook = EthernityHook()
    hook.__dict__["client"] = _client("bloxberg_testnet")
    op.__dict__["hook"] = hook
    with pytest.raises(ConfigurationError, match="trustedzone='etny-pynithy-testnet-unsafe' runs without a CAS"):
        op.execute({})


# ------------------------------------------------------------------ names
@pytest.mark.parametrize("field", ["trustedzone", "securelock"])
@pytest.mark.parametrize("bad", ["a:b", "two words", "tab\there"])
def test_a_malformed_image_name_fails_at_operator_construction(field: str, bad: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{field}=.* is not an image registry name"):
        EthernityRunTaskOperator(task_id="t", code="x", **{field: bad})


def test_templated_image_names_are_left_for_execute() -> None:
    op = EthernityRunTaskOperator(task_id="t", code="x", trustedzone="{{ params.tz }}", securelock="{{ params.app }}")
    assert {"trustedzone", "securelock"} <= set(op.template_fields)
    op.render_template_fields({"params": {"tz": TZ, "app": DAPP}})
    assert (op.trustedzone, op.securelock) == (TZ, DAPP)


def test_a_malformed_connection_securelock_names_the_field() -> None:
    with pytest.raises(ConfigurationError, match=r"^securelock='a:b' is not an image registry name"):
        ClientSettings.build("bloxberg_testnet", securelock="a:b")


# ------------------------------------------------------------------ spec and fingerprint
BASE = TaskSpec("___etny_result___(1)", None, Resources.from_value({"taskPrice": 3}), TZ, "")


def test_the_fingerprint_covers_the_securelock() -> None:
    with_lock = dataclasses.replace(BASE, securelock=DAPP)
    assert with_lock.fingerprint() != BASE.fingerprint()
    assert with_lock.fingerprint() != dataclasses.replace(BASE, securelock="other-dapp").fingerprint()


def test_a_task_without_securelock_keeps_its_former_fingerprint() -> None:
    """In-flight retries across an upgrade still re-attach: the securelock is a part only when set."""
    import hashlib

    digest = hashlib.sha256()
    for part in (BASE.code, "\x00none", json.dumps(BASE.resources.as_dict(), sort_keys=True), TZ, ""):
        data = part.encode()
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    assert BASE.fingerprint() == digest.hexdigest()


def test_task_spec_takes_the_parameter_then_the_connection_and_folds_the_trustedzone_into_none() -> None:
    assert _client().task_spec("x").securelock == ""
    assert _client().task_spec("x", securelock=DAPP).securelock == DAPP
    assert _client(securelock="conn-dapp").task_spec("x").securelock == "conn-dapp"
    assert _client(securelock="conn-dapp").task_spec("x", securelock=DAPP).securelock == DAPP
    same = _client().task_spec("x", securelock=TZ)  # the runner's "securelock == trustedzone": the zone's own image
    assert same.securelock == "" and same.fingerprint() == _client().task_spec("x").fingerprint()


def test_the_operator_parameter_overrides_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"network": "devnet", "rpc_url": "http://127.0.0.1:1", "protocol_address": ADDR,
            "image_registry_address": ADDR, "securelock": "conn-dapp"}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_ETHERNITY_DEFAULT", json.dumps({"conn_type": "ethernity", "password": KEY,
                                                                     "extra": conn}))  # fmt: skip
    assert EthernityHook().settings.securelock == "conn-dapp"
    assert EthernityRunTaskOperator(task_id="a", code="x")._spec().securelock == "conn-dapp"
    assert EthernityRunTaskOperator(task_id="b", code="x", securelock=DAPP)._spec().securelock == DAPP


def test_the_connection_form_has_the_securelock_field() -> None:
    (conn_type,) = get_provider_info()["connection-types"]
    field = conn_type["conn-fields"]["securelock"]
    assert field["label"] == "Default securelock image" and field["schema"] == {"type": ["string", "null"]}
    assert "securelock" in __import__("airflow_provider_ethernity.hooks.ethernity", fromlist=["x"]).EXTRA_FIELDS


# ------------------------------------------------------------------ registry lookups
class FakeRegistry:
    """The two v3 views of the image registry over a dict {(function, name): row}; records the calls."""

    def __init__(self, rows: dict[tuple[str, str], tuple[str, str, str]]) -> None:
        self.calls: list[tuple[str, str, str]] = []

        def view(function: str) -> Any:
            def call(name: str, version: str) -> Any:
                self.calls.append((function, name, version))
                return SimpleNamespace(call=lambda: rows.get((function, name), ("", "", "")))

            return call

        self.functions = SimpleNamespace(
            getLatestTrustedZoneImageCertPublicKey=view("tz"), getLatestImageVersionPublicKey=view("image")
        )


def _with_registry(rows: dict[tuple[str, str], tuple[str, str, str]]) -> tuple[EthernityClient, FakeRegistry]:
    client, registry = _client(), FakeRegistry(rows)
    client.__dict__["image_registry"] = registry
    return client, registry


ROWS = {
    ("tz", TZ): ("bafy-tz-image", TZ_CERT, "bafy-tz-compose"),
    ("image", DAPP): ("bafy-dapp-image", "dapp-cert", "bafy-dapp-compose"),
}


def test_without_securelock_the_trustedzone_lookup_gives_image_cert_and_compose() -> None:
    client, registry = _with_registry(ROWS)
    enclave = client.get_enclave(TZ)
    assert (enclave.image_cid, enclave.certificate_pem, enclave.compose_cid) == ROWS[("tz", TZ)]
    assert registry.calls == [("tz", TZ, "v3")]
    client.get_enclave(TZ, TZ)  # securelock == trustedzone: the same single lookup
    assert registry.calls == [("tz", TZ, "v3")] * 2


def test_a_securelock_takes_its_image_and_compose_and_the_trustedzones_certificate() -> None:
    client, registry = _with_registry(ROWS)
    enclave = client.get_enclave(TZ, DAPP)
    assert (enclave.image_cid, enclave.certificate_pem, enclave.compose_cid) == (
        "bafy-dapp-image",
        TZ_CERT,  # the payload is sealed for the trustedzone, never for the dApp's own certificate
        "bafy-dapp-compose",
    )
    assert registry.calls == [("tz", TZ, "v3"), ("image", DAPP, "v3")]


def test_an_unknown_securelock_names_the_field() -> None:
    client, _ = _with_registry(ROWS)
    with pytest.raises(EnclaveLookupError) as err:
        client.get_enclave(TZ, "no-such-dapp")
    assert str(err.value).startswith("securelock='no-such-dapp' is not in the image registry")
    assert "check the securelock field" in str(err.value)


def test_an_unknown_trustedzone_names_the_field_even_with_a_securelock() -> None:
    client, registry = _with_registry(ROWS)
    with pytest.raises(EnclaveLookupError, match=r"^trustedzone='other-tz' is not in the image registry"):
        client.get_enclave("other-tz", DAPP)
    assert registry.calls == [("tz", "other-tz", "v3")]


def test_the_request_metadata_names_the_securelocks_image_and_the_trustedzone(monkeypatch) -> None:
    client, _ = _with_registry(ROWS)
    sealed_for: list[str] = []
    monkeypatch.setattr(client, "_seal_and_add", lambda data, cert, what: sealed_for.append(cert) or f"cid-{what}")
    captured: dict[str, Any] = {}
    client.__dict__["protocol"] = SimpleNamespace(
        functions=SimpleNamespace(_addDORequest=lambda *args: captured.setdefault("args", args))
    )
    spec = client.task_spec("___etny_result___(1)", securelock=DAPP)
    client.do_request_call(spec, client.get_enclave(spec.trustedzone, spec.securelock), "c" * 20)
    m1 = captured["args"][7]
    assert m1.split(":")[:5] == ["v3", "bafy-dapp-image", TZ, "bafy-dapp-compose", "cid-challenge"]
    assert sealed_for == [TZ_CERT, TZ_CERT]  # challenge and code sealed for the trustedzone
