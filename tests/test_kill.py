"""Crash safety: a push killed with SIGKILL mid-way loses nothing and re-sends at most what was
in flight; a database locked by another process gives a one-line error and exit code 5."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
from pipeline_fixtures import SAMPLE_DIR
from schedule_fixtures import dbt_args
from sender_fixtures import (
    REPO,
    ledger_rows,
    mock_server,
    run_cli,
    sender_env,
    write_bulk_payload,
)

from sender.exit_codes import ExitCode


def test_sigkill_mid_run_then_rerun_delivers_everything_once(tmp_path):
    db = tmp_path / "kill.duckdb"
    n, batch, workers = 3000, 100, 2
    write_bulk_payload(db, n)
    with mock_server(delay=0.1) as srv:  # 30 requests, ~1.5 s at 2 in flight
        env = {**os.environ, **sender_env(db, srv.url), "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sender",
                "push",
                "--batch-size",
                str(batch),
                "--concurrency",
                str(workers),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 20
        while srv.stats()["accepted_unique"] < n // 3 and time.time() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        time.sleep(0.3)  # let the requests already on the wire finish on the server
        before = {r[1] for r in ledger_rows(db) if r[2] == "accepted"}
        server_before = set(srv.accepted_keys())
        assert 0 < len(before) < n, "the kill must land mid-run"
        # the ledger never claims more than the server received
        assert before <= server_before
        # status still reads the database after the crash, and shows the unfinished run
        r = run_cli(["status"], sender_env(db, srv.url))
        assert r.returncode == 0
        assert "finished never (it stopped before recording its end: killed" in r.stdout
        assert "still running" not in r.stdout  # it cannot be: status could open the database

        srv.delay = 0.0
        r = run_cli(["push", "--batch-size", str(batch)], sender_env(db, srv.url))
        assert r.returncode == 0, r.stderr

    accepted = [r[1] for r in ledger_rows(db) if r[2] == "accepted"]
    assert len(accepted) == len(set(accepted)) == n  # every row recorded exactly once
    assert len(srv.accepted) == n  # nothing lost
    resent = {key for (_, key), count in srv.accepted.items() if count > 1}
    assert not resent & before  # nothing already recorded as accepted was sent again
    assert len(resent) <= batch * workers * 2  # at most what was in flight or queued


def _hold_write_lock(db):
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            f"con = duckdb.connect({str(db)!r})\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_locked_database_is_one_line_and_exit_5(tmp_path):
    db = tmp_path / "locked.duckdb"
    write_bulk_payload(db, 10)
    holder = _hold_write_lock(db)
    program = os.path.basename(os.path.realpath(sys.executable))
    try:
        assert holder.stdout.readline().strip() == "locked"
        for args in (["push"], ["status"], ["preview"], ["push", "--dry-run"]):
            r = run_cli(args, sender_env(db))
            assert r.returncode == ExitCode.DATABASE_LOCKED, (args, r.stderr)
            # DuckDB names the holder: its pid goes into the line
            assert r.stderr.strip() == (
                f"error: database {db} is locked by another process (pid {holder.pid}, {program}:"
                " a sender push or run, a dbt build, or a DuckDB shell left open)"
            )
            # status still says what it can without the database: no run log here, so no job
            held = f"database  {db} (held by another process)\n"
            assert r.stdout == (held if args == ["status"] else "")
    finally:
        holder.kill()
        holder.wait()
    con = duckdb.connect(str(db))
    con.close()


# A stand-in for `sender run`: its push started as run_logged starts every child
PARENT = """
import subprocess, sys
from sender.run_log import stop_with_this_process
child = subprocess.Popen(
    [sys.executable, "-m", "sender", "--debug", "push", "--batch-size", "50", "--concurrency", "1"],
    stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=stop_with_this_process(),
)
print(child.pid, flush=True)
child.wait()
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # a zombie has exited
    except FileNotFoundError:
        return True


def _kill_leaves_no_orphan(run: subprocess.Popen, child: int, wait: float = 30) -> bool:
    """SIGKILL ``run``; whether its ``child`` process is gone within ``wait`` seconds."""
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=10)
    deadline = time.time() + wait
    while not _gone(child) and time.time() < deadline:
        time.sleep(0.05)
    return _gone(child)


def test_the_push_of_a_killed_sender_run_stops_with_it(tmp_path):
    """`sender run` starts its push with stop_with_this_process (sender.run_log). Killed by
    SIGKILL mid-push, the run used to leave the push going on as an orphan: writing into pipes
    nobody read and holding the database, so that the next hours exited 5. It stops with the run
    (SIGTERM: what was not acknowledged stays pending) and the database is free again."""
    db = tmp_path / "orphan.duckdb"
    write_bulk_payload(db, 2000)
    with mock_server(delay=0.1) as srv:  # 40 requests one at a time: about 4 s
        env = {**os.environ, **sender_env(db, srv.url), "PYTHONPATH": str(REPO)}
        parent = subprocess.Popen(
            [sys.executable, "-c", PARENT], cwd=REPO, env=env, stdout=subprocess.PIPE
        )
        child = int(parent.stdout.readline())
        deadline = time.time() + 20
        while srv.stats()["accepted_unique"] < 200 and time.time() < deadline:
            time.sleep(0.01)
        assert _kill_leaves_no_orphan(parent, child), "the push went on without its run"
        assert srv.stats()["accepted_unique"] < 2000, "the kill must land mid-push"
        r = run_cli(["status"], sender_env(db, srv.url))
        assert r.returncode == 0, r.stderr  # not locked
        accepted = {row[1] for row in ledger_rows(db) if row[2] == "accepted"}
        assert accepted <= srv.accepted_keys()


def dbt_whose_build_hangs(tmp_path: Path) -> tuple[Path, Path]:
    """A dbt for LINE_CAPI_DBT that notes its pid and command in the second path, then becomes
    the real dbt (the same pid), but for `build`, which hangs as `sleep`, silent: a dbt that
    writes gets SIGPIPE once its run is gone, a hung one never does."""
    pids = tmp_path / "dbt-pids.txt"
    wrapper = tmp_path / "bin" / "dbt"
    wrapper.parent.mkdir()
    real = Path(sys.executable).parent / "dbt"
    wrapper.write_text(
        f'#!/bin/sh\necho "$$ $1" >> {pids}\n[ "$1" = build ] && exec sleep 600\nexec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper, pids


def test_the_dbt_build_of_a_killed_sender_run_stops_with_it(tmp_path):
    """Killed by SIGKILL during its build (a hung build is why one reaches for kill -9), the run
    left its dbt build going on under init, holding the database: every run after it exited 5
    until someone found that dbt and killed it by hand. The build here hangs as `sleep`."""
    wrapper, pids = dbt_whose_build_hangs(tmp_path)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LINE_")},
        **sender_env(tmp_path / "line_capi.duckdb"),
        "LINE_CAPI_DBT": str(wrapper),
        "KARTE_EXPORT_DIR": str(SAMPLE_DIR),
        "PYTHONPATH": str(REPO),
    }
    run = subprocess.Popen(
        [sys.executable, "-m", "sender", "run", "--", *dbt_args(tmp_path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    build = None
    try:
        deadline = time.time() + 120
        while build is None and time.time() < deadline and run.poll() is None:
            lines = pids.read_text().splitlines() if pids.exists() else []
            build = next((int(x.split()[0]) for x in lines if x.endswith(" build")), None)
            time.sleep(0.05)
        assert build is not None, "the run never reached its build"
        assert not _gone(build), "the build ended before the kill: it must land mid-build"
        assert _kill_leaves_no_orphan(run, build), "the build went on without its run"
    finally:
        if run.poll() is None:
            run.kill()
        if build is not None and not _gone(build):
            os.kill(build, signal.SIGKILL)  # a failing test leaves no sleeper behind


def _run_env(tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("LINE_")},
        **sender_env(tmp_path / "line_capi.duckdb", url),
        "KARTE_EXPORT_DIR": str(SAMPLE_DIR),
        "PYTHONPATH": str(REPO),
        **extra,
    }


def test_ctrl_c_during_the_push_of_a_sender_run_says_what_the_push_sent(tmp_path):
    """The run stopped pumping its push's output at the interrupt, so the push's summary (what
    it sent before it stopped) reached neither the console nor the run log, and the run said
    only 'interrupted', as it did when it was interrupted before sending anything."""
    with mock_server(delay=0.3) as srv:  # the sample's events one by one: about 10 s
        run = subprocess.Popen(
            [sys.executable, "-m", "sender", "run", "--", *dbt_args(tmp_path)],
            cwd=REPO,
            env=_run_env(tmp_path, srv.url, LINE_CAPI_BATCH_SIZE="1", LINE_CAPI_CONCURRENCY="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 120
        while srv.stats()["accepted_unique"] < 3 and time.time() < deadline and run.poll() is None:
            time.sleep(0.05)
        run.send_signal(signal.SIGINT)  # the run alone: it stops its push itself
        out, err = run.communicate(timeout=60)
        accepted = srv.stats()["accepted_unique"]
    assert run.returncode == ExitCode.INTERRUPTED, err
    assert 3 <= accepted < 30, "the interrupt must land mid-push"
    assert f"accepted {accepted}, rejected 0" in out, out
    said = err.strip().splitlines()[-1]
    assert said.endswith(
        "error: interrupted during the push (its summary above says what it sent): what LINE"
        " had not acknowledged stays pending, and the next run sends it"
    ), err
    log = (tmp_path / "line_capi_run.log").read_text()
    assert f"accepted {accepted}, rejected 0" in log


def test_ctrl_c_during_the_build_of_a_sender_run_says_nothing_was_sent(tmp_path):
    wrapper, pids = dbt_whose_build_hangs(tmp_path)
    with mock_server() as srv:
        run = subprocess.Popen(
            [sys.executable, "-m", "sender", "run", "--", *dbt_args(tmp_path)],
            cwd=REPO,
            env=_run_env(tmp_path, srv.url, LINE_CAPI_DBT=str(wrapper)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.time() + 120
            while time.time() < deadline and run.poll() is None:
                lines = pids.read_text().splitlines() if pids.exists() else []
                if any(x.endswith(" build") for x in lines):
                    break
                time.sleep(0.05)
            run.send_signal(signal.SIGINT)
            _, err = run.communicate(timeout=60)
        finally:
            if run.poll() is None:
                run.kill()
        assert srv.stats()["requests"] == 0
    assert run.returncode == ExitCode.INTERRUPTED, err
    assert (
        err.strip()
        .splitlines()[-1]
        .endswith("error: interrupted before the push: nothing was sent")
    ), err
