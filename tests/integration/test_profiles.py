"""The devnet profiles (``bloxberg``, ``polygon``): the provider against a devnet as hard as the real networks.

One devnet per profile (module scope), faster than the real networks through the overrides (1 s blocks, an 8 s
approval window, results pinned 3 s after the close), with everything else the profile's: token and gas model,
the public IPFS the node reads (and the intake on bloxberg), the chain front's replica lag and hidden closes.
The ``ethernity_default`` connection of these tests reads anvil directly (the ledger: no lag); the tasks use
``profile``, the connection ``ethernity-devnet up --profile`` writes.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator

import pytest

from airflow_provider_ethernity.devnet.network import Devnet
from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator
from airflow_provider_ethernity.protocol.client import EthernityClient
from airflow_provider_ethernity.protocol.errors import ConfigurationError, ResultNotReadyError
from airflow_provider_ethernity.protocol.events import OrderStatus, RequestStatus
from airflow_provider_ethernity.protocol.reclaim import reclaim
from airflow_provider_ethernity.protocol.settings import ClientSettings
from tests.airflow_context import FileStateStore, make_context
from tests.integration.deferral import Ledger, run_deferrable
from tests.integration.machines import run_on_two_machines
from tests.profile_devnets import APPROVAL_WINDOW, PIN_DELAY, started_devnet

pytestmark = pytest.mark.integration
HELLO = '___etny_result___("Hello, Python World!")'
HELLO_VALUE = "Hello, Python World!"


@pytest.fixture(scope="module", params=["bloxberg", "polygon"])
def profile_net(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    yield from started_devnet(request.param, None, tmp_path_factory)


@pytest.fixture
def conns(profile_net: Devnet, monkeypatch: pytest.MonkeyPatch) -> dict:
    """``profile``: the connection the devnet wrote; ``ethernity_default``: the same wallet on anvil directly."""
    conn = json.loads(profile_net.connection_json())
    direct = {**conn, "extra": {**conn["extra"], "rpc_url": profile_net.state.anvil_rpc_url}}
    monkeypatch.setenv("AIRFLOW_CONN_PROFILE", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_CONN_ETHERNITY_DEFAULT", json.dumps(direct))
    profile_net.hide_closes(profile_net.profile.hide_close_every)
    profile_net.set_replica_lag(profile_net.profile.replica_lag)
    return conn


def client_for(conn: dict, **extra: object) -> EthernityClient:
    return EthernityClient(ClientSettings.build(private_key=conn["password"], **{**conn["extra"], **extra}))


def nonce(client: EthernityClient) -> int:
    return int(client.w3.eth.get_transaction_count(client.address, "pending"))


def agent_log(net: Devnet) -> str:
    return (net.workdir / "agent.log").read_text(errors="replace")


def test_a_task_runs_with_the_networks_token_and_gas_model_and_a_result_pinned_late(profile_net, conns):
    """bloxberg: no approve, legacy gasPrice, artefacts through the intake; polygon: allowance, EIP-1559. The
    result's bytes appear 3 s after the close: read after they appear, never resubmitted."""
    ledger = Ledger()
    client = client_for(conns)
    before, first_block = nonce(client), ledger.client.w3.eth.block_number + 1  # blocks of this task
    result = client.run_task(HELLO, resources={"taskPrice": 3}, order_wait_timeout=60, timeout=120)
    assert result.success and result.value == HELLO_VALUE
    sent = nonce(client) - before
    requests = client.protocol.functions._getMyDORequests().call({"from": client.address})
    assert requests, "no DO request recorded"
    if profile_net.profile.name == "bloxberg":
        assert client.network.token_is_protocol and not client.network.gas.eip1559
        assert sent == 2, f"{sent} transactions: expected _addDORequest + _approveOrder, no approve"
        log_text = (profile_net.workdir / "public-ipfs-front.log").read_text()
        assert re.search(r"intake: pinned \w+ for DO request", log_text), "the intake was not used"
    else:
        assert not client.network.token_is_protocol and client.network.gas.eip1559
        assert sent == 3, f"{sent} transactions: expected approve + _addDORequest + _approveOrder"
    assert re.search(rf"pinned {PIN_DELAY:g} s after the close", agent_log(profile_net))
    ledger.assert_paid_once(tasks=1, price=3)
    assert_gas_fields(profile_net, client, wallet_transactions(ledger.client.w3, client.address, first_block), sent)


def test_two_machines_share_one_wallet_on_the_networks_blocks(profile_net, conns, tmp_path):
    """2 x 4 tasks at once from two machines, one wallet, through the chain front (replica lag) with 1 s blocks:
    both machines' sends sit pending in one block, so nonces collide and, on polygon, one machine's request can
    spend the allowance the other approved (a request mined and reverted is approved and sent again)."""
    ledger = Ledger()
    values = run_on_two_machines(tmp_path, HELLO, tasks_each=4, conn_id="profile", price=1)
    assert values == [HELLO_VALUE] * 8, values
    ledger.assert_paid_once(tasks=8, price=1)


def wallet_transactions(w3, address: str, first_block: int) -> list:
    """The transactions ``address`` sent in the blocks from ``first_block`` to the head (read on anvil itself)."""
    head = w3.eth.block_number
    return [tx for number in range(first_block, head + 1)
            for tx in w3.eth.get_block(number, True)["transactions"] if tx["from"] == address]  # fmt: skip


def assert_gas_fields(profile_net: Devnet, client: EthernityClient, txs: list, sent: int) -> None:
    """Every transaction of the wallet is legacy (type 0, gasPrice 2,000,000 wei) on bloxberg, EIP-1559 on polygon."""
    assert len(txs) == sent, f"{len(txs)} mined transactions of the wallet, {sent} sent"
    for tx in txs:
        if profile_net.profile.name == "bloxberg":
            assert tx["type"] == 0 and tx["gasPrice"] == 2_000_000, tx
        else:
            assert tx["type"] == 2 and tx["maxPriorityFeePerGas"] == client.network.gas.max_priority_fee_per_gas_wei


def test_artefacts_only_on_a_private_ipfs_fail_before_paying(profile_net, conns):
    """The requester's own loopback IPFS, no intake: nodes could not read it. Refused before any transaction."""
    client = client_for(
        conns, ipfs_api_url=profile_net.state.private_ipfs_api_url, ipfs_public=None, ipfs_intake_url=None
    )
    assert not client.settings.ipfs_public and not client.settings.uses_intake
    before = nonce(client)
    with pytest.raises(ConfigurationError, match=r"IPFS API .* is private .* Nothing was sent"):
        client.run_task(HELLO, resources={"taskPrice": 3}, order_wait_timeout=30, timeout=60)
    assert nonce(client) == before


def test_an_approval_later_than_the_nodes_window_leaves_the_escrow_booked_and_reclaim_reports_it(profile_net, conns):
    """The official node abandons an order not approved within its window: the escrow sits in a booked request."""
    client = client_for(conns)
    task = client.submit_task(HELLO, resources={"taskPrice": 2})
    order_id = client.wait_for_order(task, timeout=30)
    assert order_id is not None
    time.sleep(APPROVAL_WINDOW + 3)
    assert f"order {order_id} not approved within {APPROVAL_WINDOW:g} s: abandoned" in agent_log(profile_net)
    client.approve_order(order_id)  # too late: nobody processes it
    time.sleep(3)
    assert client.get_order_status(order_id) == OrderStatus.PROCESSING
    assert client.get_request_status(task.do_request_id) == RequestStatus.BOOKED
    report = reclaim(client_for(conns, rpc_url=profile_net.state.anvil_rpc_url), dry_run=True)
    (entry,) = [e for e in report.entries if e.do_request_id == task.do_request_id]
    assert entry.request_status is RequestStatus.BOOKED and entry.order_id == order_id and entry.locked


def test_deferred_task_under_replica_lag_hidden_closes_and_a_reorg_of_the_placement(profile_net, conns, tmp_path):
    """The deferrable operator: reads 3 blocks behind, the close event hidden (found by the status probe), and the
    order placement re-mined in another block by a reorg right after it was seen. Paid once."""
    profile_net.set_replica_lag(3)
    profile_net.hide_closes(1)  # every close
    ledger = Ledger()
    anvil = client_for(conns, rpc_url=profile_net.state.anvil_rpc_url)
    orders_before = anvil.orders_count()
    reorged: list[str] = []

    def reorg_after_placement() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if anvil.orders_count() > orders_before:
                time.sleep(1.5)
                reorged.extend(profile_net.reorg(2))
                return
            time.sleep(0.2)

    thread = threading.Thread(target=reorg_after_placement, daemon=True)
    thread.start()
    operator = EthernityRunTaskOperator(task_id="profile_deferred", code=HELLO, resources={"taskPrice": 4},
                                        ethernity_conn_id="profile", deferrable=True, poll_interval=0.5)  # fmt: skip
    context = make_context(store=FileStateStore(tmp_path / "state.json"))
    value, _triggers = run_deferrable(operator, context)
    thread.join(60)
    assert value == HELLO_VALUE
    assert reorged, "the reorg did not happen"
    stats = profile_net.front_stats()
    assert stats["hidden"] >= 1 and stats["lagged"] >= 1 and stats["reorgs"] >= 1
    ledger.assert_paid_once(tasks=1, price=4)


def test_a_reorg_after_the_close_was_seen_still_delivers_the_result_once(profile_net, conns):
    """The close is seen, then re-mined in another block by a reorg: the result is fetched, nothing resubmitted."""
    ledger = Ledger()
    client = client_for(conns)
    task = client.submit_task(HELLO, resources={"taskPrice": 5})
    order_id = client.wait_for_order(task, timeout=30)
    client.approve_order(order_id)
    assert client.wait_closed(order_id, task.from_block, timeout=60)
    profile_net.reorg(2)
    deadline = time.monotonic() + 60
    while True:  # the re-mined close reaches the lagging replica a few blocks later: "not yet", never a fault
        try:
            result = client.get_result(order_id, challenge_salt=task.challenge_salt)
            break
        except ResultNotReadyError:
            assert time.monotonic() < deadline, "the re-mined close never became readable"
            time.sleep(0.5)
    assert result.success and result.value == HELLO_VALUE
    ledger.assert_paid_once(tasks=1, price=5)
