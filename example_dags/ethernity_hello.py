"""ethernity_hello: one confidential task, the hello world of Ethernity Cloud."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator

with DAG(
    dag_id="ethernity_hello",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    tags=["ethernity", "example"],
    doc_md=__doc__,
):
    EthernityRunTaskOperator(
        task_id="hello",
        code='___etny_result___("Hello, Python World!")',
        resources={"taskPrice": 2, "duration": 1},
    )
