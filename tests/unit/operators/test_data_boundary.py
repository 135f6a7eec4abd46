"""The operator's data-boundary parameters: refused combinations name the parameter at DAG parse time."""

from __future__ import annotations

import pytest

from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"result_mode": "inline"}, r"result_mode='inline' is invalid: allowed value, reference"),
        ({"input_data": "x", "input_path": "file:///x"}, "input_data and input_path are both set"),
        ({"confidential": True, "input_data": "x", "result_mode": "reference"}, "confidential=True with input_data"),
        ({"confidential": True, "input_path": "file:///x"}, "confidential=True needs result_path"),
    ],
)
def test_unsafe_or_contradictory_combinations_are_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        EthernityRunTaskOperator(task_id="t", code="x", **kwargs)


def test_confidential_with_paths_or_a_reference_is_accepted() -> None:
    EthernityRunTaskOperator(task_id="a", code="x", confidential=True, input_path="s3://b/in", result_path="s3://b/o")
    EthernityRunTaskOperator(task_id="b", code="x", confidential=True, result_mode="reference")
    op = EthernityRunTaskOperator(task_id="c", code="x", input_path="{{ params.src }}", result_path="{{ params.d }}")
    assert {"input_path", "result_path"} <= set(op.template_fields)
