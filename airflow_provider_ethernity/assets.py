"""The ``ipfs`` asset URI scheme (registered in the provider info): ``ipfs://<CID>`` names content on IPFS.

A task's sealed result is such content: the operator adds ``ipfs://<result CID>`` to every ``AssetAlias`` in
its ``outlets``, so a result can schedule downstream DAGs and shows in Airflow's asset views (the CID points
at the sealed bytes: only the wallet's key opens them). OpenLineage sees the same URI as a dataset in the
``ipfs`` namespace.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult

if TYPE_CHECKING:
    from airflow.sdk import Asset

SCHEME = "ipfs"
#: CIDv0 (``Qm`` + 44 base58 characters) or a CIDv1 in base32 (``b`` + lowercase base32).
_CID = re.compile(r"(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,})")


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's URI handler for ``ipfs://``: the host part must be a CID, nothing else may follow."""
    if not _CID.fullmatch(uri.netloc):
        raise ValueError(f"ipfs asset URI {uri.geturl()!r} does not name a CID: allowed ipfs://<CIDv0 or base32 CIDv1>")
    if uri.path not in ("", "/") or uri.query or uri.fragment:
        raise ValueError(f"ipfs asset URI {uri.geturl()!r}: allowed ipfs://<CID> only (no path, query or fragment)")
    return uri._replace(path="")


def create_asset(cid: str, extra: dict[str, Any] | None = None) -> Asset:
    """The asset of one piece of IPFS content."""
    from airflow.sdk import Asset

    return Asset(uri=f"{SCHEME}://{cid}", extra=extra or {})


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any) -> Any:
    """The OpenLineage dataset of an ``ipfs://`` asset: namespace ``ipfs``, name the CID."""
    from openlineage.client.event_v2 import Dataset

    return Dataset(namespace=SCHEME, name=asset.uri.split("://", 1)[1])
