"""Crash and disk-full safety at precise points, through the test hook in sender/fault_points.py.

- SIGKILL before a request, during it (the server has the request and kills the sender before
  answering), after the response but before the ledger write, and in the middle of a ledger
  transaction; each at a seeded random occurrence. A rerun then delivers everything: nothing is
  lost, and the only duplicates at the server are events that the server had acknowledged and the
  ledger had not recorded yet (at most two batches per worker; LINE de-duplicates them by key).
- The disk full while writing the ledger (the hook raising ENOSPC mid-transaction; and a real
  full tmpfs when this machine lets the test mount one): exit code 5 with one line, no
  half-recorded batch, and a rerun completes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import duckdb
import pytest
from fault_fixtures import (
    accepted_keys,
    assert_ledger_consistent,
    run_sender,
    sender_process_env,
)
from sender_fixtures import (
    REPO,
    TAG_ID,
    TOKEN,
    mock_server,
    pending_keys,
    sender_env,
    write_bulk_payload,
)

from sender import fault_points
from sender.exit_codes import ExitCode
from sender.mock_server import IncomingRequest, MockLineServer

EVENTS = 3000
BATCH = 100
CONCURRENCY = 2
# Most batches whose answer the ledger may not hold yet when the process dies: a worker records
# a batch while it sends the next, and waits for that record once the next is answered, so two
# per worker. LINE de-duplicates them by key on the rerun.
MAX_UNRECORDED_BATCHES = 2 * CONCURRENCY


# -- the hook itself ---------------------------------------------------------------------------
def test_hook_is_inert_when_unset(monkeypatch):
    monkeypatch.delenv(fault_points.ENV_VAR, raising=False)
    for point in fault_points.POINTS:
        for _ in range(3):
            fault_points.hit(point)  # no error, no kill
    monkeypatch.setenv(fault_points.ENV_VAR, "")
    fault_points.hit("ledger_write")


def test_hook_counts_occurrences_and_raises_enospc(monkeypatch):
    monkeypatch.setenv(fault_points.ENV_VAR, "ledger_write:3:enospc")
    fault_points.hit("ledger_write")
    fault_points.hit("before_request")  # another point does not count
    fault_points.hit("ledger_write")
    with pytest.raises(OSError) as err:
        fault_points.hit("ledger_write")
    assert err.value.errno == errno.ENOSPC
    fault_points.hit("ledger_write")  # only the n-th occurrence
    monkeypatch.setenv(fault_points.ENV_VAR, "nowhere:1")
    with pytest.raises(ValueError, match="POINT:N"):
        fault_points.hit("ledger_write")


def test_no_command_line_option_reaches_the_hook():
    """Only the environment sets a fault point: no option of any command mentions it."""
    from typer.main import get_command

    from sender.cli import app

    group = get_command(app)
    for name, command in group.commands.items():
        for param in command.params:
            names = " ".join([*param.opts, *param.secondary_opts, str(param.envvar or "")])
            assert "fault_point" not in names.lower().replace("-", "_"), (name, names)
            assert fault_points.ENV_VAR not in names


# -- SIGKILL at precise points -----------------------------------------------------------------
class Killer:
    """An ``on_request`` hook that kills the sender process when the ``kill_at``-th request has
    arrived whole; the server then keeps that request (202 to a dead client): the sender dies
    *during* the request."""

    def __init__(self) -> None:
        self.kill_pid: int | None = None
        self.kill_at = 0
        self.arrived = 0
        self.lock = threading.Lock()

    def __call__(self, request: IncomingRequest) -> None:
        with self.lock:
            self.arrived += 1
            if self.kill_pid is not None and self.arrived == self.kill_at:
                os.kill(self.kill_pid, signal.SIGKILL)


@contextlib.contextmanager
def killing_server():
    killer = Killer()
    server = MockLineServer(tag_id=TAG_ID, token=TOKEN, on_request=killer)
    server.httpd.handle_error = lambda request, address: None  # the answer to a dead client
    server.start()
    try:
        yield server, killer
    finally:
        server.stop()


@pytest.mark.parametrize(
    "point", ["before_request", "during_request", "after_response", "ledger_write"]
)
def test_sigkill_at_a_random_point_then_rerun_loses_nothing(tmp_path, point):
    requests = EVENTS // BATCH
    rng = random.Random(f"kill-{point}")  # seeded: the same point each run
    # ledger writes are group commits: fewer of them than requests
    nth = rng.randint(2, 4) if point == "ledger_write" else rng.randint(3, requests - 5)
    db = tmp_path / "kill.duckdb"
    write_bulk_payload(db, EVENTS)
    all_keys = {f"bulk-{i:08d}" for i in range(EVENTS)}
    args = ["push", "--batch-size", str(BATCH), "--concurrency", str(CONCURRENCY)]
    with killing_server() as (srv, killer):
        env = sender_process_env(sender_env(db, srv.url))
        if point == "during_request":
            killer.kill_at = nth
        else:
            env[fault_points.ENV_VAR] = f"{point}:{nth}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "sender", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        killer.kill_pid = proc.pid
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, (point, nth, proc.returncode, err)
        assert TOKEN not in out + err
        time.sleep(0.3)  # requests already on the wire finish on the server

        before_ledger = set(accepted_keys(db))
        before_server = srv.accepted_keys()
        assert_ledger_consistent(db)  # a killed transaction left nothing half-written
        assert before_ledger <= before_server  # the ledger never claims more than was received
        assert before_server < all_keys, "the kill must land mid-run"
        in_flight = before_server - before_ledger
        assert in_flight <= pending_keys(db)

        r = run_sender(["status"], sender_env(db, srv.url))
        assert r.returncode == 0 and "never (it stopped before recording its end" in r.stdout
        r = run_sender([*args, "--max-retries", "0"], sender_env(db, srv.url))
        assert r.returncode == ExitCode.OK, r.stderr
        counts = dict(srv.accepted)

    assert_ledger_consistent(db)
    assert sorted(accepted_keys(db)) == sorted(all_keys)  # each recorded exactly once
    assert {key for _, key in counts} == all_keys  # nothing lost
    duplicated = {key for (_, key), n in counts.items() if n > 1}
    # the only duplicates: what the server had acknowledged and the ledger had not recorded
    assert duplicated == in_flight
    assert max(counts.values()) <= 2
    assert len(duplicated) <= BATCH * MAX_UNRECORDED_BATCHES, (point, nth, len(duplicated))
    if point == "during_request":
        assert len(duplicated) >= BATCH  # the request the sender died in was kept by the server


def test_a_sigterm_during_the_last_ledger_commit_stops_the_push_cleanly(tmp_path):
    """A scheduler's timeout that lands while the push waits for its last ledger commit: the
    push went on to write its runs row while the writer thread still committed on the same
    connection, so it crashed (exit 70 or an abort), recorded `error` with 0 accepted, and at
    times lost the commit of events LINE had accepted. Each try here records them all, and the
    run as interrupted (exit 130)."""
    for attempt in range(3):
        db = tmp_path / f"term-{attempt}.duckdb"
        write_bulk_payload(db, BATCH)
        with mock_server() as srv:
            r = run_sender(
                ["push", "--batch-size", str(BATCH), "--concurrency", "1", "--json"],
                sender_env(db, srv.url),
                **{fault_points.ENV_VAR: "ledger_write:1:term"},
            )
            server = srv.accepted_keys()
        assert r.returncode == ExitCode.INTERRUPTED, (attempt, r.returncode, r.stderr, r.stdout)
        assert "Traceback" not in r.stderr and "FATAL" not in r.stderr, r.stderr
        [printed] = r.stdout.splitlines()
        summary = json.loads(printed)
        assert (summary["outcome"], summary["accepted"]) == ("interrupted", BATCH), summary
        assert_ledger_consistent(db)
        assert set(accepted_keys(db)) == server and len(server) == BATCH
        with duckdb.connect(str(db), read_only=True) as con:
            row = con.sql("select outcome, exit_code, accepted from line_capi_send_runs").fetchall()
        assert row == [("interrupted", ExitCode.INTERRUPTED, BATCH)], row


# -- the disk full while writing the ledger ---------------------------------------------------
def _assert_disk_full_then_rerun(db, srv, r, all_keys):
    assert r.returncode == ExitCode.DATABASE_ERROR, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and TOKEN not in r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == r.stderr.strip().splitlines()[-1], r.stderr
    assert errors[0].startswith(f"error: database {db}: cannot record outcomes in the ledger: ")
    assert "No space left on device" in errors[0]
    time.sleep(0.2)
    assert_ledger_consistent(db)
    recorded = set(accepted_keys(db))
    assert recorded <= srv.accepted_keys()
    assert len(recorded) < len(all_keys)
    r = run_sender(["push", "--batch-size", str(BATCH)], sender_env(db, srv.url))
    assert r.returncode == ExitCode.OK, r.stderr
    assert_ledger_consistent(db)
    assert sorted(accepted_keys(db)) == sorted(all_keys)
    assert srv.accepted_keys() == all_keys


def test_disk_full_in_a_ledger_transaction_is_one_line_and_exit_5(tmp_path):
    db = tmp_path / "enospc.duckdb"
    write_bulk_payload(db, EVENTS)
    all_keys = {f"bulk-{i:08d}" for i in range(EVENTS)}
    with mock_server() as srv:
        r = run_sender(
            ["push", "--batch-size", str(BATCH), "--concurrency", str(CONCURRENCY)],
            sender_env(db, srv.url),
            **{fault_points.ENV_VAR: "ledger_write:4:enospc"},
        )
        assert r.stderr.strip().splitlines()[-1] == (
            f"error: database {db}: cannot record outcomes in the ledger:"
            " [Errno 28] No space left on device; free space on that disk; what was not recorded"
            " stays pending and the next run sends it again (LINE de-duplicates what it had"
            " accepted)"
        )
        _assert_disk_full_then_rerun(db, srv, r, all_keys)


@contextlib.contextmanager
def small_tmpfs(path, size="32m"):
    path.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        mounted = None
    if mounted is None or mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the ENOSPC hook test covers this")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def test_a_really_full_disk_while_writing_the_ledger(tmp_path):
    """DuckDB's own write of the ledger fails with ENOSPC on a full filesystem."""
    with small_tmpfs(tmp_path / "mnt") as mnt:
        db = mnt / "full.duckdb"
        write_bulk_payload(db, EVENTS)
        all_keys = {f"bulk-{i:08d}" for i in range(EVENTS)}
        stat = os.statvfs(mnt)
        filler = mnt / "filler"
        with open(filler, "wb") as f:  # leave ~100 KB: room to start, not to record everything
            f.write(b"\0" * (stat.f_bavail * stat.f_frsize - 100_000))
        with mock_server() as srv:
            r = run_sender(
                ["push", "--batch-size", str(BATCH), "--concurrency", str(CONCURRENCY)],
                sender_env(db, srv.url),
            )
            filler.unlink()  # the operator frees space
            _assert_disk_full_then_rerun(db, srv, r, all_keys)
