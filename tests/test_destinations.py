"""The ledger per destination: a rehearsal never hides an event from the real tag, and a ledger
written by the previous version migrates in place with nothing lost."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest
from schedule_fixtures import clock_export, sender_run
from sender_fixtures import TAG_ID, TOKEN, invoke, make_event, mock_server, run_cli, write_payload

from sender import __version__
from sender.database import connect
from sender.exit_codes import ExitCode
from sender.ledger_migration import LEDGER_VERSION
from sender.progress import Progress
from sender.push import PushOptions, push
from sender.settings import LineTarget

OTHER_TAG = "6ba7b810-9dad-41d1-80b4-00c04fd430c8"

# The ledger's tables as the previous version created them (no destinations): kept as they were,
# to write a ledger file of that version.
V1_DDL = """
create table line_capi_send_batches (
    outcome_id bigint not null, batch_id varchar not null, run_id varchar not null,
    status varchar not null check (status in ('accepted', 'rejected_by_api', 'expired')),
    http_status integer, attempts integer not null, events integer not null,
    is_test boolean not null, sent_at timestamp not null, error varchar
);
create table line_capi_send_keys (
    event_name varchar not null, deduplication_key varchar not null,
    event_timestamp bigint not null, outcome_id bigint not null, is_test boolean not null
);
create or replace view line_capi_send_log as
select sent.event_name, sent.deduplication_key, batch.status, batch.http_status, batch.attempts,
    batch.batch_id, batch.run_id, sent.event_timestamp, batch.is_test, batch.sent_at, batch.error
from line_capi_send_keys as sent
inner join line_capi_send_batches as batch on sent.outcome_id = batch.outcome_id;
create table line_capi_send_runs (
    run_id varchar not null, tag_id varchar not null, endpoint varchar not null,
    is_test boolean not null, is_resend boolean not null, pending bigint, sent bigint,
    accepted bigint, rejected bigint, expired bigint, left_pending bigint, retried bigint,
    requests bigint, exit_code integer, outcome varchar, started_at timestamp not null,
    finished_at timestamp
);
create or replace view line_capi_pending as
select payload.* from line_capi_payload as payload
where not exists (
    select 1 from line_capi_send_keys as sent
    where sent.event_name = payload.event_name
        and sent.deduplication_key = payload.deduplication_key and not sent.is_test
);
"""


def send(db, url, tag_id=TAG_ID):
    target = LineTarget.from_values(endpoint=url, tag_id=tag_id, token=TOKEN, channel_id=None)
    con = connect(db, read_only=False)
    try:
        options = PushOptions(backoff_base=0.01, max_backoff=0.05, timeout=5.0, batch_size=50)
        return push(con, target, options, Progress(quiet=True))
    finally:
        con.close()


def test_a_destination_where_nothing_was_recorded_is_not_shown_as_all_pending(tmp_path):
    """A mistyped tag id answered 401 once, then corrected: status does not list every event as
    pending there, as though it were waiting to be sent, for as long as the ledger lasts."""
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(30)])
    with mock_server() as srv:
        assert send(db, srv.url, OTHER_TAG).exit_code == ExitCode.AUTHENTICATION
        assert send(db, srv.url).accepted == 30
    write_payload(db, [make_event(i) for i in range(32)])  # the next build: 2 new events
    shown = invoke(["status"], {"LINE_CAPI_DUCKDB": str(db)}).stdout.splitlines()
    wrong = shown.index(f"ledger    {srv.url} tag {OTHER_TAG}")
    assert shown[wrong + 1].strip().startswith("nothing recorded: no push there got an answer")
    assert shown[wrong + 2] == f"ledger    {srv.url} tag {TAG_ID} (last push)"
    assert "accepted 30, rejected_by_api 0, expired 0, pending 2" in shown[wrong + 3]
    assert shown[-1] == "pending   2"
    # --json keeps the figures, for a script that reads them
    status = json.loads(invoke(["status", "--json"], {"LINE_CAPI_DUCKDB": str(db)}).stdout)
    assert [d["pending"] for d in status["destinations"]] == [32, 2]


def test_each_destination_has_its_own_pending_set(tmp_path):
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(191)])
    with mock_server() as rehearsal, mock_server() as real, mock_server(tag_id=OTHER_TAG) as other:
        assert send(db, rehearsal.url).accepted == 191
        assert send(db, real.url).accepted == 191  # the rehearsal hid nothing from it
        assert send(db, other.url, OTHER_TAG).accepted == 191  # nor from another tag
        again = send(db, real.url)
        assert (again.pending, again.requests) == (0, 0)
        assert len(real.accepted) == len(other.accepted) == 191
    # the same destination however its URL is spelled
    spelled = real.url.replace("127.0.0.1", "127.0.0.1") + "/"
    assert send(db, spelled).pending == 0
    r = invoke(["status", "--json"], {"LINE_CAPI_DUCKDB": str(db)})
    status = json.loads(r.stdout)
    assert [
        (d["endpoint"], d["tag_id"], d["counts"]["accepted"], d["pending"])
        for d in status["destinations"]
    ] == [
        (rehearsal.url, TAG_ID, 191, 0),
        (real.url, TAG_ID, 191, 0),
        (other.url, OTHER_TAG, 191, 0),
    ]
    write_payload(db, [make_event(i) for i in range(200)])  # the next build: 9 new events
    status = json.loads(invoke(["status", "--json"], {"LINE_CAPI_DUCKDB": str(db)}).stdout)
    assert [d["pending"] for d in status["destinations"]] == [9, 9, 9]
    assert status["pending"] == 9  # line_capi_pending: at the destination of the last push


def write_v1_ledger(db, *, runs, outcomes):
    """A ledger file as the previous version wrote it. runs: (run_id, endpoint, tag_id, minute);
    outcomes: (outcome_id, run_id, status, is_test, [keys])."""
    con = duckdb.connect(str(db))
    try:
        con.execute(V1_DDL)
        # written a day ago, as that version wrote them: outcome ids are nanoseconds since the
        # epoch, keys carry their event's time
        start = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=1)
        first_id = int(start.replace(tzinfo=dt.UTC).timestamp()) * 1_000_000_000
        for run_id, endpoint, tag_id, minute in runs:
            con.execute(
                "insert into line_capi_send_runs (run_id, tag_id, endpoint, is_test, is_resend,"
                " started_at) values (?, ?, ?, false, false, ?)",
                [run_id, tag_id, endpoint, start + dt.timedelta(minutes=minute)],
            )
        for outcome_id, run_id, status, is_test, keys in outcomes:
            con.execute(
                "insert into line_capi_send_batches values (?, ?, ?, ?, 202, 1, ?, ?, ?, null)",
                [
                    first_id + outcome_id,
                    f"b{outcome_id}",
                    run_id,
                    status,
                    len(keys),
                    is_test,
                    start,
                ],
            )
            con.executemany(
                "insert into line_capi_send_keys select 'Purchase', ?, event_timestamp, ?, ?"
                " from line_capi_payload where deduplication_key = ?",
                [[key, first_id + outcome_id, is_test, key] for key in keys],
            )
    finally:
        con.close()


def test_a_ledger_of_the_previous_version_migrates_in_place_with_nothing_lost(tmp_path):
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(10)])
    real = "https://conversion-api.tr.line.me"
    write_v1_ledger(
        db,
        runs=[
            ("r-mock", "http://127.0.0.1:8787", TAG_ID, 0),
            ("r-real", real, TAG_ID.upper(), 10),  # the same tag, spelled otherwise
            ("r-real2", real + "/", TAG_ID, 20),
        ],
        outcomes=[
            (1, "r-mock", "accepted", False, [f"order-{i:07d}" for i in range(10)]),
            (2, "r-real", "accepted", False, ["order-0000000", "order-0000001"]),
            (3, "r-real2", "rejected_by_api", False, ["order-0000002"]),
            (4, "r-real2", "accepted", True, ["order-0000003"]),  # a test send
            (5, "r-deleted", "accepted", False, ["order-0000004"]),  # its run is gone
        ],
    )
    with duckdb.connect(str(db), read_only=True) as con:
        before = con.sql("select * from line_capi_send_log order by all").fetchall()
    # first use: a read-only command, which says what the migration did, once
    r = invoke(["status", "--json"], {"LINE_CAPI_DUCKDB": str(db)})
    assert r.exit_code == 0, r.stderr
    assert (
        f"warning: the ledger in {db} was migrated in place from layout 1 to 3 (sender" in r.stderr
    )
    assert (
        "): 15 key rows kept, each at the destination of the run that recorded it (2"
        " destination(s); 1 whose run is gone, at destination unknown); nothing is sent"
        " again. The migration is one way: keep the copy of the database taken before the"
        ' upgrade (docs/operations.md, "Going back")' in r.stderr
    )
    again = invoke(["status", "--json"], {"LINE_CAPI_DUCKDB": str(db)})
    assert again.exit_code == 0 and "migrated" not in again.stderr, again.stderr
    status = json.loads(r.stdout)
    with duckdb.connect(str(db), read_only=True) as con:
        after = con.sql(
            "select * exclude (destination_id, endpoint, tag_id) from line_capi_send_log"
            " order by all"
        ).fetchall()
        where = dict(
            con.sql(
                "select deduplication_key || '@' || run_id, endpoint from line_capi_send_log"
            ).fetchall()
        )
        runs = dict(con.sql("select run_id, destination_id from line_capi_send_runs").fetchall())
    assert after == before  # every outcome kept, unchanged
    assert where["order-0000000@r-mock"] == "http://127.0.0.1:8787"
    assert where["order-0000000@r-real"] == real and where["order-0000002@r-real2"] == real
    assert where["order-0000004@r-deleted"] == "unknown"
    assert runs["r-real"] == runs["r-real2"] != runs["r-mock"]
    by_endpoint = {d["endpoint"]: d for d in status["destinations"]}
    assert by_endpoint[real]["counts"] == {"accepted": 2, "rejected_by_api": 1, "expired": 0}
    assert by_endpoint[real]["pending"] == 7 and by_endpoint[real]["test_events"] == 1
    assert by_endpoint["http://127.0.0.1:8787"]["pending"] == 0
    assert by_endpoint["unknown"]["pending"] == 9
    assert status["pending"] == 7  # the last push went to the real tag
    # the next push to the real tag sends exactly what it never had
    with mock_server() as srv:
        con = duckdb.connect(str(db))
        con.execute(
            "update line_capi_send_destinations set endpoint = ? where endpoint = ?",
            [srv.url, real],
        )
        con.close()
        assert send(db, srv.url).accepted == 7


# What the push of 0.1.0 writes before its first request (sender/ledger.py at da53ba2): a run
# without a destination. It then sends, and its key rows (one column fewer) fail to record.
RUN_OF_0_1_0 = (
    "insert into line_capi_send_runs (run_id, tag_id, endpoint, is_test, is_resend, started_at)"
    " values ('r-old', ?, 'https://conversion-api.tr.line.me', false, false, now())"
)


def test_a_rolled_back_0_1_0_push_stops_before_it_sends(tmp_path):
    """After a rollback to 0.1.0, its push sent every pending event, failed to record it (exit
    5) and sent it again every hour. Its first write, the run's row, is now refused on a ledger
    this version migrated, created, or (from a build before this rule) opened."""
    migrated = tmp_path / "migrated.duckdb"
    write_payload(migrated, [make_event(i) for i in range(3)])
    write_v1_ledger(migrated, runs=[("r1", "http://127.0.0.1:8787", TAG_ID, 0)], outcomes=[])
    created = tmp_path / "created.duckdb"
    write_payload(created, [make_event(i) for i in range(3)])
    earlier = tmp_path / "earlier.duckdb"
    write_payload(earlier, [make_event(i) for i in range(3)])
    with mock_server() as srv:
        assert send(created, srv.url).accepted == 3
        assert send(earlier, srv.url).accepted == 3
    with duckdb.connect(str(earlier)) as con:  # as this version's builds before the rule left it
        con.execute("alter table line_capi_send_runs alter column destination_id drop not null")
        con.execute("drop table line_capi_ledger_version")
    for db in (migrated, earlier):
        assert invoke(["status"], {"LINE_CAPI_DUCKDB": str(db)}).exit_code == 0
    for db in (migrated, created, earlier):
        with duckdb.connect(str(db)) as con:
            with pytest.raises(duckdb.ConstraintException, match="destination_id"):
                con.execute(RUN_OF_0_1_0, [TAG_ID])
            # this version's own runs name theirs
            assert con.sql(
                "select count(*) from line_capi_send_runs where destination_id is null"
            ).fetchall() == [(0,)]


def test_each_ledger_keeps_its_layout_and_a_later_one_stops_every_command(tmp_path):
    """A rollback of the code alone leaves a sender on a ledger that a later version laid out
    otherwise: it would miscount what was sent. Each ledger keeps its layout's number, and a
    higher one than the sender knows is refused by name, before anything is read, built or
    sent."""
    created, migrated, earlier = (tmp_path / f"{n}.duckdb" for n in ("new", "v1", "earlier"))
    for db in (created, migrated, earlier):
        write_payload(db, [make_event(i) for i in range(3)])
    write_v1_ledger(
        migrated,
        runs=[("r1", "http://127.0.0.1:8787", TAG_ID, 0)],
        outcomes=[(1, "r1", "accepted", False, ["order-0000000"])],
    )
    with mock_server() as srv:
        assert send(created, srv.url).accepted == 3
        assert send(earlier, srv.url).accepted == 3
        with duckdb.connect(str(earlier)) as con:  # as this version's builds before the number
            con.execute("drop table line_capi_ledger_version")
        for db in (migrated, earlier):
            assert invoke(["status"], {"LINE_CAPI_DUCKDB": str(db)}).exit_code == 0
        # a read-only command migrates an earlier layout, but reads one that lacks only its
        # number as it is; the next command that writes numbers it
        with duckdb.connect(str(earlier), read_only=True) as con:
            assert con.sql(
                "select count(*) from duckdb_tables() where table_name = 'line_capi_ledger_version'"
            ).fetchall() == [(0,)]
        assert send(earlier, srv.url).pending == 0
    status = invoke(["status", "--json"], {"LINE_CAPI_DUCKDB": str(created)})
    assert json.loads(status.stdout)["ledger_layout"] == {
        "version": LEDGER_VERSION,
        "written_by": __version__,
    }
    shown = invoke(["status"], {"LINE_CAPI_DUCKDB": str(created)}).stdout
    assert f"ledger    layout {LEDGER_VERSION}, numbered by sender {__version__}\n" in shown
    for db in (created, migrated, earlier):
        with duckdb.connect(str(db), read_only=True) as con:
            assert con.sql(
                "select version, written_by from line_capi_ledger_version"
            ).fetchall() == [(LEDGER_VERSION, __version__)]

    # a run without a destination (none known) keeps the runs table as it is: not layout 3, so
    # the file stays unnumbered, and a later version reads it by its columns
    odd = tmp_path / "odd.duckdb"
    odd.write_bytes(earlier.read_bytes())
    with duckdb.connect(str(odd)) as con:
        con.execute("drop table line_capi_ledger_version")
        con.execute("alter table line_capi_send_runs alter column destination_id drop not null")
        con.execute(RUN_OF_0_1_0, [TAG_ID])
    with mock_server() as srv:
        assert send(odd, srv.url).pending == 3  # a new destination: nothing lost, nothing hidden
    with duckdb.connect(str(odd), read_only=True) as con:
        assert con.sql(
            "select count(*) from duckdb_tables() where table_name = 'line_capi_ledger_version'"
        ).fetchall() == [(0,)]

    # a later version opened the file: its layout is one higher, and two events are pending
    write_payload(created, [make_event(i) for i in range(5)])
    with duckdb.connect(str(created)) as con:
        con.execute(
            "update line_capi_ledger_version set version = version + 1, written_by = '9.1.0'"
        )
        ledger = con.sql("select * from line_capi_send_log order by all").fetchall()
    refusal = (
        f"error: the ledger in {created} has layout {LEDGER_VERSION + 1}, written by sender"
        f" 9.1.0; this sender ({__version__}) knows layout {LEDGER_VERSION} at most and would"
        " miscount what was sent: run that version again, or restore the copy of the database"
        ' taken before the upgrade (docs/operations.md, "Going back")'
    )
    env = {"LINE_CAPI_DUCKDB": str(created), "LINE_TAG_ID": TAG_ID, "LINE_ACCESS_TOKEN": TOKEN}
    with mock_server() as srv:
        env["LINE_CAPI_ENDPOINT"] = srv.url
        for command in (
            ["status"],
            ["push"],
            ["push", "--resend"],
            ["report", "-o", str(tmp_path / "r.html")],
        ):
            r = run_cli(command, env)
            assert r.returncode == ExitCode.DATABASE_ERROR, (command, r.stderr)
            assert r.stderr.strip() == refusal, command
        # the hourly job stops before dbt starts
        run = tmp_path / "run"
        run.mkdir()
        (run / "line_capi.duckdb").write_bytes(created.read_bytes())
        export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
        r = sender_run(run, srv.url, export=export)
        assert r.returncode == ExitCode.DATABASE_ERROR, r.stderr
        assert (
            refusal.replace(str(created), str(run / "line_capi.duckdb"))
            + ("; nothing was built or sent; log: ")
            in r.stderr
        )
        assert not (run / "target").exists()  # dbt never ran
        assert srv.stats()["requests"] == 0
    with duckdb.connect(str(created), read_only=True) as con:
        assert con.sql("select * from line_capi_send_log order by all").fetchall() == ledger
