"""Exports for tests/test_spark.py: the pipeline fixtures plus rows where DuckDB and Spark differ
unless the spark__ bodies of macros/cross_db/ absorb the difference.

Each edge row names the difference it guards in a comment: timestamp forms, Java vs RE2 regexes
(`$` before a final newline, `\\s` with a vertical tab), URL decoding (`+`, malformed `%`, bytes
that are not UTF-8), number parsing (`12d`), items JSON (numbers as ids, lone objects), JSON
string escaping, and both export formats read by both engines.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipeline_fixtures import write_export
from test_pipeline import AS_OF, export_tables

__all__ = ["AS_OF", "HOUR", "TYPED_TIMES", "T", "edge_tables", "write_mixed_export"]

T = 1772334000  # AS_OF in Unix seconds: 2026-03-01T03:00:00Z
HOUR = 3600

# rewrite_export casts: conversions as Japan time without its offset (Parquet TIMESTAMP, not
# adjusted to UTC: Spark's timestamp_ntz), page views as instants (TIMESTAMPTZ: Spark's
# timestamp), LINE logins as dates, phones as the integer a spreadsheet leaves.
TYPED_TIMES = {
    "conversions": {
        "sync_date": "timezone('Asia/Tokyo', try_cast(sync_date as timestamptz))",
    },
    "page_views": {"sync_date": "try_cast(sync_date as timestamptz)"},
    "line_users": {"sync_date": "try_cast(left(sync_date, 10) as date)"},
    "user_master": {"phone": "try_cast(regexp_replace(phone, '[^0-9]', '', 'g') as bigint)"},
}
UUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


def _conversion(key: str, user: str, sync_date: str, pv: str, **kw) -> dict:
    return {
        "event_name": "buy",
        "user_id": user,
        "transaction_id": key,
        "sync_date": sync_date,
        "pv_id": pv,
        "session_id": "s-" + user,
        **kw,
    }


def edge_tables() -> dict[str, list[dict]]:
    """export_tables() of tests/test_pipeline.py plus the edge rows."""
    tables = export_tables()
    many_items = json.dumps([{"item_id": f"SKU-{i % 120}", "quantity": 1} for i in range(150)])
    tables["conversions"] += [
        # ISO forms: Z, +hhmm, no offset (UTC) with a space, no seconds with +hh, 9 fraction digits
        _conversion(
            "EDGE-Z",
            "e1",
            "2026-03-01T01:00:00Z",
            "pv-e1",
            revenue="1200.0",
            items=json.dumps(
                [
                    {"item_id": 42, "quantity": "2"},
                    {"item_id": 1.5},
                    {"item_id": "A"},
                    {"item_id": "A"},
                    {"item_id": " "},
                    {"item_id": None, "quantity": 3},
                ]
            ),
        ),
        _conversion(
            "EDGE-HHMM",
            "e2",
            "2026-03-01T10:00:00 +0900",
            "pv-e2",
            revenue="19.5",
            items=many_items,
        ),
        _conversion(
            "EDGE-NAIVE",
            "e3",
            "2026-03-01 01:30:00",
            "pv-e3",
            revenue=" 12 ",
            items='{"item_id": "lone object"}',
        ),
        _conversion(
            "EDGE-NOSEC", "e4", "2026-03-01T02:00+09", "pv-e4", revenue="12d", items="not json"
        ),
        _conversion(
            "EDGE-FRAC",
            "e5",
            "2026-03-01T10:00:00.999999999+09:00",
            "pv-e5",
            revenue="1e3",
            items="[]",
        ),
        # epoch seconds and milliseconds
        _conversion("EDGE-EPOCH", "e1", str(T - HOUR), "pv-e6", revenue="NaN"),
        _conversion("EDGE-MS", "e2", str((T - HOUR) * 1000 + 999), "pv-e7", revenue="2147483648"),
        # as pandas writes an integer column with gaps: floats, the fraction truncated
        # ... and a Shift_JIS yen sign read as UTF-8: a backslash
        _conversion("EDGE-EPOCH-FLOAT", "e3", f"{T - HOUR}.0", "pv-e11", revenue="\\1,980"),
        _conversion("EDGE-MS-FLOAT", "e4", f"{(T - HOUR) * 1000}.25", "pv-e12"),
        # an unreadable time, and RFC 3339's lower-case t and z (read as T and Z)
        _conversion("EDGE-BAD", "e1", "not a date", "pv-e8"),
        _conversion("EDGE-LOWER-Z", "e1", "2026-03-01t01:00:00z", "pv-e9"),
        # BigQuery's CSV form of a TIMESTAMP, and GMT
        _conversion("EDGE-BQ-UTC", "e2", "2026-03-01 01:00:00.123456 UTC", "pv-e13"),
        _conversion("EDGE-GMT", "e3", "2026-03-01T01:00 gmt", "pv-e14"),
        # ... but not without its space: DuckDB reads no `01:00:00UTC`, and neither does Spark
        _conversion("EDGE-UTC-NOSPACE", "e3", "2026-03-01 01:00:00UTC", "pv-e15"),
        # a key with a line break inside
        _conversion("EDGE\nKEY", "e1", "2026-03-01T01:00:00Z", "pv-e10"),
        # pandas' words for "no value", and a report's -, as keys: rejected, never one another's
        # duplicates
        _conversion("None", "e1", "2026-03-01T01:00:00Z", "pv-e18"),
        _conversion("NaN", "e2", "2026-03-01T01:00:00Z", "pv-e19"),
        _conversion("-", "e3", "2026-03-01T01:00:00Z", "pv-e20"),
    ]
    tables["page_views"] += [
        # the conversions' own page views: titles, IPs, URLs, user agents
        {
            "user_id": "e1",
            "sync_date": "2026-03-01T01:00:00Z",
            "pv_id": "pv-e1",
            "url": "https://shop.example.jp/thanks?a=1",
            "referrer": "https://ref.example/\u3042",
            "title": 'Back\\slash "quoted" tab\tctl\x01 emoji 😀 line\nbreak',
            "ip_address": "::ffff:192.0.2.128",
            "user_agent": "UA\u2028sep",
        },
        {
            "user_id": "e2",
            "sync_date": "2026-03-01T01:00:00Z",
            "pv_id": "pv-e2",
            "url": "HTTPS://shop.example.jp/thanks",
            "title": "t" * 1100,
            "ip_address": "1.2.3.04",
        },
        {
            "user_id": "e3",
            "sync_date": "2026-03-01T01:30:00Z",
            "pv_id": "pv-e3",
            "url": "https://x.example/" + "p" * 2100,
            "referrer": "r" * 2049,
            "ip_address": "2001:DB8::1",
            "title": "   ",
        },
        # click ids: decoded, first parameter only, fragment ignored
        {
            "user_id": "e1",
            "sync_date": "2026-02-28T00:00:00Z",
            "pv_id": "pv-e1-land",
            "url": "https://shop.example.jp/lp?x=1&ldtag_cl=Abc%2D1&ldtag_cl=second#ldtag_cl=frag",
        },
        # a newer click id that is the valid one plus a line break (Java's `$` would accept it)
        {
            "user_id": "e1",
            "sync_date": "2026-02-28T12:00:00Z",
            "pv_id": "pv-e1-nl",
            "url": "https://shop.example.jp/lp?ldtag_cl=Newer_1%0A",
        },
        # `+` stays `+` on DuckDB (URLDecoder would make it a space)
        {
            "user_id": "e2",
            "sync_date": "2026-02-27T00:00:00Z",
            "pv_id": "pv-e2-old",
            "url": "https://shop.example.jp/lp?ldtag_cl=Old_2",
        },
        {
            "user_id": "e2",
            "sync_date": "2026-02-28T00:00:00Z",
            "pv_id": "pv-e2-plus",
            "url": "https://shop.example.jp/lp?ldtag_cl=a+b",
        },
        # bytes that are not UTF-8 (null on DuckDB), a malformed escape (URLDecoder would raise)
        {
            "user_id": "e3",
            "sync_date": "2026-02-27T00:00:00Z",
            "pv_id": "pv-e3-old",
            "url": "https://shop.example.jp/lp?ldtag_cl=Old_3",
        },
        {
            "user_id": "e3",
            "sync_date": "2026-02-28T00:00:00Z",
            "pv_id": "pv-e3-utf",
            "url": "https://shop.example.jp/lp?ldtag_cl=%E3%81",
        },
        {
            "user_id": "e3",
            "sync_date": "2026-02-28T01:00:00Z",
            "pv_id": "pv-e3-pct",
            "url": "https://shop.example.jp/lp?ldtag_cl=%zz%",
        },
        # browser ids: upper case with spaces (valid), and an invalid newer one
        {
            "user_id": "e4",
            "sync_date": "2026-02-28T00:00:00Z",
            "pv_id": "pv-e4-cid",
            "url": "https://shop.example.jp/",
            "lt_cid": "  " + UUID.upper() + " ",
        },
        {
            "user_id": "e4",
            "sync_date": "2026-02-28T01:00:00Z",
            "pv_id": "pv-e4-bad",
            "url": "https://shop.example.jp/",
            "lt_cid": UUID + "\n",
        },
    ]
    tables["line_users"] += [
        {"user_id": "e5", "line_user_id": "U" + "a" * 32, "sync_date": "2026-01-01T00:00:00Z"},
        {"user_id": "e5", "line_user_id": "U" + "A" * 32, "sync_date": "2026-02-01T00:00:00Z"},
    ]
    tables["user_master"] += [
        # full-width address and a full-width +81 (0) number
        {
            "user_id": "e1",
            "email": "\u3000ＴＡＲＯ＠ＥＸＡＭＰＬＥ．ＣＯＭ ",
            "phone": "＋８１ (0)90-1234-5678",
        },
        # a vertical tab inside: RE2's \s does not match it, Java's does
        {"user_id": "e2", "email": "a\x0bb@example.com", "phone": "81312345678"},
        # already hashed (upper case): lowercased, not hashed again
        {"user_id": "e3", "email": "A" * 64, "phone": "+1 (415) 555-0100"},
        {"user_id": "e4", "email": "bad address", "phone": "0312345"},
        # a "no value" word (Snowflake's \N) is no user: never joined to its conversion
        {"user_id": "\\N", "email": "stranger@example.com"},
        # a phone written as a float, as pandas writes an integer column with empty cells, and
        # an address in angle brackets (left out: its hash would match no one)
        {"user_id": "e6", "email": "<taro@example.com>", "phone": "819012345678.0"},
    ]
    tables["conversions"].append(
        _conversion("EDGE-PHONE-FLOAT", "e6", "2026-03-01T01:00:00Z", "pv-e14")
    )
    tables["conversions"].append(_conversion("EDGE-NOID", "\\N", "2026-03-01T01:00:00Z", "pv-e13"))
    # addresses as a proxy or a server log writes them, and a phone with its extension
    tables["user_master"].append(
        {"user_id": "e7", "email": "e7@example.com", "phone": "03-1234-5678 内線123"}
    )
    # a trunk 0 in brackets after another country's code: not part of the number
    tables["user_master"].append({"user_id": "e8", "phone": "+44 (0)20 7946 0958"})
    tables["conversions"].append(
        _conversion("EDGE-UK-PHONE", "e8", "2026-03-01T01:00:00Z", "pv-e20")
    )
    for key, pv, ip in [
        ("EDGE-IP-LIST", "pv-e15", "203.0.113.5, 10.0.0.1"),
        ("EDGE-IP-PORT", "pv-e16", "[2001:db8::2]:443"),
        ("EDGE-IP-V4-PORT", "pv-e17", "203.0.113.7:51234"),
    ]:
        tables["conversions"].append(_conversion(key, "e7", "2026-03-01T01:00:00Z", pv))
        tables["page_views"].append(
            {"user_id": "e7", "sync_date": "2026-03-01T01:00:00Z", "pv_id": pv, "ip_address": ip}
        )
    return tables


def write_mixed_export(directory: Path, tables: dict[str, list[dict]]) -> Path:
    """conversions and page_views as Parquet, line_users and user_master as CSV: both readers.

    page_views holds a line break inside a value, which DuckDB's CSV reader (null_padding) refuses,
    so it is one of the Parquet tables.
    """
    csv_dir = write_export(directory.parent / (directory.name + "-csv"), tables, "csv")
    parquet_dir = write_export(directory.parent / (directory.name + "-parquet"), tables, "parquet")
    directory.mkdir(parents=True, exist_ok=True)
    for table in ("conversions", "page_views"):
        shutil.copy(parquet_dir / f"{table}.parquet", directory / f"{table}.parquet")
    for table in ("line_users", "user_master"):
        shutil.copy(csv_dir / f"{table}.csv", directory / f"{table}.csv")
    return directory


def shift_jis_copy(export: Path, directory: Path) -> Path:
    """The export with its CSV files in Shift_JIS (windows-31j), as a Japanese spreadsheet saves
    them: Spark reads them with var karte_export_encoding (DuckDB needs UTF-8)."""
    shutil.copytree(export, directory)
    for path in directory.glob("*.csv"):
        path.write_bytes(path.read_text(encoding="utf-8").encode("cp932"))
    return directory
