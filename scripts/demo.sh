#!/usr/bin/env bash
# The main job on a fresh machine: install everything, start the local Ethernity devnet, run the example
# DAG `ethernity_pipeline` end to end with `airflow dags test` (three confidential tasks, one collected by
# the deferrable sensor), print its final result, and stop the devnet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export ETHERNITY_DEVNET_HOME="${ETHERNITY_DEVNET_HOME:-$PWD/.devnet}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$PWD/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/example_dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
DAG="${1:-ethernity_pipeline}"
devnet=".venv/bin/ethernity-devnet"
trap '$devnet down >/dev/null || true' EXIT

$devnet up --rpc-port 0 --ipfs-port 0  # any free ports: the demo reads connection.env right after
# shellcheck disable=SC1091
source "$ETHERNITY_DEVNET_HOME/connection.env"
echo "==> airflow db migrate ($AIRFLOW_HOME)"
.venv/bin/airflow db migrate >"$ETHERNITY_DEVNET_HOME/airflow-migrate.log" 2>&1
echo "==> airflow dags test $DAG"
.venv/bin/airflow dags test "$DAG" >"$ETHERNITY_DEVNET_HOME/dag-test.log" 2>&1 \
    || { tail -n 60 "$ETHERNITY_DEVNET_HOME/dag-test.log"; exit 1; }
grep -E "Task created|Order placed|Order approved|Task completed|verified and decrypted" \
    "$ETHERNITY_DEVNET_HOME/dag-test.log" | sed -E 's/^[^ ]+ \[[a-z ]+\] //; s/ \[airflow[^]]*\].*$//'
.venv/bin/python - "$AIRFLOW_HOME/airflow.db" "$DAG" <<'PY'
import json, sqlite3, sys
db, dag = sys.argv[1], sys.argv[2]
rows = sqlite3.connect(db).execute(
    "SELECT x.task_id, x.value FROM xcom x WHERE x.dag_id = ? AND x.key = 'return_value' "
    "AND x.dag_run_id = (SELECT MAX(id) FROM dag_run WHERE dag_id = ?) ORDER BY x.timestamp", (dag, dag)).fetchall()
for task_id, value in rows:
    print(f"    {task_id}: {json.loads(value) if isinstance(value, (str, bytes)) else value}")
print(f"==> {dag} succeeded; final result: {json.loads(rows[-1][1]) if isinstance(rows[-1][1], (str, bytes)) else rows[-1][1]}")
PY
