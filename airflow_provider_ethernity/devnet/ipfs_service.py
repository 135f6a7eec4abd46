"""The devnet IPFS API, now the package :mod:`airflow_provider_ethernity.devnet.ipfs` (one module per part).

This name is kept for imports and for ``python -m airflow_provider_ethernity.devnet.ipfs_service``.
"""

from __future__ import annotations

import sys

from airflow_provider_ethernity.devnet.ipfs import *  # noqa: F403
from airflow_provider_ethernity.devnet.ipfs import __all__ as __all__
from airflow_provider_ethernity.devnet.ipfs.service import main

if __name__ == "__main__":
    sys.exit(main())
