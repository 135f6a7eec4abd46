"""A securelock (a dApp image of the registry) run inside the devnet's trustedzone, on the real devnet."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_ethernity.devnet.network import SECURELOCK, TRUSTEDZONE
from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator
from airflow_provider_ethernity.protocol.errors import ConfigurationError, EnclaveLookupError
from airflow_provider_ethernity.protocol.metadata import parse_image_metadata
from tests.airflow_context import FileStateStore, make_context
from tests.integration.conftest import set_conn
from tests.integration.deferral import Ledger

pytestmark = pytest.mark.integration
HELLO = '___etny_result___("Hello, Python World!")'


def _registry(hook: EthernityHook, function: str, name: str) -> tuple[str, str, str]:
    image, cert, compose = getattr(hook.client.image_registry.functions, function)(name, "v3").call()
    return image, cert, compose


def _image_metadata(hook: EthernityHook, do_request_id: int):
    _owner, m1, _m2, _m3, _m4 = hook.client.protocol.functions._getDORequestMetadata(do_request_id).call()
    return parse_image_metadata(m1)


def test_the_devnet_publishes_a_dapp_image_beside_the_trustedzone(devnet, devnet_conn) -> None:
    hook = EthernityHook()
    assert devnet.state.securelock == SECURELOCK
    dapp = _registry(hook, "getLatestImageVersionPublicKey", SECURELOCK)
    zone = _registry(hook, "getLatestTrustedZoneImageCertPublicKey", TRUSTEDZONE)
    assert dapp[0].startswith("baf") and dapp[2].startswith("baf") and "BEGIN CERTIFICATE" in dapp[1]
    assert (dapp[0], dapp[2]) != (zone[0], zone[2]) and dapp[1] != zone[1]


def test_a_task_with_a_securelock_names_the_dapps_image_and_is_paid_once(agent, devnet_conn) -> None:
    hook = EthernityHook()
    ledger = Ledger()
    task = hook.submit_task(HELLO, resources={"taskPrice": 3}, securelock=SECURELOCK)
    image = _image_metadata(hook, task.do_request_id)
    dapp = _registry(hook, "getLatestImageVersionPublicKey", SECURELOCK)
    assert (image.image_cid, image.compose_cid) == (dapp[0], dapp[2])  # the dApp's image and compose file
    assert image.trustedzone == TRUSTEDZONE  # run inside the trustedzone, which opens the sealed payload
    order_id = hook.client.wait_for_order(task, timeout=120)
    assert order_id is not None
    hook.approve_order(order_id)
    assert hook.client.wait_closed(order_id, task.from_block, timeout=180)
    result = hook.get_result(order_id, challenge_salt=task.challenge_salt)
    assert result.success and result.value == "Hello, Python World!"
    ledger.assert_paid_once(tasks=1, price=3)


def test_the_operator_parameter_overrides_the_connections_securelock(agent, devnet_conn, monkeypatch) -> None:
    set_conn(monkeypatch, "ethernity_dapp", devnet_conn, securelock="no-such-dapp")
    ledger = Ledger()
    store = FileStateStore(Path(agent.workdir) / "state-securelock.json")
    operator = EthernityRunTaskOperator(
        task_id="dapp",
        code=HELLO,
        resources={"taskPrice": 2},
        securelock="{{ params.app }}",
        ethernity_conn_id="ethernity_dapp",
    )
    operator.render_template_fields({"params": {"app": SECURELOCK}})
    context = make_context(store=store)
    assert operator.execute(context) == "Hello, Python World!"
    hook = EthernityHook("ethernity_dapp")
    image = _image_metadata(hook, context["ti"].xcoms["do_request_id"])
    assert image.image_cid == _registry(hook, "getLatestImageVersionPublicKey", SECURELOCK)[0]
    ledger.assert_paid_once(tasks=1, price=2)


def test_an_unknown_securelock_fails_before_any_transaction(agent, devnet_conn, monkeypatch) -> None:
    ledger = Ledger()
    hook = EthernityHook()
    nonce = hook.client.w3.eth.get_transaction_count(hook.client.address, "pending")
    with pytest.raises(EnclaveLookupError, match=r"^securelock='no-such-dapp' is not in the image registry"):
        hook.run_task(HELLO, resources={"taskPrice": 2}, securelock="no-such-dapp", order_wait_timeout=30)
    set_conn(monkeypatch, "ethernity_dapp", devnet_conn, securelock="no-such-dapp")
    with pytest.raises(EnclaveLookupError, match="check the securelock field"):
        EthernityHook("ethernity_dapp").run_task(HELLO, resources={"taskPrice": 2}, order_wait_timeout=30)
    assert hook.client.w3.eth.get_transaction_count(hook.client.address, "pending") == nonce
    ledger.assert_paid_once(tasks=0, price=2)


def test_an_unsafe_trustedzone_on_the_devnet_fails_before_any_transaction(agent, devnet_conn) -> None:
    ledger = Ledger()
    with pytest.raises(ConfigurationError, match=r"network 'devnet' has no -unsafe twin"):
        EthernityHook().run_task(HELLO, trustedzone="etny-pynithy-devnet-unsafe", order_wait_timeout=30)
    ledger.assert_paid_once(tasks=0, price=1)
