"""Personal data at rest: under the usual umask 022, what dbt and the sender write is readable by
its owner only, and a database file others can read is set to 0600 with one warning line."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat

from pipeline_fixtures import HOURLY_BUILD, SAMPLE_DIR, run_dbt
from security_fixtures import mode, open_to_others, umask
from sender_fixtures import FAST, make_event, mock_server, run_cli, sender_env, write_payload

from sender import fault_points, file_modes
from sender.exit_codes import ExitCode
from sender.file_modes import make_private_dir, private_file, tighten, write_private_text


def test_the_helpers_make_private_files_and_folders_whatever_the_umask(tmp_path):
    with umask(0):
        report = write_private_text(tmp_path / "new" / "deeper" / "report.html", "<p>1</p>")
        folder = make_private_dir(tmp_path / "a" / "b")
        loose = tmp_path / "loose.log"
        loose.write_text("old\n")
        loose.chmod(0o666)
        with private_file(loose, "a") as f:
            f.write("new\n")
    assert report.read_text() == "<p>1</p>"
    assert mode(report) == 0o600
    assert [mode(p) for p in (tmp_path / "new", tmp_path / "new" / "deeper")] == [0o700, 0o700]
    assert [mode(p) for p in (tmp_path / "a", folder)] == [0o700, 0o700]
    assert loose.read_text() == "old\nnew\n" and mode(loose) == 0o600
    assert list(report.parent.iterdir()) == [report]  # no partial file left behind
    loose.chmod(0o644)
    assert tighten(loose) == f"{loose} was readable by other users (mode 0644): set to 0600"
    assert tighten(loose) is None and mode(loose) == 0o600


def test_a_log_or_report_named_on_a_device_or_pipe_leaves_its_mode_alone(tmp_path):
    """--log-file /dev/null, -o /dev/stdout: as root, making them 0600 broke them for everyone
    else, and a report replaced the /dev/stdout link with a file. A pipe stands in for them."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe, 0o666)
    pipe.chmod(0o666)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # so that opening it to write never waits
    try:
        with private_file(pipe, "a") as f:
            f.write("a run log line\n")
        assert write_private_text(pipe, "<p>page</p>") == pipe
        assert os.read(reader, 1000) == b"a run log line\n<p>page</p>"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(pipe.lstat().st_mode) and mode(pipe) == 0o666


def test_dbt_build_by_hand_writes_a_private_database_and_tightens_an_open_one(tmp_path):
    """The profile plugin (sender.dbt_private_files), without sender run around dbt."""
    db = tmp_path / "line_capi.duckdb"
    with umask(0o022):
        result = run_dbt(tmp_path, *HOURLY_BUILD, export_dir=SAMPLE_DIR, database=db)
        assert result.returncode == 0, result.output
        written = [db, tmp_path / "target", tmp_path / "logs"]
        written += [tmp_path / "target" / "run_results.json", tmp_path / "target" / "compiled"]
        assert open_to_others(written) == []
        assert "readable by other users" not in result.output
        db.chmod(0o644)  # as a build of an earlier version left it
        result = run_dbt(tmp_path, *HOURLY_BUILD, export_dir=SAMPLE_DIR, database=db)
    assert result.returncode == 0, result.output
    assert mode(db) == 0o600
    [line] = [x for x in result.output.splitlines() if "readable by other users" in x]
    assert f"database file {db} was readable by other users (mode 0644): set to 0600" in line


def test_dbt_by_hand_makes_its_log_private_in_a_shared_folder(tmp_path):
    """dbt opens its log before the plugin sets the umask, and a sticky folder such as /tmp keeps
    its mode: the log, which holds a failed model's message (DuckDB quotes a malformed CSV row
    whole), is set to 0600 itself, and so is a rotated part."""
    shared = tmp_path / "logs"  # the log folder run_dbt names
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "dbt.log.1").write_text("an older part\n")
    (shared / "dbt.log.1").chmod(0o644)
    with umask(0o022):
        result = run_dbt(
            tmp_path, "run", "--select", "stg_karte__line_users", export_dir=SAMPLE_DIR
        )
    assert result.returncode == 0, result.output
    assert [mode(shared / name) for name in ("dbt.log", "dbt.log.1")] == [0o600, 0o600]
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777  # a shared folder is left as it is


def test_push_tightens_an_open_database_and_its_wal_is_private(tmp_path):
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(40)])
    db.chmod(0o644)
    wal = db.with_name(db.name + ".wal")
    with mock_server() as srv, umask(0o022):
        # killed after its first batch was recorded: the WAL stays, as after a crash
        killed = run_cli(
            ["push", *FAST, "--batch-size", "10", "--concurrency", "1"],
            sender_env(db, srv.url, **{fault_points.ENV_VAR: "after_response:2"}),
        )
        assert killed.returncode == -signal.SIGKILL
        warnings = [x for x in killed.stderr.splitlines() if "readable by other users" in x]
        assert warnings == [
            f"warning: database file {db} was readable by other users (mode 0644): set to 0600"
            " (it holds personal data)"
        ]
        assert wal.exists()
        assert open_to_others([db, wal]) == []
        # the next push, without a warning: nothing was open to others any more
        r = run_cli(["push", *FAST], sender_env(db, srv.url))
    assert r.returncode == 0, r.stderr
    assert "readable by other users" not in r.stderr
    assert open_to_others([db, wal]) == []


def test_a_mistyped_database_path_never_changes_a_shared_folder(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp
    result = run_cli(["status", "-d", str(shared)], env=sender_env(shared, "http://127.0.0.1:9"))
    assert result.returncode == ExitCode.DATABASE_ERROR, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert mode(shared) == 0o1777
    assert tighten(shared, folder=True) is None  # not even as dbt's log folder
    # the spill folder beside a real database is the one folder tightened
    spill = tmp_path / "db.duckdb.tmp"
    spill.mkdir(mode=0o755)
    spill.chmod(0o755)
    assert tighten(spill) is None and tighten(spill, folder=True) is not None
    assert mode(spill) == 0o700


def test_a_mode_a_read_only_file_system_refuses_is_a_warning_not_a_crash(tmp_path, monkeypatch):
    """A database copy mounted read-only (to inspect it) at 0644: every command was exit 70."""
    loose = tmp_path / "line_capi.duckdb"
    loose.write_text("x")
    loose.chmod(0o644)

    def read_only(path, mode):  # noqa: ARG001 - what chmod meets on a read-only mount
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(file_modes.os, "chmod", read_only)
    assert tighten(loose) == (
        f"{loose} is readable by other users (mode 0644) and stays so: Read-only file system"
    )
    assert mode(loose) == 0o644


def test_dbt_by_hand_keeps_the_rows_a_malformed_csv_quotes_out_of_its_output_log_and_results(
    tmp_path,
):
    """A quote left open in the user master, past the rows DuckDB samples: DuckDB's error quotes
    that customer's row and dozens after it. The first `dbt build` on a real export (README) is
    run by hand, where no sender filters dbt's lines: the profile's plugin takes the rows out of
    the error itself, so dbt's console, logs/dbt.log and target/run_results.json never hold them."""
    export = tmp_path / "export"
    shutil.copytree(SAMPLE_DIR, export)
    with (export / "user_master.csv").open("a", encoding="utf-8") as file:
        for i in range(21_000):
            file.write(f"x{i},filler{i}@example.jp,,,,,,,,,,\n")
        file.write('x-open,opened@customer.example,090-7777-0001,,,,,,,,JP,"Shibuya 1-2-3\n')
        file.writelines(f"y{i},customer{i}@customer.example,,,,,,,,,,\n" for i in range(30))
    result = run_dbt(tmp_path, *HOURLY_BUILD, export_dir=export)
    assert result.returncode == 1
    assert "CSV Error on Line: 21" in result.output
    assert "Original Line: (not shown: " in result.output
    assert "Value with unterminated quote found" in result.output
    kept = [
        result.output,
        *(path.read_text() for path in (tmp_path / "logs").glob("dbt.log*")),
        (tmp_path / "target" / "run_results.json").read_text(),
    ]
    for text in kept:
        assert "@customer.example" not in text and "Shibuya" not in text
