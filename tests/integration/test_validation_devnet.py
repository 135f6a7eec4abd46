"""Bad inputs that need a chain or IPFS, against real components: an RPC that answers an HTML page with status
200 (a tiny HTTP server on 127.0.0.1), result bytes the node damaged on IPFS (the devnet agent's
``BLOB_TAMPER_KINDS``), and a devnet whose IPFS API requires a token (``Devnet(ipfs_token=...)``, what
``ethernity-devnet up --ipfs-token`` starts): its node agent must hold the token, or no task ever completes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from web3 import Web3

from airflow_provider_ethernity.devnet.network import Devnet
from airflow_provider_ethernity.devnet.node_agent import BLOB_TAMPER_KINDS
from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator
from airflow_provider_ethernity.protocol.errors import ConfigurationError, OperatorFaultError
from airflow_provider_ethernity.protocol.rpc_errors import describe_rpc_failure, rpc_failure_error
from tests.airflow_context import make_context
from tests.integration.conftest import set_conn
from tests.integration.deferral import Ledger

pytestmark = pytest.mark.integration
HELLO = '___etny_result___("Hello, Python World!")'
TOKEN = "devnet-ipfs-Token-4711"


def test_web3_against_an_html_page_is_described_naming_rpc_url(html_rpc: str) -> None:
    with pytest.raises(Exception) as raw:
        _ = Web3(Web3.HTTPProvider(html_rpc, request_kwargs={"timeout": 5})).eth.chain_id
    assert type(raw.value).__name__ == "JSONDecodeError", "web3 no longer raises what rpc_errors expects"
    message = describe_rpc_failure(raw.value, html_rpc)
    assert "rpc_url='http://127.0.0.1:" in message and "did not answer JSON-RPC: the answer is not JSON" in message
    assert "rpc-api-key" not in message and "nginx" not in message
    assert isinstance(rpc_failure_error(raw.value, html_rpc), ConfigurationError)


def test_test_connection_against_an_html_page_names_rpc_url(html_rpc, devnet_conn, monkeypatch) -> None:
    set_conn(monkeypatch, "html_rpc", devnet_conn, rpc_url=html_rpc)
    ok, message = EthernityHook("html_rpc").test_connection()
    assert not ok
    assert "did not answer JSON-RPC" in message and "rpc-api-key" not in message, message


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("corrupt_bytes", r"is corrupted: .*fails its authentication check"), ("truncate_bytes", r"is truncated")],
)
def test_damaged_result_bytes_name_the_order_and_cid_not_the_key(kind, reason, agent, devnet_conn) -> None:
    assert kind in BLOB_TAMPER_KINDS
    ledger = Ledger()
    agent.set_agent(tamper=[kind])
    context = make_context()
    operator = EthernityRunTaskOperator(task_id="damaged", code=HELLO, max_resubmits=0,
                                        poll_interval=0.2, completion_timeout=60)  # fmt: skip
    with pytest.raises(OperatorFaultError) as fault:
        operator.execute(context)
    message = str(fault.value)
    assert re.search(rf"order \d+: the result \w+ {reason}", message), message
    assert "wallet" not in message and "key" not in message
    assert devnet_conn["password"][2:] not in message
    assert "return_value" not in context["ti"].xcoms, "an unverified result reached XCom"
    assert ledger.requests_placed() == 1


# ---------------------------------------------------------------------------------------------- IPFS token
@pytest.fixture(scope="module")
def tokened_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """A second devnet whose IPFS API requires TOKEN, given with a pasted newline (it is stripped)."""
    net = Devnet(tmp_path_factory.mktemp("tokened-devnet"), ipfs_token=f"{TOKEN}\n", agent_max_task_seconds=20)
    net.start()
    try:
        yield net
    finally:
        net.stop()


def _tokened_conn(net: Devnet, monkeypatch: pytest.MonkeyPatch, token: str) -> EthernityHook:
    conn = json.loads(net.connection_json())
    conn["extra"]["ipfs_token"] = token
    monkeypatch.setenv("AIRFLOW_CONN_TOKENED", json.dumps(conn))
    return EthernityHook("tokened")


def test_a_devnet_with_an_ipfs_token_completes_a_task(tokened_devnet: Devnet, monkeypatch) -> None:
    assert tokened_devnet.ipfs_token == TOKEN
    assert json.loads((tokened_devnet.workdir / "agent.json").read_text())["ipfs_token"] == TOKEN
    hook = _tokened_conn(tokened_devnet, monkeypatch, f"{TOKEN}\n")  # a pasted newline is stripped
    ok, message = hook.test_connection()
    assert ok, message
    client = hook.client
    requests, tokens = int(client.protocol.functions._getDORequestsCount().call()), client.token_balance()

    result = hook.run_task(HELLO, resources={"taskPrice": 3}, order_wait_timeout=60, timeout=60, max_resubmits=0)

    assert result.success and result.value == "Hello, Python World!"
    assert int(client.protocol.functions._getDORequestsCount().call()) == requests + 1
    assert (tokens - client.token_balance()) == 3 * 10**18
    assert "HTTP 401" not in (tokened_devnet.workdir / "agent.log").read_text()


@pytest.mark.parametrize(
    ("token", "says"),
    [
        (f"{TOKEN}\nX-Injected: 1", "character 23 of 36 is a control character"),
        (f"{TOKEN}\u00e9", "non-ASCII"),
    ],
    ids=["newline inside", "non-ASCII"],
)
def test_an_illegal_token_is_named_but_never_shown(tokened_devnet, monkeypatch, token, says) -> None:
    ok, message = _tokened_conn(tokened_devnet, monkeypatch, token).test_connection()
    assert not ok
    assert "ipfs_token is not a legal HTTP header value" in message and says in message, message
    assert TOKEN not in message and "Illegal header" not in message


def test_a_wrong_token_is_refused_by_the_devnet_ipfs_without_showing_it(tokened_devnet, monkeypatch) -> None:
    ok, message = _tokened_conn(tokened_devnet, monkeypatch, "not-the-token-0123456789").test_connection()
    assert not ok
    assert "HTTP 401" in message and "check the connection's IPFS token" in message, message
    assert "not-the-token-0123456789" not in message
