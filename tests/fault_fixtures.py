"""Helpers for the fault suites (test_fault_soak.py, test_fault_points.py, test_secrets_paths.py):
a real ``python -m sender`` process, and the ledger invariants checked after every fault."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import dbt_forkserver
import duckdb
import sender_forkserver
from sender_fixtures import REPO


def sender_process_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    """The test's environment without any LINE_* variable of the shell, plus ``env``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("LINE_")}
    full.update(dbt_forkserver.sender_env())  # `sender run` starts dbt from the fork server
    full.update(env)
    full.update(extra)
    full["PYTHONPATH"] = str(REPO)
    return full


def run_sender(
    args: list[str], env: dict[str, str], *, cwd: Path | None = None, timeout: float = 120, **extra
) -> subprocess.CompletedProcess:
    env = sender_process_env(env, **extra)
    return sender_forkserver.run(args, env=env, cwd=cwd or REPO, timeout=timeout)


def accepted_keys(db: Path) -> list[str]:
    """Keys whose latest real outcome is ``accepted``, one entry per ledger row (so that a key
    recorded twice shows twice)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [
            r[0]
            for r in con.execute(
                "select deduplication_key from line_capi_send_log"
                " where status = 'accepted' and not is_test"
            ).fetchall()
        ]
    finally:
        con.close()


def assert_ledger_consistent(db: Path) -> None:
    """No half-recorded batch: every outcome row has exactly its ``events`` keys, every key
    belongs to an outcome row, and no key has two real outcomes."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        short = con.execute(
            """
            select b.outcome_id, b.events, count(k.outcome_id) as keys
            from line_capi_send_batches as b
            left join line_capi_send_keys as k using (outcome_id)
            group by all
            having count(k.outcome_id) <> b.events
            """
        ).fetchall()
        orphans = con.execute(
            "select count(*) from line_capi_send_keys as k"
            " anti join line_capi_send_batches as b using (outcome_id)"
        ).fetchall()[0][0]
        twice = con.execute(
            "select deduplication_key, count(*) from line_capi_send_keys where not is_test"
            " group by all having count(*) > 1 limit 5"
        ).fetchall()
    finally:
        con.close()
    assert short == [], f"outcome rows without all their keys: {short}"
    assert orphans == 0, f"{orphans} keys without an outcome row"
    assert twice == [], f"keys recorded twice: {twice}"
