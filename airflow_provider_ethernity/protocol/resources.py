"""Resource specs of a DO request, validated against the protocol ABI's types before anything is spent."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from airflow_provider_ethernity.protocol.errors import ResourceValidationError, shown

UINT8_MAX = 2**8 - 1
UINT16_MAX = 2**16 - 1

#: field -> (ABI type, upper bound, meaning)
RESOURCE_FIELDS: dict[str, tuple[str, int, str]] = {
    "taskPrice": ("uint8", UINT8_MAX, "price in whole tokens, escrowed when the request is made"),
    "cpu": ("uint8", UINT8_MAX, "vCPUs"),
    "memory": ("uint8", UINT8_MAX, "memory in GB"),
    "storage": ("uint8", UINT8_MAX, "storage in GB"),
    "bandwidth": ("uint8", UINT8_MAX, "bandwidth units"),
    "duration": ("uint16", UINT16_MAX, "maximum run time in hours"),
    "validators": ("uint8", UINT8_MAX, "number of validators (instances)"),
}

_DIGITS = re.compile(r"[0-9]+")
_ALIASES = {"task_price": "taskPrice", "taskprice": "taskPrice", "instances": "validators", "mem": "memory"}


def _as_int(field: str, value: Any, upper: int) -> int:
    """``value`` as an int in 1..upper. Accepted: an int, an integral float (``2.0``) and a string of ASCII
    digits (``"2"``, as a templated or UI value arrives). Refused: bools, fractions, other digits (``"²"``)."""
    allowed = f"an integer from 1 to {upper}"
    if isinstance(value, bool):
        raise ResourceValidationError(field, value, allowed)
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None or not 1 <= number <= upper:
        raise ResourceValidationError(field, value, allowed)
    return number


def _canonical(key: object) -> str | None:
    """The resource field a key names (a field name as is, or a known alias, case-insensitively)."""
    text = str(key)
    return text if text in RESOURCE_FIELDS else _ALIASES.get(text.lower())


def _duplicate(name: str, first_key: str, first: Any, key: str, item: Any) -> ResourceValidationError:
    return ResourceValidationError(
        name,
        item,
        "one key per field",
        message=(
            f"resources.{first_key}={shown(first)} and resources.{key}={shown(item)} both set {name}: "
            f"allowed one key per field (give {name} once)"
        ),
    )


@dataclass(frozen=True)
class Resources:
    """What a task asks of a node, with the official runner's defaults."""

    taskPrice: int = 10
    cpu: int = 1
    memory: int = 1
    storage: int = 40
    bandwidth: int = 1
    duration: int = 1
    validators: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            _, upper, _ = RESOURCE_FIELDS[f.name]
            object.__setattr__(self, f.name, _as_int(f.name, getattr(self, f.name), upper))

    @classmethod
    def from_value(cls, value: Resources | Mapping[str, Any] | None) -> Resources:
        """Build from a mapping (camelCase as in the official runner, or snake_case); None gives defaults.

        Unknown keys are refused with the list of allowed ones; a field given twice (``taskPrice`` and
        ``task_price``) is refused naming both keys.
        """
        if value is None:
            return cls()
        if isinstance(value, Resources):
            return value
        if not isinstance(value, Mapping):
            raise ResourceValidationError("<root>", value, f"a mapping with keys {', '.join(RESOURCE_FIELDS)}")
        clean: dict[str, Any] = {}
        given_as: dict[str, str] = {}
        for key, item in value.items():
            name = _canonical(key)
            if name is None:
                raise ResourceValidationError(str(key), item, f"keys {', '.join(RESOURCE_FIELDS)}")
            if name in clean:  # an alias and its canonical key (or two aliases): never let the last one win
                raise _duplicate(name, given_as[name], clean[name], str(key), item)
            clean[name], given_as[name] = item, str(key)
        return cls(**clean)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def price_wei(self) -> int:
        """The ERC-20 amount escrowed: taskPrice whole tokens with 18 decimals."""
        return self.taskPrice * 10**18

    def contract_args(self) -> tuple[int, int, int, int, int, int, int]:
        """The first seven arguments of ``_addDORequest`` in ABI order."""
        return (self.cpu, self.memory, self.storage, self.bandwidth, self.duration, self.validators, self.taskPrice)
