"""``python -m airflow_provider_ethernity.devnet.ipfs``: serve the devnet IPFS API (see :func:`.service.main`)."""

import sys

from airflow_provider_ethernity.devnet.ipfs.service import main

sys.exit(main())
