"""`sender compact`: the database written afresh gives back the space of what it no longer holds,
keeps every row of every table (the ledger first), and refuses a file another process holds;
`sender backup`: the same copy elsewhere, the database left as it is."""

from __future__ import annotations

import os
import signal
import stat

import duckdb
import pytest
from sender_fixtures import (
    TAG_ID,
    database_held,
    ledger_counts,
    make_event,
    mock_server,
    push_now,
    run_cli,
    sender_env,
    write_bulk_payload,
    write_payload,
)

from sender.exit_codes import ExitCode
from sender.run_locks import lock_path, run_lock


def table_rows(db) -> dict[str, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [
            name
            for (name,) in con.sql(
                "select table_name from information_schema.tables"
                " where table_type = 'BASE TABLE' order by 1"
            ).fetchall()
        ]
        return {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables}


def test_compacting_gives_space_back_and_keeps_every_row(tmp_path):
    db = tmp_path / "line_capi.duckdb"
    write_bulk_payload(db, 2_000)
    # the tables of a catch-up over a long window, then replaced by an hour's: DuckDB reuses the
    # free blocks they leave in the middle of the file, and never gives them back
    with duckdb.connect(str(db)) as con:
        con.execute("create table catch_up as select md5(range::varchar) as t from range(400000)")
        con.execute("checkpoint")
    with mock_server() as srv:
        assert push_now(db, srv.url).accepted == 2_000
        with duckdb.connect(str(db)) as con:
            con.execute("drop table catch_up")
            con.execute("checkpoint")
        rows, size = table_rows(db), db.stat().st_size
        r = run_cli(["compact"], sender_env(db))
        assert r.returncode == ExitCode.OK, r.stderr
        assert r.stdout.startswith(f"compacted {db}: ")
        assert db.stat().st_size < size / 3
        assert table_rows(db) == rows and rows["line_capi_send_keys"] == 2_000
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        assert sorted(p.name for p in tmp_path.iterdir()) == [db.name, lock_path(db).name]
        # the ledger's views came along, and nothing is sent again
        assert ledger_counts(db) == {"accepted": 2_000}
        assert push_now(db, srv.url).pending == 0
        assert len(srv.accepted) == 2_000


def test_a_database_another_process_holds_is_left_as_it_was(tmp_path):
    db = tmp_path / "line_capi.duckdb"
    write_bulk_payload(db, 10)
    before = db.read_bytes()
    with database_held(db):
        r = run_cli(["compact"], sender_env(db))
    assert r.returncode == ExitCode.DATABASE_LOCKED, r.stderr
    assert r.stderr.startswith(f"error: database {db} is locked by another process")
    assert "Traceback" not in r.stderr
    assert db.read_bytes() == before
    assert not (tmp_path / f".{db.name}.compact").exists()
    # a missing file: nothing to compact, and nothing created
    r = run_cli(["compact"], sender_env(tmp_path / "none.duckdb"))
    assert r.returncode == ExitCode.NO_PAYLOAD, r.stderr
    assert not (tmp_path / "none.duckdb").exists()


def test_a_database_reached_by_a_link_stays_a_link(tmp_path):
    """A database linked from the project folder to a bigger disk: compact rewrites the file on
    that disk; it replaced the link with the new file (on the small disk), leaving the old one."""
    disk = tmp_path / "big-disk"
    disk.mkdir()
    real = disk / "line_capi.duckdb"
    write_bulk_payload(real, 50)
    rows = table_rows(real)
    link = tmp_path / "project" / "line_capi.duckdb"
    link.parent.mkdir()
    link.symlink_to(real)
    r = run_cli(["compact"], sender_env(link))
    assert r.returncode == ExitCode.OK, r.stderr
    assert link.is_symlink() and link.resolve() == real
    assert table_rows(real) == rows
    assert sorted(p.name for p in disk.iterdir()) == [real.name]  # no copy left beside it


def test_a_mistyped_database_path_is_one_line_and_leaves_nothing_behind(tmp_path):
    # the run lock came first: a folder and a .lock file were made for a database that is not there
    missing = tmp_path / "typo" / "line_capi.duckdb"
    r = run_cli(["compact", "-d", str(missing)], {})
    assert r.returncode == ExitCode.NO_PAYLOAD, r.stderr
    assert f"error: database {missing} does not exist: run `dbt build` first" in r.stderr
    assert not (tmp_path / "typo").exists()


def test_a_backup_keeps_every_row_and_restored_sends_only_what_came_after(tmp_path):
    """`sender backup` copies the database between runs, privately, into a folder with a name per
    backup; restored in place of the database, it sends again only what was sent after it (LINE
    de-duplicates those), never the rest."""
    db = tmp_path / "line_capi.duckdb"
    backups = tmp_path / "backups"
    backups.mkdir()
    write_bulk_payload(db, 300)
    with mock_server() as srv:
        assert push_now(db, srv.url).accepted == 300
        rows = table_rows(db)
        r = run_cli(["backup", str(backups)], sender_env(db))
        assert r.returncode == ExitCode.OK, r.stderr
        (copy,) = backups.iterdir()
        assert copy.name.startswith("line_capi-") and copy.suffix == ".duckdb"
        assert r.stdout == f"backed up {db} to {copy}: {len(rows)} tables, " + (
            f"{copy.stat().st_size / 1024 / 1024:,.1f} MiB\n"
        )
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert table_rows(copy) == rows == table_rows(db)  # the database is left as it was
        # the next hour: 20 more events sent; then the disk is lost, and the backup restored
        write_bulk_payload(db, 320)
        assert push_now(db, srv.url).accepted == 20
        db.unlink()
        copy.rename(db)
        write_bulk_payload(db, 320)  # the next run's build
        again = push_now(db, srv.url)
        assert (again.pending, again.accepted) == (20, 20)
        assert len(srv.accepted) == 320 and sum(srv.accepted.values()) == 340


def test_a_backup_never_overwrites_and_waits_for_its_turn(tmp_path):
    db = tmp_path / "line_capi.duckdb"
    write_bulk_payload(db, 10)
    taken = tmp_path / "taken.duckdb"
    taken.write_bytes(b"an earlier backup")
    for dest, said in (
        (taken, f"error: {taken} exists: name a new file, or a folder"),
        (tmp_path / "none" / "b.duckdb", f"error: the backup's folder {tmp_path / 'none'} does"),
        (db, f"error: {db} is the database itself"),
    ):
        r = run_cli(["backup", str(dest)], sender_env(db))
        assert (r.returncode, r.stderr.startswith(said)) == (ExitCode.USAGE, True), r.stderr
    assert taken.read_bytes() == b"an earlier backup"
    # a compaction (or a run) holds the run lock: the backup says which, and copies nothing
    with run_lock(db, holder="sender compact"):
        r = run_cli(["backup", str(tmp_path / "b.duckdb")], sender_env(db))
    assert r.returncode == ExitCode.ALREADY_RUNNING, r.stderr
    assert r.stderr.startswith(f"error: a sender compact (pid {os.getpid()}) holds ")
    # a push or a dbt build holds the database: nothing copied, nothing left half-written
    with database_held(db):
        r = run_cli(["backup", str(tmp_path / "b.duckdb")], sender_env(db))
    assert r.returncode == ExitCode.DATABASE_LOCKED, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [db.name, lock_path(db).name, taken.name]
    )


@pytest.mark.parametrize("stop", ["term", "kill"])
def test_a_backup_stopped_midway_leaves_no_copy_for_long(tmp_path, stop):
    """SIGTERM (a scheduler's timeout): exit 130 and nothing left. SIGKILL: the half-written copy
    stays, hidden, under one name per database, and the next backup removes it (in a folder
    each backup has a name of its own: a copy per killed backup would pile up, personal data)."""
    db = tmp_path / "line_capi.duckdb"
    backups = tmp_path / "backups"
    backups.mkdir()
    write_bulk_payload(db, 50)
    stopped = sender_env(db, LINE_CAPI_FAULT_POINT=f"database_copy:1:{stop}")
    r = run_cli(["backup", str(backups)], stopped)
    if stop == "term":
        assert r.returncode == ExitCode.INTERRUPTED, r.stderr
        assert list(backups.iterdir()) == []
    else:
        assert r.returncode == -signal.SIGKILL
        assert [p.name for p in backups.iterdir()] == [f".{db.name}.backup-partial"]
    r = run_cli(["backup", str(backups)], sender_env(db))
    assert r.returncode == ExitCode.OK, r.stderr
    (copy,) = backups.iterdir()
    assert copy.name.startswith("line_capi-") and table_rows(copy) == table_rows(db)


def test_a_backup_leaves_a_ledger_of_an_earlier_layout_as_it_is(tmp_path):
    """After `git pull`, before the first run: the read-write open the copy needs would migrate
    the ledger, and the backup would hold the new layout, the database changed under it."""
    from test_destinations import write_v1_ledger

    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(10)])
    write_v1_ledger(
        db,
        runs=[("r-real", "https://conversion-api.tr.line.me", TAG_ID, 0)],
        outcomes=[(1, "r-real", "accepted", False, ["order-0000000"])],
    )
    before = db.read_bytes()
    r = run_cli(["backup", str(tmp_path / "b.duckdb")], sender_env(db))
    assert r.returncode == ExitCode.USAGE, r.stderr
    assert r.stderr.startswith(f"error: the ledger in {db} has an earlier version's layout")
    assert db.read_bytes() == before and not (tmp_path / "b.duckdb").exists()


@pytest.mark.parametrize("command", ["backup", "compact"])
def test_a_full_disk_is_blamed_on_the_copys_folder_and_leaves_the_database(tmp_path, command):
    """The backup's disk full said `error: database …: IO Error: Detached database 'compacted',
    but CHECKPOINT during DETACH failed` (the database blamed, the cause cut off), and a read-only
    one was exit 70, a crash. Now one line names the copy's folder and the cause."""
    db = tmp_path / "line_capi.duckdb"
    backups = tmp_path / "backups"
    backups.mkdir()
    write_bulk_payload(db, 50)
    before = table_rows(db)
    full = sender_env(db, LINE_CAPI_FAULT_POINT="database_copy:1:enospc")
    r = run_cli([command, *([str(backups)] if command == "backup" else [])], full)
    assert r.returncode == ExitCode.DATABASE_ERROR, r.stderr
    folder = backups if command == "backup" else tmp_path
    assert r.stderr.startswith(
        f"error: cannot write the copy in {folder}: its disk is full (a copy needs about"
    ), r.stderr
    assert (
        r.stderr.rstrip().endswith(f"; {db} is left as it was") and len(r.stderr.splitlines()) == 1
    )
    assert list(backups.iterdir()) == [] and table_rows(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [db.name, lock_path(db).name, "backups"]
    )
