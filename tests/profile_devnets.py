"""The devnet of a profile as the profile tests run it: the profile's behaviour, faster than the real network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_ethernity.devnet.network import Devnet

#: Overrides of the profiles' real-network timings: 1 s blocks, an 8 s approval window, results pinned 3 s late.
BLOCK_TIME = 1
APPROVAL_WINDOW = 8.0
#: The real networks' approval window (the fault suite's).
REAL_APPROVAL_WINDOW = 60.0
PIN_DELAY = 3.0


def profile_devnet(profile: str, workdir: Path, approval_window: float = APPROVAL_WINDOW) -> Devnet:
    """A devnet (not started) of ``profile`` with the test timings; everything else is the profile's."""
    return Devnet(
        workdir,
        profile=profile,
        block_time=BLOCK_TIME,
        approval_window=approval_window,
        result_pin_delay=PIN_DELAY,
        agent_max_task_seconds=20,
    )


#: The devnets a module runs on when it runs on every profile (the fault suite).
EVERY_PROFILE = ("default", "bloxberg", "polygon")


def started_devnet(
    profile: str,
    default: Devnet | None,
    tmp_path_factory: pytest.TempPathFactory,
    approval_window: float = APPROVAL_WINDOW,
) -> Iterator[Devnet]:
    """A fixture body: the session's ``default`` devnet, or a started devnet of ``profile`` stopped afterwards.
    The fault suite passes the real networks' 60 s ``approval_window`` (its faults are elsewhere; the window has
    its own tests), so a loaded machine's slow approval is not mistaken for one of them."""
    if profile == "default":
        assert default is not None, "the default profile needs the session's devnet"
        yield default
        return
    net = profile_devnet(profile, tmp_path_factory.mktemp(f"devnet-{profile}"), approval_window)
    net.start()
    try:
        yield net
    finally:
        net.stop()
