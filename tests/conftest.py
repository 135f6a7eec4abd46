"""Test-wide settings: a throwaway AIRFLOW_HOME, no example DAGs, quiet logs."""

from __future__ import annotations

import os
import tempfile

_home = tempfile.mkdtemp(prefix="etny-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _home)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
