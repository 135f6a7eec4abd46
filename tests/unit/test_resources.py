import pytest

from airflow_provider_ethernity.protocol.errors import ResourceValidationError
from airflow_provider_ethernity.protocol.resources import Resources


def test_defaults_match_the_official_runner():
    assert Resources().as_dict() == {
        "taskPrice": 10,
        "cpu": 1,
        "memory": 1,
        "storage": 40,
        "bandwidth": 1,
        "duration": 1,
        "validators": 1,
    }


def test_contract_args_follow_the_abi_order():
    spec = Resources(taskPrice=3, cpu=2, memory=4, storage=8, bandwidth=5, duration=6, validators=7)
    assert spec.contract_args() == (2, 4, 8, 5, 6, 7, 3)
    assert spec.price_wei == 3 * 10**18


def test_mapping_accepts_snake_case_and_digit_strings():
    spec = Resources.from_value({"task_price": "5", "cpu": 2.0, "duration": 300})
    assert (spec.taskPrice, spec.cpu, spec.duration) == (5, 2, 300)


@pytest.mark.parametrize(
    ("value", "field", "allowed"),
    [
        ({"cpu": 0}, "cpu", "1 to 255"),
        ({"cpu": 256}, "cpu", "1 to 255"),
        ({"taskPrice": -1}, "taskPrice", "1 to 255"),
        ({"duration": 65536}, "duration", "1 to 65535"),
        ({"memory": 1.5}, "memory", "1 to 255"),
        ({"storage": "lots"}, "storage", "1 to 255"),
        ({"validators": True}, "validators", "1 to 255"),
        ({"gpu": 1}, "gpu", "keys taskPrice"),
    ],
)
def test_invalid_values_name_the_field_and_range(value, field, allowed):
    with pytest.raises(ResourceValidationError) as info:
        Resources.from_value(value)
    assert info.value.field == field
    assert f"resources.{field}" in str(info.value)
    assert allowed in str(info.value)


def test_non_mapping_is_refused():
    with pytest.raises(ResourceValidationError, match="a mapping"):
        Resources.from_value([1, 2])  # type: ignore[arg-type]
