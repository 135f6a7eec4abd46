"""ethernity_hello: one confidential task, the hello world of Ethernity Cloud.

Its sealed result is announced as an asset event ``ipfs://<result CID>`` through the alias
``ethernity_hello_results``: a DAG scheduled on that alias runs after each new result.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, AssetAlias

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
        outlets=[AssetAlias("ethernity_hello_results")],
    )
