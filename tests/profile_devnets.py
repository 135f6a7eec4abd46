"""The devnet of a profile as the profile tests run it: the profile's behaviour, faster than the real network."""

from __future__ import annotations

from pathlib import Path

from airflow_provider_ethernity.devnet.network import Devnet

#: Overrides of the profiles' real-network timings: 1 s blocks, an 8 s approval window, results pinned 3 s late.
BLOCK_TIME = 1
APPROVAL_WINDOW = 8.0
PIN_DELAY = 3.0


def profile_devnet(profile: str, workdir: Path) -> Devnet:
    """A devnet (not started) of ``profile`` with the test timings; everything else is the profile's."""
    return Devnet(
        workdir,
        profile=profile,
        block_time=BLOCK_TIME,
        approval_window=APPROVAL_WINDOW,
        result_pin_delay=PIN_DELAY,
        agent_max_task_seconds=20,
    )
