"""CIDs computed locally agree with the official runner's ``unixfs_cid`` (values produced by it once)."""

from __future__ import annotations

import random

import pytest

from airflow_provider_ethernity.protocol.cid import BLOCK_SIZE, compute_cid, compute_file_cid

# ethernity_cloud_runner_py.ipfs.unixfs_cid(random.Random(7).randbytes(n)) for each n, in sequence.
RUNNER_CIDS = {
    0: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    1: "bafkreiemev2isidd7gk7352wxtqh6rwbuumt4vgnkkbx5wi6giaizt2bvq",
    262144: "bafkreicub6sz7p3epafupiwg6bpnhyxquerfwcqfzgopm2dnkztff3krre",
    262145: "bafybeig7vznhvwg2zj6w6szlqrqvh4cnn3nqnbsbbqzerjwsebyom6jlca",
    3 * 1024 * 1024: "bafybeibbcuaukgozbzvz7dfqm7gxzydrlwa5qr3fagoqsexzrzz4kszmvq",
    174 * BLOCK_SIZE + 5: "bafybeiddgxddpadwdh6ctowgbuds6fkdc62uphmwf5krl3dhwhyprmbsca",  # two tree levels
}


@pytest.fixture(scope="module")
def blobs() -> dict[int, bytes]:
    rng = random.Random(7)
    return {size: rng.randbytes(size) for size in RUNNER_CIDS}


@pytest.mark.parametrize("size", list(RUNNER_CIDS))
def test_cid_matches_the_official_runner(size: int, blobs: dict[int, bytes], tmp_path) -> None:
    assert compute_cid(blobs[size]) == RUNNER_CIDS[size]
    path = tmp_path / "blob"
    path.write_bytes(blobs[size])
    assert compute_file_cid(path) == RUNNER_CIDS[size]


def test_golden_vector_cids() -> None:
    """The runner's CIDs of the sealed artefacts (challenge, code, input) in the golden vectors."""
    import json
    from pathlib import Path

    vectors = json.loads((Path(__file__).parents[1] / "golden" / "vectors.json").read_text())
    cases = [c for c in vectors["sealed_for_enclave"]["cases"] if c.get("name") in ("challenge", "code", "input")]
    assert len(cases) == 3
    for case in cases:
        assert compute_cid(case["sealed"].encode()) == case["cid"], case["name"]
