"""ethernity_sensor_wait: submit without waiting, then collect the result with a sensor that starts and ends in
the triggerer (``start_from_trigger=True``): the sensor's task instance never gets a worker process."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator
from airflow_provider_ethernity.sensors.ethernity import EthernityTaskSensor

with DAG(dag_id="ethernity_sensor_wait", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False):
    submit = EthernityRunTaskOperator(
        task_id="submit",
        code='___etny_result___("waited in the triggerer")',
        wait_for_completion=False,
        resources={"taskPrice": 1},
    )
    collect = EthernityTaskSensor(task_id="collect", submit_task_id="submit", start_from_trigger=True, timeout=900)
    submit >> collect
