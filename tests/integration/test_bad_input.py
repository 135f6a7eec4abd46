"""Bad input, through the operator a DAG author uses: each kind is refused with a message that names the field
(and the allowed range or the cause), and nothing reaches the chain (the wallet's nonce and the DO request
count are unchanged)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator
from tests.airflow_context import make_context
from tests.integration.conftest import set_conn
from tests.integration.deferral import do_requests_count, wallet_nonce

pytestmark = pytest.mark.integration
HELLO = '___etny_result___("Hello, Python World!")'
NOT_A_NODE = "0x000000000000000000000000000000000000dEaD"
#: Stands for the URL of the ``html_rpc`` server (an HTML page with status 200), known only when it runs.
HTML_RPC = "<html_rpc>"


@dataclass
class Case:
    kind: str
    match: str
    operator: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # connection extra overrides
    password: str | None = None
    render_in: str | None = None  # a template_searchpath: render the operator's templates first
    secret: str | None = None  # a secret besides the wallet key that the message must not contain


CASES = [
    Case("resource out of range", r"resources\.cpu=0 is invalid: allowed an integer from 1 to 255",
         operator={"resources": {"cpu": 0}}),
    Case("resource over its ABI type", r"resources\.duration=70000 is invalid: allowed an integer from 1 to 65535",
         operator={"resources": {"duration": 70000}}),
    Case("resource of the wrong type", r"resources\.memory='lots' is invalid: allowed an integer from 1 to 255",
         operator={"resources": {"memory": "lots"}}),
    Case("unknown resource key", r"resources\.gpu=1 is invalid: allowed keys taskPrice, cpu, memory",
         operator={"resources": {"gpu": 1}}),
    Case("resources not a mapping", r"resources='not json' is not a dict or JSON object",
         operator={"resources": "not json"}),
    Case("empty code", r"code is empty", operator={"code": "   \n"}),
    Case("missing .py file", r"code='code/missing_step\.py': the file was not found",
         operator={"code": "code/missing_step.py"}, render_in="."),
    Case("input not JSON-serializable", r"input_data: a set is not JSON serializable",
         operator={"input_data": {"rows": {1, 2}}}),
    Case("input over the size limit", r"input_data is 1\.0 MiB: allowed at most 1 MiB \(.*max_input_mb\)",
         operator={"input_data": "x" * (1024**2 + 10)}, extra={"max_input_mb": 1}),
    Case("malformed private key", r"private key \(connection password\) is malformed", password="0x1234"),
    Case("malformed contract address", r"protocol_address='0x12' is not a 0x-prefixed 20-byte hex address",
         extra={"protocol_address": "0x12"}),
    Case("address that holds no contract", r"token_address=0x\w{40} holds no contract on chain 31337",
         extra={"token_address": NOT_A_NODE}),
    Case("unknown network", r"network='moonnet' is unknown: allowed bloxberg_mainnet", extra={"network": "moonnet"}),
    Case("RPC URL of another scheme", r"rpc_url='ws://127\.0\.0\.1:8545' is not an http\(s\) URL",
         extra={"rpc_url": "ws://127.0.0.1:8545"}),
    Case("wrong chain id at the RPC", r"chain_id=8995 does not match the RPC: .* serves chain id 31337",
         extra={"chain_id": 8995}),
    Case("missing connection", r"does_not_exist", operator={"ethernity_conn_id": "does_not_exist"}),
    Case("trustedzone not in the registry", r"trustedzone='etny-nope' is not in the image registry",
         operator={"trustedzone": "etny-nope"}),
    Case("node address that is not a node", r"node_address=0x0+dEaD is not a registered node",
         operator={"node_address": NOT_A_NODE}),
    Case("malformed node address", r"node_address='0x12' is not a 0x-prefixed 20-byte hex address",
         operator={"node_address": "0x12"}),
    Case("max_input_mb out of range", r"max_input_mb='lots' is invalid: allowed an integer from 1 to 90",
         extra={"max_input_mb": "lots"}),
    Case("max_resubmits out of range", r"max_resubmits=11 is invalid: allowed an integer from 0 to 10",
         operator={"max_resubmits": 11}),
    Case("timeout not positive", r"order_wait_timeout=0 is invalid: allowed a positive number of seconds",
         operator={"order_wait_timeout": 0}),
    # issue 11, items 6, 8 and 9
    Case("resource alias and canonical key both given",
         r"resources\.taskPrice=2 and resources\.task_price=200 both set taskPrice: allowed one key per field",
         operator={"resources": {"taskPrice": 2, "task_price": 200}}),
    Case("resource digit outside ASCII", r"resources\.cpu='²' is invalid: allowed an integer from 1 to 255",
         operator={"resources": {"cpu": "²"}}),
    Case("resource with a fraction", r"resources\.memory=1\.5 is invalid: allowed an integer from 1 to 255",
         operator={"resources": {"memory": 1.5}}),
    Case("rpc_timeout not a number", r"rpc_timeout='fast' is invalid: allowed a number of seconds greater than 0",
         extra={"rpc_timeout": "fast"}),
    Case("rpc_timeout negative", r"rpc_timeout=-5 is invalid: allowed .* at most 3600", extra={"rpc_timeout": -5}),
    Case("ipfs_timeout not a number", r"ipfs_timeout='slow' is invalid: allowed a number of seconds",
         extra={"ipfs_timeout": "slow"}),
    Case("max_input_mb with a fraction", r"max_input_mb=1\.5 is invalid: allowed an integer from 1 to 90",
         extra={"max_input_mb": 1.5}),
    Case("chain_id true", r"chain_id=True is invalid: allowed a positive integer", extra={"chain_id": True}),
    Case("chain_id with a fraction", r"chain_id=31337\.5 is invalid: allowed a positive integer",
         extra={"chain_id": 31337.5}),
    Case("ipfs_token with a newline inside", r"ipfs_token is not a legal HTTP header value: character 10 of 16",
         extra={"ipfs_token": "tok-4711-\nX-Evil"}, secret="tok-4711-"),
    Case("RPC answering an HTML page", r"rpc_url='http://127\.0\.0\.1:\d+/…' did not answer JSON-RPC",
         extra={"rpc_url": HTML_RPC}, secret="rpc-api-key"),
    Case("code as bytes", r"code must be a str, got bytes", operator={"code": HELLO.encode()},),
    Case("code with a lone surrogate", r"code is not valid Unicode text: a lone surrogate U\+D800 at character 41",
         operator={"code": HELLO[:-1] + "\ud800)"}),
    Case("input with a lone surrogate", r"input_data is not valid Unicode text: a lone surrogate U\+DC80 at char",
         operator={"input_data": "rows\udc80"}, secret="rows"),
    Case("input an empty string", r"input_data is an empty string: .* allowed None for no input",
         operator={"input_data": ""}),
]  # fmt: skip


def _build_and_run(case: Case, tmp_path: Any) -> None:
    kwargs: dict[str, Any] = {"task_id": "bad", "code": HELLO, **case.operator}
    if case.render_in is None:
        EthernityRunTaskOperator(**kwargs).execute(make_context())
        return
    from airflow.sdk import DAG

    with DAG("bad_input", schedule=None, start_date=dt.datetime(2026, 1, 1), template_searchpath=[str(tmp_path)]):
        operator = EthernityRunTaskOperator(**kwargs)
    context = make_context()
    operator.render_template_fields(context)  # what the worker does before execute
    operator.execute(context)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.kind) for c in CASES])
def test_bad_input_is_refused_naming_the_field_before_any_transaction(
    case: Case, devnet, devnet_conn, monkeypatch, tmp_path, html_rpc
) -> None:
    if case.extra or case.password is not None:
        extra = {k: html_rpc if v == HTML_RPC else v for k, v in case.extra.items()}
        set_conn(monkeypatch, "bad_input", devnet_conn, password=case.password, **extra)
        case.operator.setdefault("ethernity_conn_id", "bad_input")
    nonce, requests = wallet_nonce(), do_requests_count()

    with pytest.raises(Exception) as refused:
        _build_and_run(case, tmp_path)

    message = str(refused.value)
    assert re.search(case.match, message), f"{case.kind}: {type(refused.value).__name__}: {message}"
    assert devnet_conn["password"][2:] not in message
    assert case.secret is None or case.secret not in message, "a secret is in the message"
    assert wallet_nonce() == nonce, "a transaction was sent"
    assert do_requests_count() == requests, "a DO request was placed"
