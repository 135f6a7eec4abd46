"""Bad inputs of every kind, checked before anything is spent: each row is the input, the error class expected,
the text the message must contain (the field and the allowed range or the cause) and the secret that must
not appear in it. Rows that need a chain or IPFS are in tests/integration/test_validation_devnet.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from airflow_provider_ethernity.protocol.crypto import HexDecoder, requester_public_key_hex, seal_result
from airflow_provider_ethernity.protocol.errors import (
    ConfigurationError,
    ResourceValidationError,
    ResultCorruptedError,
    ResultVerificationError,
    shown,
    shown_url,
)
from airflow_provider_ethernity.protocol.inputs import validate_code, validate_input_data
from airflow_provider_ethernity.protocol.ipfs import IpfsClient
from airflow_provider_ethernity.protocol.resources import Resources
from airflow_provider_ethernity.protocol.results import open_order_result
from airflow_provider_ethernity.protocol.rpc_errors import describe_rpc_failure, rpc_failure_error
from airflow_provider_ethernity.protocol.settings import ClientSettings

ADDR = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
KEY = "0x" + "5e" * 32
TOKEN = "tok-Secret-4711"
API_KEY = "apikey0123456789secret"
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
MiB = 1024**2


def settings(**overrides: Any) -> ClientSettings:
    """A devnet connection with the wallet key set, and ``overrides`` on top."""
    fields = {"rpc_url": "http://127.0.0.1:8545", "protocol_address": ADDR, "image_registry_address": ADDR}
    return ClientSettings.build("devnet", **{**fields, "private_key": KEY, **overrides})


def sealed_hex(text: str = "the task's result") -> str:
    return seal_result(text, requester_public_key_hex(KEY))


def open_hex(blob_hex: str) -> str:
    decoder = HexDecoder()
    decoder.write(blob_hex.encode("ascii"))
    return open_order_result(decoder, KEY, 7, CID)


def flip_middle_byte(blob_hex: str) -> str:
    middle = len(blob_hex) // 2
    return blob_hex[:middle] + format(int(blob_hex[middle : middle + 2], 16) ^ 0xFF, "02x") + blob_hex[middle + 2 :]


def http_error(status: int, url: str) -> requests.HTTPError:
    """What requests raises for an HTTP error status: its text quotes the whole URL (a key in its path)."""
    response = requests.Response()
    response.status_code, response.url = status, url
    return requests.HTTPError(f"{status} Client Error: Not Found for url: {url}", response=response)


def undecodable_json() -> json.JSONDecodeError:
    """What web3 8 raises when the RPC answers an HTML page with status 200."""
    body = f"<html><body>Sign in, {API_KEY}</body></html>"
    return json.JSONDecodeError(f"Could not decode {body!r}", body, 0)


@dataclass(frozen=True)
class Row:
    kind: str
    call: Callable[[], Any]
    error: type[Exception]
    must_say: tuple[str, ...]
    secret: str = KEY[2:]


ROWS = [
    # item 6 and resource types
    Row("alias and canonical key both given", lambda: Resources.from_value({"taskPrice": 2, "task_price": 200}),
        ResourceValidationError, ("resources.taskPrice=2", "resources.task_price=200", "one key per field")),
    Row("two aliases of one field", lambda: Resources.from_value({"task_price": 2, "TaskPrice": 3}),
        ResourceValidationError, ("resources.task_price", "resources.TaskPrice")),
    Row("superscript digit", lambda: Resources.from_value({"cpu": "²"}),
        ResourceValidationError, ("resources.cpu='²'", "an integer from 1 to 255")),
    Row("other-script digits", lambda: Resources.from_value({"memory": "\u0663"}),
        ResourceValidationError, ("resources.memory", "an integer from 1 to 255")),
    Row("bool resource", lambda: Resources.from_value({"cpu": True}),
        ResourceValidationError, ("resources.cpu=True", "1 to 255")),
    Row("fractional resource", lambda: Resources.from_value({"duration": 1.5}),
        ResourceValidationError, ("resources.duration=1.5", "1 to 65535")),
    Row("NaN resource", lambda: Resources.from_value({"storage": float("nan")}),
        ResourceValidationError, ("resources.storage=nan", "1 to 255")),
    Row("key pasted as a resource", lambda: Resources.from_value({"taskPrice": KEY}),
        ResourceValidationError, ("resources.taskPrice=<a str of 66 characters>", "1 to 255")),
    # item 9: connection fields
    Row("rpc_timeout not a number", lambda: settings(rpc_timeout="fast"),
        ConfigurationError, ("rpc_timeout='fast'", "greater than 0 and at most 3600")),
    Row("rpc_timeout negative", lambda: settings(rpc_timeout=-5),
        ConfigurationError, ("rpc_timeout=-5", "greater than 0 and at most 3600")),
    Row("rpc_timeout zero", lambda: settings(rpc_timeout="0"), ConfigurationError, ("rpc_timeout='0'",)),
    Row("rpc_timeout infinite", lambda: settings(rpc_timeout=float("inf")), ConfigurationError, ("rpc_timeout=inf",)),
    Row("rpc_timeout bool", lambda: settings(rpc_timeout=True), ConfigurationError, ("rpc_timeout=True",)),
    Row("ipfs_timeout not a number", lambda: settings(ipfs_timeout="slow"),
        ConfigurationError, ("ipfs_timeout='slow'", "at most 3600")),
    Row("ipfs_timeout over the bound", lambda: settings(ipfs_timeout=7200), ConfigurationError, ("ipfs_timeout=7200",)),
    Row("max_input_mb fractional", lambda: settings(max_input_mb=1.5),
        ConfigurationError, ("max_input_mb=1.5", "an integer from 1 to 90")),
    Row("max_input_mb other-script digit", lambda: settings(max_input_mb="\u0665"),
        ConfigurationError, ("max_input_mb", "an integer from 1 to 90")),
    Row("max_input_mb bool", lambda: settings(max_input_mb=True), ConfigurationError, ("max_input_mb=True",)),
    Row("chain_id true", lambda: settings(chain_id=True), ConfigurationError, ("chain_id=True", "a positive integer")),
    Row("chain_id fractional", lambda: settings(chain_id=31337.5),
        ConfigurationError, ("chain_id=31337.5", "a positive integer")),
    Row("chain_id fractional text", lambda: settings(chain_id="31337.5"), ConfigurationError, ("chain_id='31337.5'",)),
    Row("chain_id zero", lambda: settings(chain_id=0), ConfigurationError, ("chain_id=0", "a positive integer")),
    Row("key pasted into rpc_timeout", lambda: settings(rpc_timeout=KEY),
        ConfigurationError, ("rpc_timeout=<a str of 66 characters>",)),
    # item 8: the IPFS token and URLs
    Row("token with a newline inside", lambda: settings(ipfs_token=f"{TOKEN}\nX-Evil: 1"),
        ConfigurationError, ("ipfs_token", "character 16 of 25 is a control character"), secret=TOKEN),
    Row("token with a non-ASCII character", lambda: settings(ipfs_token=f"{TOKEN}é"),
        ConfigurationError, ("ipfs_token", "non-ASCII"), secret=TOKEN),
    Row("token not a string", lambda: settings(ipfs_token=4711), ConfigurationError, ("ipfs_token must be a string",),
        secret="4711"),
    Row("token straight into IpfsClient", lambda: IpfsClient("http://127.0.0.1:5001", f"{TOKEN}\r\n{TOKEN}"),
        ConfigurationError, ("ipfs_token",), secret=TOKEN),
    Row("rpc_url with a key and a space", lambda: settings(rpc_url=f"https://rpc.example/v3/{API_KEY} x"),
        ConfigurationError, ("rpc_url='https://rpc.example/…'", "not an http(s) URL"), secret=API_KEY),
    Row("ipfs_api_url of another scheme with a key", lambda: settings(ipfs_api_url=f"ftp://u:{API_KEY}@h/"),
        ConfigurationError, ("ipfs_api_url='ftp://***@h'",), secret=API_KEY),
    # item 9: code and input
    Row("code as bytes", lambda: validate_code(b"___etny_result___(1)"),
        ConfigurationError, ("code must be a str, got bytes",)),
    Row("code None", lambda: validate_code(None), ConfigurationError, ("code must be a str, got NoneType",)),
    Row("code empty", lambda: validate_code(" \n"), ConfigurationError, ("code is empty",)),
    Row("code with a lone surrogate", lambda: validate_code("x = '\udcff'  # secret-ish"),
        ConfigurationError, ("code is not valid Unicode text", "U+DCFF at character 6 of 21"), secret="secret-ish"),
    Row("code with NUL", lambda: validate_code("print(1)\0"), ConfigurationError, ("code contains a NUL", "9 of 9")),
    Row("input as bytes", lambda: validate_input_data(b"rows", MiB),
        ConfigurationError, ("input_data must be a str or None, got bytes",)),
    Row("input empty", lambda: validate_input_data("", MiB),
        ConfigurationError, ("input_data is an empty string", "allowed None for no input")),
    Row("input with a lone surrogate", lambda: validate_input_data("confidential\ud800", MiB),
        ConfigurationError, ("input_data is not valid Unicode text", "U+D800 at character 13 of 13"),
        secret="confidential"),
    Row("input surrogate past the first piece", lambda: validate_input_data("é" * MiB + "\udc80", 90 * MiB),
        ConfigurationError, ("input_data", f"at character {MiB + 1} of {MiB + 1}")),
    Row("input over max_input_mb", lambda: validate_input_data("é" * MiB, MiB),
        ConfigurationError, ("input_data is 2.0 MiB: allowed at most 1 MiB", "max_input_mb")),
    # item 9: result bytes
    Row("result truncated", lambda: open_hex(sealed_hex()[:-1]),
        ResultCorruptedError, (f"order 7: the result {CID} is truncated",)),
    Row("result corrupted", lambda: open_hex(flip_middle_byte(sealed_hex())),
        ResultCorruptedError, (f"order 7: the result {CID} is corrupted", "fails its authentication check")),
    Row("result too short", lambda: open_hex("00" * 20),
        ResultCorruptedError, (f"order 7: the result {CID} is corrupted", "20 bytes, shorter than the 72")),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.kind for r in ROWS])
def test_bad_input_names_the_field_and_never_the_secret(row: Row) -> None:
    with pytest.raises(row.error) as raised:
        row.call()
    message = str(raised.value)
    for text in row.must_say:
        assert text in message, f"{row.kind}: {message!r} does not say {text!r}"
    assert row.secret not in message and row.secret.lower() not in message.lower()
    if row.error is ResultCorruptedError:
        assert "wallet" not in message and "key" not in message, "a damaged result blames the key"
    assert raised.value.__cause__ is None, "a raw exception is chained under the message"


def test_result_corruption_is_a_verification_fault_not_a_key_problem() -> None:
    assert issubclass(ResultCorruptedError, ResultVerificationError)


def test_connection_text_fields_are_stripped() -> None:
    got = settings(
        rpc_url=" http://127.0.0.1:8545\n",
        ipfs_api_url="http://127.0.0.1:5001\n",
        ipfs_token=f"{TOKEN}\n",
        private_key=f" {KEY}\n",
        rpc_timeout="2.5",
        ipfs_timeout=" 90 ",
        chain_id="31337",
        max_input_mb="5",
    )
    assert (got.rpc_url, got.ipfs_api_url) == ("http://127.0.0.1:8545", "http://127.0.0.1:5001/api/v0")
    assert (got.ipfs_token, got.private_key) == (TOKEN, KEY)
    assert (got.rpc_timeout, got.ipfs_timeout, got.network.chain_id, got.max_input_bytes) == (2.5, 90.0, 31337, 5 * MiB)
    assert settings(ipfs_token=" \n").ipfs_token is None
    assert settings(chain_id=31337.0).network.chain_id == 31337


def test_good_values_pass_unchanged() -> None:
    assert Resources.from_value({"task_price": "5", "cpu": 2.0, "instances": 3}).contract_args()[5:] == (3, 5)
    assert validate_code("___etny_result___(1)") == "___etny_result___(1)"
    assert validate_input_data(None, 1) is None
    assert validate_input_data(" ", 1) == " "
    assert validate_input_data("é" * 10, 20) == "é" * 10
    assert open_hex(" 0x" + sealed_hex("héllo") + "\n") == "héllo"


@pytest.mark.parametrize(
    ("exc", "says"),
    [
        (undecodable_json(), "did not answer JSON-RPC: the answer is not JSON"),
        (http_error(404, f"https://rpc.example/v3/{API_KEY}"), "the answer is HTTP 404 Not Found"),
        (http_error(401, f"https://rpc.example/v3/{API_KEY}"), "HTTP 401 Unauthorized (check the API key"),
    ],
)
def test_an_rpc_that_does_not_answer_json_rpc_is_named_without_its_key(exc: Exception, says: str) -> None:
    url = f"https://rpc.example/v3/{API_KEY}"
    message = describe_rpc_failure(exc, url)
    assert says in message and "rpc_url='https://rpc.example/…'" in message
    assert API_KEY not in message
    error = rpc_failure_error(exc, url)
    assert isinstance(error, ConfigurationError) and str(error) == message


def test_other_rpc_failures_are_left_to_the_caller() -> None:
    assert rpc_failure_error(ConnectionError("refused"), "http://127.0.0.1:1") is None
    assert describe_rpc_failure(RuntimeError(API_KEY), f"http://h/{API_KEY}") == (
        "the RPC call to rpc_url='http://h/…' failed: RuntimeError"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [(KEY, "<a str of 66 characters>"), ("lots", "'lots'"), ("a\nb", "<a str of 3 characters>"), (1.5, "1.5"),
     ({"a": 1}, "<a dict of 1 items>"), (b"xy", "<a bytes of 2 items>")],
)  # fmt: skip
def test_values_are_shown_only_when_short_and_printable(value: object, text: str) -> None:
    assert shown(value) == text


@pytest.mark.parametrize(
    ("url", "text"),
    [
        (f"https://mainnet.example/v3/{API_KEY}", "https://mainnet.example/…"),
        (f"http://user:{API_KEY}@127.0.0.1:5001/api/v0", "http://***@127.0.0.1:5001/api/v0"),
        (f"http://127.0.0.1:8545/?key={API_KEY}", "http://127.0.0.1:8545/…"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("http://h:99999/x", "<an invalid URL>"),
    ],
)
def test_urls_are_shown_without_credentials_or_paths(url: str, text: str) -> None:
    assert shown_url(url) == text
