"""ethernity_confidential: a task whose data never enters Airflow's tables.

The input dataset is read at run time from ``input_path`` and the decrypted result is written to
``result_path`` (any ``ObjectStoragePath`` URI: ``file://``, ``s3://``, ``gs://``, ...; ``ipfs://<CID>`` for the
input). Airflow stores only the two paths (rendered fields, the run's conf) and the task's ids (XCom):
``confidential=True`` refuses an inline input or a result returned by value.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param

from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator

with DAG(
    dag_id="ethernity_confidential",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    tags=["ethernity", "example"],
    doc_md=__doc__,
    params={
        "input_path": Param("file:///tmp/ethernity-confidential/input.txt", type="string"),
        "result_path": Param("file:///tmp/ethernity-confidential/result.txt", type="string"),
    },
):
    EthernityRunTaskOperator(
        task_id="redact",
        code="___etny_result___(___etny_data_set___.upper())",
        input_path="{{ params.input_path }}",
        result_path="{{ params.result_path }}",
        confidential=True,
        resources={"taskPrice": 2, "duration": 1},
    )
