"""Exports as a warehouse writes them: typed Parquet columns, split and gzipped CSV parts, a folder
of Parquet parts. Each builds to the same payload and rejected rows as the same data exported as
text CSV, whatever the machine's time zone.

The builds are the hourly job's (models and data tests). The unit tests read their own rows, cast
to the column types of the export views, which are text whatever the files store: the typed
Parquet build runs them too, and checks that the views are text."""

from __future__ import annotations

import csv
import gzip
import io
import shutil

import duckdb
import pytest
from pipeline_fixtures import HOURLY_BUILD, rewrite_export, run_dbt, write_export
from test_pipeline import AS_OF, export_tables

USERS = {"u1": "1001", "u2": "1002", "u3": "1003"}
ITEMS_TYPE = """'[{"item_id": "VARCHAR", "quantity": "BIGINT", "price": "DOUBLE"}]'"""


def warehouse_tables() -> dict[str, list[dict]]:
    """The pipeline's fixture export with numeric user and page view ids, and LINE logins dated
    by day, so that each column can be stored typed (INT64, DATE) as well as text."""
    tables = export_tables()
    pv_ids: dict[str, str] = {}
    for rows in tables.values():
        for row in rows:
            if "user_id" in row:
                row["user_id"] = USERS.get(row["user_id"], row["user_id"])
            if row.get("pv_id"):
                row["pv_id"] = pv_ids.setdefault(row["pv_id"], str(7000 + len(pv_ids)))
    for row in tables["line_users"]:
        row["sync_date"] = row["sync_date"][:10]
    return tables


# Build B: one Parquet file per table, every column typed as BigQuery exports it.
TYPED = {
    "conversions": {
        "sync_date": "cast(sync_date as timestamptz)",
        "revenue": "cast(revenue as double)",
        "user_id": "cast(user_id as bigint)",
        "pv_id": "cast(pv_id as bigint)",
        "items": f"from_json(items, {ITEMS_TYPE})",
    },
    "page_views": {
        "sync_date": "timezone('UTC', cast(sync_date as timestamptz))",
        "user_id": "cast(user_id as bigint)",
        "pv_id": "cast(pv_id as bigint)",
    },
    "line_users": {"sync_date": "cast(sync_date as date)", "user_id": "cast(user_id as bigint)"},
    "user_master": {"user_id": "cast(user_id as bigint)"},
}
# Build C: a folder of Parquet parts per table, other types.
FOLDER_TYPED = {
    "conversions": {
        "sync_date": "timezone('UTC', cast(sync_date as timestamptz))",
        "revenue": "cast(revenue as decimal(12, 2))",
    },
    "page_views": {"sync_date": "cast(sync_date as timestamptz)"},
}

# Build D: numbers as a spreadsheet or pandas leaves them: ids as DOUBLE (a column with a gap) or
# DECIMAL, the phone as an INT64 that lost its leading 0.
NUMBERS_TYPED = {
    "conversions": {
        "user_id": "cast(user_id as double)",
        "pv_id": "cast(pv_id as decimal(38, 9))",
        "revenue": "cast(revenue as decimal(38, 9))",
    },
    "page_views": {"user_id": "cast(user_id as bigint)", "pv_id": "cast(pv_id as double)"},
    "line_users": {"user_id": "cast(user_id as decimal(20, 0))"},
    "user_master": {
        "user_id": "cast(user_id as double)",
        "phone": "try_cast(regexp_replace(phone, '[^0-9]', '', 'g') as bigint)",
    },
}
# Build E: Japan time without its offset, as a BigQuery DATETIME of JST holds it: typed, or as text.
JAPAN_TIME = "timezone('Asia/Tokyo', try_cast(sync_date as timestamptz))"
JAPAN_TIME_TYPED = {table: {"sync_date": JAPAN_TIME} for table in ("conversions", "page_views")}
JAPAN_TIME_TEXT = {
    table: {"sync_date": f"coalesce(strftime({JAPAN_TIME}, '%Y-%m-%dT%H:%M:%S'), sync_date)"}
    for table in ("conversions", "page_views")
}


def build(tmp, export, env=None, vars=None, unit_tests=False):
    all_vars = {"as_of": AS_OF, **(vars or {})}
    command = ("build",) if unit_tests else HOURLY_BUILD
    result = run_dbt(tmp, *command, export_dir=export, vars=all_vars, env=env)
    assert result.returncode == 0, result.output
    return result


def rejected_rows(result) -> list[tuple]:
    return sorted(
        result.rows(
            "select transaction_id, deduplication_key, event_name, user_id, pv_id, reason, "
            "event_timestamp from line_capi_rejected"
        ),
        key=repr,
    )


def column_types(path) -> dict[str, str]:
    with duckdb.connect() as con:
        return {
            name: typ for name, typ, *_ in con.sql(f"describe select * from '{path}'").fetchall()
        }


@pytest.fixture(scope="module")
def text_export(tmp_path_factory):
    return write_export(tmp_path_factory.mktemp("text") / "export", warehouse_tables(), "csv")


@pytest.fixture(scope="module")
def text_build(tmp_path_factory, text_export):
    return build(tmp_path_factory.mktemp("text-build"), text_export)


def test_the_text_export_builds_payload_and_rejected_rows(text_build):
    # the comparisons below are not between two empty tables
    assert set(text_build.payloads()) == {"ORD-1", "ORD-2", "ORD-4"}
    assert sorted(reason for *_, reason, _ in rejected_rows(text_build)) == [
        "invalid_deduplication_key",
        "missing_deduplication_key",
        "no_user_identifier",
    ]
    assert "custom" in text_build.payloads()["ORD-1"]


def test_typed_parquet_builds_the_same_rows(tmp_path, text_export, text_build):
    export = rewrite_export(text_export, tmp_path / "export", "parquet", TYPED)
    types = column_types(export / "conversions.parquet")
    assert types["sync_date"] == "TIMESTAMP WITH TIME ZONE"
    assert types["items"] == "STRUCT(item_id VARCHAR, quantity BIGINT, price DOUBLE)[]"
    assert (types["revenue"], types["user_id"], types["pv_id"]) == ("DOUBLE", "BIGINT", "BIGINT")
    assert column_types(export / "page_views.parquet")["sync_date"] == "TIMESTAMP"
    assert column_types(export / "line_users.parquet")["sync_date"] == "DATE"
    # DuckDB renders a TIMESTAMPTZ as text in the session time zone: the machine's must not matter
    result = build(tmp_path, export, env={"TZ": "Asia/Tokyo"}, unit_tests=True)
    assert "START unit_test" in result.output, result.output  # and passed: build() checks
    # what keeps the unit tests apart from the export's types: the views they cast to are text
    view_types = result.rows(
        "select distinct table_name, data_type from information_schema.columns"
        " where table_schema = 'karte_export'"
    )
    assert {table for table, _ in view_types} == {
        "conversions",
        "page_views",
        "line_users",
        "user_master",
    }
    assert {data_type for _, data_type in view_types} == {"VARCHAR"}
    assert result.payloads() == text_build.payloads()
    assert rejected_rows(result) == rejected_rows(text_build)
    # a typed instant is kept as ISO 8601 text in UTC (ORD-3 was at T - 4 h)
    assert result.rows(
        "select sync_date from line_capi_rejected where transaction_id = 'ORD-3'"
    ) == [("2026-02-28T23:00:00Z",)]


def test_numbers_as_a_spreadsheet_leaves_them_build_the_same_rows(
    tmp_path, text_export, text_build
):
    export = rewrite_export(text_export, tmp_path / "export", "parquet", NUMBERS_TYPED)
    types = column_types(export / "conversions.parquet")
    assert (types["user_id"], types["pv_id"]) == ("DOUBLE", "DECIMAL(38,9)")
    users = duckdb.sql(f"select user_id, phone from '{export / 'user_master.parquet'}'")
    assert ("DOUBLE", "BIGINT") == tuple(str(t) for t in users.types)
    assert (1001.0, 9012345678) in users.fetchall()  # 090-1234-5678 without its 0
    result = build(tmp_path, export)
    # the ids join as the text ids do, and the phone hashes as +819012345678
    assert result.payloads() == text_build.payloads()
    assert "phone" in result.payloads()["ORD-1"]["user"]
    assert rejected_rows(result) == rejected_rows(text_build)


@pytest.mark.parametrize(
    ("fmt", "casts", "stored"),
    [("parquet", JAPAN_TIME_TYPED, "TIMESTAMP"), ("csv.gz", JAPAN_TIME_TEXT, "VARCHAR")],
    ids=["datetime", "text"],
)
def test_japan_time_without_its_offset_builds_the_same_rows_with_var_karte_export_utc_offset(
    tmp_path, text_export, text_build, fmt, casts, stored
):
    export = rewrite_export(text_export, tmp_path / "export", fmt, casts)
    path = export / f"conversions.{fmt}"
    with duckdb.connect() as con:
        read = f"read_csv('{path}', all_varchar = true)" if fmt == "csv.gz" else f"'{path}'"
        relation = con.sql(f"select sync_date from {read} where sync_date is not null")
        assert str(relation.types[0]) == stored
        # 10:00 in Japan is stored as 10:00, without its offset (ORD-3 was at 2026-02-28T23:00Z)
        times = [str(t) for (t,) in relation.fetchall()]
        assert "2026-03-01 08:00:00" in times or "2026-03-01T08:00:00" in times, times
    result = build(
        tmp_path,
        export,
        env={"TZ": "America/Los_Angeles"},
        vars={"karte_export_utc_offset": "+09:00"},
    )
    assert result.payloads() == text_build.payloads()
    assert rejected_rows(result) == rejected_rows(text_build)


def test_folder_of_parquet_parts_builds_the_same_rows(tmp_path, text_export, text_build):
    export = rewrite_export(
        text_export, tmp_path / "export", "parquet", FOLDER_TYPED, parts=3, layout="folder"
    )
    for table in ("conversions", "page_views", "line_users", "user_master"):
        (export / table / "_SUCCESS").write_bytes(b"")  # a marker file, not a part
    (export / "conversions" / "part-9.parquet").write_bytes(b"")  # an empty part
    types = column_types(export / "conversions" / "part-0.parquet")
    assert (types["sync_date"], types["revenue"]) == ("TIMESTAMP", "DECIMAL(12,2)")
    result = build(tmp_path, export, env={"TZ": "America/Los_Angeles"})
    assert result.payloads() == text_build.payloads()
    assert rejected_rows(result) == rejected_rows(text_build)


@pytest.mark.parametrize(
    ("folder", "decoy", "fmt", "layout"),
    [
        ("export[1]", "export1", "parquet", "folder"),
        ("site*", "site-b", "csv.gz", "parts"),
        ("site?", "siteb", "csv", "file"),
    ],
)
def test_an_export_folder_named_with_glob_characters_reads_only_itself(
    tmp_path, text_export, text_build, folder, decoy, fmt, layout
):
    # DuckDB globs every path it reads: `export[1]` read `export1`, another site's export, and
    # the build sent its conversions without a word
    parts = 1 if layout == "file" else 2
    # the other site's conversions have other keys, which the build must not read
    clone = {"conversions": {"transaction_id": "'OTHER-' || transaction_id"}}
    if fmt == "csv":  # plain CSV, as written (its file checks read it whole)
        export = shutil.copytree(text_export, tmp_path / folder)
        shutil.copytree(text_export, tmp_path / decoy)
        with duckdb.connect() as con:
            con.sql(
                f"copy (select * replace ('OTHER-' || transaction_id as transaction_id)"
                f" from read_csv('{text_export}/conversions.csv', all_varchar = true))"
                f" to '{tmp_path / decoy}/conversions.csv' (format csv, header)"
            )
    else:
        export = rewrite_export(text_export, tmp_path / folder, fmt, parts=parts, layout=layout)
        rewrite_export(text_export, tmp_path / decoy, fmt, clone, parts=parts, layout=layout)
    result = build(tmp_path, export)
    assert result.payloads() == text_build.payloads()
    assert rejected_rows(result) == rejected_rows(text_build)


def test_user_ids_pandas_wrote_as_floats_to_csv_build_the_same_rows(
    tmp_path, text_export, text_build
):
    """An id column with a gap is float in pandas, so its CSV says 1001.0: those users lost
    every email and phone (no join with 1001), without a word."""
    export = tmp_path / "export"
    shutil.copytree(text_export, export)
    floats = 0
    for table in ("user_master", "line_users"):
        path = export / f"{table}.csv"
        with duckdb.connect() as con:
            con.sql(f"create table t as select * from read_csv('{path}', all_varchar = true)")
            floats += con.sql(
                "select count(*) from t where regexp_full_match(user_id, '[0-9]+')"
            ).fetchall()[0][0]
            con.sql(
                "update t set user_id = user_id || '.0' where regexp_full_match(user_id, '[0-9]+')"
            )
            con.sql(f"copy t to '{path}' (format csv, header)")
    assert floats >= 3
    result = build(tmp_path, export)
    assert result.returncode == 0, result.output
    assert result.payloads() == text_build.payloads()
    assert rejected_rows(result) == rejected_rows(text_build)


def test_parquet_partitioned_into_folders_by_a_column_builds_the_same_rows(
    tmp_path, text_export, text_build
):
    """Spark's partitionBy("event_name"): the column is in the folder names (event_name=buy/),
    not in the files. It built with one such folder and failed once a second one appeared."""
    export = tmp_path / "export"
    shutil.copytree(text_export, export)
    conversions = export / "conversions.csv"
    with duckdb.connect() as con:
        con.sql(
            f"copy (select * from read_csv('{conversions}', all_varchar = true))"
            f" to '{export / 'conversions'}' (format parquet, partition_by (event_name))"
        )
    conversions.unlink()
    folders = sorted(p.name for p in (export / "conversions").iterdir())
    assert len(folders) >= 2 and all(f.startswith("event_name=") for f in folders), folders
    result = build(tmp_path, export)
    assert result.returncode == 0, result.output
    assert result.payloads() == text_build.payloads()
    assert rejected_rows(result) == rejected_rows(text_build)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_folder_naming_a_column_its_files_hold_is_one_line(
    tmp_path, text_export, text_build, fmt
):
    """conversions/sync_date=2026-03-01/ over files that hold sync_date: DuckDB gave every row the
    folder's value (each conversion dated that midnight, and sent so), with exit 0."""
    export = tmp_path / "export"
    shutil.copytree(text_export, export)
    conversions = export / "conversions.csv"
    part = export / "conversions" / "sync_date=2026-03-01" / f"part-0.{fmt}"
    part.parent.mkdir(parents=True)
    if fmt == "csv":
        conversions.rename(part)
    else:
        with duckdb.connect() as con:
            con.sql(
                f"copy (select * from read_csv('{conversions}', all_varchar = true)) to '{part}'"
            )
        conversions.unlink()
    result = run_dbt(tmp_path, *HOURLY_BUILD, export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode != 0
    (line,) = [line for line in result.output.splitlines() if "names the column" in line]
    assert line.strip() == (
        f"KARTE export table conversions: the folder sync_date=2026-03-01 of {part} names the"
        " column sync_date, which the file holds too, and DuckDB would give every row the"
        " folder's value instead of its own: rename the folder (export_sync_date=2026-03-01)"
        " or leave the column out of the files"
    )
    assert nothing_was_built(result)
    # a part beside it under no such folder: DuckDB then reads no folder as a column, and each
    # row keeps its own sync_date (nothing refused that DuckDB reads right)
    other = export / "conversions" / "more" / f"part-1.{fmt}"
    other.parent.mkdir()
    with duckdb.connect() as con:
        con.sql(f"copy (select * from '{part}' limit 0) to '{other}'")
    result = build(tmp_path / "mixed", export)
    assert result.payloads() == text_build.payloads()


def test_parts_storing_numbers_and_parts_storing_text_build_the_same_rows(
    tmp_path, text_export, text_build
):
    """pandas, writing chunk by chunk: one part of each table with ids and phones as numbers
    (DOUBLE ids, INT64 phones without their 0), the other as text. DuckDB reads such a column as
    text, `1001.0` and `9012345678`: each part is read as its own type says."""
    export = rewrite_export(
        text_export, tmp_path / "export", "parquet", NUMBERS_TYPED, parts=2, layout="folder"
    )
    text = rewrite_export(text_export, tmp_path / "text", "parquet", parts=2, layout="folder")
    for table in ("conversions", "page_views", "line_users", "user_master"):
        (text / table / "part-0.parquet").replace(export / table / "part-0.parquet")
    users = export / "user_master"
    assert column_types(users / "part-0.parquet")["phone"] == "VARCHAR"
    assert column_types(users / "part-1.parquet")["phone"] == "BIGINT"
    with duckdb.connect() as con:
        merged = con.sql(
            f"select user_id, phone from read_parquet('{users}/*.parquet', union_by_name = true)"
        )
        assert [str(t) for t in merged.types] == ["VARCHAR", "VARCHAR"]
        assert ("1001.0", "9012345678") in merged.fetchall()  # what a plain read would use
    result = build(tmp_path, export)
    assert result.payloads() == text_build.payloads()
    assert "phone" in result.payloads()["ORD-1"]["user"]
    assert rejected_rows(result) == rejected_rows(text_build)


# Build F: times as pandas writes them, in nanoseconds: an instant (datetime64[ns, UTC]) in the
# last 400 ns of its second (rounded to microseconds it would be the next second), and a UTC time
# without a zone.
LAST_NANOSECONDS = (
    "make_timestamp_ns(cast(floor(epoch(cast(sync_date as timestamptz))) as bigint)"
    " * 1000000000 + 999999600)"
)
NANOSECOND_TYPED = {
    "conversions": {"sync_date": f"timezone('UTC', {LAST_NANOSECONDS})"},
    "page_views": {
        "sync_date": "cast(timezone('UTC', cast(sync_date as timestamptz)) as timestamp_ns)"
    },
}


def test_nanosecond_times_and_parts_with_and_without_a_zone_build_the_same_rows(
    tmp_path, text_export, text_build
):
    export = rewrite_export(
        text_export, tmp_path / "export", "parquet", NANOSECOND_TYPED, parts=2, layout="folder"
    )
    # one part of the conversions holds its times as UTC without a zone: DuckDB reads the two
    # parts as one, turning that part into instants at the build's time zone, never the machine's
    part = export / "conversions" / "part-1.parquet"
    naive = tmp_path / "naive.parquet"
    with duckdb.connect() as con:
        con.sql(
            f"copy (select * replace (timezone('UTC', sync_date) as sync_date) from '{part}') "
            f"to '{naive}' (format parquet)"
        )
    naive.replace(part)
    assert column_types(export / "conversions" / "part-0.parquet")["sync_date"] == "TIMESTAMPTZ_NS"
    assert column_types(part)["sync_date"].startswith("TIMESTAMP")
    assert "ZONE" not in column_types(part)["sync_date"]
    assert column_types(export / "page_views" / "part-0.parquet")["sync_date"] == "TIMESTAMP_NS"
    result = build(tmp_path, export, env={"TZ": "Asia/Tokyo"})
    assert result.payloads() == text_build.payloads()
    assert rejected_rows(result) == rejected_rows(text_build)


def test_split_gzipped_csv_parts_build_the_same_rows(tmp_path, text_export, text_build):
    export = rewrite_export(text_export, tmp_path / "export", "csv.gz", parts=3, layout="parts")
    # line_users has two rows for three parts: one part is a header only; another is 0 bytes
    assert len((export / "line_users-000000000000.csv.gz").read_bytes()) > 0
    (export / "conversions-000000000003.csv.gz").write_bytes(b"")
    # ... and one a gzip of nothing, as a part compressed after it was written empty
    (export / "conversions-000000000004.csv.gz").write_bytes(gzip.compress(b""))
    assert sorted(p.name for p in export.glob("conversions*")) == [
        f"conversions-00000000000{i}.csv.gz" for i in range(5)
    ]
    result = build(tmp_path, export)
    assert result.payloads() == text_build.payloads()
    assert rejected_rows(result) == rejected_rows(text_build)


def write_layout(directory, files: dict[str, bytes | str | None]):
    export = write_export(directory, export_tables(), "csv")
    (export / "conversions.csv").unlink()
    header = b"event_name,user_id,transaction_id,sync_date,pv_id\n"
    for name, content in files.items():
        path = export / name
        path.parent.mkdir(exist_ok=True)
        if isinstance(content, str):  # a whole file, its own header row
            data = content.encode()
        else:
            data = header + content if content is not None else b""
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return export


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"conversions/part-0.csv": b"", "conversions/part-1.parquet": None},
            "KARTE export table conversions has parts in two formats (csv and parquet) in ",
        ),
        (
            {"conversions.csv": b"", "conversions-000000000000.csv": b""},
            "KARTE export table conversions has files in more than one layout in ",
        ),
        (
            {"conversions-000000000000.csv": None, "conversions-000000000001.csv": None},
            "KARTE export table conversions has only empty parts in ",
        ),
        (
            {
                "conversions-000000000000.csv": b"",
                "conversions-000000000001.csv": "buy,u1,ORD-9,2026-03-01,ご注文\n".encode("cp932"),
            },
            "conversions-000000000001.csv is not UTF-8 (a spreadsheet may have saved it as",
        ),
        (
            {"conversions.csv.gz": None},  # a gzip of nothing, about 20 bytes
            "conversions.csv.gz is empty: it needs at least the header row (",
        ),
        (
            # DuckDB reads the second as USER_ID_1 (any case): the first is not taken on a guess
            {
                "conversions.csv": "event_name,USER_ID,transaction_id,sync_date,pv_id,user_id\n"
                "buy,junk,ORD-1,2026-03-01T10:00:00+09:00,pv1,u1\n"
            },
            "KARTE export table conversions has the column USER_ID twice (the second is read as "
            "user_id_1): remove one from the export, or name the one that holds user_id in var "
            "karte_column_map ({conversions: {user_id: USER_ID}} or user_id_1)",
        ),
        (
            {"conversions/_SUCCESS": None},
            "conversions.csv (or .csv.gz, .parquet, parts conversions-*.csv, "
            "or a folder conversions/ of parts)",
        ),
        (
            {"conversions.json": b"", "conversions/_SUCCESS": None},
            "KARTE export table conversions is in a format that is not read: ",
        ),
        (
            # a Windows tool's name: the format is read, its extension only in lower case
            {"conversions.CSV": b"event_name,user_id\n"},
            "conversions.CSV has its extension in capitals: rename it to ",
        ),
    ],
    ids=[
        "two-formats",
        "two-layouts",
        "only-empty-parts",
        "shift-jis-part",
        "empty-gzip",
        "column-twice",
        "no-part",
        "json",
        "capitals",
    ],
)
def test_bad_layouts_are_one_line_errors_naming_the_table(tmp_path, files, message):
    export = write_layout(tmp_path / "export", files)
    result = run_dbt(
        tmp_path,
        "run",
        "--select",
        "stg_karte__conversions",
        export_dir=export,
        vars={"as_of": AS_OF},
    )
    assert result.returncode != 0
    (line,) = [line for line in result.output.splitlines() if message in line]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("named", "user_id"), [("USER_ID", "junk"), ("user_id_1", "u1")])
def test_a_column_named_twice_builds_from_the_one_karte_column_map_names(tmp_path, named, user_id):
    """The first (also how an export whose `user_id_1` is a column of its own reads `user_id`),
    or the second."""
    export = write_layout(tmp_path / "export", {})
    (export / "conversions.csv").write_text(
        "event_name,USER_ID,transaction_id,sync_date,pv_id,user_id\n"
        "buy,junk,ORD-1,2026-03-01T10:00:00+09:00,pv1,u1\n"
    )
    mapping = {"karte_column_map": {"conversions": {"user_id": named}}}
    result = run_dbt(
        tmp_path,
        "run",
        "--select",
        "stg_karte__conversions",
        export_dir=export,
        vars={"as_of": AS_OF, **mapping},
    )
    assert result.returncode == 0, result.output
    assert result.rows("select user_id from stg_karte__conversions") == [(user_id,)]


@pytest.mark.parametrize(
    ("table", "column", "nested", "stored"),
    [
        ("conversions", "user_id", "[user_id]", "VARCHAR[]"),
        ("user_master", "email", "[email, email]", "VARCHAR[]"),
        ("page_views", "lt_cid", "{'id': lt_cid}", "STRUCT(id VARCHAR)"),
    ],
)
def test_a_column_of_several_values_a_cell_is_one_line_naming_it(
    tmp_path, text_export, table, column, nested, stored
):
    # a warehouse's ARRAY of a user's emails: every conversion rejected as no_user_identifier
    # (a list of ids), or the list's JSON text hashed as one address
    export = rewrite_export(text_export, tmp_path / "export", "parquet", {table: {column: nested}})
    assert column_types(export / f"{table}.parquet")[column] == stored
    result = run_dbt(tmp_path, "build", export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode != 0
    (line,) = [x for x in result.output.splitlines() if "several values in one cell" in x]
    assert line.strip().endswith(
        f"KARTE export table {table} has the column {column} as {stored}, several values in one"
        f" cell: {column} holds one value a row; export one (text or a number: e.g. {column}[1]"
        " in SQL), or map the column that holds it with var karte_column_map"
    )
    assert "Traceback" not in result.output and nothing_was_built(result)


def rewrite_part(path, select: str, header: bool = True):
    """Write a part again as `select ... from part` (the part is `part`), in its own format."""
    reader = "read_parquet" if path.suffix == ".parquet" else "read_csv"
    options = "format parquet" if path.suffix == ".parquet" else "format csv, compression gzip"
    if path.suffix != ".parquet":
        options += ", header" if header else ", header false"
    with duckdb.connect() as con:
        con.sql(f"create table part as select * from {reader}('{path}')")
        con.sql(f"copy ({select}) to '{path}' ({options})")


def nothing_was_built(result) -> bool:
    if not result.database.exists():
        return True
    return result.rows(
        "select count(*) from information_schema.tables where table_name like 'line_capi_%'"
    ) == [(0,)]


@pytest.mark.parametrize(
    ("fmt", "layout", "part", "select", "header", "message", "advice"),
    [
        (
            "csv.gz",
            "parts",
            "conversions-000000000001.csv.gz",
            "select * from part",
            False,
            "has no columns event_name, user_id, transaction_id, sync_date, pv_id; its first row"
            " looks like data, not a header (8 fields, not shown here",
            "A part may lack its header row: export every part with its header",
        ),
        (
            "csv.gz",
            "parts",
            "conversions-000000000001.csv.gz",
            "select * exclude (pv_id) from part",
            True,
            "has no column pv_id; it has: event_name, user_id, transaction_id, sync_date, revenue",
            "Every part needs the table's required columns",
        ),
        (
            # a field of that name nested in another column is not the column
            "parquet",
            "folder",
            "conversions/part-1.parquet",
            "select * exclude (pv_id), {'pv_id': pv_id} as page from part",
            True,
            "has no column pv_id; it has: event_name, user_id, transaction_id, sync_date, revenue",
            "Every part needs the table's required columns",
        ),
    ],
    ids=["csv-part-without-header", "csv-part-without-pv_id", "parquet-part-without-pv_id"],
)
def test_a_part_without_a_required_column_is_one_line_naming_it(
    tmp_path, text_export, fmt, layout, part, select, header, message, advice
):
    casts = TYPED if fmt == "parquet" else None
    export = rewrite_export(text_export, tmp_path / "export", fmt, casts, parts=3, layout=layout)
    rewrite_part(export / part, select, header)
    result = run_dbt(tmp_path, "build", export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode != 0
    (line,) = [line for line in result.output.splitlines() if message in line]
    assert line.strip().startswith(f"KARTE export table conversions: part {export / part} ")
    assert advice in line
    assert "Traceback" not in result.output
    assert nothing_was_built(result)


@pytest.mark.parametrize(
    ("delimiter", "name", "gzipped"),
    [("\t", "tab", False), (";", "semicolon", False), ("\t", "tab", True)],
)
def test_a_csv_not_separated_by_commas_says_so(tmp_path, text_export, delimiter, name, gzipped):
    """Its fields hold commas (a user agent's "KHTML, like Gecko"), which DuckDB's sniffer met
    with its many-line error; a gzipped file is checked once read (one column)."""
    export = tmp_path / "export"
    shutil.copytree(text_export, export)
    page_views = export / "page_views.csv"
    written = export / ("page_views.csv.gz" if gzipped else "page_views.csv")
    options = ", compression gzip" if gzipped else ""
    with duckdb.connect() as con:
        con.sql(f"create table part as select * from read_csv('{page_views}', all_varchar = true)")
        con.sql("update part set user_agent = 'Mozilla/5.0 (KHTML, like Gecko)'")
        page_views.unlink()
        con.sql(f"copy part to '{written}' (format csv, header, delimiter '{delimiter}'{options})")
    result = run_dbt(tmp_path, "build", export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode != 0
    if gzipped:  # DuckDB took the first row for the header: its values are never shown
        (line,) = [line for line in result.output.splitlines() if "-separated" in line]
        assert line.strip() == (
            f"KARTE export table page_views is {name}-separated (its first row looks like data and"
            " is not shown here); export it with commas"
        )
        assert "KHTML" not in result.output
    else:
        (line,) = [line for line in result.output.splitlines() if "-separated" in line]
        assert line.strip() == (
            f"KARTE export file {written} is {name}-separated (its header row has no comma):"
            " export it with commas"
        )
    assert "Possible fixes" not in result.output  # DuckDB's sniffer dump
    assert nothing_was_built(result)


def test_parts_with_extra_reordered_or_renamed_columns_build_the_same_rows(
    tmp_path, text_export, text_build
):
    export = rewrite_export(text_export, tmp_path / "export", "csv.gz", parts=3, layout="parts")
    for i in range(3):
        rewrite_part(
            export / f"conversions-00000000000{i}.csv.gz",
            "select * rename (pv_id as page_view_id) from part",
        )
    # other order and an extra column; an optional column (session_id) missing, as a file may
    rewrite_part(
        export / "conversions-000000000001.csv.gz",
        "select 'x' as extra, page_view_id, sync_date, transaction_id, user_id, event_name, "
        "revenue, items from part",
    )
    result = run_dbt(
        tmp_path,
        "build",
        export_dir=export,
        vars={"as_of": AS_OF, "karte_column_map": {"conversions": {"pv_id": "page_view_id"}}},
    )
    assert result.returncode == 0, result.output
    assert result.payloads() == text_build.payloads()
    assert rejected_rows(result) == rejected_rows(text_build)
    # the part without session_id builds, and says so: the other parts have it (a query changed)
    part = export / "conversions-000000000001.csv.gz"
    assert (
        f"warning: KARTE export table conversions: part {part} has no column session_id, which"
        " the other 2 of its parts have: their rows"
    ) in result.output, result.output


def test_a_gzip_file_named_csv_says_to_name_it_csv_gz(tmp_path):
    export = write_export(tmp_path / "export", warehouse_tables(), "csv")
    path = export / "conversions.csv"
    path.write_bytes(gzip.compress(path.read_bytes()))
    result = run_dbt(tmp_path, "build", export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode != 0
    (line,) = [line for line in result.output.splitlines() if "gzip" in line]
    assert line.strip() == (
        f"KARTE export file {path} is gzip-compressed but named .csv: rename it to {path}.gz"
    )
    assert "not UTF-8" not in result.output
    assert nothing_was_built(result)


def test_files_joined_with_cat_stop_the_build_and_as_parts_build_the_same_rows(
    tmp_path, text_export, text_build
):
    """Two files joined with `cat`, the second in another column order: its header is a row, and
    every row after it was read under the wrong names (event_name holding a user id: no
    conversion at all, lost without a word). The build stops before the payload; the same two
    files as parts build what the one file does."""
    with (text_export / "conversions.csv").open(newline="") as file:
        header, *rows = list(csv.reader(file))
    half = len(rows) // 2
    order = [header.index(name) for name in ("event_name", "user_id")]
    order += [i for i in range(len(header)) if i not in order]  # event_name first, then user_id

    def written(head, body):
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([head, *body])
        return out.getvalue()

    first = written(header, rows[:half])
    second = written([header[i] for i in order], [[row[i] for i in order] for row in rows[half:]])
    export = tmp_path / "export"
    shutil.copytree(text_export, export)
    (export / "conversions.csv").write_text(first + second)
    result = run_dbt(tmp_path / "cat", *HOURLY_BUILD, export_dir=export, vars={"as_of": AS_OF})
    assert result.returncode != 0
    (line,) = [line for line in result.output.splitlines() if "header line" in line]
    assert line.strip() == (
        "KARTE export table conversions has 1 row that is a header line (whose user_id is a"
        " column's name): files joined with cat keep each one's header, and one in another column"
        " order puts every row after it under the wrong names. Give each file as a part of its"
        " own (conversions-1.csv, conversions-2.csv: parts are matched by column name,"
        " docs/input-contract.md), or drop the repeated header lines"
    )
    # no model read the export (dbt loads the seed, which reads none of it)
    built = "select table_name from information_schema.tables where table_name like 'line_capi_%'"
    assert result.rows(built) == [("line_capi_reject_reasons",)]
    # as the line says: two parts, each with its own header
    (export / "conversions.csv").unlink()
    (export / "conversions-1.csv").write_text(first)
    (export / "conversions-2.csv").write_text(second)
    parts = build(tmp_path / "parts", export)
    assert parts.payloads() == text_build.payloads()
    assert rejected_rows(parts) == rejected_rows(text_build)
