"""line_capi_coverage, the identifier coverage history: real `dbt build`s of fixture exports on one
DuckDB file. Its counts equal the marts' (every reason, every identifier, two LINE event names and
one without conversions); a second build appends and keeps the first as history; `--full-refresh`
keeps it too; retention prunes old and sample rows, never the current build's; and the data test
that ties the table to the marts fails when they disagree."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from monitoring_fixtures import REASONS
from pipeline_fixtures import HOURLY_BUILD, DbtResult, run_dbt, write_export
from test_pipeline import AS_OF, DAY, HOUR, T, export_tables, iso

EVENTS = {"buy": "Purchase", "member_register": "CompleteRegistration", "contact": "Lead"}
VARS = {"as_of": AS_OF, "karte_conversion_events": EVENTS, "lookback_hours": 2400}
IDENTIFIERS = {
    "click_id": lambda row: row["click_id"] is not None,
    "browser_id": lambda row: row["browser_id"] is not None,
    "email": lambda row: row["email_sha256"] is not None,
    "phone": lambda row: row["phone_sha256"] is not None,
    "line_uid": lambda row: row["line_uid"] is not None,
    "ip_and_user_agent": lambda row: (
        row["web_ip_address"] is not None and row["web_user_agent"] is not None
    ),
}
# The contract the sender reads: names, order and types.
CONTRACT = [
    ("invocation_id", "VARCHAR"),
    ("event_name", "VARCHAR"),
    ("is_sample", "BOOLEAN"),
    ("conversions_in_window", "BIGINT"),
    ("sendable", "BIGINT"),
    ("rejected", "BIGINT"),
    *[(f"rejected_{reason}", "BIGINT") for reason in REASONS],
    *[(f"with_{name}", "BIGINT") for name in IDENTIFIERS],
    ("built_at", "TIMESTAMP"),
    ("as_of", "TIMESTAMP"),
    ("export_newest_at", "TIMESTAMP"),
    ("late_conversions", "BIGINT"),
    ("late_oldest_at", "TIMESTAMP"),
]


def conversion(event, key, user, sync_date, pv):
    return {
        "event_name": event,
        "user_id": user,
        "transaction_id": key,
        "sync_date": sync_date,
        "pv_id": pv,
    }


def coverage_tables(with_click_ids: bool = True) -> dict[str, list[dict]]:
    """The pipeline's fixture export plus a conversion for every rejection reason, an IP address
    without a user agent, and registrations; every purchase but one has a revenue. Without click
    ids, the landing URLs lost ldtag_cl."""
    tables = export_tables()
    tables["conversions"] += [
        conversion("buy", "ORD-BADTIME", "u1", "yesterday", "pv-bt"),
        conversion("buy", "ORD-95D", "u1", iso(T - 95 * DAY), "pv-95"),
        conversion("buy", "ORD-5", "u1", iso(T - 6 * HOUR), "pv-ip"),
        conversion("member_register", "REG-1", "u1", iso(T - 2 * HOUR), "pv-r1"),
        conversion("member_register", "REG-3", "u3", iso(T - 3 * HOUR), "pv-r3"),
        conversion("member_register", "", "u1", iso(T - HOUR), "pv-r4"),
    ]
    tables["page_views"].append(  # an IP address without a user agent
        {
            "user_id": "u1",
            "sync_date": iso(T - 6 * HOUR),
            "pv_id": "pv-ip",
            "ip_address": "192.0.2.7",
        }
    )
    for row in tables["conversions"]:  # LINE needs a Purchase's value ...
        if row["event_name"] == "buy":
            row.setdefault("revenue", "1000")
    # ... and this one has none (missing_purchase_value)
    tables["conversions"].append(
        {**conversion("buy", "ORD-FREE", "u1", iso(T - 7 * HOUR), "pv-free"), "revenue": "free"}
    )
    if not with_click_ids:
        for row in tables["page_views"]:
            row["url"] = (row.get("url") or "").replace("ldtag_cl=Click_1-abc&", "")
    return tables


def read_rows(database: Path, sql: str) -> list[dict]:
    with duckdb.connect(str(database), read_only=True) as con:
        relation = con.sql(sql)
        return [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]


def counts_from_the_marts(database: Path) -> dict[str, dict[str, int]]:
    """What the coverage row of each event name must hold, counted in Python from the marts (the
    identifiers from the payload's fields as columns, line_capi_payload_fields)."""
    payload = read_rows(database, "select event_name, deduplication_key from line_capi_payload")
    fields = read_rows(database, "select * from line_capi_payload_fields")
    assert sorted((row["event_name"], row["deduplication_key"]) for row in fields) == sorted(
        (row["event_name"], row["deduplication_key"]) for row in payload
    )
    rejected = read_rows(database, "select event_name, reason from line_capi_rejected")
    counts = {}
    for name in EVENTS.values():
        sent = [row for row in fields if row["event_name"] == name]
        reasons = Counter(row["reason"] for row in rejected if row["event_name"] == name)
        counts[name] = {
            "conversions_in_window": len(sent) + sum(reasons.values()),
            "sendable": len(sent),
            "rejected": sum(reasons.values()),
            **{f"rejected_{reason}": reasons[reason] for reason in REASONS},
            **{f"with_{name}": sum(map(test, sent)) for name, test in IDENTIFIERS.items()},
        }
    return counts


class Snapshot:
    """The database right after one build: its coverage rows and what the marts say."""

    def __init__(self, result: DbtResult):
        assert result.returncode == 0, result.output
        self.coverage = read_rows(result.database, "select * from line_capi_coverage")
        ((self.invocation_id,),) = result.rows("select invocation_id from line_capi_build_info")
        self.expected = counts_from_the_marts(result.database)

    def current(self) -> dict[str, dict]:
        rows = [row for row in self.coverage if row["invocation_id"] == self.invocation_id]
        by_name = {row["event_name"]: row for row in rows}
        assert len(by_name) == len(rows)
        return by_name


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Two builds on one database file: the fixture export, then the same export after a site
    release dropped ldtag_cl from its landing URLs."""
    tmp = tmp_path_factory.mktemp("coverage")
    first_export = write_export(tmp / "export-1", coverage_tables(), "csv")
    second_export = write_export(tmp / "export-2", coverage_tables(with_click_ids=False), "csv")
    first = Snapshot(run_dbt(tmp, *HOURLY_BUILD, export_dir=first_export, vars=VARS))
    second_result = run_dbt(tmp, *HOURLY_BUILD, export_dir=second_export, vars=VARS)
    return tmp, second_export, first, Snapshot(second_result), second_result.database


def copy_database(history, tmp_path: Path) -> Path:
    database = tmp_path / "line_capi.duckdb"
    shutil.copy(history[4], database)
    return database


def test_the_table_has_the_contracts_columns_in_order(history):
    with duckdb.connect(str(history[4]), read_only=True) as con:
        described = con.sql("describe line_capi_coverage").fetchall()
    assert [(name, data_type) for name, data_type, *_ in described] == CONTRACT


def test_coverage_counts_equal_the_marts(history):
    _, _, first, _, _ = history
    current = first.current()
    assert set(current) == set(EVENTS.values())
    for name, expected in first.expected.items():
        assert {column: current[name][column] for column in expected} == expected, name
        assert current[name]["is_sample"] is False
    purchase = current["Purchase"]
    # the fixture reaches every reason and every identifier, so no count is compared as 0 = 0
    assert all(purchase[f"rejected_{reason}"] >= 1 for reason in REASONS), purchase
    assert all(purchase[f"with_{name}"] >= 1 for name in IDENTIFIERS), purchase
    # ORD-5 has an IP address without a user agent: counted for neither
    assert purchase["with_ip_and_user_agent"] < purchase["sendable"]
    assert current["CompleteRegistration"]["sendable"] == 1
    assert current["CompleteRegistration"]["rejected"] == 2
    lead = current["Lead"]
    assert all(value == 0 for column, value in lead.items() if column in first.expected["Lead"])


def test_invocation_id_and_times_are_the_build_infos(history):
    _, _, _, second, database = history
    info = read_rows(database, "select invocation_id, built_at, as_of from line_capi_build_info")
    for row in second.current().values():
        assert (row["invocation_id"], row["built_at"], row["as_of"]) == tuple(info[0].values())
    assert str(info[0]["as_of"]) == "2026-03-01 03:00:00"


def test_a_second_build_appends_and_keeps_the_first_as_history(history):
    _, _, first, second, _ = history
    assert len(second.coverage) == 2 * len(EVENTS)
    assert second.invocation_id != first.invocation_id
    kept = [row for row in second.coverage if row["invocation_id"] == first.invocation_id]
    assert kept == first.coverage
    # the release that dropped ldtag_cl shows as click ids falling to zero, nothing else changing
    before, after = first.current()["Purchase"], second.current()["Purchase"]
    assert before["with_click_id"] > 0 and after["with_click_id"] == 0
    assert after["sendable"] == before["sendable"]
    assert {name: row["with_click_id"] for name, row in second.current().items()} == {
        name: counts["with_click_id"] for name, counts in second.expected.items()
    }


def test_a_table_an_earlier_version_built_gets_the_late_columns_on_the_next_build(
    history, tmp_path
):
    """The upgrade: a history of real builds made before late_conversions existed. The build's
    query read the new column from the old table before dbt appends it, and failed on both
    engines (a helper's Spark check); it records export_newest_at first, and counts from the
    build after."""
    _, export, _, second, _ = history
    database = copy_database(history, tmp_path)
    with duckdb.connect(str(database)) as con:
        for column in ("export_newest_at", "late_conversions", "late_oldest_at"):
            con.execute(f"alter table line_capi_coverage drop column {column}")
    for _ in range(2):
        result = run_dbt(tmp_path, *HOURLY_BUILD, export_dir=export, vars=VARS, database=database)
        assert result.returncode == 0, result.output
    rows = read_rows(database, "select * from line_capi_coverage order by built_at, event_name")
    earlier = [row for row in rows if row["invocation_id"] == second.invocation_id]
    assert earlier and all(row["export_newest_at"] is None for row in earlier)
    latest = rows[-len(EVENTS) :]
    assert all(row["late_conversions"] == 0 for row in latest), latest
    assert {row["event_name"] for row in latest if row["export_newest_at"]} >= {"Purchase"}


def test_full_refresh_keeps_the_history(history, tmp_path):
    _, export, _, second, _ = history
    database = copy_database(history, tmp_path)
    result = run_dbt(
        tmp_path,
        "run",
        "--full-refresh",
        "--select",
        "line_capi_coverage",
        export_dir=export,
        vars=VARS,
        database=database,
    )
    assert result.returncode == 0, result.output
    rows = read_rows(database, "select * from line_capi_coverage")
    assert len(rows) == len(second.coverage) + len(EVENTS)
    assert all(row in rows for row in second.coverage)


def test_retention_prunes_old_and_sample_rows_never_the_current_builds(history, tmp_path):
    _, export, first, second, _ = history
    database = copy_database(history, tmp_path)
    with duckdb.connect(str(database)) as con:
        for invocation_id, days in ((first.invocation_id, 401), (second.invocation_id, 2)):
            con.execute(
                f"update line_capi_coverage set built_at = built_at - interval {days} day "
                "where invocation_id = ?",
                [invocation_id],
            )
        # a demo run on this file: rows of the bundled sample
        con.execute(
            "insert into line_capi_coverage select * replace ('demo' as invocation_id, "
            "true as is_sample) from line_capi_coverage where invocation_id = ?",
            [second.invocation_id],
        )

    def run(vars_, export_dir):
        result = run_dbt(
            tmp_path,
            "run",
            "--select",
            "line_capi_coverage",
            export_dir=export_dir,
            vars={**VARS, **vars_},
            database=database,
        )
        assert result.returncode == 0, result.output
        return Counter(
            (row["invocation_id"], row["is_sample"])
            for row in read_rows(database, "select * from line_capi_coverage")
        )

    # default retention (400 days) on a real export: the 401-day-old build and the sample go
    kept = run({}, export)
    (current,) = set(kept) - {(second.invocation_id, False)}
    assert kept == {(second.invocation_id, False): len(EVENTS), current: len(EVENTS)}
    # a sample build with a retention of 1 day: the 2-day-old build goes; the real build of a
    # moment ago stays (a sample build removes no real rows), and so does the current one
    sample_dir = Path(__file__).resolve().parent.parent / "sample" / "karte_export"
    kept = run({"coverage_retention_days": 1}, sample_dir)
    (sample,) = set(kept) - {current}
    assert sample[1] is True
    assert kept == {current: len(EVENTS), sample: len(EVENTS)}


def test_bad_retention_is_a_one_line_error_naming_the_var(history, tmp_path):
    _, export, _, _, _ = history
    result = run_dbt(
        tmp_path,
        "run",
        "--select",
        "line_capi_coverage",
        export_dir=export,
        vars={**VARS, "coverage_retention_days": 0},
        database=copy_database(history, tmp_path),
    )
    assert result.returncode != 0
    assert "invalid dbt var coverage_retention_days=0: expected a whole number from 1 to 3650" in (
        result.output
    )
    assert "Traceback" not in result.output


def test_the_tying_data_test_fails_when_the_counts_disagree(history, tmp_path):
    _, export, _, second, _ = history
    database = copy_database(history, tmp_path)
    current = second.current()
    with duckdb.connect(str(database)) as con:
        con.execute(
            "update line_capi_coverage set with_email = with_email + 1 "
            "where invocation_id = ? and event_name = 'Purchase'",
            [second.invocation_id],
        )
        con.execute(
            "delete from line_capi_coverage where invocation_id = ? and event_name = 'Lead'",
            [second.invocation_id],
        )
    tested = run_dbt(
        tmp_path,
        "test",
        "--select",
        "assert_coverage_matches_the_marts",
        "--store-failures",
        export_dir=export,
        vars=VARS,
        database=database,
    )
    assert tested.returncode != 0
    assert "Got 2 results" in tested.output, tested.output
    failures = tested.rows(
        "select event_name, measure, expected, found "
        "from main_dbt_test__audit.assert_coverage_matches_the_marts order by 1"
    )
    email = current["Purchase"]["with_email"]
    assert failures == [("Lead", "rows", 1, None), ("Purchase", "with_email", email, email + 1)]
