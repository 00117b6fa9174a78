"""The KARTE Datahub queries (datahub/*.sql) run on a small KARTE event log, then the pipeline.

Each query is parsed as BigQuery SQL with sqlglot, its KARTE range tag replaced by a fixture
table in the documented shape of karte_event, transpiled to DuckDB and run there; the four
results are written as the export files, and the real `dbt build` turns them into payloads.
"Now" is pinned: CURRENT_TIMESTAMP() and CURRENT_DATE() become the fixture's instant.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import duckdb
import pytest
import sqlglot
from pipeline_fixtures import ROOT, run_dbt
from sqlglot import exp

QUERIES = ROOT / "datahub"
TABLES = ("conversions", "page_views", "line_users", "user_master")
KARTE_EVENT_ALL = re.compile(r"\{%\s*karte_event_all\s*%\}")
KARTE_TAG = re.compile(r"\{[{%].*?[}%]\}")

NOW = dt.datetime(2026, 3, 1, 3, 0, 0)  # UTC, as karte_event's sync_date
AS_OF = "2026-03-01T03:00:00Z"
SECOND, MINUTE = dt.timedelta(seconds=1), dt.timedelta(minutes=1)
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
UUID_A = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
LINE_UID = "U" + "0123456789abcdef" * 2
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def unix(at: dt.datetime) -> int:
    return int(at.replace(tzinfo=dt.UTC).timestamp())


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def view(url: str, query: str | None = None, **access) -> dict:
    uri = {"url": url} if query is None else {"url": url, "query": query}
    return {"view": {"access": {"uri": uri, **access}}}


def req(ip_address: str, user_agent: str) -> dict:
    return {"req": {"ip_address": ip_address, "user-agent": user_agent}}


def buy(transaction_id: str, revenue, **fields) -> dict:
    return {"buy": {"transaction_id": transaction_id, "revenue": revenue, **fields}}


def identify(**fields) -> dict:
    return {"identify": fields}


def browser(visitor_id: str, *events: tuple) -> list[tuple]:
    """(event_name, user_id, session_id, sync_date, values) of one browser, with its visitor_id."""
    return [
        (name, user, visitor_id, session, at, values) for name, user, session, at, values in events
    ]


LANDING_A = view("https://shop.example.jp/lp", "utm_source=line&ldtag_cl=AbC_123-xyz", title="Sale")
COOKIE_A = {"line_tag_cookie": {"lt_cid": UUID_A}}
IDENTIFY_A = identify(email=" Taro@Example.COM ", phone="090-1234-5678")
THANKS_A = view(
    "https://shop.example.jp/thanks",
    "order=ORD-A1",
    title="Thanks",
    referrer={"url": "https://shop.example.jp/cart"},
)
REQUEST_A = req("203.0.113.7", "Mozilla/5.0 (iPhone) Test")
ITEMS_A = [{"item_id": "SKU-1", "name": "Tee", "price": 2490, "quantity": 2}]
LINE_LOGIN_B = {
    "plugin_line_identify": {
        "user_id": "wuid-line-" + LINE_UID,
        "line_user_id": LINE_UID,
        "subscribe": True,
    }
}
LANDING_B = view("https://shop.example.jp/lp", "ldtag_cl=TooOld")

# (event_name, user_id, visitor_id, session_id, sync_date, values), as karte_event holds them.
EVENTS = [
    # A lands from a LINE ad as an anonymous visitor, logs in (member m-001) and buys.
    *browser(
        "vis-a",
        ("req", "vis-a", "s-a1", NOW - 5 * DAY - SECOND, req("198.51.100.1", "Old UA")),
        ("view", "vis-a", "s-a1", NOW - 5 * DAY, LANDING_A),
        ("line_tag_cookie", "vis-a", "s-a1", NOW - 5 * DAY + 2 * SECOND, COOKIE_A),
        ("identify", "m-001", "s-a2", NOW - 3 * HOUR, IDENTIFY_A),
        ("req", "m-001", "s-a2", NOW - 2 * HOUR - 20 * MINUTE, req("203.0.113.99", "Earlier UA")),
        ("req", "m-001", "s-a2", NOW - 2 * HOUR - SECOND, REQUEST_A),
        ("view", "m-001", "s-a2", NOW - 2 * HOUR, THANKS_A),
        ("buy", "m-001", "s-a2", NOW - 2 * HOUR + SECOND, buy("ORD-A1", 4980, items=ITEMS_A)),
        # Older than the 48 hours of conversions.sql: not exported.
        ("buy", "m-001", "s-a0", NOW - 50 * HOUR, buy("ORD-OLD", 100)),
    ),
    # B logs in with LINE; its ad click is older than the 33 days of page_views.sql.
    *browser(
        "vis-b",
        ("view", "u-b", "s-b0", NOW - 40 * DAY, LANDING_B),
        ("plugin_line_identify", "u-b", "s-b1", NOW - 10 * DAY, LINE_LOGIN_B),
        ("view", "u-b", "s-b2", NOW - 3 * HOUR, view("https://shop.example.jp/thanks")),
        ("buy", "u-b", "s-b2", NOW - 3 * HOUR + SECOND, buy("ORD-B1", 1200)),
    ),
    # C: the phone from an older identify, the email from a newer one.
    *browser(
        "vis-c",
        ("identify", "m-003", "s-c1", NOW - 20 * DAY, identify(email="", phone="080-1111-2222")),
        ("identify", "m-003", "s-c2", NOW - DAY, identify(email="hanako@example.com")),
        ("view", "m-003", "s-c3", NOW - HOUR, view("https://shop.example.jp/done", "")),
        ("buy", "m-003", "s-c3", NOW - HOUR + SECOND, buy("ORD-C1", "3000", items=[])),
    ),
    # D never converts: nothing of D may leave Datahub.
    *browser(
        "vis-d",
        (
            "view",
            "vis-d",
            "s-d1",
            NOW - DAY,
            view("https://shop.example.jp/lp", "ldtag_cl=NotOurs"),
        ),
        ("identify", "m-004", "s-d1", NOW - DAY, identify(email="d@example.com")),
    ),
]


def expected_payloads() -> dict[str, dict]:
    def event(key: str, at: dt.datetime) -> dict:
        return {
            "source_type": "web",
            "event_type": "conversion",
            "event_name": "Conversion",
            "deduplication_key": key,
            "event_timestamp": unix(at),
        }

    return {
        "ORD-A1": {
            "event": event("ORD-A1", NOW - 2 * HOUR + SECOND),
            "user": {
                "click_id": "AbC_123-xyz",
                "browser_id": UUID_A.lower(),
                "email": sha("taro@example.com"),
                "phone": sha("+819012345678"),
            },
            "web": {
                "url": "https://shop.example.jp/thanks?order=ORD-A1",
                "referrer": "https://shop.example.jp/cart",
                "title": "Thanks",
                "ip_address": "203.0.113.7",
                "user_agent": "Mozilla/5.0 (iPhone) Test",
            },
            "custom": {"value": 4980, "currency": "JPY", "quantity": 2, "item_ids": ["SKU-1"]},
        },
        "ORD-B1": {
            "event": event("ORD-B1", NOW - 3 * HOUR + SECOND),
            "user": {"line_uid": LINE_UID},
            "web": {"url": "https://shop.example.jp/thanks"},
            "custom": {"value": 1200, "currency": "JPY"},
        },
        "ORD-C1": {
            "event": event("ORD-C1", NOW - HOUR + SECOND),
            "user": {"email": sha("hanako@example.com"), "phone": sha("+818011112222")},
            "web": {"url": "https://shop.example.jp/done"},
            "custom": {"value": 3000, "currency": "JPY"},
        },
    }


def event_log(data_tables: dict[str, tuple[list[str], list[tuple]]] | None = None):
    """In-memory DuckDB: karte_event in the shape Datahub documents, and the given data tables."""
    con = duckdb.connect()
    con.sql(
        "create table karte_event (event_name varchar, user_id varchar, visitor_id varchar, "
        'session_id varchar, sync_date timestamp, "values" varchar, TABLE_SUFFIX varchar)'
    )
    con.executemany(
        "insert into karte_event values (?, ?, ?, ?, ?, ?, ?)",
        [
            (name, user, visitor, session, at, json.dumps(values), at.strftime("%Y%m%d"))
            for name, user, visitor, session, at, values in EVENTS
        ],
    )
    for table, (columns, rows) in (data_tables or {}).items():
        con.sql(f"create table {table} ({', '.join(f'{c} varchar' for c in columns)})")
        con.executemany(f"insert into {table} values ({', '.join('?' * len(columns))})", rows)
    return con


def query_text(table: str) -> str:
    return (QUERIES / f"{table}.sql").read_text(encoding="utf-8")


def setup_b(sql: str) -> str:
    """The query with its Setup A block replaced by the Setup B lines its comments give."""
    lines = sql.splitlines()
    start = next(i for i, line in enumerate(lines) if "-- >>> Setup A" in line)
    end = next(i for i, line in enumerate(lines) if "-- <<< Setup A" in line)
    b_lines = [line.split("-- |", 1)[1] for line in lines if "-- |" in line]
    assert b_lines, "the query documents no Setup B"
    return "\n".join(lines[:start] + b_lines + lines[end + 1 :])


def parse_bigquery(sql: str) -> exp.Expression:
    """The query as BigQuery parses it, with KARTE's range tag as the fixture table karte_event."""
    replaced = KARTE_EVENT_ALL.sub("karte_event", sql)
    assert not KARTE_TAG.search(replaced), "a KARTE tag other than karte_event_all is left"
    return sqlglot.parse_one(replaced, read="bigquery")


def to_duckdb(sql: str, now: dt.datetime = NOW) -> str:
    """The query for DuckDB, with "now" pinned and Datahub's data tables as local tables."""

    def pin(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.CurrentTimestamp):
            return exp.cast(exp.Literal.string(now.isoformat(sep=" ")), "timestamp")
        if isinstance(node, exp.CurrentDate):
            return exp.cast(exp.Literal.string(now.date().isoformat()), "date")
        if isinstance(node, exp.Table) and node.catalog == "prd-karte-per-client":
            node.set("catalog", None)
            node.set("db", None)
        return node

    return parse_bigquery(sql).transform(pin).sql("duckdb")


def export(con: duckdb.DuckDBPyConnection, directory: Path, queries: dict[str, str]) -> Path:
    """Run each query and write its result as <table>.csv, with a header row, as Datahub exports."""
    directory.mkdir(parents=True, exist_ok=True)
    for table, sql in queries.items():
        path = str(directory / f"{table}.csv").replace("'", "''")
        con.sql(f"copy ({to_duckdb(sql)}) to '{path}' (header, delimiter ',')")
    return directory


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("datahub") / "export"
    return export(event_log(), directory, {table: query_text(table) for table in TABLES})


@pytest.fixture(scope="module")
def build(tmp_path_factory, exported):
    result = run_dbt(
        tmp_path_factory.mktemp("build"), "build", export_dir=exported, vars={"as_of": AS_OF}
    )
    assert result.returncode == 0, result.output
    return result


@pytest.mark.parametrize("table", TABLES)
def test_each_query_is_bigquery_sql_that_reads_karte_event_by_day(table):
    tree = parse_bigquery(query_text(table))
    reads = [t for t in tree.find_all(exp.Table) if t.name == "karte_event"]
    assert reads
    for read in reads:
        # Without a TABLE_SUFFIX bound, Datahub reads every day of karte_event ever recorded.
        where = read.find_ancestor(exp.Select).args.get("where")
        bounds = [c for c in where.find_all(exp.Column) if c.name == "TABLE_SUFFIX"]
        assert bounds, f"{table}.sql reads karte_event without a TABLE_SUFFIX bound"


def test_exported_files_have_the_contract_columns_and_explicit_utc_times(exported):
    contract = {
        "conversions": ["event_name", "user_id", "transaction_id", "sync_date", "pv_id"],
        "page_views": ["user_id", "sync_date", "pv_id", "url", "lt_cid", "ip_address"],
        "line_users": ["user_id", "line_user_id"],
        "user_master": ["user_id", "email", "phone"],
    }
    for table, columns in contract.items():
        rows = read_csv(exported / f"{table}.csv")
        assert rows, table
        assert set(columns) <= set(rows[0]), table
        for row in rows:
            assert row.get("sync_date") is None or ISO_UTC.match(row["sync_date"]), row


def test_the_windows_keep_what_the_pipeline_needs_and_nothing_else(exported):
    conversions = read_csv(exported / "conversions.csv")
    assert sorted(r["transaction_id"] for r in conversions) == ["ORD-A1", "ORD-B1", "ORD-C1"]
    page_views = read_csv(exported / "page_views.csv")
    assert {r["user_id"] for r in page_views} == {"m-001", "u-b", "m-003"}
    urls = {r["url"] for r in page_views}
    assert "https://shop.example.jp/lp?utm_source=line&ldtag_cl=AbC_123-xyz" in urls
    assert not any("TooOld" in u or "NotOurs" in u for u in urls)
    users = sorted(read_csv(exported / "user_master.csv"), key=lambda r: r["user_id"])
    assert users == [
        {"user_id": "m-001", "email": " Taro@Example.COM ", "phone": "090-1234-5678"},
        {"user_id": "m-003", "email": "hanako@example.com", "phone": "080-1111-2222"},
    ]
    assert [r["user_id"] for r in read_csv(exported / "line_users.csv")] == ["u-b"]


def test_the_conversion_is_tied_to_its_own_page_view(exported):
    conversions = {r["transaction_id"]: r for r in read_csv(exported / "conversions.csv")}
    page_views = {r["pv_id"]: r for r in read_csv(exported / "page_views.csv")}
    thanks = page_views[conversions["ORD-A1"]["pv_id"]]
    assert thanks["url"] == "https://shop.example.jp/thanks?order=ORD-A1"
    # The nearest req of the session, not an earlier one.
    assert (thanks["ip_address"], thanks["user_agent"]) == (
        "203.0.113.7",
        "Mozilla/5.0 (iPhone) Test",
    )
    assert json.loads(conversions["ORD-A1"]["items"])[0]["item_id"] == "SKU-1"


def test_the_pipeline_builds_the_payloads_from_the_exported_files(build):
    assert build.payloads() == expected_payloads()
    assert build.rejected() == {}


def test_a_url_without_its_query_string_loses_the_click_id(tmp_path, exported):
    # What an export that copies uri.url alone would produce: the rest of the payload stays.
    tree = parse_bigquery(query_text("page_views"))
    rebuilt = [
        a for a in tree.find_all(exp.Alias) if a.alias == "url" and isinstance(a.this, exp.Case)
    ]
    assert len(rebuilt) == 1
    rebuilt[0].set("this", exp.column("url_without_query"))
    directory = tmp_path / "export"
    directory.mkdir()
    for table in ("conversions", "line_users", "user_master"):
        (directory / f"{table}.csv").write_bytes((exported / f"{table}.csv").read_bytes())
    export(event_log(), directory, {"page_views": tree.sql("bigquery")})

    result = run_dbt(tmp_path, "run", export_dir=directory, vars={"as_of": AS_OF})
    assert result.returncode == 0, result.output
    payload = result.payloads()["ORD-A1"]
    assert "click_id" not in payload["user"]
    assert payload["user"]["browser_id"] == UUID_A.lower()
    assert payload["web"]["url"] == "https://shop.example.jp/thanks"


def test_setup_b_reads_the_copied_personal_data_tables_the_same_way(tmp_path, exported):
    con = event_log(
        {
            "personal_data": (
                ["user_id", "email", "phone"],
                [
                    ("m-001", " Taro@Example.COM ", "090-1234-5678"),
                    ("m-003", "hanako@example.com", "080-1111-2222"),
                    ("m-004", "d@example.com", None),
                ],
            ),
            "line_personal_data": (
                ["user_id", "line_user_id"],
                [("u-b", LINE_UID), ("m-004", "U" + "f" * 32)],
            ),
        }
    )
    queries = {table: setup_b(query_text(table)) for table in ("line_users", "user_master")}
    for sql in queries.values():
        # Only the converters still come from karte_event.
        assert "prd-karte-per-client" in sql and len(KARTE_EVENT_ALL.findall(sql)) == 1
    export(con, tmp_path, queries)

    def rows(directory: Path, table: str, columns: tuple[str, ...]) -> list[tuple]:
        return sorted(tuple(r[c] for c in columns) for r in read_csv(directory / f"{table}.csv"))

    columns = ("user_id", "email", "phone")
    assert rows(tmp_path, "user_master", columns) == rows(exported, "user_master", columns)
    columns = ("user_id", "line_user_id")
    assert rows(tmp_path, "line_users", columns) == rows(exported, "line_users", columns)
