"""Hostile exports: each case is a clear one-line error or a documented rejected row (issue 5)."""

from __future__ import annotations

import json

import duckdb
import pytest
from pipeline_fixtures import run_dbt, write_export
from sender_fixtures import database_held
from test_pipeline import AS_OF, DAY, HOUR, T, export_tables, iso


def build(tmp_path, tables=None, fmt="csv", **kwargs):
    tables = export_tables() if tables is None else tables
    export = write_export(tmp_path / "export", tables, fmt)
    return export, run_dbt(
        tmp_path,
        "build",
        "--exclude",
        "test_type:unit",
        export_dir=export,
        vars={"as_of": AS_OF, **kwargs.pop("vars", {})},
        **kwargs,
    )


def conversion(key, at, user="u1", pv="pv-x", **kw):
    return {
        "event_name": "buy",
        "user_id": user,
        "transaction_id": key,
        "sync_date": at,
        "pv_id": pv,
        **kw,
    }


def test_header_only_files_build_and_send_nothing(tmp_path):
    export, result = build(tmp_path, {})
    assert result.returncode == 0, result.output
    assert result.rows("select count(*) from line_capi_payload") == [(0,)]
    assert result.rows("select count(*) from line_capi_rejected") == [(0,)]


def test_a_user_master_that_came_up_empty_stops_the_build_until_it_has_its_rows(tmp_path):
    """A header-only user_master (a copy that failed) after builds that read users sent every
    conversion without its email and phone, exit 0: for good, once LINE had them. The build now
    stops before the payload, hour after hour, until the users are back; a site that drops its
    user master on purpose builds once without the check."""
    tables = export_tables()
    _, first = build(tmp_path, tables)
    assert first.returncode == 0, first.output
    [(users,)] = first.rows("select user_master_rows from line_capi_build_info")
    payload = first.rows("select deduplication_key from line_capi_payload order by 1")
    assert users > 0 and payload
    emptied = {**tables, "user_master": []}
    for _ in range(2):  # the next hour too: the last finished build still read users
        export, stopped = build(tmp_path, emptied)
        assert stopped.returncode != 0
        assert (
            f"KARTE export table user_master has no row, and the last build read {users}: an"
            " export that came up empty"
        ) in stopped.output, stopped.output
        # the payload is still the last finished build's
        assert stopped.rows("select deduplication_key from line_capi_payload order by 1") == payload
    # on purpose: built once without the check, then the empty user master is the usual
    chosen = run_dbt(
        tmp_path,
        "build",
        "--exclude",
        "test_type:unit",
        "assert_user_master_not_emptied",
        export_dir=export,
        vars={"as_of": AS_OF},
    )
    assert chosen.returncode == 0, chosen.output
    assert chosen.rows("select user_master_rows from line_capi_build_info") == [(0,)]
    _, after = build(tmp_path, emptied)
    assert after.returncode == 0, after.output


def test_zero_byte_file_is_refused_with_a_message(tmp_path):
    export = write_export(tmp_path / "export", export_tables())
    (export / "user_master.csv").write_bytes(b"")
    result = run_dbt(tmp_path, "run", export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode != 0
    assert "user_master.csv is empty: it needs at least the header row" in result.output


def test_shift_jis_csv_is_refused_with_a_message_that_says_so(tmp_path):
    export = write_export(tmp_path / "export", export_tables())
    text = (export / "page_views.csv").read_text(encoding="utf-8")
    (export / "page_views.csv").write_bytes(
        text.replace("Thanks", "ご注文ありがとう").encode("cp932", errors="replace")
    )
    result = run_dbt(tmp_path, "run", export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode != 0
    assert (
        "page_views.csv is not UTF-8 (a spreadsheet may have saved it as Shift_JIS/CP932):"
        " convert it to UTF-8, e.g. iconv -f CP932 -t UTF-8" in result.output
    )
    assert "latin-1" not in result.output  # it would read Japanese text as garbage, silently


def test_utf16_csv_is_named_as_such_and_read_with_the_encoding_var(tmp_path):
    """Excel's "Unicode text" and Windows tools write UTF-16 with a byte order mark: the CP932
    advice would turn it into garbage."""
    export = write_export(tmp_path / "export", export_tables())
    text = (export / "page_views.csv").read_text(encoding="utf-8")
    (export / "page_views.csv").write_bytes(text.encode("utf-16"))  # with its byte order mark
    result = run_dbt(tmp_path, "run", export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode != 0
    assert (
        "page_views.csv is UTF-16 (it begins with UTF-16's byte order mark): convert it to"
        " UTF-8, e.g. iconv -f UTF-16 -t UTF-8 (or, when every CSV file of the export is UTF-16,"
        " set var karte_export_encoding: utf-16)"
    ) in result.output
    assert "CP932" not in result.output
    for path in export.glob("*.csv"):  # the var is the whole export's
        if path.name != "page_views.csv":
            path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16"))
    fixed = run_dbt(
        tmp_path, "run", export_dir=export, vars={"as_of": AS_OF, "karte_export_encoding": "utf-16"}
    )
    assert fixed.returncode == 0, fixed.output


def test_unsupported_encoding_var_says_how_to_convert(tmp_path):
    _, result = build(tmp_path, vars={"karte_export_encoding": "shift_jis"})
    assert result.returncode != 0
    assert "invalid dbt var karte_export_encoding=shift-jis" in result.output
    assert "iconv -f CP932 -t UTF-8" in result.output


def test_an_encoding_var_of_no_japanese_charset_is_not_told_about_shift_jis(tmp_path):
    _, result = build(tmp_path, vars={"karte_export_encoding": "windows-1252"})
    assert result.returncode != 0
    assert "invalid dbt var karte_export_encoding=windows-1252" in result.output
    assert "iconv -f windows-1252 -t UTF-8" in result.output
    assert "Shift_JIS" not in result.output


def test_an_empty_encoding_var_names_no_empty_command(tmp_path):
    _, result = build(tmp_path, vars={"karte_export_encoding": ""})
    assert result.returncode != 0
    assert "invalid dbt var karte_export_encoding='': DuckDB reads utf-8" in result.output
    assert "iconv -f <its encoding> -t UTF-8" in result.output


@pytest.mark.parametrize("spelling", ["utf8", "UTF_8", "UTF-8 "])
def test_other_spellings_of_utf8_read_the_export(tmp_path, spelling):
    _, result = build(tmp_path, vars={"karte_export_encoding": spelling})
    assert result.returncode == 0, result.output
    assert result.payloads()


def test_a_source_schema_that_is_not_a_plain_name_is_refused_before_any_ddl(tmp_path):
    _, result = build(tmp_path, vars={"karte_source_schema": "karte; drop table x"})
    assert result.returncode != 0
    assert "invalid dbt var karte_source_schema=karte; drop table x: expected a schema name" in (
        result.output
    )
    assert "Parser Error" not in result.output


def test_a_database_path_naming_another_file_stops_dbt_and_leaves_the_file(tmp_path):
    # DuckDB would build in memory, write nothing and report success
    other = tmp_path / "orders.csv"
    other.write_text("a,b\n1,2\n")
    other.chmod(0o644)
    _, result = build(tmp_path, database=other)
    assert result.returncode != 0
    assert f"{other} is not a DuckDB database file: LINE_CAPI_DUCKDB" in result.output
    assert other.read_text() == "a,b\n1,2\n" and other.stat().st_mode & 0o777 == 0o644


def test_a_database_in_a_missing_folder_stops_dbt_with_one_line(tmp_path):
    _, result = build(tmp_path, database=tmp_path / "no-such-folder" / "line_capi.duckdb")
    assert result.returncode != 0
    assert (
        f"the folder of the database {tmp_path / 'no-such-folder' / 'line_capi.duckdb'} does not"
        " exist: create it, or fix LINE_CAPI_DUCKDB" in result.output
    )
    assert "Traceback" not in result.output and "IO Error" not in result.output


def test_a_database_path_naming_a_folder_stops_dbt_with_one_line(tmp_path):
    # LINE_CAPI_DUCKDB=data, the folder for its file: DuckDB's error came as three tracebacks
    folder = tmp_path / "data"
    folder.mkdir()
    _, result = build(tmp_path, database=folder)
    assert result.returncode != 0
    assert f"database {folder} is a folder: LINE_CAPI_DUCKDB" in result.output
    assert "Traceback" not in result.output and "Is a directory" not in result.output
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("name", ["main.duckdb", "TEMP.duckdb"])
def test_a_database_named_as_duckdbs_own_catalogs_stops_dbt_and_sender_run(tmp_path, name):
    """DuckDB attaches main.duckdb as `main`, its own catalog's name: every model failed with a
    Catalog Error about "main.karte_export.conversions"."""
    from sender_fixtures import run_cli, sender_env

    database = tmp_path / name
    said = f"database {database} has a name DuckDB keeps for its own catalogs (main, system, temp)"
    _, result = build(tmp_path, database=database)
    assert result.returncode != 0 and said in result.output, result.output
    assert "Catalog Error" not in result.output and not database.exists()
    r = run_cli(["run"], sender_env(database, "http://127.0.0.1:9"))
    assert r.returncode == 2 and r.stderr.startswith(f"error: {said}: name the file otherwise")


def test_a_database_name_in_quotes_stops_sender_run_and_leaves_no_file(tmp_path):
    """LINE_CAPI_DUCKDB="q.duckdb" kept in quotes (Docker's env file): the run made files named
    "q.duckdb" and "q_run.log, then failed in dbt with a parser error (exit 12)."""
    from sender_fixtures import run_cli, sender_env

    env = sender_env(tmp_path / "unused.duckdb", "http://127.0.0.1:9")
    env["LINE_CAPI_DUCKDB"] = '"q.duckdb"'
    r = run_cli(["run"], env, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr == (
        'error: database "q.duckdb": its name is in quotes, which are part of the value (Docker\'s'
        " --env-file and Compose's env_file keep them): write LINE_CAPI_DUCKDB without quotes\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_empty_database_variable_builds_the_default_database_as_the_sender_reads_it(tmp_path):
    # LINE_CAPI_DUCKDB= in a .env: dbt stopped on "Unable to determine target database name"
    (tmp_path / "data").mkdir()
    _, result = build(tmp_path, env={"LINE_CAPI_DUCKDB": ""})
    assert result.returncode == 0, result.output
    with duckdb.connect(str(tmp_path / "data" / "line_capi.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from line_capi_payload").fetchone()[0] > 0


def test_a_database_another_process_holds_stops_dbt_with_one_line(tmp_path):
    # a sender push still running: DuckDB's own error came as three tracebacks
    db = tmp_path / "held.duckdb"
    duckdb.connect(str(db)).close()
    with database_held(db) as holder:
        _, result = build(tmp_path, database=db)
    assert result.returncode != 0
    assert f"database {db} is locked by another process (pid {holder}, " in result.output
    assert (
        ": a sender push or run, a dbt build, or a DuckDB shell left open): build once it has"
        " finished, or use sender run" in result.output
    )
    assert "Traceback" not in result.output and "Conflicting lock" not in result.output


def test_a_database_path_with_a_windows_line_ending_stops_dbt(tmp_path):
    # a new, empty database would be built beside the real one, and its empty ledger re-send all
    wanted = tmp_path / "line_capi.duckdb"
    _, result = build(tmp_path, env={"LINE_CAPI_DUCKDB": f"{wanted}\r"})
    assert result.returncode != 0
    assert "has a space or line break at its start or end (a .env file saved with" in result.output
    assert [p.name for p in tmp_path.iterdir() if "duckdb" in p.name] == []


def test_bom_extra_columns_quoted_commas_and_newlines(tmp_path):
    tables = export_tables()
    for row in tables["page_views"]:
        row["title"] = 'Cart, "checkout"\nand thanks'
        row["extra_column"] = "ignored"
    export = write_export(tmp_path / "export", tables)
    for name in ("conversions.csv", "page_views.csv"):
        path = export / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = run_dbt(tmp_path, "run", export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode == 0, result.output
    payloads = result.payloads()
    assert set(payloads) == {"ORD-1", "ORD-2", "ORD-4"}
    assert payloads["ORD-1"]["web"]["title"] == 'Cart, "checkout"\nand thanks'


def test_parquet_with_typed_columns(tmp_path):
    """sync_date as a real timestamp or as epoch milliseconds, revenue as a double."""
    csv_export, csv_result = build(tmp_path / "csv")
    assert csv_result.returncode == 0, csv_result.output
    export = tmp_path / "typed"
    export.mkdir()
    con = duckdb.connect()
    for table in ("line_users", "user_master", "page_views"):
        con.sql(
            f"copy (select * from read_csv('{csv_export}/{table}.csv', all_varchar = true)) "
            f"to '{export}/{table}.parquet' (format parquet)"
        )
    con.sql(f"""copy (
        select * replace (
            epoch_ms(cast(sync_date as timestamptz)) as sync_date,
            try_cast(revenue as double) as revenue)
        from read_csv('{csv_export}/conversions.csv', all_varchar = true)
    ) to '{export}/conversions.parquet' (format parquet)""")
    (typ,) = con.sql(
        f"select typeof(sync_date) from '{export}/conversions.parquet' limit 1"
    ).fetchall()[0]
    assert typ == "BIGINT"
    con.sql(f"""copy (
        select * replace (cast(sync_date as timestamptz) as sync_date)
        from '{export}/page_views.parquet'
    ) to '{export}/page_views_typed.parquet' (format parquet)""")
    (export / "page_views_typed.parquet").replace(export / "page_views.parquet")
    result = run_dbt(tmp_path, "run", export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode == 0, result.output
    assert result.payloads() == csv_result.payloads()


def test_hostile_values_are_sent_cleaned_or_rejected_with_a_reason(tmp_path):
    tables = export_tables()
    long_text = "長" * 100_000
    tables["conversions"] += [
        conversion("TS-Z", "2026-03-01T02:00:00Z", revenue="abc", items="not json"),
        conversion("TS-FRACTION", "2026-03-01T11:00:00.999999+09:00"),
        conversion("TS-SPACE", "2026-03-01 02:00:00+00:00"),
        conversion("TS-NO-OFFSET", "2026-03-01T02:00:00"),
        conversion("TS-SPACED-OFFSET", "2026-03-01 11:00:00.000 +0900"),  # Snowflake's default
        conversion("TS-SPACED-WEST", "2026-02-28 21:00:00 -05:00"),
        conversion("TS-GARBAGE", "31/02/2026 25:99"),
        # epochs as pandas writes an integer column with gaps: floats, the fraction truncated
        conversion("TS-EPOCH-FLOAT", f"{T - HOUR}.0"),
        conversion("TS-EPOCH-MS-FLOAT", f"{(T - HOUR) * 1000 + 999}.5"),
        conversion("TS-EPOCH-DOTS", f"{T - HOUR}.0.0"),
        # a spreadsheet's dates: their zone and day order cannot be known, so they are not read
        conversion("TS-SLASHES", "2026/03/01 11:00"),
        conversion("TS-US-ORDER", "03/01/2026 11:00"),
        conversion("TS-EMPTY", ""),
        # a buy fired twice, both rows unreadable
        conversion("TS-TWICE", "2026/03/01 11:00", pv="pv-t1"),
        conversion("TS-TWICE", "2026/03/01 11:01", pv="pv-t2"),
        conversion("LONG-" + "k" * 300, iso(T - HOUR)),
        conversion("REVENUE-HUGE", iso(T - HOUR), revenue="1e12", items='{"item_id": "x"}'),
    ]
    tables["conversions"] += [
        conversion("REPEATED", iso(T - HOUR - i), pv=f"pv-r{i:05d}") for i in range(3000)
    ]
    tables["page_views"].append(
        {
            "user_id": "u1",
            "sync_date": iso(T - HOUR),
            "pv_id": "pv-x",
            "url": "https://shop.example.jp/" + "a" * 3000,
            "title": "\x01\x07 bell 🎉\u202e" + long_text,
            "user_agent": "UA\x00\x1b[31m" + long_text,
            "ip_address": "192.168.001.001",
        }
    )
    export, result = build(tmp_path, tables)
    assert result.returncode == 0, result.output
    payloads = result.payloads()
    rejected = result.rejected()
    assert payloads["TS-Z"]["event"]["event_timestamp"] == T - 1 * HOUR
    assert payloads["TS-FRACTION"]["event"]["event_timestamp"] == T - HOUR
    assert payloads["TS-SPACE"]["event"]["event_timestamp"] == T - HOUR
    assert payloads["TS-NO-OFFSET"]["event"]["event_timestamp"] == T - HOUR
    assert payloads["TS-SPACED-OFFSET"]["event"]["event_timestamp"] == T - HOUR
    assert payloads["TS-SPACED-WEST"]["event"]["event_timestamp"] == T - HOUR
    assert "custom" not in payloads["TS-Z"]  # revenue text and items not JSON: no custom
    assert "custom" not in payloads["REVENUE-HUGE"]
    assert payloads["TS-EPOCH-FLOAT"]["event"]["event_timestamp"] == T - HOUR
    assert payloads["TS-EPOCH-MS-FLOAT"]["event"]["event_timestamp"] == T - HOUR
    assert rejected["TS-EPOCH-DOTS"] == "invalid_sync_date"
    assert rejected["TS-GARBAGE"] == "invalid_sync_date"
    assert rejected["TS-EMPTY"] == "invalid_sync_date"
    assert rejected["TS-SLASHES"] == rejected["TS-US-ORDER"] == "invalid_sync_date"
    # one conversion, rejected once (the build's uniqueness test held: returncode 0)
    assert result.rows(
        "select pv_id, reason from line_capi_rejected where transaction_id = 'TS-TWICE'"
    ) == [("pv-t1", "invalid_sync_date")]
    assert rejected["LONG-" + "k" * 300] == "invalid_deduplication_key"
    # one conversion for 3000 rows of one key: the earliest
    assert payloads["REPEATED"]["event"]["event_timestamp"] == T - HOUR - 2999
    assert result.rows(
        "select count(*) from line_capi_rejected where transaction_id = 'REPEATED'"
    ) == [(0,)]
    web = payloads["TS-Z"]["web"]
    # cut to 1024 UTF-16 units: the emoji counts two
    assert len(web["title"].encode("utf-16-le")) == 2 * 1024
    assert web["title"].startswith("\x01\x07 bell 🎉")
    assert web["user_agent"].startswith("UA\x00\x1b[31m")
    assert "url" not in web and "ip_address" not in web
    # every payload is one line of valid JSON whose control characters are escaped
    for (text,) in result.rows("select payload from line_capi_payload"):
        assert "\n" not in text and "\x00" not in text and "\x1b" not in text
        json.loads(text)


def test_an_export_where_every_row_is_invalid(tmp_path):
    tables = {
        "conversions": [
            conversion("", iso(T - HOUR)),
            conversion("undefined", iso(T - HOUR)),
            conversion("ORD-9", "not a date"),
            conversion("ORD-10", iso(T - HOUR), user="nobody"),
        ]
    }
    export, result = build(tmp_path, tables)
    assert result.returncode == 0, result.output
    assert result.rows("select count(*) from line_capi_payload") == [(0,)]
    assert sorted(r for (r,) in result.rows("select reason from line_capi_rejected")) == [
        "invalid_deduplication_key",
        "invalid_sync_date",
        "missing_deduplication_key",
        "no_user_identifier",
    ]


def test_old_events_in_a_long_backfill_are_rejected_as_out_of_range(tmp_path):
    tables = {
        "conversions": [conversion("OLD", iso(T - 91 * DAY)), conversion("FRESH", iso(T - DAY))],
        "user_master": [{"user_id": "u1", "email": "a@example.jp"}],
    }
    export, result = build(tmp_path, tables, vars={"lookback_hours": 8760})
    assert result.returncode == 0, result.output
    assert result.rejected() == {"OLD": "timestamp_out_of_range"}
    assert set(result.payloads()) == {"FRESH"}


@pytest.mark.parametrize(
    ("var", "value"),
    [("lookback_hours", 100000), ("ad_contact_days", 365), ("lookback_hours", "1.5")],
)
def test_absurd_windows_are_refused(tmp_path, var, value):
    result = run_dbt(
        tmp_path, "run", "--select", "int_conversions_windowed+", vars={"as_of": AS_OF, var: value}
    )
    assert result.returncode != 0
    assert f"invalid dbt var {var}={value}: expected a whole number" in result.output


@pytest.mark.parametrize("missing", ["\\N", "NULL", "nan", "None", "undefined", "-"])
def test_a_no_value_word_is_no_id_so_strangers_are_never_joined(tmp_path, missing):
    """Snowflake's unload writes a missing value as \\N, pandas as nan or None: read as an id,
    every such user was one person, and a stranger's click id, email and page view (its IP and
    user agent) went out in another's event."""
    tables = export_tables()
    tables["conversions"] += [
        conversion("NOID-1", iso(T - HOUR), user=missing, pv="pv-stranger"),
        conversion("NOID-2", iso(T - HOUR), user=missing, pv=missing),
    ]
    tables["page_views"] += [
        {
            "user_id": missing,
            "sync_date": iso(T - 2 * HOUR),
            "pv_id": missing,
            "url": "https://shop.example.jp/lp?ldtag_cl=SomeoneElsesClick",
            "referrer": missing,
            "title": missing,
            "ip_address": "198.51.100.7",
            "user_agent": missing,
        },
        {
            "user_id": "u-stranger",
            "sync_date": iso(T - HOUR),
            "pv_id": "pv-stranger",
            "url": "https://shop.example.jp/thanks",
            "referrer": missing,
            "title": missing,
            "user_agent": missing,
        },
    ]
    tables["user_master"].append({"user_id": missing, "email": "stranger@example.com"})
    export, result = build(tmp_path, tables)
    assert result.returncode == 0, result.output
    rejected = result.rejected()
    # no identifier of their own: rejected, never sent with a stranger's
    assert rejected["NOID-1"] == rejected["NOID-2"] == "no_user_identifier"
    (web,) = result.rows(
        "select referrer, title, user_agent from stg_karte__page_views where pv_id = 'pv-stranger'"
    )
    assert web == (None, None, None)  # not sent as "\\N" or "nan"
    for (text,) in result.rows("select payload from line_capi_payload"):
        assert "SomeoneElsesClick" not in text and "198.51.100.7" not in text
