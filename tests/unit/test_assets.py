"""The ``ipfs`` asset URI scheme the provider registers."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from airflow_provider_ethernity.assets import convert_asset_to_openlineage, create_asset, sanitize_uri

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def test_a_cid_is_an_asset_uri() -> None:
    assert sanitize_uri(urlsplit(f"ipfs://{CID}")).geturl() == f"ipfs://{CID}"
    v0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    assert sanitize_uri(urlsplit(f"ipfs://{v0}/")).geturl() == f"ipfs://{v0}"


@pytest.mark.parametrize("uri", ["ipfs://notacid", f"ipfs://{CID}/file.txt", f"ipfs://{CID}?x=1", "ipfs://"])
def test_anything_else_is_refused_naming_the_form(uri: str) -> None:
    with pytest.raises(ValueError, match=r"allowed ipfs://<"):
        sanitize_uri(urlsplit(uri))


def test_the_asset_and_its_openlineage_dataset() -> None:
    asset = create_asset(CID, {"order_id": 7})
    assert asset.uri == f"ipfs://{CID}" and asset.extra == {"order_id": 7}
    dataset = convert_asset_to_openlineage(asset, None)
    assert (dataset.namespace, dataset.name) == ("ipfs", CID)
    from airflow.sdk import Asset

    with pytest.raises(ValueError, match="does not name a CID"):
        Asset("ipfs://not-a-cid")  # Airflow applies the registered handler
