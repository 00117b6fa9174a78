"""The last ``sender run`` as its run log tells it: when it started, how it ended and why.

``sender status`` shows it beside the last push, so that a job that stopped before its push (a
stale export, a failed build) is not hidden behind the push of an earlier hour. Only the end of
the log is read. The log keeps itself small: a run that finds it past ROTATE_BYTES moves it to
``<log>.1`` (about once a month) and starts a new one, as no Docker, Kubernetes or CI volume has
a logrotate; a failure streak is read across both.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from sender.exit_codes import ExitCode

# The end of the log that is read: far more than the lines of one run.
_TAIL_BYTES = 256 * 1024
# A full run logs about 17 KB: 10 MB is about 25 days of hourly runs.
ROTATE_BYTES = 10 * 1024 * 1024
_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) run: (.*)$")
# The push's own error line (a 401, LINE out of reach): the run's error when it has none of its own.
_PUSH_ERROR = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ sender: error: (.*)$")
_DONE = re.compile(r"^done: exit (\d+)")
_LOG_SUFFIX = re.compile(r"; log: .*$")
# What sender.heartbeat said after a run that exited 0: the ping delivered, or why not.
_HEARTBEAT = re.compile(r"^(?:warning: )?heartbeat (sent|not delivered: .*|not sent: .*)$")
# What sender.alerts said after a run: its alert posted, or why not.
_ALERT = re.compile(r"^(?:warning: )?alert (not delivered: .*|sent to the alert webhook \(\d+)")
# The warnings of a run that `sender status` keeps (the rest are in the run log).
WARNINGS_KEPT = 10
# The first line of a run stopped by its settings before it takes the lock (sender.cli.run).
SETTINGS_STOP_START = "start: stopped by its settings"
# The first line of a run that goes ahead (sender.scheduled_run): the run's database and its
# export (a folder, or "(from the dbt vars)").
_START_RUN = re.compile(r"^start: project .*, database (.*), export (.*)$")
# The push's summary line in the run log: its time and how many events LINE accepted, with a
# thousands separator from 1,000 on (sender.push_summary).
_PUSH_SUMMARY = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) sender: pending [\d,]+, sent [\d,]+,"
    r" accepted ([\d,]+),"
)


@dataclass(frozen=True)
class LastRun:
    started_at: str
    finished_at: str | None  # None: killed, crashed or still running
    exit_code: int | None
    error: str | None  # the run's one error line, without the log's path
    last_ok_at: str | None = None  # when the last run that exited 0 finished (None: none logged)
    runs_since_ok: int = 0  # finished runs after it
    # after a run that exited 0: "sent", or "not delivered: <why>" (None: no heartbeat URL set)
    heartbeat: str | None = None
    # after a run with something to alert on: "sent", or "not delivered: <why>" (None: nothing
    # posted, or no webhook set)
    alert: str | None = None
    # the run's own warnings (a stale table, page views behind, dbt's test warnings), which its
    # exit code 0 does not carry: the first WARNINGS_KEPT
    warnings: tuple[str, ...] = ()

    @property
    def outcome(self) -> str | None:
        if self.exit_code is None:
            return None
        try:
            return ExitCode(self.exit_code).name
        except ValueError:
            return None

    def as_dict(self) -> dict:
        return {
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "exit_code": self.exit_code,
            "outcome": self.outcome,
            "message": self.error,
            "last_ok_at": self.last_ok_at,
            "runs_since_ok": self.runs_since_ok,
            "heartbeat": self.heartbeat,
            "alert": self.alert,
            "warnings": list(self.warnings),
        }

    def describe_last_ok(self) -> str | None:
        """When the job last succeeded, for a last run that did not (or has not yet)."""
        if self.exit_code == ExitCode.OK:
            return None
        if self.last_ok_at is None:
            return "none in the run log"
        since = "1 run" if self.runs_since_ok == 1 else f"{self.runs_since_ok:,} runs"
        return f"sender run finished {self.last_ok_at} ({since} since)"

    def describe(self) -> str:
        if self.exit_code is None:
            return f"started {self.started_at}, never finished (killed, crashed or still running)"
        name = f" {self.outcome}" if self.outcome else ""
        why = f": {self.error}" if self.error else ""
        return f"started {self.started_at}, exit {self.exit_code}{name}{why}"


def default_run_log(database: Path) -> Path:
    """Next to the database, named after it (``line_capi.duckdb``: ``line_capi_run.log``), so
    that the databases of two sites in one folder keep their runs apart."""
    return database.with_name(f"{database.stem}_run.log")


def run_log_path(database: Path, named: str | None) -> Path:
    """sender run's log: the one named (--log-file, env LINE_CAPI_RUN_LOG), else the default
    next to the database; absolute, links kept (/dev/stdout is not resolved to the pipe behind
    it). Surrounding whitespace is dropped and a blank name is no name, as for every other
    setting: a .env saved with Windows line endings would name `line_capi_run.log\r`, and an
    empty `LINE_CAPI_RUN_LOG=` the current folder."""
    return Path(os.path.abspath((named or "").strip() or default_run_log(database)))


def rotated(path: Path) -> Path:
    """Where the log's previous part goes."""
    return path.with_name(path.name + ".1")


def rotate_if_large(path: Path) -> None:
    """Move the log at ``path`` to ``<log>.1`` (replacing the previous part) once it is past
    ROTATE_BYTES; the mode of the file goes with it."""
    try:
        if path.stat().st_size > ROTATE_BYTES:
            os.replace(path, rotated(path))
    except FileNotFoundError:
        pass


def _tail(path: Path) -> list[str]:
    if not path.is_file():  # /dev/stdout, /dev/full: nothing to read back (and no end to read)
        raise OSError(f"{path} is not a file")
    with path.open("rb") as file:
        file.seek(0, os.SEEK_END)
        size = file.tell()
        file.seek(max(0, size - _TAIL_BYTES))
        text = file.read().decode("utf-8", errors="replace")
    lines = text.splitlines()
    return lines[1:] if size > _TAIL_BYTES else lines  # the first may be cut


def _tail_across(path: Path) -> list[str]:
    """The end of the log at ``path``, with the end of its rotated part before it when the log
    itself is shorter than what is read: a run just after the rotation reads the runs before."""
    lines = _tail(path)
    if path.stat().st_size >= _TAIL_BYTES:
        return lines
    try:
        return _tail(rotated(path)) + lines
    except OSError:
        return lines


def _lines_backwards(path: Path, *marks: bytes) -> Iterator[str]:
    """The lines of the log at ``path`` that hold one of ``marks``, newest first, read from the
    end a block at a time (a full run logs about 17 KB)."""
    with path.open("rb") as file:
        end = file.seek(0, os.SEEK_END)
        partial = b""  # the start of the line cut by the last block read
        while end > 0:
            start = max(0, end - _TAIL_BYTES)
            file.seek(start)
            lines = (file.read(end - start) + partial).split(b"\n")
            partial = lines.pop(0) if start > 0 else b""
            for raw in reversed(lines):
                if any(mark in raw for mark in marks):
                    yield raw.decode("utf-8", errors="replace")
            end = start


def _done_lines_backwards(path: Path) -> Iterator[tuple[str, int]]:
    """(when, exit code) of the finished runs in the log at ``path``, newest first."""
    for line in _lines_backwards(path, b" run: done: "):
        match = _LINE.match(line)
        done = _DONE.match(match.group(2)) if match else None
        if done:
            yield match.group(1), int(done.group(1))


def _done_backwards(path: Path) -> Iterator[tuple[str, int]]:
    """(when, exit code) of the finished runs of the log at ``path`` and of its rotated part
    before it, newest first (a streak may have begun before the log was rotated)."""
    for part in (path, rotated(path)):
        try:
            yield from _done_lines_backwards(part)
        except OSError:
            pass


def _codes_backwards(path: Path) -> Iterator[int]:
    return (code for _, code in _done_backwards(path))


def last_success(path: Path) -> tuple[str | None, int]:
    """When the last run that exited 0 finished (None: no such run in the log or its previous
    part), and how many runs finished after it."""
    after = 0
    for stamp, code in _done_backwards(path):
        if code == ExitCode.OK:
            return stamp, after
        after += 1
    return None, after


def exit_codes(path: Path) -> list[int]:
    """The exit codes of the finished runs at the end of the log at ``path``, oldest first: the
    last run's, every run before it that ended with the same code, and the one before those
    (a streak is counted whole, however many runs it spans)."""
    codes: list[int] = []
    for code in _codes_backwards(path):
        codes.append(code)
        if code != codes[0]:
            break
    return codes[::-1]


def streak_before_last(path: Path) -> tuple[int, int] | None:
    """The exit code of the run before the last one in the log at ``path``, and how many runs in
    a row ended with it; None when there is no such run. Read back only as far as that streak,
    so a long healthy log costs one block."""
    codes = _codes_backwards(path)
    if next(codes, None) is None:
        return None
    before = next(codes, None)
    if before is None:
        return None
    streak = 1
    for code in codes:
        if code != before:
            break
        streak += 1
    return before, streak


def _newest_run_line(path: Path, pattern: re.Pattern[str]) -> tuple[str, re.Match[str]] | None:
    """The time and match of the newest of the run's own lines in the tail of the log at
    ``path`` that ``pattern`` matches (None: no log, no such line)."""
    try:
        lines = _tail_across(path)
    except OSError:
        return None
    for line in reversed(lines):
        match = _LINE.match(line)
        found = pattern.match(match.group(2)) if match else None
        if found:
            return match.group(1), found
    return None


def log_database(path: Path) -> str | None:
    """The database of the last run the log at ``path`` started (None: no log, no such line).
    A log is one database's: two sites' jobs writing one would read each other's runs."""
    started = _newest_run_line(path, _START_RUN)
    return started[1].group(1) if started else None


def last_send_of(path: Path, database: Path, *, sample: Callable[[Path], bool]) -> str | None:
    """When a run in the log at ``path`` (or its rotated part) last sent from ``database`` (the
    time of the push line of a run of that database, from an export that is not the sample, that
    LINE accepted events of), or None: no log, or no such run in it. Such a run left a ledger
    worth keeping. Read from the end back to that run, however many quiet runs (nothing
    accepted: a night, an outage) came after it, across the rotation."""
    sent = None  # the newest push with events accepted since the start line read last
    for part in (path, rotated(path)):
        if not part.is_file():  # /dev/stdout, or no rotated part yet
            continue
        try:
            for line in _lines_backwards(part, b" sender: pending ", b" run: start: project "):
                if pushed := _PUSH_SUMMARY.match(line):
                    if sent is None and int(pushed.group(2).replace(",", "")) > 0:
                        sent = pushed.group(1)
                elif (match := _LINE.match(line)) and (started := _START_RUN.match(match.group(2))):
                    # the run these pushes were part of: its start line is the last one before them
                    export = started.group(2)
                    ours = Path(started.group(1)).resolve() == database.resolve() and not (
                        export.startswith("/") and sample(Path(export))
                    )
                    if sent is not None and ours:
                        return sent
                    sent = None
        except OSError:
            return None
    return None


def other_database_message(path: Path, database: Path) -> str | None:
    """Why the log at ``path`` is not ``database``'s, or None. Only a log named (--log-file,
    LINE_CAPI_RUN_LOG) can hold another database's runs: the default one is named after its
    database, beside it, and a site moved to another folder takes it along. Paths are compared
    resolved (a relative LINE_CAPI_DUCKDB, a link), as the run's start line names its database."""
    if path == run_log_path(database, None):
        return None
    owner = log_database(path)
    if owner is None or Path(owner).resolve() == database.resolve():
        return None
    return (
        f"run log {path} holds the runs of database {owner}, not of {database}: give each site's"
        " job a run log of its own (LINE_CAPI_RUN_LOG, --log-file), or leave it unset: the"
        " default is beside each database (a database moved from there: move its log aside)"
    )


def last_run(path: Path) -> LastRun | None:
    """The last run the log at ``path`` holds, or None (no log, none readable, no run)."""
    try:
        lines = _tail(path)
    except OSError:
        return None
    # A run refused by the lock (exit 13), or stopped by its settings before it takes the lock,
    # logs its few lines inside the lines of a run still going: the runs are nested, so each
    # line belongs to the innermost open run. Any other end closes the runs still open under it
    # too: those were killed.
    open_runs: list[LastRun] = []
    nested: list[bool] = []  # whether each open run may have started inside a run still going
    finished: LastRun | None = None
    for line in lines:
        match = _LINE.match(line)
        if not match:
            pushed = _PUSH_ERROR.match(line)
            if pushed and open_runs and open_runs[-1].error is None:
                open_runs[-1] = replace(open_runs[-1], error=pushed.group(1))
            continue
        stamp, text = match.groups()
        if text.startswith("start:"):
            open_runs.append(LastRun(stamp, None, None, None))
            nested.append(text.startswith(SETTINGS_STOP_START))
        elif open_runs and text.startswith("error: "):
            error = _LOG_SUFFIX.sub("", text.removeprefix("error: "))
            open_runs[-1] = replace(open_runs[-1], error=error)
        elif open_runs and text.startswith("warning: "):
            run = open_runs[-1]
            if len(run.warnings) < WARNINGS_KEPT:
                open_runs[-1] = replace(
                    run, warnings=(*run.warnings, text.removeprefix("warning: "))
                )
        elif open_runs and (done := _DONE.match(text)):
            run, lockless = open_runs.pop(), nested.pop()
            finished = replace(run, finished_at=stamp, exit_code=int(done.group(1)))
            if not lockless and finished.exit_code != ExitCode.ALREADY_RUNNING:
                open_runs.clear()
                nested.clear()
        elif (beat := _HEARTBEAT.match(text)) and finished and finished.exit_code == ExitCode.OK:
            finished = replace(finished, heartbeat=beat.group(1))  # its line follows `done`
        elif (posted := _ALERT.match(text)) and finished:
            said = posted.group(1)  # its line follows `done` too
            finished = replace(finished, alert="sent" if said.startswith("sent") else said)
    job = open_runs[-1] if open_runs else finished
    if job is None:
        return None
    if job.exit_code == ExitCode.OK:
        return replace(job, last_ok_at=job.finished_at)
    ok_at, since = last_success(path)  # read back only while runs fail: an outage's length
    return replace(job, last_ok_at=ok_at, runs_since_ok=since)


# The line that ends a run's freshness check (sender.scheduled_run): whether the export is
# fresh, usable (with a warning) or stale (the run stops; in the log only), and each table's
# newest row as an age at that moment, "conversions 9.2 h old".
EXPORT_STATES = ("fresh", "usable", "stale")
_EXPORT_CHECKED = re.compile(r"^export (fresh|usable|stale) \((.*)\)$")
_TABLE_AGE = re.compile(r"([a-z_]+) (-?\d+(?:\.\d+)?) h old")


def export_checked_line(state: str, ages: dict[str, float]) -> str:
    """The line that ends a freshness check, which last_export_check reads back: the tables by
    name (dbt lists them as its threads finish)."""
    assert state in EXPORT_STATES
    said = ", ".join(f"{table} {ages[table]:.1f} h old" for table in sorted(ages))
    return f"export {state} ({said})" if said else f"export {state}"


@dataclass(frozen=True)
class ExportCheck:
    """An earlier run's freshness check, as its run log tells it: when (Unix seconds), each
    table's newest row's age in hours then, and whether that run stopped on rows that came late
    (EXPORT_STATES: "stale")."""

    at: float
    ages: dict[str, float]
    state: str = "usable"


def last_export_check(path: Path) -> ExportCheck | None:
    """The last freshness check the log at ``path`` records, a run that stopped on it included
    (None: no log, no such line in its tail). Read before this run logs its own. A log is one
    database's, whose runs read one export (its folder's name, behind a `current` link, changes
    with each sync)."""
    found = _newest_run_line(path, _EXPORT_CHECKED)
    if found is None:
        return None
    stamp, checked = found
    at = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    ages = {name: float(hours) for name, hours in _TABLE_AGE.findall(checked.group(2))}
    return ExportCheck(at.timestamp(), ages, checked.group(1))


# What sender.alerts.notify says of an alert the webhook did not take, and then each of its
# findings, after the run's `done` line.
_NOT_DELIVERED = re.compile(r"^warning: alert not delivered: ")
_DELIVERED = re.compile(r"^alert sent to the alert webhook ")
_SAID_INSTEAD = re.compile(r"^alert: (.*)$")


def undelivered_alert(path: Path) -> tuple[str, list[str]] | None:
    """The findings of the last alert in the log at ``path`` that the webhook did not take, and
    when it was said, unless an alert was delivered since (the run that posted it carried them);
    None when there is none. A run the lock refused, a run stopped by its settings, nested in
    another or not, carry it alike."""
    try:
        lines = _tail_across(path)
    except OSError:
        return None
    said: list[str] = []  # the `alert:` lines after the newest match, newest first
    for i in range(len(lines) - 1, -1, -1):
        match = _LINE.match(lines[i])
        if not match:
            continue
        stamp, text = match.groups()
        if _DELIVERED.match(text):
            return None
        if _NOT_DELIVERED.match(text):
            findings = [m.group(1) for t in reversed(said) if (m := _SAID_INSTEAD.match(t))]
            return (_finished_before(lines, i) or stamp, findings) if findings else None
        if _SAID_INSTEAD.match(text):
            said.append(text)
        elif said:  # the alert lines of a run without a webhook: not a lost alert
            said = []
    return None


def _finished_before(lines: list[str], i: int) -> str | None:
    """When the run whose alert lines end before ``lines[i]`` finished: the stamp of its `done`
    line, which `sender status` shows too (its alert is posted after it, often a second later)."""
    for line in reversed(lines[:i]):
        match = _LINE.match(line)
        if match and _DONE.match(match.group(2)):
            return match.group(1)
        if match and match.group(2).startswith("start:"):
            return None
    return None


# The line of a run whose build succeeded (sender.scheduled_run): its warnings follow it.
BUILD_OK = "dbt build ok: "


def runs_in_a_row_saying(path: Path, text: str) -> int:
    """How many of the last runs in the log at ``path`` that built, the last one first, logged
    a warning of their own holding ``text`` after their build, in a row (as far back as the end of
    the log read). A run that did not build (refused by the lock, stopped by a stale export or
    its settings) neither breaks the streak nor adds to it."""
    try:
        lines = _tail_across(path)
    except OSError:
        return 0
    runs, said = 0, False
    for line in reversed(lines):
        match = _LINE.match(line)
        if not match:
            continue
        if match.group(2).startswith("warning: ") and text in match.group(2):
            said = True  # its warning, not an alert line that quotes it after the run
        elif match.group(2).startswith(BUILD_OK):
            if not said:
                break
            runs, said = runs + 1, False
    return runs
