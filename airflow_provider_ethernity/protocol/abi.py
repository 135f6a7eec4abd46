"""The contract ABIs shipped as package data (the official protocol's ABIs)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

PROTOCOL = "protocol"
TOKEN = "token"
IMAGE_REGISTRY = "image_registry"


@cache
def load_abi(name: str) -> list[dict[str, Any]]:
    """Load ``abis/<name>.json`` (``protocol``, ``token`` or ``image_registry``)."""
    text = resources.files("airflow_provider_ethernity.protocol").joinpath(f"abis/{name}.json").read_text()
    abi: list[dict[str, Any]] = json.loads(text)
    return abi
