"""Airflow's real services on the devnet: 50-way fan-outs on a loaded machine and under chaos (killed task
processes, a restarted triggerer) through the REST API, and the UI in Chromium.

The module's ``airflow`` fixture (conftest) runs ``airflow api-server``, ``scheduler`` (LocalExecutor),
``dag-processor`` and ``triggerer`` on 127.0.0.1 against a fresh SQLite DB, with the example DAGs and
``[operators] default_deferrable = True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
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
#: mapped tasks per fan-out run (the field report's scale), and task processes the chaos run kills
LOADED_COUNT = 50
CHAOS_COUNT = 30
CHAOS_KILLS = 6
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
@contextlib.contextmanager
def cpu_load(processes: int = 2) -> Iterator[None]:
    """CPU-burning processes (the loaded 2-core machine of the field reports), stopped on exit."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def ended_in_triggerer(worker: list[dict[str, Any]]) -> bool:
    """Whether a successful task ended in the triggerer (``end_from_trigger``): it deferred saying the trigger would
    end it, and no worker resumed it. (The trigger's own last lines are no evidence either way: the triggerer can
    close a task's trigger log file before they reach it.)"""
    events = [str(e.get("event", "")) for e in worker]
    deferred_to_end = any(e.startswith("Deferring") and "it ends the task" in e for e in events)
    return deferred_to_end and not any(e.startswith("Resumed in a worker") for e in events)


def run_fan_out(
    airflow: AirflowServices,
    devnet: Devnet,
    monkeypatch: pytest.MonkeyPatch,
    count: int,
    during: Any = None,
    chaos: bool = False,
) -> dict[str, Any]:
    """One ``ethernity_fan_out`` run of ``count`` mapped tasks, checked: every result, one DO request per task
    instance (retries included), the balance down by exactly the prices, nothing left OPEN or BOOKED, the
    waits held by the triggerer, and (unless ``chaos``) every first try ended by its trigger, never resumed in a
    worker. ``during(task_instances)`` is called at every poll (chaos)."""
    from tests.integration.deferral import Ledger

    monkeypatch.setenv("AIRFLOW_CONN_ETHERNITY_DEFAULT", devnet.connection_json())
    ledger = Ledger()
    held_by_triggerer: set[int] = set()

    def record(tis: list[dict[str, Any]]) -> None:
        for ti in tis:
            if ti["task_id"] == "squares" and ti["state"] == "deferred" and ti.get("triggerer_job"):
                held_by_triggerer.add(ti["map_index"])
        if during is not None:
            during(tis)

    with airflow.client() as api:
        response = api.post(f"/dags/{FAN_OUT}/dagRuns", json={"logical_date": None, "conf": {"count": count}})
        assert response.status_code == 200, response.text
        run_id = response.json()["dag_run_id"]
        started = time.monotonic()
        run = wait_for_run(airflow, api, FAN_OUT, run_id, timeout=2400, on_poll=record)
        elapsed = time.monotonic() - started
        assert run["state"] == "success", failure_report(airflow, api, FAN_OUT, run_id)

        tis = task_instances(api, FAN_OUT, run_id)
        mapped = sorted((ti for ti in tis if ti["task_id"] == "squares"), key=lambda ti: ti["map_index"])
        assert [ti["map_index"] for ti in mapped] == list(range(count))
        assert {ti["state"] for ti in mapped} == {"success"}

        # results: dataset i is [i, i+1, i+2] (make_inputs), squared and summed in the enclave
        expected = [sum(n * n for n in (i, i + 1, i + 2)) for i in range(count)]
        assert [xcom(api, FAN_OUT, run_id, "squares", map_index=i) for i in range(count)] == expected
        assert xcom(api, FAN_OUT, run_id, "total") == sum(expected)

        # money: exactly one DO request per task instance (plus `total`), retries and kills included
        request_ids = [int(xcom(api, FAN_OUT, run_id, "squares", "do_request_id", i)) for i in range(count)]
        total_request = int(xcom(api, FAN_OUT, run_id, "total", "do_request_id"))
        assert len(set(request_ids)) == count
        assert sorted([*request_ids, total_request]) == list(range(ledger.requests, ledger.requests + count + 1))
        ledger.assert_paid_once(tasks=count + 1, price=1)

        # the triggerer held the waits: every mapped task deferred and its trigger fired in the triggerer; the
        # trigger ended the task with its result (one worker process per task), at least on every first try
        ended_there = 0
        for ti in mapped:
            worker, triggerer = task_log_files(airflow, FAN_OUT, run_id, "squares", ti["map_index"])
            deferrals = sum(1 for e in worker if str(e.get("event", "")).startswith("Pausing task as DEFERRED"))
            ours = [e for e in triggerer if str(e.get("logger", "")).startswith("airflow_provider_ethernity.triggers")]
            fired = sum(1 for e in triggerer if e.get("event") == "Trigger fired event")
            ended = ended_in_triggerer(worker)
            ended_there += ended
            assert deferrals >= 1, f"squares[{ti['map_index']}] never deferred"
            # a trigger that ends the task may have its log file closed before "Trigger fired event" reaches it
            assert ours and (fired >= 1 or ended), f"squares[{ti['map_index']}]: no trigger ran in the triggerer"
            assert ended or chaos or ti["try_number"] > 1, f"squares[{ti['map_index']}] resumed in a worker"
        assert held_by_triggerer, "no mapped task was ever seen deferred with a triggerer job"
        assert ended_there >= 1, "no task ended in the triggerer"
        retries = sum(ti["try_number"] - 1 for ti in mapped)
        summary = {
            "run_id": run_id,
            "seconds": round(elapsed),
            "retries": retries,
            "tasks_retried": sum(1 for ti in mapped if ti["try_number"] > 1),
            "ended_in_triggerer": ended_there,
        }
        print(f"\nfan-out of {count}: {summary}")
        return summary


@pytest.mark.timeout(5400)
def test_fan_out_of_50_three_runs_on_a_loaded_machine(airflow, devnet, monkeypatch) -> None:
    """Three 50-way fan-outs in a row while two CPU burners load the 2-core machine: each paid exactly once."""
    with cpu_load(2):
        runs = [run_fan_out(airflow, devnet, monkeypatch, LOADED_COUNT) for _ in range(3)]
    print(f"\nloaded fan-out runs: {runs}")


@pytest.mark.timeout(3600)
def test_fan_out_survives_killed_workers_and_a_triggerer_restart(airflow, devnet, monkeypatch) -> None:
    """Chaos: random task processes are SIGKILLed (at any line: before, during or after paying) and the
    triggerer is restarted once mid-run; every task instance still pays exactly once."""
    rng = random.Random(7)
    chaos = {"killed": 0, "triggerer_restarted": False}

    def strike(tis: list[dict[str, Any]]) -> None:
        running = airflow.task_processes()
        if running and chaos["killed"] < CHAOS_KILLS and rng.random() < 0.5:
            victim = rng.choice(running)
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
                chaos["killed"] += 1
        deferred = sum(1 for ti in tis if ti["state"] == "deferred")
        if not chaos["triggerer_restarted"] and deferred >= 1:
            airflow.restart("triggerer")
            chaos["triggerer_restarted"] = True

    summary = run_fan_out(airflow, devnet, monkeypatch, CHAOS_COUNT, during=strike, chaos=True)
    assert chaos["killed"] >= 1 and chaos["triggerer_restarted"], f"the chaos did not happen: {chaos}"
    print(f"\nchaos: {chaos}, {summary}")


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
