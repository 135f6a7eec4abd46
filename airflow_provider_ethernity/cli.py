"""``ethernity``: wallet housekeeping from the command line (``ethernity reclaim``).

``ethernity reclaim`` lists the connection wallet's DO requests whose escrow is not settled, cancels the
ones no node booked and no live Airflow task holds (their escrow comes back), and reports the rest: orders
placed and never approved (their escrow stays locked; approving lets the node run the task and be paid) and
orders in progress. Live tasks are read from Airflow's metadata database (the submission records in
``task_state_store`` of task instances that are queued, running, deferred or up for retry), so run it where
the ``airflow`` CLI works; ``--keep`` adds DO request ids to leave alone, ``--no-airflow`` skips the lookup.
"""

from __future__ import annotations

import argparse
import json
import sys

#: Task instance states in which a task may still use its submission.
LIVE_STATES = ("scheduled", "queued", "running", "deferred", "up_for_retry", "up_for_reschedule", "restarting")


def held_by_live_tasks(state_key: str) -> set[int]:
    """DO request ids in the submission records of live task instances (Airflow's metadata database)."""
    from airflow.utils.session import create_session
    from sqlalchemy import text

    query = text(
        "SELECT s.value FROM task_state_store s JOIN task_instance ti ON ti.dag_id = s.dag_id "
        "AND ti.run_id = s.run_id AND ti.task_id = s.task_id AND ti.map_index = s.map_index "
        f"WHERE s.key = :key AND ti.state IN ({', '.join(repr(state) for state in LIVE_STATES)})"
    )
    held: set[int] = set()
    with create_session() as session:
        for (value,) in session.execute(query, {"key": state_key}):
            record = json.loads(value) if isinstance(value, (str, bytes)) else value
            if isinstance(record, dict) and record.get("do_request_id") is not None:
                held.add(int(record["do_request_id"]))
    return held


def _reclaim(args: argparse.Namespace) -> int:
    from airflow_provider_ethernity.hooks.ethernity import EthernityHook
    from airflow_provider_ethernity.operators.ethernity import STATE_KEY

    held = {int(i) for i in args.keep}
    if not args.no_airflow:
        try:
            held |= held_by_live_tasks(STATE_KEY)
        except Exception as exc:
            print(
                f"ethernity reclaim: cannot read live tasks from Airflow's metadata database ({type(exc).__name__}); "
                "run it where `airflow` works, or pass --no-airflow (and --keep for requests in use)",
                file=sys.stderr,
            )
            return 1
    report = EthernityHook(args.conn_id).reclaim(held, dry_run=args.dry_run)
    print(report.render())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ethernity", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    reclaim = sub.add_parser("reclaim", help="cancel unheld DO requests (escrow back), report locked escrow")
    reclaim.add_argument("--conn-id", default="ethernity_default", help="the ethernity connection (its wallet)")
    reclaim.add_argument("--dry-run", action="store_true", help="report only; cancel nothing")
    reclaim.add_argument("--keep", nargs="*", default=[], metavar="DO_REQUEST_ID", help="DO requests to leave alone")
    reclaim.add_argument("--no-airflow", action="store_true", help="do not look up live tasks in Airflow's DB")
    reclaim.set_defaults(func=_reclaim)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except Exception as exc:  # one clear line, no traceback; our errors carry no secret
        print(f"ethernity {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
