"""Airflow's real services on the devnet: a 20-way fan-out through the REST API, and the UI in Chromium.

The module's ``airflow`` fixture (conftest) runs ``airflow api-server``, ``scheduler`` (LocalExecutor),
``dag-processor`` and ``triggerer`` on 127.0.0.1 against a fresh SQLite DB, with the example DAGs and
``[operators] default_deferrable = True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from airflow_provider_ethernity.devnet.network import Devnet
from tests.services.airflow_services import AirflowServices
from tests.services.browser import Browser, browser_missing, open_browser

pytestmark = [pytest.mark.services, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
#: where the README's screenshots are written (``UPDATE_SCREENSHOTS=1``); otherwise into the test's tmp dir
SCREENSHOTS = ROOT / "docs" / "screenshots"
FAN_OUT = "ethernity_fan_out"
PARAMS = "ethernity_params"
COUNT = 20
UI_CONN_ID = "ethernity_ui"
#: the connection form's custom fields (labels from get_provider_info's conn-fields) and their extra keys
CONN_FIELDS = {
    "RPC URL": "rpc_url",
    "IPFS API URL": "ipfs_api_url",
    "Default trustedzone image": "trustedzone",
    "Protocol contract address": "protocol_address",
    "Token contract address": "token_address",
    "Image registry address": "image_registry_address",
    "Chain id": "chain_id",
}


# ---------------------------------------------------------------------------------------------- helpers
def protocol_contract(devnet: Devnet) -> Any:
    from web3 import Web3

    from airflow_provider_ethernity.protocol.abi import PROTOCOL, load_abi

    assert devnet.state is not None
    w3 = Web3(Web3.HTTPProvider(devnet.state.rpc_url))
    return w3.eth.contract(address=devnet.state.protocol_address, abi=load_abi(PROTOCOL))


def do_requests_count(devnet: Devnet) -> int:
    return int(protocol_contract(devnet).functions._getDORequestsCount().call())


def run_path(dag_id: str, run_id: str) -> str:
    return f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"


def task_instances(api: httpx.Client, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    response = api.get(f"{run_path(dag_id, run_id)}/taskInstances", params={"limit": 200})
    response.raise_for_status()
    return list(response.json()["task_instances"])


def xcom(api: httpx.Client, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1):
    response = api.get(
        f"{run_path(dag_id, run_id)}/taskInstances/{task_id}/xcomEntries/{key}", params={"map_index": map_index}
    )
    response.raise_for_status()
    value = response.json()["value"]
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


def task_log(api: httpx.Client, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int) -> list:
    """The structured log of one try: the worker's log and the triggerer's log for that task instance."""
    response = api.get(
        f"{run_path(dag_id, run_id)}/taskInstances/{task_id}/logs/{try_number}",
        params={"map_index": map_index, "full_content": True},
        headers={"Accept": "application/json"},
    )
    response.raise_for_status()
    return [entry for entry in response.json()["content"] if isinstance(entry, dict)]


def task_log_files(
    services: AirflowServices, dag_id: str, run_id: str, task_id: str, map_index: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The structured log lines of every try of a task instance: (the worker's, the triggerer's).

    Read from the log folder: after Airflow's stale-event race (see conftest) the retried task has no
    history row for its first try, so the REST API answers 404 for that try's log.
    """
    folder = services.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        folder /= f"map_index={map_index}"
    worker: list[dict[str, Any]] = []
    triggerer: list[dict[str, Any]] = []
    for path in sorted(folder.glob("attempt=*.log*")):
        lines = triggerer if ".log.trigger." in path.name else worker
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    lines.append(entry)
    return worker, triggerer


def wait_for_run(
    services: AirflowServices,
    api: httpx.Client,
    dag_id: str,
    run_id: str,
    timeout: float,
    on_poll: Any = None,
) -> dict[str, Any]:
    """Poll the run until it ends; ``on_poll(task_instances)`` sees every snapshot."""
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        services.check_alive()
        run = api.get(run_path(dag_id, run_id)).json()
        if on_poll is not None:
            on_poll(task_instances(api, dag_id, run_id))
        if run.get("state") in ("success", "failed"):
            return run
        time.sleep(2)
    states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in task_instances(api, dag_id, run_id)}
    pytest.fail(
        f"{dag_id} run {run_id} still {run.get('state')} after {timeout:g} s: {states}\n"
        f"{services.log_tail('scheduler')}"
    )


def failure_report(services: AirflowServices, api: httpx.Client, dag_id: str, run_id: str) -> str:
    lines = []
    for ti in task_instances(api, dag_id, run_id):
        if ti["state"] != "success":
            lines.append(f"{ti['task_id']}[{ti['map_index']}] {ti['state']} try {ti['try_number']}")
            with_errors = [
                e.get("event", "") + " " + json.dumps(e.get("error_detail", ""))[:600]
                for e in task_log(api, dag_id, run_id, ti["task_id"], max(1, ti["try_number"]), ti["map_index"])
                if e.get("level") in ("error", "critical")
            ]
            lines.extend(with_errors[-3:])
    return services.redact("\n".join(lines) + "\n" + services.log_tail("scheduler", 3000))


# ---------------------------------------------------------------------------------------------- fan-out
@pytest.mark.timeout(1800)
def test_fan_out_of_20_runs_in_the_real_scheduler_and_triggerer(airflow: AirflowServices, devnet: Devnet) -> None:
    before = do_requests_count(devnet)
    seen: dict[tuple[str, int], set[str]] = defaultdict(set)
    held_by_triggerer: set[int] = set()

    def record(tis: list[dict[str, Any]]) -> None:
        for ti in tis:
            seen[(ti["task_id"], ti["map_index"])].add(str(ti["state"]))
            if ti["task_id"] == "squares" and ti["state"] == "deferred" and ti.get("triggerer_job"):
                held_by_triggerer.add(ti["map_index"])

    with airflow.client() as api:
        response = api.post(f"/dags/{FAN_OUT}/dagRuns", json={"logical_date": None, "conf": {"count": COUNT}})
        assert response.status_code == 200, response.text
        run_id = response.json()["dag_run_id"]
        started = time.monotonic()
        run = wait_for_run(airflow, api, FAN_OUT, run_id, timeout=1500, on_poll=record)
        elapsed = time.monotonic() - started
        assert run["state"] == "success", failure_report(airflow, api, FAN_OUT, run_id)

        tis = task_instances(api, FAN_OUT, run_id)
        mapped = sorted((ti for ti in tis if ti["task_id"] == "squares"), key=lambda ti: ti["map_index"])
        assert [ti["map_index"] for ti in mapped] == list(range(COUNT))
        assert {ti["state"] for ti in mapped} == {"success"}

        # results: dataset i is [i, i+1, i+2] (make_inputs), squared and summed in the enclave
        expected = [sum(n * n for n in (i, i + 1, i + 2)) for i in range(COUNT)]
        assert [xcom(api, FAN_OUT, run_id, "squares", map_index=i) for i in range(COUNT)] == expected
        assert xcom(api, FAN_OUT, run_id, "total") == sum(expected)

        # exactly one DO request per mapped task (plus one for `total`), retries included
        request_ids = [int(xcom(api, FAN_OUT, run_id, "squares", "do_request_id", i)) for i in range(COUNT)]
        total_request = int(xcom(api, FAN_OUT, run_id, "total", "do_request_id"))
        after = do_requests_count(devnet)
        assert after - before == COUNT + 1, f"{after - before} DO requests on chain for {COUNT} + 1 tasks"
        assert sorted([*request_ids, total_request]) == list(range(before, after))

        # the triggerer held the waits: every mapped task deferred (the worker's log says so) and its triggers
        # ran and fired in the triggerer process (which writes its own log file for the task instance)
        for ti in mapped:
            worker, triggerer = task_log_files(airflow, FAN_OUT, run_id, "squares", ti["map_index"])
            deferrals = sum(1 for e in worker if str(e.get("event", "")).startswith("Pausing task as DEFERRED"))
            ours = [e for e in triggerer if str(e.get("logger", "")).startswith("airflow_provider_ethernity.triggers")]
            fired = sum(1 for e in triggerer if e.get("event") == "Trigger fired event")
            assert deferrals >= 2, f"squares[{ti['map_index']}] deferred {deferrals} times (order, completion)"
            assert ours and fired >= 1, f"squares[{ti['map_index']}]: no trigger ran in the triggerer"
        assert held_by_triggerer, f"no mapped task was ever seen deferred with a triggerer job: {dict(seen)}"

        retried = {ti["map_index"]: ti["try_number"] for ti in mapped if ti["try_number"] > 1}
        print(
            f"\nfan-out of {COUNT}: run succeeded in {elapsed:.0f} s; {len(held_by_triggerer)} mapped tasks seen "
            f"deferred in the triggerer while polling; retried (Airflow's stale-event race): {retried or 'none'}"
        )


# ---------------------------------------------------------------------------------------------- browser
def screenshot_dir(tmp_path: Path) -> Path:
    return SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / "screenshots"


def log_in(browser: Browser, services: AirflowServices) -> None:
    from tests.services.airflow_services import USERNAME

    browser.get(services.base_url + "/")
    browser.until(
        lambda d: "/auth/login" in d.current_url or d.find_elements("xpath", "//nav|//*[@aria-label='Admin']")
    )
    if "/auth/login" in browser.driver.current_url:
        browser.type_into(browser.xpath("//input[@name='username']"), USERNAME)
        browser.type_into(browser.xpath("//input[@name='password']"), services.password)
        browser.click(browser.button("Sign in"))
        browser.until(lambda d: "/auth/login" not in d.current_url, message="the login did not go through")
    browser.xpath("//button[@aria-label='Admin']")


@pytest.mark.timeout(900)
def test_connection_form_and_params_trigger_in_chromium(
    airflow: AirflowServices, devnet: Devnet, tmp_path: Path
) -> None:
    if reason := browser_missing():
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    shots = screenshot_dir(tmp_path)
    conn = json.loads(devnet.connection_json())
    words = ["triggered", "from", "chromium", secrets.token_hex(4)]
    expected_result = " ".join(w.upper() for w in words)

    with open_browser(tmp_path) as browser:
        try:
            # (a) the simple auth manager's login page
            log_in(browser, airflow)

            # (b) Admin -> Connections -> Add Connection, type Ethernity Cloud, the custom fields
            browser.click(browser.xpath("//button[@aria-label='Admin']"))
            browser.click(browser.xpath("//*[@role='menuitem'][normalize-space()='Connections'] | "
                                        "//a[normalize-space()='Connections']"))  # fmt: skip
            browser.until(lambda d: d.current_url.rstrip("/").endswith("/connections"))
            browser.click(browser.button("Add Connection"))
            form = browser.dialog("Add Connection")
            browser.type_into(browser.field("Connection ID", form), UI_CONN_ID)
            browser.choose(browser.field("Connection Type", form), "Ethernity", "Ethernity Cloud")
            browser.type_into(browser.field("Wallet private key", form), conn["password"])
            browser.click(browser.xpath(".//button[.//*[normalize-space()='Extra Fields']]", form))
            browser.choose(browser.field("Network", form), "devnet", "devnet")
            for label, key in CONN_FIELDS.items():
                browser.type_into(browser.field(label, form), str(conn["extra"][key]))
            for label in ("Network", "IPFS token", *CONN_FIELDS):
                assert browser.field_group(label, form).text.startswith(label), f"no visible {label!r} field"
            browser.scroll_to(browser.xpath(".//button[.//*[normalize-space()='Extra Fields']]", form), "start")
            browser.screenshot(shots / "connection-form.png")
            browser.click(browser.button("Save", form))
            browser.until(lambda _: not browser.visible("//*[@role='dialog'][.//h2[contains(., 'Add Connection')]]"),
                          message="the connection form stays open after Save")  # fmt: skip
            browser.xpath(f"//*[normalize-space()='{UI_CONN_ID}']")

            with airflow.client() as api:
                stored = api.get(f"/connections/{UI_CONN_ID}")
                assert stored.status_code == 200, stored.text
                body = stored.json()
                assert body["conn_type"] == "ethernity"
                extra = json.loads(body["extra"])
                # the REST API masks values whose key looks secret ("token_address" contains "token")
                for key, value in conn["extra"].items():
                    assert extra[key] in (value, "***"), f"extra.{key}={extra[key]!r}, expected {value!r}"
                assert extra["network"] == "devnet" and extra["chain_id"] == conn["extra"]["chain_id"]
                in_db = airflow.stored_connection(UI_CONN_ID)  # masked values: compare what the DB holds
                assert in_db["conn_type"] == "ethernity"
                assert in_db["password"] == conn["password"], "the private key was not stored as the password"
                assert {k: in_db["extra"].get(k) for k in conn["extra"]} == conn["extra"]

                # (c) the ethernity_params trigger form with a changed input
                browser.get(f"{airflow.base_url}/dags/{PARAMS}")
                browser.click(browser.button("Trigger"))
                trigger = browser.dialog("Trigger Dag")
                browser.type_into(browser.field("Input dataset", trigger), json.dumps(words))
                browser.scroll_to(
                    browser.xpath(".//button[.//*[normalize-space()='Run Parameters']]", trigger), "start"
                )
                browser.screenshot(shots / "trigger-form.png")
                submit = browser.xpath(".//button[@data-testid='trigger-dag-submit']", trigger)
                browser.until(lambda _: submit.is_enabled(), message="the trigger form does not validate")
                browser.click(submit)
                browser.until(lambda d: f"/dags/{PARAMS}/runs/" in d.current_url, message="no run page")
                run_id = unquote(browser.driver.current_url.split("/runs/", 1)[1].split("/")[0].split("?")[0])

                run = wait_for_run(airflow, api, PARAMS, run_id, timeout=600)
                assert run["state"] == "success", failure_report(airflow, api, PARAMS, run_id)
                assert run["conf"]["input"] == json.dumps(words)
                assert xcom(api, PARAMS, run_id, "run") == expected_result

            # (d) the page shows the successful run, and the task's XCom the changed result
            browser.driver.refresh()
            browser.xpath("//*[normalize-space()='Success']")
            browser.screenshot(shots / "run-success.png")
            browser.get(f"{airflow.base_url}/dags/{PARAMS}/runs/{quote(run_id, safe='')}/tasks/run/xcom")
            result_cell = browser.present(f"//*[@data-testid='xcom-value'][contains(., {json.dumps(expected_result)})]")
            browser.scroll_to(result_cell.find_element("xpath", "./ancestor::tr/td[1]"))  # the row, from its key
            browser.until(lambda _: result_cell.is_displayed(), message="the result stays hidden")
            browser.screenshot(shots / "run-result.png")

            with airflow.client() as api:  # the fan-out run of the other test, when it ran first
                fan_out_runs = api.get(f"/dags/{FAN_OUT}/dagRuns", params={"state": "success"}).json()["dag_runs"]
            if fan_out_runs:
                browser.get(f"{airflow.base_url}/dags/{FAN_OUT}/runs/{quote(fan_out_runs[-1]['dag_run_id'], safe='')}")
                browser.xpath("//*[normalize-space()='Success']")
                browser.screenshot(shots / "fan-out-run.png")
        except Exception:
            browser.save_source(tmp_path / "page.html")
            browser.screenshot(tmp_path / "failure.png")
            print(f"page source and screenshot of the failure: {tmp_path}")
            raise
