"""The submission record and its stores: fingerprint, serialisation, and the fence of a superseded try."""

from __future__ import annotations

import dataclasses

import pytest

from airflow_provider_ethernity.protocol.resources import Resources
from airflow_provider_ethernity.protocol.submission import (
    FencedError,
    KeyValueSubmissionStore,
    MemorySubmissionStore,
    Phase,
    Submission,
    TaskSpec,
    new_salt,
)
from airflow_provider_ethernity.protocol.transactions import SignedTx
from tests.airflow_context import SupersededStore
from tests.unit.fakes import NODE, DictState

BASE = TaskSpec("___etny_result___(1)", "input", Resources.from_value({"taskPrice": 3}), "tz", NODE)


@pytest.mark.parametrize(
    "changed",
    [
        {"code": "___etny_result___(2)"},
        {"input_data": "other input"},
        {"input_data": None},
        {"resources": Resources.from_value({"taskPrice": 4})},
        {"resources": Resources.from_value({"taskPrice": 3, "cpu": 2})},
        {"trustedzone": "another-tz"},
        {"node_address": ""},
        {"node_address": "0x" + "33" * 20},
    ],
    ids=lambda c: ",".join(c),
)
def test_fingerprint_changes_with_each_covered_field(changed: dict) -> None:
    assert dataclasses.replace(BASE, **changed).fingerprint() != BASE.fingerprint()


def test_fingerprint_is_stable_and_ignores_the_node_address_case() -> None:
    same = dataclasses.replace(BASE, node_address=NODE.upper().replace("0X", "0x"))
    assert same.fingerprint() == BASE.fingerprint() == BASE.fingerprint()
    assert len(BASE.fingerprint()) == 64


def test_fingerprint_tells_no_input_from_an_empty_one_and_parts_cannot_shift() -> None:
    assert (
        dataclasses.replace(BASE, input_data="").fingerprint()
        != dataclasses.replace(BASE, input_data=None).fingerprint()
    )
    # a byte moved from the code to the input is another task (the parts are length-prefixed)
    a = dataclasses.replace(BASE, code="ab", input_data="c")
    b = dataclasses.replace(BASE, code="a", input_data="bc")
    assert a.fingerprint() != b.fingerprint()


def test_new_salt_is_fresh_hex() -> None:
    salts = {new_salt() for _ in range(20)}
    assert len(salts) == 20
    assert all(len(s) == 32 and int(s, 16) >= 0 for s in salts)


def _submission(**values) -> Submission:
    return Submission(fingerprint="f" * 64, challenge_salt="ab" * 16, price=3, duration=1, **values)


def test_submission_round_trips_through_json_with_its_intent() -> None:
    intent = SignedTx("_addDORequest", "0x" + "aa" * 32, 7, "0xf86c")
    sub = _submission(node_address=NODE, phase=Phase.ORDER_PLACED, intent=intent, do_request_id=5, order_id=9)
    data = sub.to_dict()
    assert data["phase"] == "order_placed"
    assert data["intent"] == {"label": "_addDORequest", "tx_hash": "0x" + "aa" * 32, "nonce": 7, "raw": "0xf86c"}
    back = Submission.from_dict(data)
    assert back == sub
    assert back.pinned and not _submission().pinned


def test_submission_from_dict_ignores_unknown_keys_and_defaults_the_phase() -> None:
    back = Submission.from_dict(
        {
            "fingerprint": "f",
            "challenge_salt": "s",
            "price": 1,
            "duration": 2,
            "added_later": 1,
            "refused_results": None,
        }
    )
    assert back.phase is Phase.SUBMITTING and back.intent is None


def test_memory_store_keeps_a_copy_not_the_object() -> None:
    store = MemorySubmissionStore()
    assert store.load() is None
    sub = _submission(do_request_id=1)
    store.save(sub)
    sub.do_request_id = 2  # a later change that was not saved
    assert store.load().do_request_id == 1


def test_key_value_store_saves_with_a_fresh_writer_and_loads_it_back() -> None:
    state = DictState()
    store = KeyValueSubmissionStore(state, "k")
    assert store.load() is None
    sub = _submission(do_request_id=4)
    store.save(sub)
    first = sub.writer
    store.save(sub)
    assert first and sub.writer and sub.writer != first
    assert state.data["k"]["writer"] == sub.writer
    assert store.load() == sub


def test_key_value_store_fences_a_try_that_cannot_read_its_state() -> None:
    state = DictState()
    state.fail_get = RuntimeError("API server says 404")
    with pytest.raises(FencedError, match=r"could not be read \(RuntimeError\); nothing was sent"):
        KeyValueSubmissionStore(state, "k").load()


def test_key_value_store_fences_a_failed_write() -> None:
    state = DictState()
    state.fail_set = OSError("refused")
    with pytest.raises(FencedError, match=r"could not be written \(OSError\).*superseded"):
        KeyValueSubmissionStore(state, "k").save(_submission())


def test_key_value_store_fences_a_superseded_try_whose_write_is_not_kept() -> None:
    superseded = SupersededStore()
    with pytest.raises(FencedError, match="did not keep this try's write"):
        KeyValueSubmissionStore(superseded, "k").save(_submission())
    assert superseded.writes == 1


def test_key_value_store_fences_when_another_writer_owns_the_record() -> None:
    state = DictState()
    state.foreign_writer = True
    with pytest.raises(FencedError, match="another try owns the submission"):
        KeyValueSubmissionStore(state, "k").save(_submission())


def test_key_value_store_fences_a_read_back_that_is_not_a_record() -> None:
    class Garbled(DictState):
        def get(self, key, default=None):
            return "not a dict"

    with pytest.raises(FencedError, match="did not keep this try's write"):
        KeyValueSubmissionStore(Garbled(), "k").save(_submission())
