"""The send ledger: its DDL, the pending view, per-batch transactions, and living with dbt."""

from __future__ import annotations

import contextlib
import os

import duckdb
import pyarrow as pa
import pytest
from pipeline_fixtures import ROOT
from sender_fixtures import (
    invoke,
    ledger_rows,
    make_event,
    mock_server,
    pending_keys,
    push_now,
    sender_env,
    write_bulk_payload,
    write_payload,
)

from sender.database import connect, ensure_ledger
from sender.ledger import LedgerWriteError, LedgerWriter, start_run
from sender.ledger_status import read_status
from sender.pending_rows import count_pending, iter_pending
from sender.progress import Progress

pytestmark = pytest.mark.payload(events=60)  # the db fixture (conftest.py)


def test_ddl_is_idempotent_and_has_the_documented_columns(db):
    con = connect(db, read_only=False)
    ensure_ledger(con)
    ensure_ledger(con)
    cols = [
        r[0]
        for r in con.execute(
            "select column_name from duckdb_columns() where table_name = 'line_capi_send_log'"
            " order by column_index"
        ).fetchall()
    ]
    con.close()
    assert cols == [
        "event_name",
        "deduplication_key",
        "status",
        "http_status",
        "attempts",
        "batch_id",
        "run_id",
        "event_timestamp",
        "is_test",
        "sent_at",
        "error",
        "destination_id",
        "endpoint",
        "tag_id",
    ]


def test_status_values_are_checked(db):
    con = connect(db, read_only=False)
    ensure_ledger(con)
    with pytest.raises(duckdb.ConstraintException):
        con.execute(
            "insert into line_capi_send_batches values (1, 'b', 'r', 'pending', null, 1, 1,"
            " false, now()::timestamp, null)"
        )
    con.close()


def test_pending_view_matches_what_push_skips(db):
    with mock_server() as srv:
        srv.poison("order-0000005")
        push_now(db, srv.url, limit=20, batch_size=10)
    assert pending_keys(db) == {f"order-{i:07d}" for i in range(60)} - {
        r[1] for r in ledger_rows(db)
    }
    assert len(pending_keys(db)) == 40


def test_ledger_and_view_survive_a_dbt_style_rebuild(db):
    with mock_server() as srv:
        push_now(db, srv.url, batch_size=1000)
        assert pending_keys(db) == set()
        # dbt build replaces the table (create new, drop old, rename) with the ledger present
        write_payload(db, [make_event(i) for i in range(80)])
        assert len(pending_keys(db)) == 20
        again = push_now(db, srv.url, batch_size=1000)
        assert again.pending == 20 and again.accepted == 20
        assert set(srv.accepted.values()) == {1}
    # and create-or-replace works too
    con = duckdb.connect(str(db))
    con.execute("create or replace table line_capi_payload as select * from line_capi_payload")
    con.execute("drop table line_capi_payload")
    con.close()


def test_one_insert_per_batch_with_its_batch_id(db):
    with mock_server() as srv:
        s = push_now(db, srv.url, batch_size=25, concurrency=2)
    rows = ledger_rows(db)
    batches = {r[5] for r in rows}
    assert len(batches) == s.batches == 3
    assert {r[6] for r in rows} == {s.run_id}


def test_status_counts_latest_status_per_key_and_runs(db):
    with mock_server() as srv:
        srv.poison("order-0000003")
        srv.poison("test-order-0000003")  # the key a test send gives it
        push_now(db, srv.url, batch_size=1000)
        push_now(db, srv.url, batch_size=1000, resend=True, test=True, limit=4)
    con = connect(db, read_only=True)
    info = read_status(con, has_ledger=True, has_payload=True)
    con.close()
    assert info.latest.counts == {"accepted": 59, "rejected_by_api": 1, "expired": 0}
    assert info.latest.test_events == 4 and info.pending == 0
    assert (info.last_run["accepted"], info.last_run["rejected"]) == (3, 1)
    assert info.last_run["is_test"] is True
    # the refused test event is recorded under its real key
    refused = [r for r in ledger_rows(db) if r[2] == "rejected_by_api" and r[7]]
    assert [r[1] for r in refused] == ["order-0000003"]


def test_status_counts_a_resent_key_once_under_its_latest_outcome(db):
    """--resend records every key again: status still counts each key once, as the latest
    outcome has it (the rejected key accepted the second time), not each outcome."""
    with mock_server() as srv:
        srv.poison("order-0000003")
        push_now(db, srv.url, batch_size=1000)
        srv.poisoned.clear()
        push_now(db, srv.url, batch_size=1000, resend=True, limit=10)
    con = connect(db, read_only=True)
    info = read_status(con, has_ledger=True, has_payload=True)
    outcomes = con.execute("select count(*) from line_capi_send_keys").fetchone()[0]
    con.close()
    assert outcomes == 70  # the ten resent keys have two outcomes each
    assert info.latest.counts == {"accepted": 60, "rejected_by_api": 0, "expired": 0}


def test_a_refused_event_stays_refused_until_retry_rejected_sends_it_again(db):
    """LINE's refusal is final at the destination: the next runs leave the event out, even once
    the cause is gone; --retry-rejected sends it again (and only it, with what is pending), and
    status then counts the key once, as accepted."""
    with mock_server() as srv:
        srv.poison("order-0000003")
        first = push_now(db, srv.url, batch_size=1000)
        assert (first.accepted, first.rejected) == (59, 1)
        assert "sender push --retry-rejected sends them again" in first.exit_note()
        too_soon = push_now(db, srv.url, batch_size=1000, retry_rejected=True)  # not yet fixed
        assert (too_soon.accepted, too_soon.rejected) == (0, 0)
        assert "is their model fixed and the payload rebuilt?" in too_soon.message
        srv.poisoned.clear()  # the model is fixed and rebuilt
        assert push_now(db, srv.url, batch_size=1000).pending == 0
        write_payload(db, [make_event(i) for i in range(62)])  # two new conversions meanwhile
        srv.accepted.clear()
        retried = push_now(db, srv.url, batch_size=1000, retry_rejected=True)
        assert (retried.pending, retried.accepted, retried.rejected) == (3, 3, 0)
        assert {key for _, key in srv.accepted} == {
            "order-0000003",
            "order-0000060",
            "order-0000061",
        }
        assert push_now(db, srv.url, batch_size=1000, retry_rejected=True).pending == 0
    con = connect(db, read_only=True)
    info = read_status(con, has_ledger=True, has_payload=True)
    con.close()
    assert info.latest.counts == {"accepted": 62, "rejected_by_api": 0, "expired": 0}


def test_retry_rejected_with_resend_is_refused(db):
    r = invoke(["push", "--retry-rejected", "--resend"], sender_env(db, "http://127.0.0.1:9"))
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        "error: --retry-rejected sends the refused events with the pending ones; --resend"
        " already sends every row: give one of them"
    ]


def _ledger_queries_of_the_docs() -> dict[str, str]:
    """docs/sender.md's ledger queries, each under its comment's first line (``#2``, ``#3`` for
    the further statements under one comment)."""
    text = (ROOT / "docs" / "sender.md").read_text()
    block = text.split("```sql\n", 1)[1].split("```", 1)[0]
    queries: dict[str, str] = {}
    question, n = "", 0
    for statement in block.split(";\n"):
        lines = statement.strip().splitlines()
        if lines and lines[0].startswith("--"):
            question, n = lines[0].removeprefix("-- "), 1
        elif lines:
            n += 1
        if lines:
            queries[question if n == 1 else f"{question} #{n}"] = "\n".join(lines)
    return queries


def test_the_ledger_queries_of_the_docs_run_and_answer(db):
    """Every query of docs/sender.md's ledger section runs on a real ledger, and the ones that
    answer a question answer it: the key still refused (not one accepted since, not a test
    refusal), a key's trail, the resent keys, the keys only sent as tests."""
    with mock_server() as srv:
        srv.poison("order-0000003", "order-0000004")
        push_now(db, srv.url, batch_size=1000)
        srv.poisoned.discard("order-0000004")  # its row fixed; order-0000003's not
        push_now(db, srv.url, batch_size=1000, retry_rejected=True)
        push_now(db, srv.url, batch_size=1000, resend=True, limit=2)
        write_payload(db, [make_event(i) for i in range(62)])
        srv.poison("test-order-0000061")
        push_now(db, srv.url, batch_size=1000, test=True)
    con = connect(db, read_only=True)
    try:
        answers = {
            question: con.execute(sql.replace("ORD-1001", "order-0000004")).fetchall()
            for question, sql in _ledger_queries_of_the_docs().items()
        }
    finally:
        con.close()

    def answer(question: str) -> list[tuple]:
        return next(rows for q, rows in answers.items() if q.startswith(question))

    assert len(answers) == 10  # every statement ran
    assert answer("what the next push will send") == [(2,)]
    # ... at the destination of the last push, which the third statement names: a test push
    assert [
        row[2]
        for row in answer(
            "what the next push will send (to the destination of the last push: which one?) #3"
        )
    ] == [True]
    assert [row[4] for row in answer("the events LINE refused")] == ["order-0000003"]
    trail = answer("where one conversion went")
    assert [(row[4], row[7]) for row in trail] == [("rejected_by_api", False), ("accepted", False)]
    assert sorted(row[3] for row in answer("keys accepted more than once")) == [
        "order-0000000",
        "order-0000001",
    ]
    assert [row[2] for row in answer("keys only ever sent as tests")] == [2]
    # 58, then order-0000004, then the two resent again
    assert sum(row[3] for row in answer("events accepted per Japan day")) == 61


def test_iter_pending_streams_in_table_order_across_chunks(tmp_path):
    db = tmp_path / "big.duckdb"
    write_bulk_payload(db, 12_000)
    con = connect(db, read_only=False)
    ensure_ledger(con)
    writer = LedgerWriter(con, run_id="r", is_test=False, destination_id=1)
    # recorded with another event_timestamp than the payload's (the model changed between two
    # builds): the key still counts as sent
    done = pa.table(
        {
            "event_name": ["Purchase"] * 3,
            "deduplication_key": ["bulk-00000000", "bulk-00005000", "bulk-00011999"],
            "event_timestamp": pa.array([0, 0, 0], pa.int64()),
        }
    )
    writer.record(done, status="accepted", batch_id="b", http_status=202, attempts=1)
    writer.close()
    keys, rowids = [], []
    for chunk in iter_pending(con, destination_id=1, chunk_rows=1000):
        assert chunk.num_rows <= 1000
        keys.extend(chunk.column("deduplication_key").to_pylist())
        rowids.extend(chunk.column("payload_rowid").to_pylist())
    assert keys == sorted(keys) and len(keys) == 11_997
    assert "bulk-00005000" not in keys
    # the rowids counted by the scan are the table's (bulk-N was written at row N)
    assert rowids == [int(key.removeprefix("bulk-")) for key in keys]
    limited = sum(
        c.num_rows for c in iter_pending(con, destination_id=1, limit=2500, chunk_rows=1000)
    )
    assert count_pending(con, destination_id=1) == 11_997
    assert count_pending(con, destination_id=2) == 12_000  # nothing recorded at another
    con.close()
    assert limited == 2500


def test_iter_pending_reads_rowids_when_rows_were_deleted(tmp_path):
    """A payload table with gaps in its rowids (rows deleted by hand): the scan reads them."""
    db = tmp_path / "gaps.duckdb"
    write_bulk_payload(db, 3_000)
    con = connect(db, read_only=False)
    con.execute(
        "delete from line_capi_payload where deduplication_key in ('bulk-00000000',"
        " 'bulk-00001500', 'bulk-00002999')"
    )
    ensure_ledger(con)
    writer = LedgerWriter(con, run_id="r", is_test=False, destination_id=1)
    done = pa.table(
        {
            "event_name": ["Purchase"] * 2,
            "deduplication_key": ["bulk-00000001", "bulk-00002000"],
            "event_timestamp": pa.array([0, 0], pa.int64()),
        }
    )
    writer.record(done, status="accepted", batch_id="b", http_status=202, attempts=1)
    writer.close()
    chunks = list(iter_pending(con, destination_id=1, chunk_rows=700))
    con.close()
    keys = [k for c in chunks for k in c.column("deduplication_key").to_pylist()]
    rowids = [r for c in chunks for r in c.column("payload_rowid").to_pylist()]
    gone = {0, 1, 1500, 2000, 2999}
    assert keys == [f"bulk-{i:08d}" for i in range(3_000) if i not in gone]
    assert rowids == [i for i in range(3_000) if i not in gone]


def test_writer_groups_outcomes_and_reports_commits(db):
    con = connect(db, read_only=False)
    ensure_ledger(con)
    committed = []
    writer = LedgerWriter(
        con, run_id="r", is_test=False, destination_id=1, on_commit=committed.append
    )
    keys = con.sql(
        "select event_name, deduplication_key, event_timestamp from line_capi_payload"
    ).to_arrow_table()
    for i in range(6):
        writer.record(
            keys.slice(i * 10, 10), status="accepted", batch_id=f"b{i}", http_status=202, attempts=1
        )
    writer.close()
    assert [c.batch_id for c in committed] == [f"b{i}" for i in range(6)]
    assert con.execute("select count(*) from line_capi_send_keys").fetchall() == [(60,)]
    start_run(
        con, run_id="r", tag_id="t", endpoint="e", destination_id=1, is_test=False, is_resend=False
    )
    assert con.execute("select count(*) from line_capi_pending").fetchall() == [(0,)]
    con.close()


@pytest.mark.parametrize(
    "taken",
    [
        range(10, 30),  # one run of rowids: copied inside DuckDB by one range
        [*range(0, 5), *range(7, 12), 40, 59],  # a few runs: several ranges
        range(0, 60, 3),  # scattered: the keys go in as an Arrow table
    ],
)
def test_writer_records_exactly_the_rows_given(db, taken):
    con = connect(db, read_only=False)
    ensure_ledger(con)
    writer = LedgerWriter(con, run_id="r", is_test=False, destination_id=1)
    rows = con.sql(
        "select rowid as payload_rowid, event_name, deduplication_key, event_timestamp"
        " from line_capi_payload order by rowid"
    ).to_arrow_table()
    chosen = rows.take(list(taken))
    writer.record(chosen, status="accepted", batch_id="b", http_status=202, attempts=1)
    writer.close()
    recorded = con.execute(
        "select event_name, deduplication_key, event_timestamp from line_capi_send_keys"
        " order by deduplication_key"
    ).fetchall()
    events = con.execute("select events from line_capi_send_batches").fetchall()
    con.close()
    expected = sorted(
        zip(
            *(chosen.column(c).to_pylist() for c in ["event_name", "deduplication_key"]),
            chosen.column("event_timestamp").to_pylist(),
            strict=True,
        ),
        key=lambda key: key[1],
    )
    assert recorded == expected
    assert events == [(len(taken),)]


def test_writer_failure_is_reported_and_rows_stay_pending(db):
    con = connect(db, read_only=False)
    ensure_ledger(con)
    con.execute("drop view line_capi_pending")
    con.execute("drop view line_capi_send_log")
    con.execute("drop table line_capi_send_keys")  # the writer cannot insert any more
    writer = LedgerWriter(con, run_id="r", is_test=False, destination_id=1)
    keys = con.sql(
        "select event_name, deduplication_key, event_timestamp from line_capi_payload"
    ).to_arrow_table()
    writer.record(keys, status="accepted", batch_id="b", http_status=202, attempts=1)
    with pytest.raises(LedgerWriteError, match="cannot record outcomes"):
        writer.close()
    assert con.execute("select count(*) from line_capi_send_batches").fetchall() == [(0,)]
    con.close()


def test_read_only_status_when_no_ledger_yet(db):
    con = connect(db, read_only=True)
    info = read_status(con, has_ledger=False, has_payload=True)
    con.close()
    assert info.pending == 60 and info.last_run is None and info.destinations == []


def test_a_commit_callback_that_raises_never_leaves_a_sender_waiting(tmp_path):
    """The push counts each commit in a callback that writes progress to stderr. When that raised
    (stderr a pipe whose reader went away), the writer thread died: every later outcome stayed
    unsettled, the senders waiting on them hung for good, and the database stayed locked."""
    db = tmp_path / "x.duckdb"
    write_bulk_payload(db, 60)
    con = connect(db, read_only=False)
    ensure_ledger(con)

    def broken_pipe(_entry):
        raise BrokenPipeError(32, "Broken pipe")

    writer = LedgerWriter(con, run_id="r", is_test=False, destination_id=1, on_commit=broken_pipe)
    keys = con.sql(
        "select event_name, deduplication_key, event_timestamp from line_capi_payload"
    ).to_arrow_table()
    settled = [
        writer.record(
            keys.slice(i * 10, 10), status="accepted", batch_id=f"b{i}", http_status=202, attempts=1
        )
        for i in range(6)
    ]
    assert all(event.wait(10) for event in settled)
    with pytest.raises(BrokenPipeError):
        writer.close()  # the push ends with the error instead of hanging
    assert con.execute("select count(*) from line_capi_send_keys").fetchall() == [(60,)]
    con.close()


def test_progress_output_to_a_closed_pipe_stops_the_output_not_the_push():
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as stream:
        progress = Progress(stream, tty=False)
        progress.start(10)
        progress.log("warning: something")  # EPIPE: no exception, the output stops
        progress.advance(10)
        progress.log("warning: again")
        progress.finish()
        with contextlib.suppress(BrokenPipeError):
            stream.close()
