"""`dbt build && sender push`, as the hourly job runs it, against the local LINE-compatible server.

The fixture export of test_pipeline is replayed to "now" (var karte_export_time_anchor), so its
events are inside LINE's 90-day window whatever the date.
"""

from __future__ import annotations

import time

from pipeline_fixtures import run_dbt, write_export
from sender_fixtures import CHANNEL_ID, FAST, TOKEN, ledger_counts, mock_server, run_cli, sender_env
from test_pipeline import AS_OF, HOUR, export_tables, iso

NOW = int(time.time()) // 60 * 60


def build(tmp_path, tables):
    export = write_export(tmp_path / "export", tables)
    result = run_dbt(
        tmp_path,
        "build",
        "--exclude",
        "test_type:unit",
        export_dir=export,
        vars={"as_of": iso(NOW), "karte_export_time_anchor": AS_OF},
    )
    assert result.returncode == 0, result.output
    return result


def push(result, server, *args):
    env = sender_env(result.database, server.url, LINE_CHANNEL_ID=CHANNEL_ID)
    return run_cli(["push", *FAST, *args], env)


def test_hourly_runs_deliver_every_conversion_exactly_once_despite_faults(tmp_path):
    tables = export_tables()
    first = build(tmp_path, tables)
    keys = {k for (k,) in first.rows("select deduplication_key from line_capi_payload")}
    assert keys == {"ORD-1", "ORD-2", "ORD-4"}
    with mock_server() as server:
        server.inject("500", 1)  # accepts part of the request, then fails
        server.inject("429", 1, retry_after=0.01)
        run = push(first, server, "--batch-size", "2")
        assert run.returncode == 0, run.stdout + run.stderr
        assert server.accepted_keys() == keys
        assert ledger_counts(first.database) == {"accepted": 3}

        # The next hour: the window overlaps, one conversion is new. The ledger survives dbt.
        tables["conversions"].append(
            {
                "event_name": "buy",
                "user_id": "u1",
                "transaction_id": "ORD-NEW",
                "sync_date": iso(1772334000 - HOUR // 2),
                "pv_id": "pv-new",
            }
        )
        second = build(tmp_path, tables)
        assert ledger_counts(second.database) == {"accepted": 3}
        before = server.stats()["accepted_events"]
        run = push(second, server)
        assert run.returncode == 0, run.stdout + run.stderr
        assert server.stats()["accepted_events"] - before == 1
        assert server.accepted_keys() == keys | {"ORD-NEW"}

        # Nothing new: nothing sent, exit 0.
        requests = server.stats()["requests"]
        run = push(second, server)
        assert run.returncode == 0
        assert server.stats()["requests"] == requests
    assert TOKEN not in first.output + second.output


def test_an_export_with_nothing_valid_sends_nothing_and_says_so(tmp_path):
    result = build(
        tmp_path,
        {
            "conversions": [
                {
                    "event_name": "buy",
                    "user_id": "u1",
                    "transaction_id": "undefined",
                    "sync_date": iso(1772334000 - HOUR),
                    "pv_id": "p1",
                }
            ]
        },
    )
    assert result.rows("select reason from line_capi_rejected") == [("invalid_deduplication_key",)]
    with mock_server() as server:
        run = push(result, server)
        assert run.returncode == 0, run.stdout + run.stderr
        assert server.stats()["requests"] == 0
    assert "0 pending" in run.stdout + run.stderr
