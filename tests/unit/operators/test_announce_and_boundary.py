"""Result delivery without the devnet: value, reference, storage path; asset events; OpenLineage facets."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_provider_ethernity.operators.data_boundary import XCOM_WARN_BYTES, result_reference
from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator
from airflow_provider_ethernity.protocol.results import StoredResult
from airflow_provider_ethernity.protocol.submission import Phase, Submission

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def _sub() -> Submission:
    return Submission(fingerprint="f", challenge_salt="ab" * 16, price=2, duration=1, phase=Phase.COMPLETED,
                      do_request_id=4, order_id=9, request_tx="0xreq", approval_tx="0xapp")  # fmt: skip


def _result(value: object = "done", text: str = "done") -> SimpleNamespace:
    return SimpleNamespace(order_id=9, result_cid=CID, task_code_name="SUCCESS", value=value, text=text)


class _Recording:
    def __init__(self) -> None:
        self.added: list[tuple[object, dict]] = []

    def add(self, asset: object, extra: dict) -> None:
        self.added.append((asset, extra))


def test_the_result_by_value_by_reference_and_into_storage(tmp_path, capsys) -> None:
    sub = _sub()
    by_value = EthernityRunTaskOperator(task_id="v", code="x")
    assert by_value._result_value({}, sub, _result()) == "done"

    big = "x" * (XCOM_WARN_BYTES + 10)
    capsys.readouterr()
    assert by_value._result_value({}, sub, _result(big, big)) == big
    assert "goes into XCom" in capsys.readouterr().out  # Airflow's task logger writes to stdout

    ref = EthernityRunTaskOperator(task_id="r", code="x", result_mode="reference")
    assert ref._result_value({}, sub, _result()) == result_reference(sub, _result(), "ethernity_default")
    assert result_reference(sub, _result(), "c")["challenge_salt"] == sub.challenge_salt

    target = tmp_path / "new-folder" / "result.txt"
    to_file = EthernityRunTaskOperator(task_id="f", code="x", result_path=f"file://{target}")
    streamed = _StreamingLifecycle()
    stored = to_file._fetch_result(streamed, sub)  # type: ignore[arg-type]
    assert streamed.fetched == [] and target.read_text() == "the text"  # streamed, its folder created
    returned = to_file._result_value({}, sub, stored)
    assert returned == {"path": f"file://{target}", "result_cid": CID, "order_id": 9}
    assert by_value._fetch_result(streamed, sub) == "fetched"  # type: ignore[arg-type]


class _StreamingLifecycle:
    """``TaskLifecycle``'s two result paths: a value fetched, or the result streamed into a destination."""

    def __init__(self) -> None:
        self.fetched: list[Submission] = []

    def fetch_result(self, sub: Submission) -> str:
        self.fetched.append(sub)
        return "fetched"

    def write_result(self, sub: Submission, into) -> StoredResult:
        with into.open("wb") as out:
            out.write(b"the text")
        return StoredResult(order_id=9, success=True, task_code=0, task_code_name="SUCCESS", result_type="text",
                            result_cid=CID, checksum="c", enclave_challenge="e", signer="0x1", location=str(into),
                            size=8)  # fmt: skip


def test_inputs_are_staged_from_storage_and_from_ipfs(tmp_path) -> None:
    """``input_path`` is copied into a private temporary file (checked, hashed), never read into memory."""
    from airflow_provider_ethernity.hooks.ethernity import EthernityHook

    class _Ipfs:
        def cat_into(self, cid, sink_factory, max_bytes=None):
            sink = sink_factory()
            sink.write(f"content of {cid}".encode())
            return sink

    hook = SimpleNamespace(settings=SimpleNamespace(max_input_bytes=1024), client=SimpleNamespace(ipfs=_Ipfs()))
    source = tmp_path / "in.txt"
    source.write_text("from a file")
    staged = EthernityHook.stage_input(hook, f"file://{source}")  # type: ignore[arg-type]
    assert Path(staged.path).read_text() == "from a file" and staged.size == 11
    assert os.stat(staged.path).st_mode & 0o077 == 0, "the staged input is readable by other users"
    staged.discard()
    assert not os.path.exists(staged.path)
    from_ipfs = EthernityHook.stage_input(hook, f"ipfs://{CID}")  # type: ignore[arg-type]
    assert Path(from_ipfs.path).read_text() == f"content of {CID}"
    from_ipfs.discard()
    with pytest.raises(ValueError, match="names no CID"):
        EthernityHook.stage_input(hook, "ipfs://")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        EthernityHook.stage_input(hook, f"file://{tmp_path}/missing.txt")  # type: ignore[arg-type]
    (tmp_path / "bin").write_bytes(b"ok\xff\xfe")
    with pytest.raises(ValueError, match=r"not UTF-8 text \(byte 2\)"):
        EthernityHook.stage_input(hook, f"file://{tmp_path}/bin")  # type: ignore[arg-type]


def test_asset_events_go_through_asset_alias_outlets_only() -> None:
    from airflow.sdk import Asset, AssetAlias

    alias = AssetAlias("results")
    op = EthernityRunTaskOperator(task_id="a", code="x", outlets=[alias, Asset("s3://bucket/other")])
    events = {alias: _Recording()}
    op._announce_result({"outlet_events": events}, _sub(), _result())
    ((asset, extra),) = events[alias].added
    assert asset.uri == f"ipfs://{CID}" and extra == {"order_id": 9, "do_request_id": 4, "task_code": "SUCCESS"}


def test_openlineage_facets_from_what_the_run_recorded() -> None:
    op = EthernityRunTaskOperator(task_id="l", code="x")
    network = SimpleNamespace(name="devnet", chain_id=31337)
    op.__dict__["hook"] = SimpleNamespace(settings=SimpleNamespace(network=network), get_input_cid=lambda rid: CID)
    op._submission = _sub()
    op._result = (CID, "SUCCESS")
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("ipfs", CID)]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("ipfs", CID)]
    facet = lineage.run_facets["ethernity"]
    assert (facet.doRequestId, facet.orderId, facet.requestTx, facet.approvalTx) == (4, 9, "0xreq", "0xapp")

    def unreadable(rid: int) -> str:
        raise RuntimeError("rpc down")

    op.__dict__["hook"] = SimpleNamespace(settings=SimpleNamespace(network=network), get_input_cid=unreadable)
    assert op.get_openlineage_facets_on_complete(None).inputs == []  # lineage never fails the task
    empty = EthernityRunTaskOperator(task_id="e", code="x")
    empty.__dict__["hook"] = SimpleNamespace(settings=SimpleNamespace(network=network))
    assert empty.get_openlineage_facets_on_complete(None).run_facets["ethernity"].orderId is None
