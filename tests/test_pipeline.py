"""The dbt project end to end: real `dbt build` runs on export files written by the tests."""

from __future__ import annotations

import hashlib
import json
import re

import duckdb
import pytest
from pipeline_fixtures import COLUMNS, HOURLY_BUILD, SAMPLE_DIR, run_dbt, write_export

AS_OF = "2026-03-01T12:00:00+09:00"
T = 1772334000  # AS_OF in Unix seconds
HOUR, DAY = 3600, 86400
UUID1 = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
LINE_UID = "U" + "0123456789abcdef" * 2


def iso(unix: int) -> str:
    """Unix seconds as ISO 8601 in Japan time, the way KARTE exports write it."""
    import datetime as dt

    jst = dt.timezone(dt.timedelta(hours=9))
    return dt.datetime.fromtimestamp(unix, jst).isoformat()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def export_tables() -> dict[str, list[dict]]:
    conv = lambda key, user, at, pv, **kw: {  # noqa: E731
        "event_name": "buy",
        "user_id": user,
        "transaction_id": key,
        "sync_date": iso(at),
        "pv_id": pv,
        "session_id": "s-" + user,
        **kw,
    }
    return {
        "conversions": [
            conv(
                "ORD-1",
                "u1",
                T - 2 * HOUR,
                "pv-1",
                revenue="4980",
                items=json.dumps([{"item_id": "SKU-1", "quantity": 2}, {"item_id": "SKU-2"}]),
            ),
            conv("ORD-2", "u2", T - 3 * HOUR, "pv-2"),
            conv("ORD-3", "u3", T - 4 * HOUR, "pv-3"),
            conv("ORD-4", "u1", T - 5 * HOUR, "pv-4b", revenue="100"),
            conv("ORD-4", "u1", T - 5 * HOUR + 60, "pv-4a", revenue="999"),
            conv("", "u1", T - HOUR, "pv-5"),
            conv("undefined", "u1", T - HOUR, "pv-6"),
            conv("ORD-OLD", "u1", T - 30 * HOUR, "pv-7"),
            {**conv("CART-1", "u1", T - HOUR, "pv-8"), "event_name": "view_cart"},
        ],
        "page_views": [
            {
                "user_id": "u1",
                "sync_date": iso(T - 3 * DAY),
                "pv_id": "pv-land",
                "url": "https://shop.example.jp/lp?ldtag_cl=Click_1-abc&x=1",
                "lt_cid": UUID1.upper(),
            },
            {
                "user_id": "u1",
                "sync_date": iso(T - 2 * HOUR),
                "pv_id": "pv-1",
                "url": "https://shop.example.jp/thanks",
                "referrer": "https://shop.example.jp/cart",
                "title": 'Thanks "Taro" 😀',
                "ip_address": "2001:db8::1",
                "user_agent": "Mozilla/5.0 (X11)\tTest",
            },
            {
                "user_id": "u2",
                "sync_date": iso(T - 3 * HOUR),
                "pv_id": "pv-2",
                "url": "HTTPS://shop.example.jp/thanks",
                "ip_address": "300.1.1.1",
            },
        ],
        "line_users": [
            {"user_id": "u2", "line_user_id": LINE_UID, "sync_date": iso(T - 90 * DAY)},
            {"user_id": "u1", "line_user_id": "U" + "f" * 32, "sync_date": iso(T - DAY)},
        ],
        "user_master": [
            {
                "user_id": "u1",
                "email": " Taro@Example.COM ",
                "phone": "090-1234-5678",
                "first_name": "太郎",
                "last_name": "山田",
            },
            {"user_id": "u2", "email": "", "phone": "not a phone"},
        ],
    }


def expected_payloads() -> dict[str, dict]:
    def event(key, at):
        return {
            "source_type": "web",
            "event_type": "conversion",
            "event_name": "Conversion",
            "deduplication_key": key,
            "event_timestamp": at,
        }

    return {
        "ORD-1": {
            "event": event("ORD-1", T - 2 * HOUR),
            "user": {
                "click_id": "Click_1-abc",
                "browser_id": UUID1,
                "email": sha("taro@example.com"),
                "phone": sha("+819012345678"),
            },
            "web": {
                "url": "https://shop.example.jp/thanks",
                "referrer": "https://shop.example.jp/cart",
                "title": 'Thanks "Taro" 😀',
                "ip_address": "2001:db8::1",
                "user_agent": "Mozilla/5.0 (X11)\tTest",
            },
            "custom": {
                "value": 4980,
                "currency": "JPY",
                "quantity": 3,
                "item_ids": ["SKU-1", "SKU-2"],
            },
        },
        "ORD-2": {"event": event("ORD-2", T - 3 * HOUR), "user": {"line_uid": LINE_UID}},
        "ORD-4": {
            "event": event("ORD-4", T - 5 * HOUR),
            "user": {
                "click_id": "Click_1-abc",
                "browser_id": UUID1,
                "email": sha("taro@example.com"),
                "phone": sha("+819012345678"),
            },
            "custom": {"value": 100, "currency": "JPY"},
        },
    }


EXPECTED_REJECTED = {
    "ORD-3": "no_user_identifier",
    "pv:pv-5": "missing_deduplication_key",  # an empty CSV cell is null
    "undefined": "invalid_deduplication_key",
}


@pytest.fixture(scope="module")
def csv_build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("csv")
    export = write_export(tmp / "export", export_tables(), "csv")
    result = run_dbt(tmp, *HOURLY_BUILD, export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode == 0, result.output
    return result


def test_payload_rows_match_the_rules_exactly(csv_build):
    assert csv_build.payloads() == expected_payloads()


def test_rejected_rows_have_their_reasons(csv_build):
    assert csv_build.rejected() == EXPECTED_REJECTED


def test_payload_is_ordered_oldest_first_and_columns_agree_with_the_json(csv_build):
    rows = csv_build.rows(
        "select deduplication_key, event_timestamp, has_line_uid, payload from line_capi_payload"
    )
    assert [r[1] for r in rows] == sorted(r[1] for r in rows)
    for _key, timestamp, has_line_uid, payload in rows:
        parsed = json.loads(payload)
        assert payload.startswith('{"event":{')
        assert parsed["event"]["event_timestamp"] == timestamp
        assert has_line_uid == ("line_uid" in parsed["user"])


# line_capi_payload_fields column -> the payload member it shows
FIELD_MEMBERS = {
    "event_name": ("event", "event_name"),
    "event_timestamp": ("event", "event_timestamp"),
    "click_id": ("user", "click_id"),
    "browser_id": ("user", "browser_id"),
    "email_sha256": ("user", "email"),
    "phone_sha256": ("user", "phone"),
    "line_uid": ("user", "line_uid"),
    "web_url": ("web", "url"),
    "web_referrer": ("web", "referrer"),
    "web_title": ("web", "title"),
    "web_ip_address": ("web", "ip_address"),
    "web_user_agent": ("web", "user_agent"),
    "custom_value": ("custom", "value"),
    "custom_currency": ("custom", "currency"),
    "custom_quantity": ("custom", "quantity"),
}


def test_payload_fields_view_shows_each_payload_member_as_a_column(csv_build):
    """line_capi_payload_fields: one row per payload row, each column the member the JSON has."""
    with csv_build.connect() as con:
        relation = con.sql(
            "select fields.*, payload.payload from line_capi_payload_fields as fields "
            "full outer join line_capi_payload as payload using (event_name, deduplication_key)"
        )
        rows = [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]
    assert len(rows) == len(expected_payloads())
    for row in rows:
        parsed = json.loads(row["payload"])
        key = row["deduplication_key"]
        for column, (member, name) in FIELD_MEMBERS.items():
            assert row[column] == parsed.get(member, {}).get(name), (key, column)
        item_ids = parsed.get("custom", {}).get("item_ids")
        as_json = json.dumps(item_ids, separators=(",", ":")) if item_ids else None
        assert row["custom_item_ids_json"] == as_json, key
        assert row["has_line_uid"] == ("line_uid" in parsed["user"])
    assert any(row["web_url"] for row in rows) and any(row["custom_item_ids_json"] for row in rows)


def test_parquet_export_builds_the_same_payloads(tmp_path, csv_build):
    export = write_export(tmp_path / "export", export_tables(), "parquet")
    result = run_dbt(tmp_path, "run", export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode == 0, result.output
    assert result.payloads() == csv_build.payloads()
    assert result.rejected() == csv_build.rejected()


def payload_storage(result) -> set[str]:
    """The compression methods DuckDB used for the payload column's segments."""
    with result.connect() as con:
        return {
            method
            for (method,) in con.sql(
                "select distinct compression from pragma_storage_info('line_capi_payload') "
                "where column_name = 'payload' and segment_type = 'VARCHAR'"
            ).fetchall()
        }


def test_tables_are_stored_uncompressed_unless_compress_tables(tmp_path, csv_build):
    assert payload_storage(csv_build) == {"Uncompressed"}
    export = write_export(tmp_path / "export", export_tables(), "csv")
    result = run_dbt(
        tmp_path, "run", export_dir=export, vars={"as_of": AS_OF, "compress_tables": True}
    )
    assert result.returncode == 0, result.output
    assert "Uncompressed" not in payload_storage(result)
    assert result.payloads() == csv_build.payloads()
    assert result.rejected() == csv_build.rejected()


def test_column_mapping_reads_an_export_with_other_names(tmp_path, csv_build):
    tables = export_tables()
    for row in tables["conversions"]:
        row["order_id"] = row.pop("transaction_id")
    columns = {
        **COLUMNS,
        "conversions": ["order_id" if c == "transaction_id" else c for c in COLUMNS["conversions"]],
    }
    export = write_export(tmp_path / "export", tables, "csv", columns=columns)
    result = run_dbt(
        tmp_path,
        "run",
        export_dir=export,
        vars={"as_of": AS_OF, "karte_column_map": {"conversions": {"transaction_id": "order_id"}}},
    )
    assert result.returncode == 0, result.output
    assert result.payloads() == csv_build.payloads()


def test_missing_required_column_names_table_and_column(tmp_path):
    columns = {**COLUMNS, "page_views": [c for c in COLUMNS["page_views"] if c != "pv_id"]}
    export = write_export(tmp_path / "export", export_tables(), "csv", columns=columns)
    result = run_dbt(tmp_path, "run", export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode != 0
    assert "KARTE export table page_views has no column pv_id; it has: " in result.output
    assert "Rename it in the export or map it with var karte_column_map" in result.output


def test_every_missing_required_column_is_named_at_once(tmp_path):
    """A new site's export under its own names: the error named the first missing column only,
    and each mapping added to the vars found the next one, one build at a time."""
    dropped = {"user_id", "pv_id", "url"}
    columns = {**COLUMNS, "page_views": [c for c in COLUMNS["page_views"] if c not in dropped]}
    export = write_export(tmp_path / "export", export_tables(), "csv", columns=columns)
    mapped = {"karte_column_map": {"page_views": {"url": "page_url"}}, "as_of": AS_OF}
    result = run_dbt(tmp_path, "run", export_dir=export, vars=mapped)
    assert result.returncode != 0
    assert (
        "KARTE export table page_views has no columns user_id, pv_id, page_url (mapped to url);"
        " it has: " in result.output
    ), result.output
    assert "Rename them in the export or map them with var karte_column_map" in result.output


def test_an_optional_column_mapped_to_a_name_the_export_lacks_stops_the_build(tmp_path):
    """A value mapped from a column the export does not have (a typo, or a column renamed in the
    export) built with a warning and exit 0, and every event went without its value for good."""
    export = write_export(tmp_path / "export", export_tables(), "csv")
    mapped = {"karte_column_map": {"conversions": {"revenue": "revenue_ex_tax"}}, "as_of": AS_OF}
    result = run_dbt(tmp_path, "run", export_dir=export, vars=mapped)
    assert result.returncode != 0, result.output
    assert (
        "KARTE export table conversions has no column revenue_ex_tax (mapped to revenue by var"
        " karte_column_map); it has: event_name, user_id, transaction_id, sync_date, revenue,"
    ) in result.output, result.output
    assert "Fix the name in karte_column_map, or remove the mapping" in result.output
    # the same column unmapped and missing stays a warning: a site may have no such data
    columns = {**COLUMNS, "conversions": [c for c in COLUMNS["conversions"] if c != "revenue"]}
    without = write_export(tmp_path / "without", export_tables(), "csv", columns=columns)
    result = run_dbt(tmp_path, "run", export_dir=without, vars={"as_of": AS_OF})
    assert result.returncode == 0, result.output
    assert "warning: KARTE export table conversions has no column revenue:" in result.output


def _without_header(lines: list[str]) -> list[str]:
    return lines[1:]


def _last_row_one_field_too_many(lines: list[str]) -> list[str]:
    return [*lines, lines[-1].rstrip("\n") + ",EXTRA\n"]


@pytest.mark.parametrize(
    ("table", "damage", "missing", "told", "row"),
    [
        # BigQuery's EXPORT DATA writes no header by default: the first row's values become names
        (
            "conversions",
            _without_header,
            "has no columns event_name, user_id,",
            "; its first row looks like data, not a header (8 fields, not shown here: they may be a"
            " customer's email, phone or address): export the file with its header row",
            "ORD-1",
        ),
        # DuckDB's sniffer skips the lines above a longer last row and takes that row for the
        # header: the message says so, not only "export it with its header" to a file that has one
        (
            "conversions",
            _last_row_one_field_too_many,
            "has no columns event_name, user_id,",
            "a row with more fields than the header made DuckDB skip the lines above that row",
            "EXTRA",
        ),
        # a customer's record read as the header: the message counts its fields, never shows them
        (
            "user_master",
            _without_header,
            "has no column user_id;",
            "; its first row looks like data, not a header (12 fields, not shown here",
            "Taro@Example.COM",
        ),
    ],
)
def test_a_header_the_sniffer_did_not_find_is_told_so(tmp_path, table, damage, missing, told, row):
    export = write_export(tmp_path / "export", export_tables(), "csv")
    path = export / f"{table}.csv"
    path.write_text("".join(damage(path.read_text().splitlines(keepends=True))))
    result = run_dbt(tmp_path, "run", export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode != 0
    assert f"KARTE export table {table} {missing}" in result.output
    assert told in result.output
    assert "karte_column_map" not in result.output
    # what the row holds stays out of the message (and of dbt's log, which the run log copies)
    assert row not in result.output
    if table == "user_master":
        assert "090-1234-5678" not in result.output and "山田" not in result.output


def test_missing_export_file_is_a_clear_error(tmp_path):
    export = write_export(tmp_path / "export", export_tables(), "csv")
    (export / "line_users.csv").unlink()
    result = run_dbt(tmp_path, "run", export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode != 0
    (line,) = [line for line in result.output.splitlines() if "KARTE export file missing: " in line]
    assert f"{export}/line_users.csv (or .csv.gz, .parquet, parts line_users-*.csv" in line
    assert "found" not in line


def test_a_folder_of_part_folders_without_one_table_names_the_table(tmp_path):
    """Folders of parts hold no file at the top: the folder is not 'empty'."""
    export = tmp_path / "export"
    (export / "page_views").mkdir(parents=True)
    (export / "page_views" / "part-0.csv").write_text("user_id,sync_date,pv_id,url\n")
    result = run_dbt(tmp_path, "run", env={"KARTE_EXPORT_DIR": str(export)})
    assert result.returncode != 0
    assert f"KARTE export file missing: {export}/conversions.csv" in result.output
    assert "does not exist or is empty" not in result.output


@pytest.mark.parametrize("folder", ["a typo", "empty"])
def test_a_folder_that_is_missing_or_empty_is_named_as_such(tmp_path, folder):
    """A plain dbt build with KARTE_EXPORT_DIR mistyped said 'file missing: …/conversions.csv;
    set var karte_export_dir', naming neither the folder's absence nor the variable set."""
    export = tmp_path / ("exprot" if folder == "a typo" else "export")
    if folder == "empty":
        export.mkdir()
    result = run_dbt(tmp_path, "run", env={"KARTE_EXPORT_DIR": str(export)})
    assert result.returncode != 0
    assert (
        f"KARTE export folder {export} does not exist or is empty: set env KARTE_EXPORT_DIR"
        " (or var karte_export_dir) to the folder holding conversions, page_views, line_users"
        " and user_master" in result.output
    ), result.output


def test_the_syncs_folder_named_instead_of_its_current_link_is_named_in_the_error(tmp_path):
    """karte_export_dir: /srv/karte, where datahub/sync_export.py keeps its copies."""
    dest = tmp_path / "karte"
    run = write_export(dest / "20261205-10", export_tables(), "csv")
    (dest / "current").symlink_to(run.name)
    result = run_dbt(tmp_path, "run", export_dir=dest, vars={"as_of": AS_OF})
    assert result.returncode != 0
    (line,) = [line for line in result.output.splitlines() if "KARTE export file missing: " in line]
    assert line.strip() == (
        f"KARTE export file missing: {dest}/conversions.csv, but {dest}/current holds it:"
        f" {dest} is the export sync's folder; set var karte_export_dir to {dest}/current"
    )


def test_an_export_file_named_another_way_is_named_in_the_missing_file_error(tmp_path):
    """A warehouse job writing dated names (line_users_20261201.csv): the error names the file."""
    export = write_export(tmp_path / "export", export_tables(), "csv")
    (export / "line_users.csv").rename(export / "line_users_20261201.csv")
    result = run_dbt(tmp_path, "run", export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode != 0
    (line,) = [line for line in result.output.splitlines() if "KARTE export file missing: " in line]
    assert "parts line_users-*.csv, or a folder line_users/ of parts); found" in line
    assert "found line_users_20261201.csv, which is not one of these names: rename it" in line


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        (
            "line_event_name",
            "Conversion!",
            "invalid dbt var line_event_name=Conversion!: LINE event names are 1 to 20 of",
        ),
        ("line_event_name", "A" * 21, "invalid dbt var line_event_name="),
        # a standard name written otherwise: LINE would take it for an unknown custom conversion
        (
            "line_event_name",
            "purchase",
            "line_event_name=purchase: LINE's standard event name is spelt Purchase",
        ),
        (
            "line_event_name",
            "InitiateCheckout",
            "=InitiateCheckout: LINE's standard event name is spelt InitiateCheckOut",
        ),
        (
            "line_event_name",
            "Conversion\n",
            "invalid dbt var line_event_name=Conversion\\n: LINE event names are",
        ),
        ("as_of", "yesterday", "invalid dbt var as_of=yesterday"),
        ("lookback_hours", -1, "invalid dbt var lookback_hours=-1"),
        ("ad_contact_days", "thirty", "invalid dbt var ad_contact_days=thirty"),
        ("currency", "yen", "invalid dbt var currency=yen"),
        # three capitals, as LINE checks, but no ISO 4217 code
        ("currency", "YEN", "invalid dbt var currency=YEN: not an ISO 4217 code: JPY is"),
        # what dbt_project.yml no longer declares (`curency: JPY`, the name edited by a slip)
        (
            "currency",
            None,
            "invalid dbt var currency=None (not set: is its name mistyped under vars: in"
            " dbt_project.yml?): expected an ISO 4217 code",
        ),
        ("pii_prehashed", "maybe", "invalid dbt var pii_prehashed=maybe"),
        ("compress_tables", "maybe", "invalid dbt var compress_tables=maybe"),
        ("as_of", "2026-02-30T10:00:00Z", "invalid dbt var as_of=2026-02-30T10:00:00Z"),
        # a clock time without its offset: read as UTC, it was 9 hours off in Japan
        (
            "as_of",
            "2026-11-28 14:00",
            "invalid dbt var as_of=2026-11-28 14:00: give its offset from UTC, such as",
        ),
        ("as_of", "2026-11-28", "invalid dbt var as_of=2026-11-28: give its offset from UTC"),
        ("karte_column_map", "oops", "invalid dbt var karte_column_map=oops"),
        ("karte_sample_anchor", "soon", "invalid dbt var karte_sample_anchor=soon"),
        ("karte_export_time_anchor", "soon", "invalid dbt var karte_export_time_anchor=soon"),
        (
            "karte_export_utc_offset",
            "Asia/Tokyo",
            "invalid dbt var karte_export_utc_offset=Asia/Tokyo: expected the offset from UTC",
        ),
        # YAML reads an unquoted +9:00 as the number 540
        ("karte_export_utc_offset", 540, "invalid dbt var karte_export_utc_offset=540: expected"),
        (
            "karte_export_utc_offset",
            "+15:00",
            "invalid dbt var karte_export_utc_offset=+15:00: expected an offset from -14:00",
        ),
        (
            "karte_column_map",
            {"conversions": {"order_id": "x"}},
            "conversions has no contract column order_id",
        ),
        # an offset out of range was Python's own error; +09:60 was read as +10:00
        (
            "as_of",
            "2026-11-30T10:00:00+25:00",
            "invalid dbt var as_of=2026-11-30T10:00:00+25:00: expected an offset from -14:00",
        ),
        ("as_of", "2026-11-30T10:00:00+09:60", "as_of=2026-11-30T10:00:00+09:60: expected an"),
        ("karte_sample_anchor", "2026-11-30T10:00:00-15:00", "expected an offset from -14:00"),
        # YAML reads an unquoted 123 as a number
        ("line_event_name", 123, "YAML read 123 as a number: quote it, '123'"),
        # a column's export name is one name, not a list
        (
            "karte_column_map",
            {"conversions": {"transaction_id": ["a", "b"]}},
            "e.g. {conversions: {transaction_id: order_id}}",
        ),
        # read by the sources' YAML as dbt parses it, checked by the on-run-start hook
        ("karte_freshness_warn_hours", "abc", "invalid dbt var karte_freshness_warn_hours=abc"),
        ("karte_freshness_error_hours", 2.5, "invalid dbt var karte_freshness_error_hours=2.5"),
    ],
)
def test_bad_vars_fail_with_a_message_naming_the_var(tmp_path, var, value, message):
    result = run_dbt(
        tmp_path,
        "run",
        "--select",
        "line_capi_payload+",
        export_dir=SAMPLE_DIR,
        vars={"as_of": AS_OF, var: value},
    )
    assert result.returncode != 0
    # one line: the var, its value and what is expected, with no traceback
    (line,) = {line.strip() for line in result.output.splitlines() if message in line}
    assert line.startswith("invalid dbt var "), line
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("lookback_hour", "lookback_hours"),
        ("karte_conversion_evnts", "karte_conversion_events"),
        ("Lookback_Hours", "lookback_hours"),
        # another unit: the first word of one var alone
        ("lookback_days", "lookback_hours"),
        ("coverage_retention_hours", "coverage_retention_days"),
    ],
)
def test_a_misspelt_var_stops_the_run_instead_of_being_ignored(tmp_path, name, meant):
    result = run_staging_with_var(tmp_path, name, 168)
    assert result.returncode != 0
    assert f"unknown dbt var {name} in --vars: did you mean {meant}?" in result.output


@pytest.mark.parametrize(
    "name", ["team_dashboard_schema", "as_at", "currency_code", "karte_team_note", "line_owner"]
)
def test_a_var_of_the_users_own_is_not_taken_for_a_misspelt_one(tmp_path, name):
    """It runs, and says that nothing reads it: a guess at a name (send_line_uid for
    send_line_user_id) would otherwise run with the default without a word."""
    result = run_staging_with_var(tmp_path, name, "analytics")
    assert result.returncode == 0, result.output
    assert (
        f"warning: dbt var {name} in --vars is not one of this project's, and it reads none of"
        " that name (docs/configuration.md lists the vars)"
    ) in result.output


def test_a_var_without_a_space_after_its_colon_stops_the_run(tmp_path):
    """{send_line_user_id:false} is one YAML name without a value: the LINE user ids were sent
    with exit 0; {line_event_name:Purchase} sent every order as Conversion."""
    result = run_staging_with_var(tmp_path, "send_line_user_id:false", None)
    assert result.returncode != 0
    assert (
        "unknown dbt var send_line_user_id:false in --vars: write a space after the colon"
        " ({send_line_user_id: false}); without it YAML reads one name and no value"
    ) in result.output


def test_a_slip_under_vars_in_dbt_project_yml_stops_the_run_under_sender_run(tmp_path):
    """dbt's macros cannot list the names under vars: in dbt_project.yml; sender run hands them
    over (env LINE_CAPI_PROJECT_VARS, tests/test_scheduling.py checks it does)."""
    declared = '{"curency": false, "karte_export_dir": false, "dbt_date": true}'
    result = run_staging(tmp_path, env={"LINE_CAPI_PROJECT_VARS": declared})
    assert result.returncode != 0
    assert (
        "unknown dbt var curency under vars: in dbt_project.yml: did you mean currency?"
    ) in result.output


def test_a_packages_vars_are_not_taken_for_slips(tmp_path):
    """A package's block under vars: (dbt_date: {…}) and a package's var in --vars
    (dbt_date:time_zone, with a value) pass without an error; only a name of one's own warns."""
    result = run_staging(
        tmp_path,
        {"dbt_date:time_zone": "Asia/Tokyo"},
        env={"LINE_CAPI_PROJECT_VARS": '{"dbt_date": true, "team_note": false}'},
    )
    assert result.returncode == 0, result.output
    assert (
        "warning: dbt var team_note under vars: in dbt_project.yml is not one of" in result.output
    )
    assert "warning: dbt var dbt_date:time_zone in --vars is not one of" in result.output
    assert "warning: dbt var dbt_date under" not in result.output


def run_staging_with_var(tmp_path, name, value):
    """The quickest run that passes the on-run-start checks: one staging view, one extra var."""
    return run_staging(tmp_path, {name: value})


def run_staging(tmp_path, vars_: dict | None = None, env: dict | None = None):
    """One staging view built on the sample, with ``vars_`` beside as_of and ``env``."""
    return run_dbt(
        tmp_path,
        "run",
        "--select",
        "stg_karte__conversions",
        export_dir=SAMPLE_DIR,
        vars={"as_of": AS_OF, **(vars_ or {})},
        env=env,
    )


def test_the_var_names_the_typo_check_knows_are_dbt_project_ymls():
    import yaml

    root = SAMPLE_DIR.parent.parent
    declared = list(yaml.safe_load((root / "dbt_project.yml").read_text())["vars"])
    macros = (root / "macros" / "run_parameters.sql").read_text()
    listed = re.search(r"macro project_var_names\(\).*?\[(.*?)\]", macros, re.S).group(1)
    assert re.findall(r"'([a-z_]+)'", listed) == declared


def test_time_zone_of_the_machine_does_not_matter(tmp_path, csv_build):
    tables = export_tables()
    # a sync_date without an offset is UTC
    tables["conversions"][0]["sync_date"] = "2026-03-01T01:00:00"
    # a date alone is midnight UTC; a zone name or an offset with seconds is honoured; so are
    # UTC, GMT and JST, but not an abbreviation that names several zones (BST read as Bangladesh,
    # IST as India) nor an offset no place has: those are not read, never read as elsewhere
    extra = {
        "DATE-ONLY": "2026-03-01",
        "ZONE-NAME": "2026-03-01T10:00:00 Asia/Tokyo",
        "OFFSET-SECONDS": "2026-03-01T10:00:00+09:00:00",
        "ZONE-JST": "2026-03-01T10:00:00 JST",
        "ZONE-AREA": "2026-03-01T01:00:00 Europe/London",
        "ZONE-Z-LOWER": "2026-03-01t01:00:00z",
        "ZONE-BST": "2026-03-01T02:00:00 BST",
        "ZONE-IST": "2026-03-01T06:30:00 IST",
        "OFFSET-BEYOND": "2026-03-01T10:00:00+99:00",
    }
    for key, sync_date in extra.items():
        tables["conversions"].append(
            {**tables["conversions"][0], "transaction_id": key, "sync_date": sync_date}
        )
    export = write_export(tmp_path / "export", tables, "csv")
    result = run_dbt(
        tmp_path, "run", export_dir=export, vars={"as_of": AS_OF}, env={"TZ": "Asia/Tokyo"}
    )
    assert result.returncode == 0, result.output
    payloads = result.payloads()
    assert payloads["ORD-1"]["event"]["event_timestamp"] == T - 2 * HOUR
    assert payloads["DATE-ONLY"]["event"]["event_timestamp"] == T - 3 * HOUR
    assert payloads["ZONE-NAME"]["event"]["event_timestamp"] == T - 2 * HOUR
    assert payloads["OFFSET-SECONDS"]["event"]["event_timestamp"] == T - 2 * HOUR
    for key in ("ZONE-JST", "ZONE-AREA", "ZONE-Z-LOWER"):
        assert payloads[key]["event"]["event_timestamp"] == T - 2 * HOUR, key
    unread = result.rows(
        "select transaction_id, reason from line_capi_rejected where transaction_id in"
        " ('ZONE-BST', 'ZONE-IST', 'OFFSET-BEYOND') order by 1"
    )
    assert unread == [
        ("OFFSET-BEYOND", "invalid_sync_date"),
        ("ZONE-BST", "invalid_sync_date"),
        ("ZONE-IST", "invalid_sync_date"),
    ]


def test_sample_builds_with_payload_and_rejected_rows_on_any_date(tmp_path):
    # The sample's times follow as_of, so a run "a year from now" still has events to send.
    result = run_dbt(
        tmp_path, *HOURLY_BUILD, export_dir=SAMPLE_DIR, vars={"as_of": "2027-07-07T07:07:07+09:00"}
    )
    assert result.returncode == 0, result.output
    (sent,) = result.rows("select count(*) from line_capi_payload")[0]
    reasons = {r for (r,) in result.rows("select distinct reason from line_capi_rejected")}
    assert sent >= 30
    assert reasons >= {
        "missing_deduplication_key",
        "invalid_deduplication_key",
        "no_user_identifier",
    }
    (oldest, newest) = result.rows(
        "select min(event_timestamp), max(event_timestamp) from line_capi_payload"
    )[0]
    as_of = 1814911627
    assert as_of - 24 * HOUR < oldest <= newest <= as_of


def test_no_plaintext_personal_data_in_the_database(tmp_path):
    result = run_dbt(tmp_path, "build", export_dir=SAMPLE_DIR)
    assert result.returncode == 0, result.output
    import csv

    with open(SAMPLE_DIR / "user_master.csv", encoding="utf-8") as f:
        secrets = [
            v.strip()
            for row in csv.DictReader(f)
            for v in (row["email"], row["phone"])
            if v.strip()
        ]
    assert secrets
    with result.connect() as con:
        tables = con.sql("select schema_name, table_name from duckdb_tables()").fetchall()
        assert {"line_capi_payload", "line_capi_rejected"} <= {t for _, t in tables}
        for schema, table in tables:
            columns = [
                c
                for (c,) in con.sql(
                    "select column_name from duckdb_columns() where schema_name = ? and "
                    "table_name = ?",
                    params=[schema, table],
                ).fetchall()
            ]
            for column in columns:
                found = con.sql(
                    f'select count(*) from "{schema}"."{table}" where cast("{column}" as varchar) '
                    "in (select unnest(?::varchar[]))",
                    params=[secrets],
                ).fetchall()[0][0]
                assert found == 0, f"plaintext personal data in {schema}.{table}.{column}"
    raw = result.database.read_bytes()
    for secret in secrets:
        assert secret.encode() not in raw


def test_payload_validation_test_reports_each_kind_of_bad_payload(tmp_path):
    """The data test is_valid_line_event fails on payloads LINE would refuse, with the reason."""
    result = run_dbt(tmp_path, "run", "--select", "+line_capi_payload", export_dir=SAMPLE_DIR)
    assert result.returncode == 0, result.output
    good = json.loads(result.rows("select payload from line_capi_payload limit 1")[0][0])
    bad = {
        "not json": "{not json",
        'does not begin with {"event":{': json.dumps(
            {"user": good["user"], "event": good["event"]}
        ),
        "unknown top-level member": json.dumps({**good, "extra": 1}, separators=(",", ":")),
        "null or empty member": json.dumps({**good, "web": {"url": None}}, separators=(",", ":")),
        "bad event": json.dumps(
            {**good, "event": {**good["event"], "event_timestamp": "1700000000"}},
            separators=(",", ":"),
        ),
        "no user identifier": json.dumps({"event": good["event"]}, separators=(",", ":")),
        "bad user field": json.dumps(
            {**good, "user": {"email": "not-a-hash"}}, separators=(",", ":")
        ),
        "bad web field": json.dumps(
            {**good, "web": {"ip_address": "999.1.1.1"}}, separators=(",", ":")
        ),
        "bad custom field": json.dumps(
            {**good, "custom": {"value": 1, "currency": "JPY", "quantity": 1.5}},
            separators=(",", ":"),
        ),
    }
    # valid: a page's own text that looks like an empty member is inside a string
    tricky = json.dumps(
        {**good, "web": {"title": 'Thanks:null :"" :{} :[]', "url": 'https://x.jp/?f={"c":[]}'}},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    with duckdb.connect(str(result.database)) as con:
        keys = [
            k
            for (k,) in con.sql(
                "select deduplication_key from line_capi_payload order by 1"
            ).fetchall()
        ]
        assert len(keys) > len(bad) + 1
        for key, payload in zip(keys, [*bad.values(), tricky], strict=False):
            con.execute(
                "update line_capi_payload set payload = ? where deduplication_key = ?",
                [payload, key],
            )
    tested = run_dbt(
        tmp_path,
        "test",
        "--select",
        "line_capi_payload,test_name:is_valid_line_event",
        "--store-failures",
        export_dir=SAMPLE_DIR,
    )
    assert tested.returncode != 0
    assert f"Got {len(bad)} results" in tested.output, tested.output
    (table,) = [
        t
        for (t,) in tested.rows(
            "select table_name from duckdb_tables() where table_name like 'is_valid_line_event%'"
        )
    ]
    found = {
        payload: problem
        for payload, problem in tested.rows(
            f'select payload, problem from main_dbt_test__audit."{table}"'
        )
    }
    assert found == {payload: problem for problem, payload in bad.items()}


def test_each_field_rule_test_fails_on_a_value_that_breaks_its_rule(tmp_path):
    """The generic tests named after LINE's field rules (on line_capi_payload_fields) pass on a
    real build and each fails, naming its column, once one value breaks its rule."""
    result = run_dbt(
        tmp_path, "run", "--select", "+line_capi_payload_fields", export_dir=SAMPLE_DIR
    )
    assert result.returncode == 0, result.output
    select = ["--select", "line_capi_payload_fields,test_type:generic"]
    clean = run_dbt(tmp_path, "test", *select, export_dir=SAMPLE_DIR)
    assert clean.returncode == 0, clean.output
    broken = {
        "is_line_click_id_line_capi_payload_fields_click_id": ("click_id", "not a click id!"),
        "is_line_browser_id_line_capi_payload_fields_browser_id": ("browser_id", "not-a-uuid"),
        "is_sha256_hex_line_capi_payload_fields_email_sha256": ("email_sha256", "A" * 64),
        "is_sha256_hex_line_capi_payload_fields_phone_sha256": ("phone_sha256", "abc"),
        "is_line_uid_line_capi_payload_fields_line_uid": ("line_uid", "U123"),
    }
    with duckdb.connect(str(result.database)) as con:
        keys = [
            k
            for (k,) in con.sql(
                "select deduplication_key from int_conversions_joined where reason is null "
                "order by 1"
            ).fetchall()
        ]
        for key, (column, value) in zip(keys, broken.values(), strict=False):
            con.execute(
                f"update int_conversions_joined set {column} = ? where deduplication_key = ?",
                [value, key],
            )
    tested = run_dbt(tmp_path, "test", *select, export_dir=SAMPLE_DIR)
    assert tested.returncode != 0
    failed = set(re.findall(r"Failure in test (\w+) ", tested.output))
    assert failed == set(broken), tested.output
    for name in broken:
        assert re.search(rf"Failure in test {name} .*\n.*Got 1 result", tested.output), name
