"""``sender run``: the hourly job in one command, for cron, systemd, CI and containers.

1. Take the lock file next to the database (``fcntl.flock``): a second run exits at once. Then,
   until the build is done, the lock of dbt's target folder: a run for another database in the
   same checkout waits its turn, as both would write ``sources.json`` and ``run_results.json``.
2. ``dbt source freshness``: a stale export stops the run with one line naming the table and age.
3. ``dbt build`` of the models and data tests (unit tests belong to development and CI).
4. ``sender push``, whose exit code is the run's.

Every line dbt and the sender print goes to the run log with a timestamp; the console gets the
run's own lines and the push's output.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import fcntl
import getpass
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import duckdb

from sender import build_memory, fault_points
from sender.alerts import RUN_ONLY_ENV
from sender.build_info import read_build_info
from sender.database import DatabaseError, is_lock_error, locked
from sender.dbt_vars import merge_vars, project_export_dir, take_export_dir, with_export_dir
from sender.exit_codes import ExitCode
from sender.file_modes import private_file, private_umask
from sender.ledger_migration import NewerLedger, refuse_newer
from sender.run_history import rotate_if_large, run_log_path
from sender.secret_env import scrub
from sender.settings import ConfigError, optional_path

PROJECT_FILE = "dbt_project.yml"
DBT_ENV_VAR = "LINE_CAPI_DBT"
# the access token and its file: the push needs them, dbt does not
TOKEN_ENV = ("LINE_ACCESS_TOKEN", "LINE_ACCESS_TOKEN_FILE")
BUILD_ARGS = ("build", "--exclude-resource-type", "unit_test")
# dbt's generated_at is taken after the command starts; a second of slack for its rounding
ARTIFACT_CLOCK_SLACK_SECONDS = 1.0
# dbt's node selection, after `sender run --`: a build that leaves out line_capi_build_info
SELECTION_OPTIONS = ("--select", "-s", "--models", "-m", "--exclude", "--selector")

# dbt's console lines: colour codes and an HH:MM:SS prefix
_DBT_PREFIX = re.compile(r"^(?:\x1b\[[0-9;]*m)*(?:\d\d:\d\d:\d\d\s+)?")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# the sender's own timestamp off a terminal (sender.progress): the log adds one already
_SENDER_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ sender: ")
# dbt's refusals of the job's configuration (macros/run_parameters.sql): exit 2, not a failed build
# ... and a dbt target the profile does not have (`-- --target prod`, env DBT_TARGET)
_CONFIGURATION_ERROR = re.compile(
    r"(invalid|unknown) dbt var |no KARTE export named|The profile '[^']*' does not have a target"
)
# dbt found no profiles.yml: none in the project (make setup copies it) and no ~/.dbt
_NO_PROFILE = re.compile(r"Could not find profile named|Invalid value for '--profiles-dir'")
# dbt's option parser refused what followed `sender run --` (a typo: --slect): its usage header
_DBT_USAGE = re.compile(r"^Usage: dbt ")
# ... or an option without its value (`sender run -- --vars`): the parser's error line alone
_DBT_MISSING_VALUE = re.compile(r"^Error: Option '[^']+' requires an? argument")
_DBT_ERROR_HEADER = re.compile(r"(Compilation|Runtime|Database|Parsing|Dependency|Internal) Error")
# dbt's words for naming the export (macros/run_parameters.sql, macros/karte_export/files.sql),
# which a run names with --export-dir or KARTE_EXPORT_DIR instead: `sender run --vars` is refused
_NO_EXPORT_NAMED = re.compile(r"^no KARTE export named: .*")
NO_EXPORT_NAMED = (
    "no KARTE export named: set KARTE_EXPORT_DIR or pass --export-dir /path/to/export (the sync's"
    " /srv/karte/current; a var goes after --: sender run -- --vars '{karte_export_dir: ...}')"
)
# how dbt's messages say to name the export, in the run's terms
_SET_THE_VAR = (
    "set env KARTE_EXPORT_DIR (or var karte_export_dir) to",
    "set var karte_export_dir to",
)
SET_THE_FOLDER = "set KARTE_EXPORT_DIR or --export-dir (or var karte_export_dir) to"
# the export's four tables, as files, parts or folders of parts start their names
EXPORT_TABLES = ("conversions", "page_views", "line_users", "user_master")
# DuckDB's first line says which file, not what is wrong with it: what it means, said once
_MALFORMED_CSV = re.compile(r"Error when sniffing file|CSV Error on Line")
_CSV_FILE_OPTION = re.compile(r"^\s*file = (.+)$")
MALFORMED_CSV_HINT = (
    " (a malformed CSV: not separated by commas, a row with more or fewer fields than the"
    " header, an unclosed quote, or quotes escaped as \\\" (Spark's default: write with escape"
    " '\"'); fix or export the file again; the run log has DuckDB's message, without the row)"
)
# DuckDB's CSV errors quote the malformed row whole: in user_master, a customer's email, phone
# and address. dbt's lines reach the run log (and through it a container's log): the row is
# left out there, its line number (DuckDB's line before it) says where to look in the file.
_QUOTED_ROW = re.compile(r"(Original Line: )(.+)$")


def without_quoted_row(text: str) -> str:
    """``text`` without the export row a DuckDB error quotes, which may be a customer's data."""
    return _QUOTED_ROW.sub(
        lambda m: (
            f"{m[1]}(not shown: {len(m[2])} characters of the export, which may be a"
            " customer's data; the line number above says which row of the file)"
        ),
        text,
    )


# rows ending in CRLF and in LF in one file (a row added with `echo >>` to a copy of the sample,
# which is saved with CRLF): DuckDB's sniffer finds no dialect and its message does not say why
_SNIFFED_FILE = re.compile(r'Error when sniffing file "([^"]+)"')
MIXED_LINE_ENDINGS_HINT = (
    " (the file mixes line endings: some rows end in CRLF, others in LF, as when a row is added"
    " by hand to a file saved on Windows; save it with one kind, e.g. sed -i 's/\\r$//' FILE)"
)
# a gzipped CSV is checked by DuckDB as it reads it, not by the build's own UTF-8 check
_NOT_UTF8 = "not utf-8 encoded"
NOT_UTF8_HINT = (
    " (the file is not UTF-8: a spreadsheet may have saved it as Shift_JIS/CP932; convert it, e.g."
    " zcat in.csv.gz | iconv -f CP932 -t UTF-8 | gzip > out.csv.gz; for UTF-16, var"
    " karte_export_encoding utf-16)"
)


def mixes_line_endings(path: Path) -> bool:
    """Whether the (plain or gzipped) file has lines ending in CRLF and lines ending in LF alone.
    False when it cannot be read: the general hint stands."""
    opener = gzip.open if path.name.endswith(".gz") else open
    crlf = lf = False
    previous = b""
    try:
        with opener(path, "rb") as file:
            while chunk := file.read(1 << 20):
                # a CR that ended the previous chunk belongs to this chunk's first LF
                joined = previous + chunk
                crlf_here = joined.count(b"\r\n")  # each pair's LF is in this chunk
                crlf = crlf or crlf_here > 0
                lf = lf or chunk.count(b"\n") > crlf_here
                if crlf and lf:
                    return True
                previous = chunk[-1:]
    except (OSError, EOFError):
        return False
    return False


class RunError(Exception):
    """The run stops here; the message is one line."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RunConfig:
    project_dir: Path
    database: Path
    export_dir: Path | None
    log_file: Path
    dbt: str
    dbt_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    # said at the start: the folder a var names where an option or env named another
    export_note: str | None = None


def find_dbt(env: dict[str, str]) -> str | None:
    """The dbt to run: env LINE_CAPI_DBT (a path, or a command on PATH), else dbt next to this
    Python (the same virtualenv), else dbt on PATH. ConfigError when LINE_CAPI_DBT names no
    executable file."""
    named = env.get(DBT_ENV_VAR, "").strip()
    if named:
        found = shutil.which(named)
        if found is None:
            raise ConfigError(
                f"{DBT_ENV_VAR}={named} is not an executable file: name the dbt to run"
                " (/opt/dbt/bin/dbt), or unset it to run the dbt next to the sender"
            )
        return os.path.abspath(found)  # dbt starts in the project folder
    beside = Path(sys.executable).parent / "dbt"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("dbt")


def default_project_dir() -> Path:
    """The current folder when it holds dbt_project.yml, else the checkout this sender runs from."""
    cwd = Path.cwd()
    if (cwd / PROJECT_FILE).is_file():
        return cwd
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / PROJECT_FILE).is_file() else cwd


def run_config(
    *,
    database: Path,
    export_dir: str | None,
    project_dir: str | Path | None,
    log_file: str | None,
    dbt_args: tuple[str, ...],
    env: dict[str, str],
) -> RunConfig:
    """The run's configuration from the command's options (relative paths from the current
    folder); ConfigError when the dbt project or dbt itself cannot be found."""
    project = (optional_path(str(project_dir or "")) or default_project_dir()).resolve()
    if not (project / PROJECT_FILE).is_file():
        raise ConfigError(
            f"{project} has no {PROJECT_FILE}: pass --project-dir or set LINE_CAPI_PROJECT_DIR"
        )
    dbt = find_dbt(env)
    if dbt is None:
        raise ConfigError(
            f"dbt is neither next to {sys.executable} nor on PATH: install the project "
            f"(pip install -e .), or name the dbt to run in {DBT_ENV_VAR}"
        )
    try:  # dbt would say it too, once per connection, after the freshness check had started
        build_memory.build_memory_limit(env)
    except build_memory.MemoryLimitError as exc:
        raise ConfigError(str(exc)) from None
    database = database.resolve()
    dbt_args = merge_vars(dbt_args)
    named_by_var, dbt_args = take_export_dir(dbt_args)
    where = "--vars"
    if named_by_var is None:
        named_by_var, where = project_export_dir(project / PROJECT_FILE), PROJECT_FILE
    folder = Path(export_dir.strip()).resolve() if (export_dir or "").strip() else None
    export_note = None
    if named_by_var is not None:
        # relative to the project folder, where dbt runs (its PWD) and read it from
        by_var = (project / os.path.expanduser(named_by_var.strip())).resolve()
        if folder is not None and folder != by_var:
            if where == PROJECT_FILE:  # one checkout, two sites: which export is this site's?
                raise ConfigError(two_exports_message(named_by_var, by_var, folder))
            # a var given for this run wins over --export-dir and env, as it does in dbt
            export_note = (
                f"note: reading the export in {by_var}, which var karte_export_dir names in"
                f" {where}, not {folder} (--export-dir or KARTE_EXPORT_DIR): the var wins in dbt"
            )
        folder = by_var
        # given back to dbt as the folder checked: a link resolved once (a sync may switch it
        # mid-run), a ~ expanded, and over dbt_project.yml's var
        dbt_args = with_export_dir(dbt_args, str(folder))
    return RunConfig(
        project_dir=project,
        database=database,
        export_dir=folder,
        export_note=export_note,
        log_file=run_log_path(database, log_file),
        dbt=dbt,
        dbt_args=dbt_args,
        env=env,
    )


def two_exports_message(named: str, by_var: Path, folder: Path) -> str:
    """dbt_project.yml's var and the run's option or environment name different exports."""
    return (
        f"two KARTE exports named: var karte_export_dir in {PROJECT_FILE} names {named}"
        + ("" if str(by_var) == named else f" ({by_var})")
        + f", and --export-dir or KARTE_EXPORT_DIR names {folder}; dbt would read the var's,"
        f" for every site of this checkout: take the var out of {PROJECT_FILE} and name each"
        " site's export in its KARTE_EXPORT_DIR (docs/operations.md, \"Several sites in one"
        ' checkout")'
    )


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry
        return f"uid {os.getuid()}"


def permission_message(exc: PermissionError) -> str:
    """One line for a file the job's user may not write (the project was set up as another)."""
    where = exc.filename or "a file of the project"
    return (
        f"permission denied: {where}: this run's user ({current_user()}) may not use it; run"
        " the job as the user that owns the project (its data, target and logs folders), or"
        " give them to it (chown -R)"
    )


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def _open_lock_file(path: Path, folder: str, code: ExitCode, *, create: bool = False) -> IO[str]:
    try:
        if create:  # dbt's target folder: dbt would create it
            path.parent.mkdir(parents=True, exist_ok=True)
        return private_file(path, "a+")
    except OSError as exc:  # the folder is not this user's, or read-only
        raise RunError(
            f"cannot create the lock file {path}: {exc.strerror or exc}; this run's user"
            f" ({current_user()}) must be able to write {folder}",
            code,
        ) from None


def _write_holder(f: IO[str], holder: str, path: Path, code: ExitCode) -> None:
    """Note who holds the lock file at ``path``; a full disk refuses even these few bytes."""
    try:
        f.seek(0)
        f.truncate()
        fault_points.hit("lock_write")  # test hook: sender/fault_points.py
        f.write(f"{holder}\n")
        f.flush()
    except OSError as exc:
        raise RunError(
            f"cannot write the lock file {path}: {exc.strerror or exc} (a full disk? free disk"
            " space)",
            code,
        ) from None


@contextlib.contextmanager
def run_lock(database: Path) -> Iterator[Path]:
    """Hold the lock file next to the database for the whole run (released by the kernel if the
    process dies, so a killed run never leaves a stale lock)."""
    path = lock_path(database)
    with _open_lock_file(path, "the database's folder", ExitCode.DATABASE_ERROR) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            raise RunError(
                f"another sender run (pid {holder}) holds {path}; this one did nothing",
                ExitCode.ALREADY_RUNNING,
            ) from None
        _write_holder(f, str(os.getpid()), path, ExitCode.DATABASE_ERROR)
        try:
            yield path
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


TARGET_LOCK_NAME = ".sender-run.lock"


@contextlib.contextmanager
def target_lock(target: Path, database: Path, say: Callable[[str], None]) -> Iterator[None]:
    """Hold dbt's target folder while dbt writes it and the run reads its results. A run for
    another database of the same checkout (another site) holds it: wait, saying so once, rather
    than let two dbt builds write the same sources.json and run_results.json and each read the
    other's."""
    path = target / TARGET_LOCK_NAME
    with _open_lock_file(path, f"dbt's target folder {target}", ExitCode.USAGE, create=True) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another database"
            say(
                f"waiting for the sender run of {holder}: it uses the same dbt target folder"
                f" {target} (set DBT_TARGET_PATH per database to run them side by side)"
            )
            fcntl.flock(f, fcntl.LOCK_EX)
        _write_holder(f, f"{database} (pid {os.getpid()})", path, ExitCode.BUILD_FAILED)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class RunLogError(ConfigError):
    """The run log cannot be opened; ``reason`` is the system's word for why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"run log {path} cannot be written: {reason} (--log-file, env LINE_CAPI_RUN_LOG)"
        )
        self.reason = reason


# The process's own output named as a log (`--log-file /dev/stdout` in a container): written
# through the descriptor it already has. Opened again, it would get an offset of its own, and
# under a shell's `> file` its lines and the console's would write over each other.
_OWN_STREAMS = {
    "/dev/stdout": 1,
    "/dev/fd/1": 1,
    "/proc/self/fd/1": 1,
    "/dev/stderr": 2,
    "/dev/fd/2": 2,
    "/proc/self/fd/2": 2,
}


class RunLog:
    """Timestamped lines to the log file (appended) and, when asked, to a console stream."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            own = _OWN_STREAMS.get(str(path))
            if own is not None:
                self._file = os.fdopen(os.dup(own), "a", encoding="utf-8")
            else:
                rotate_if_large(path)
                self._file = private_file(path, "a")
        except OSError as exc:  # a folder, a read-only place: the user's path, not a bug
            raise RunLogError(path, exc.strerror or type(exc).__name__) from None
        self._lock = threading.Lock()
        self._failed = False  # the disk refused a line: the rest goes to the console only
        # closed while a child's last lines still come in (Ctrl-C): they go to the console only
        self._closed = False
        # consoles whose reader has gone (`sender run | head`, a log shipper that died): the
        # run goes on, its lines go to the log only
        self._gone: set[int] = set()

    def write(self, source: str, text: str, echo: IO[str] | None = None) -> None:
        """Log ``text``; echo it too (the run's own lines with a timestamp off a terminal)."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # a token pasted into a setting the run names (the export folder) never reaches the log
        text = scrub(text)
        plain = _SENDER_STAMP.sub("", _ANSI.sub("", text))
        # one entry per line: a setting holding a line break cannot forge the run's result line
        plain = plain.replace("\r", "\\r").replace("\n", "\\n")
        with self._lock:
            if not (self._failed or self._closed):
                try:
                    self._file.write(f"{stamp} {source}: {plain}\n")
                    self._file.flush()
                except OSError as exc:  # a full disk: the run goes on, its exit code says why
                    self._failed = True
                    sys.stderr.write(
                        f"warning: run log {self.path} cannot be written"
                        f" ({exc.strerror or type(exc).__name__}): the rest of this run's lines"
                        " go to the console only\n"
                    )
            if echo is not None and id(echo) not in self._gone:
                if source == "run" and not echo.isatty():
                    text = f"{stamp} sender run: {text}"
                try:
                    echo.write(text + "\n")
                    echo.flush()
                except (BrokenPipeError, ValueError):  # its reader gone; closed (a test harness)
                    self._gone.add(id(echo))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            with contextlib.suppress(OSError):  # the buffered rest, on a disk that is full
                self._file.close()


def _pump(stream: IO[str], on_line: Callable[[str], None]) -> None:
    for line in stream:
        on_line(line.rstrip("\n"))


def run_logged(
    command: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log: RunLog,
    source: str,
    echo_out: IO[str] | None = None,
    echo_err: IO[str] | None = None,
) -> tuple[int, list[str]]:
    """Run ``command``; log each line of its stdout and stderr. Returns the exit code and the
    lines (stdout and stderr, in arrival order). Ctrl-C/SIGTERM stop the child too."""
    lines: list[str] = []
    in_traceback = [False]

    def sink(echo: IO[str] | None) -> Callable[[str], None]:
        def on_line(text: str) -> None:
            text = without_quoted_row(text)
            lines.append(text)
            # the traceback of a crash goes to the log only; the console gets its one line
            if text.startswith("Traceback (most recent call last):"):
                in_traceback[0] = True
            elif in_traceback[0] and text.startswith("error: "):
                in_traceback[0] = False
            log.write(source, text, None if in_traceback[0] else echo)

        return on_line

    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        # dbt and the push create the database, its WAL and dbt's files for their owner only
        umask=private_umask(),
        # killed by SIGKILL, the run would leave a dbt build holding the database for hours
        preexec_fn=stop_with_this_process(),
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    err_thread = threading.Thread(target=_pump, args=(proc.stderr, sink(echo_err)), daemon=True)
    err_thread.start()
    try:
        _pump(proc.stdout, sink(echo_out))
        err_thread.join()
        return proc.wait(), lines
    except KeyboardInterrupt:
        proc.terminate()
        # the child's last lines, logged before the run ends: a push's summary (stdout) says
        # what it sent before it stopped
        out_thread = threading.Thread(target=_pump, args=(proc.stdout, sink(echo_out)), daemon=True)
        out_thread.start()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out_thread.join(timeout=5)
        err_thread.join(timeout=5)
        raise


def export_warnings(lines: list[str]) -> list[str]:
    """The export's warnings among dbt's console lines (an optional column missing), each once."""
    found: list[str] = []
    for line in lines:
        text = _DBT_PREFIX.sub("", _ANSI.sub("", line)).strip()
        if text.startswith("warning: KARTE export") and text not in found:
            found.append(text)
    return found


def _listed_after(line: str, rest: list[str]) -> str:
    """The list that a line ending in a colon announces on the lines after it (`- duckdb`), as
    ` duckdb, spark`: dbt's "valid target names for this profile are:"."""
    if not line.endswith(":"):
        return ""
    items = []
    for text in rest:
        if not text.startswith("- "):
            break
        items.append(text[2:].strip())
    return " " + ", ".join(items) if items else ""


def dbt_error_line(lines: list[str]) -> str:
    """The one line that says why dbt failed, from its console output."""
    clean = [_DBT_PREFIX.sub("", _ANSI.sub("", line)).strip() for line in lines]
    for i, text in enumerate(clean):
        if _DBT_ERROR_HEADER.search(text) or text == "Encountered an error:":
            for j, following in enumerate(clean[i + 1 :], start=i + 1):
                if (
                    following
                    and not following.startswith(">")
                    and not _DBT_ERROR_HEADER.search(following)
                ):
                    return following + _listed_after(following, clean[j + 1 :])
        if text.startswith("Failure in ") or text.startswith("Error in "):
            following = next((t for t in clean[i + 1 :] if t), "")
            if not _DBT_ERROR_HEADER.search(following):
                return text  # else the error's own header follows, and its message after it
    done = [t for t in clean if t.startswith("Done.")]
    return done[-1] if done else (next((t for t in reversed(clean) if t), "no output"))


_ADAPTER = re.compile(r"Registered adapter: (\w+)=")


def check_duckdb_adapter(lines: list[str]) -> None:
    """Stop before the build when dbt runs on another engine than DuckDB (`-- --target spark`):
    the push reads the payload from the DuckDB file, and a Spark build would be checked and
    refused only after it (a minute of work, then exit 12)."""
    for line in lines:
        found = _ADAPTER.search(_ANSI.sub("", line))
        if found and found.group(1) != "duckdb":
            raise RunError(
                f"sender run builds on DuckDB only, and the dbt target is {found.group(1)}: on"
                " Spark, build with dbt, load the payload into the DuckDB file and run sender"
                ' push (docs/spark.md, "The sender and a Spark-built table"); nothing was'
                " built or sent",
                ExitCode.USAGE,
            )


def selection_option(dbt_args: tuple[str, ...]) -> str | None:
    """The first node-selection option among the dbt arguments (`--select x`, `-s=x`), if any."""
    for arg in dbt_args:
        name = arg.split("=", 1)[0]
        if name in SELECTION_OPTIONS:
            return name
    return None


def target_path(config: RunConfig) -> Path:
    """Where dbt writes sources.json: --target-path among the dbt arguments, env
    DBT_TARGET_PATH, or target/ in the project."""
    value = config.env.get("DBT_TARGET_PATH") or "target"
    args = list(config.dbt_args)
    for i, arg in enumerate(args):
        if arg == "--target-path" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--target-path="):
            value = arg.split("=", 1)[1]
    path = Path(value)
    return path if path.is_absolute() else config.project_dir / path


# The longest quiet spell (no new row in an export whose files are still written): beyond it the
# export's query or the site's tag has stopped, not the shop.
QUIET_SPELL_MAX_HOURS = 72

# How far in the future an export's newest sync_date may be (clocks differ by minutes): beyond
# it, times were written without their offset, such as Japan time read as UTC, 9 h ahead.
FUTURE_TOLERANCE_HOURS = 1.0


@dataclass(frozen=True)
class Freshness:
    table: str
    status: str  # pass, warn, error, runtime error
    age_hours: float | None
    limit_hours: float | None

    @property
    def has_no_time(self) -> bool:
        """No row at all (the freshness query's null: dbt reports an age beyond a century)."""
        return self.age_hours is None or self.age_hours > 24 * 365 * 100

    @property
    def has_unreadable_times(self) -> bool:
        """Rows, but none whose sync_date parses: the query gives the Unix epoch."""
        if self.age_hours is None or self.has_no_time:
            return False
        return abs(self.age_hours * 3600 - time.time()) < 2 * 86400

    def describe(self) -> str:
        if self.has_unreadable_times:
            return (
                f"KARTE export table {self.table} has rows but no readable sync_date: its format"
                " changed? (ISO 8601 with an offset, or epoch digits: docs/input-contract.md)"
            )
        if self.has_no_time:
            return f"KARTE export table {self.table} has no row with a readable sync_date"
        limit = f" (the limit is {self.limit_hours:g} h)" if self.limit_hours else ""
        return (
            f"KARTE export table {self.table} is stale: its newest sync_date is"
            f" {self.age_hours:.1f} h old{limit}"
        )

    @property
    def is_ahead(self) -> bool:
        return self.age_hours is not None and self.age_hours < -FUTURE_TOLERANCE_HOURS

    def describe_ahead(self) -> str:
        return (
            f"KARTE export table {self.table} has sync_dates up to {-(self.age_hours or 0):.1f} h"
            " in the future: a time without an offset is read as UTC, so Japan time (a BigQuery"
            " DATETIME) shows 9 h ahead; set dbt var karte_export_utc_offset: '+09:00', or export"
            " sync_date as a TIMESTAMP or with its offset (+09:00); with the var set already, some"
            " Parquet parts store sync_date with a time zone and others without: write them alike"
        )


def read_artifact(path: Path, since: float) -> dict | None:
    """A dbt artifact (sources.json, run_results.json) that dbt wrote at or after ``since``
    (Unix seconds), by the time in its metadata (``generated_at``), which dbt takes from this
    machine's clock as ``since`` is; None when it is older, missing or unreadable. Not by the
    file's mtime: a network share stamps it with its own clock, which may lag."""
    try:
        artifact = json.loads(path.read_text(encoding="utf-8"))
        written = dt.datetime.fromisoformat(artifact["metadata"]["generated_at"])
    except (OSError, ValueError, TypeError, KeyError):  # TypeError: JSON that is no object
        return None
    written = written if written.tzinfo else written.replace(tzinfo=dt.UTC)
    return artifact if written.timestamp() >= since - ARTIFACT_CLOCK_SLACK_SECONDS else None


def read_results(path: Path, since: float) -> list[dict]:
    """The ``results`` of a dbt artifact written after ``since`` (see read_artifact); none when
    it is older, missing or unreadable."""
    results = (read_artifact(path, since) or {}).get("results")
    return results if isinstance(results, list) else []


def quiet_window(results: list[Freshness]) -> list[Freshness]:
    """The results to excuse when conversions has no row with a time and page views are fresh
    or have none either (the bundled Datahub queries export the page views of converters only):
    a site without a conversion in the export's window, not a stopped export. A stopped export
    keeps its last rows, which age; a configured conversion type without rows is alerted on."""
    by_table = {r.table: r for r in results}
    conversions, page_views = by_table.get("conversions"), by_table.get("page_views")
    if conversions is None or page_views is None:
        return []
    if not (conversions.status == "error" and conversions.has_no_time):
        return []
    if page_views.status == "pass":
        return [conversions]
    if page_views.status == "error" and page_views.has_no_time:
        return [conversions, page_views]
    return []


def written_hours_ago(export_dir: Path, table: str, now: float | None = None) -> float | None:
    """Hours since the newest file of ``table`` in the export folder was written (its mtime:
    one file, its parts, or a folder of them); None when there is none to read."""
    newest: float | None = None
    try:
        for entry in export_dir.iterdir():
            if not entry.name.startswith(table):
                continue
            files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
            for file in files:
                written = file.stat().st_mtime
                newest = written if newest is None else max(newest, written)
    except OSError:
        return None
    if newest is None:
        return None
    return ((time.time() if now is None else now) - newest) / 3600


def built_invocation(path: Path, since: float) -> str | None:
    """The invocation id of the dbt command that wrote ``path`` (run_results.json) after
    ``since`` (see read_artifact); None when it is older, missing or unreadable."""
    metadata = (read_artifact(path, since) or {}).get("metadata") or {}
    invocation = metadata.get("invocation_id")
    return invocation if isinstance(invocation, str) else None


def built_elsewhere(database: Path, invocation_id: str) -> bool:
    """Whether the build ``invocation_id`` is not the one ``database`` records (no file, no
    build info, another build). A file that cannot be read now is not judged: the push says
    why."""
    if not database.is_file():
        return True
    try:
        with duckdb.connect(str(database), read_only=True) as con:
            info = read_build_info(con)
    except duckdb.Error:
        return False
    return info is None or info.invocation_id != invocation_id


def read_freshness(path: Path, since: float) -> list[Freshness]:
    """The per-table results of the `dbt source freshness` that wrote ``path`` after ``since``."""
    found = []
    for result in read_results(path, since):
        criteria = result.get("criteria") or {}
        key = "error_after" if result.get("status") == "error" else "warn_after"
        limit = (criteria.get(key) or {}).get("count")
        age = result.get("max_loaded_at_time_ago_in_s")
        found.append(
            Freshness(
                table=str(result.get("unique_id", "?")).rsplit(".", 1)[-1],
                status=str(result.get("status")),
                age_hours=age / 3600 if isinstance(age, int | float) else None,
                limit_hours=float(limit) if isinstance(limit, int | float) else None,
            )
        )
    return found


# What a data test that only warns means, for the line sender run prints (docs/troubleshooting.md)
WARNING_MEANINGS = {
    "assert_each_configured_event_has_conversions": (
        "a configured conversion type had no conversion in this build's window: is its KARTE"
        " event name spelt as in the export?"
    ),
    "assert_each_configured_event_is_mostly_sendable": (
        "nearly every conversion of a configured type was rejected in this build's window, so"
        " nothing of it goes to LINE: see line_capi_rejected and docs/troubleshooting.md"
    ),
}


# The warning tests whose rows the line names (at most WARNING_ROWS_SHOWN), each row as text.
WARNING_ROWS = {
    "assert_each_configured_event_has_conversions": lambda row: f"{row[0]} sent as {row[1]}",
    "assert_each_configured_event_is_mostly_sendable": (
        lambda row: f"{row[0]}: {row[1]:,} of {row[2]:,} rejected, most as {row[3]}"
    ),
}
WARNING_ROWS_SHOWN = 5


def _warning_rows(database: Path | None, name: str, sql: object) -> list[str]:
    """The first rows a warning test returned, run again (its compiled SQL, read-only) on the
    database the build just wrote; none when that cannot be done."""
    show = WARNING_ROWS.get(name)
    if database is None or show is None or not isinstance(sql, str) or not sql.strip():
        return []
    try:
        with duckdb.connect(str(database), read_only=True) as con:
            # the project's own test, as dbt compiled it for this build
            rows = con.sql(sql).limit(WARNING_ROWS_SHOWN).fetchall()
    except Exception:  # noqa: BLE001 - a detail of a warning never stops the run: the count says it
        return []
    return [show(row) for row in rows]


def read_test_warnings(path: Path, since: float, database: Path | None = None) -> list[str]:
    """One line per data test that warned in the dbt build that wrote ``path`` (its
    run_results.json) after ``since``; with ``database``, naming what it found."""
    lines = []
    for result in read_results(path, since):
        if result.get("status") != "warn":
            continue
        parts = str(result.get("unique_id", "?")).split(".")  # test.<project>.<name>
        name = parts[2] if len(parts) > 2 else parts[0]
        failures = result.get("failures")
        rows = ""
        if isinstance(failures, int):
            rows = f" ({failures} row{'' if failures == 1 else 's'})"
        found = _warning_rows(database, name, result.get("compiled_code"))
        if found:
            rows = f" ({', '.join(found)})"
        meaning = WARNING_MEANINGS.get(name, "see docs/troubleshooting.md")
        lines.append(f"dbt test {name} warned{rows}: {meaning}")
    return lines


_PR_SET_PDEATHSIG = 1


def stop_with_this_process() -> Callable[[], None] | None:
    """For ``subprocess.Popen(preexec_fn=...)``: the child (dbt, the push) gets SIGTERM when this
    process dies, even by SIGKILL (Linux; elsewhere None, and the child runs as before). Else a
    killed run left its `dbt build` or its push going on as an orphan: holding the database
    (each hour after it exited 5), writing to pipes nobody reads, outliving the run's lock. The
    push stops as on Ctrl-C: what LINE has not acknowledged stays pending. Looked up before the
    fork: the child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the run died before the request was made
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child


class ScheduledRun:
    def __init__(
        self, config: RunConfig, *, out: IO[str] | None = None, err: IO[str] | None = None
    ) -> None:
        self.config = config
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.error: str | None = None  # the one error line of a run that stopped
        self.pushing = False  # whether the push has started: an interrupt before it sent nothing
        try:
            self.log = RunLog(config.log_file)
        except RunLogError as exc:
            if config.log_file != run_log_path(config.database, None):
                raise  # a log named elsewhere: that setting is what is wrong
            # the default log goes next to the database, in the folder the run writes the
            # database's lock file, its WAL and the database itself: say that folder
            raise DatabaseError(
                f"cannot create the run log {config.log_file}: {exc.reason}; this run's user"
                f" ({current_user()}) must be able to write the database's folder"
                f" {config.database.parent}"
            ) from None

    def say(self, message: str) -> None:
        self.log.write("run", message, self.err)

    def child_env(self) -> dict[str, str]:
        env = dict(self.config.env)
        env.update(
            {
                "LINE_CAPI_DUCKDB": str(self.config.database),
                # relative dbt vars (karte_sample_dir) resolve against the project folder
                "PWD": str(self.config.project_dir),
                "DO_NOT_TRACK": "1",
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "DBT_USE_COLORS": "false",
            }
        )
        if self.config.export_dir is not None:
            env["KARTE_EXPORT_DIR"] = str(self.config.export_dir)
        for name in RUN_ONLY_ENV:  # the run alerts once for the whole job (sender/alerts.py)
            env.pop(name, None)
        return env

    def dbt(self, *args: str) -> tuple[int, list[str]]:
        command = [self.config.dbt, *args, *self.config.dbt_args]
        # dbt has no use for the access token: it is not handed to it
        env = {k: v for k, v in self.child_env().items() if k not in TOKEN_ENV}
        return run_logged(command, cwd=self.config.project_dir, env=env, log=self.log, source="dbt")

    def dbt_failed(self, step: str, code: int, lines: list[str]) -> RunError:
        """Why a dbt command failed: another process holding the database is a lock, not a
        failed build; a kill or a lack of memory says so rather than which model it stopped in."""
        signal_name = build_memory.killed_by(code, shell_codes=True)
        if signal_name is not None:
            return RunError(build_memory.killed_message(step, signal_name), ExitCode.BUILD_FAILED)
        held = [line for line in lines if is_lock_error(line)]
        if held:
            return RunError(str(locked(self.config.database, held[0])), ExitCode.DATABASE_LOCKED)
        short_of = build_memory.out_of_memory(lines)
        if short_of is not None:
            return RunError(f"{step} failed: {short_of}", ExitCode.BUILD_FAILED)
        why = _NO_EXPORT_NAMED.sub(NO_EXPORT_NAMED, dbt_error_line(lines))
        for said in _SET_THE_VAR:
            why = why.replace(said, SET_THE_FOLDER)
        if _NO_PROFILE.search(why):
            return RunError(
                f"{step} failed: dbt found no profile ({why.removeprefix('Error: ')}): copy"
                f" profiles.example.yml to profiles.yml in {self.config.project_dir} (make setup"
                " does), or set DBT_PROFILES_DIR to the folder of yours",
                ExitCode.USAGE,
            )
        if code == 2 and (
            _DBT_MISSING_VALUE.match(why)
            or any(_DBT_USAGE.match(_ANSI.sub("", line).strip()) for line in lines)
        ):
            return RunError(
                f"{step} refused the arguments after `sender run --`:"
                f" {why.removeprefix('Error: ')}",
                ExitCode.USAGE,
            )
        if _MALFORMED_CSV.search(why):
            # "CSV Error on Line: N" names its file further down, in DuckDB's list of options
            named = [m.group(1).strip() for m in map(_CSV_FILE_OPTION.match, lines) if m]
            if named and named[0] not in why:
                why = f"{why.rstrip('.')} of {named[0]}"
            not_utf8 = any(_NOT_UTF8 in line for line in lines)
            sniffed = _SNIFFED_FILE.search(why)
            if not_utf8:
                hint = NOT_UTF8_HINT
            elif sniffed and mixes_line_endings(Path(sniffed.group(1))):
                hint = MIXED_LINE_ENDINGS_HINT
            else:
                hint = MALFORMED_CSV_HINT
            why = why.rstrip(".") + hint
        code = ExitCode.USAGE if _CONFIGURATION_ERROR.match(why) else ExitCode.BUILD_FAILED
        return RunError(f"{step} failed: {why}", code)

    def check_ledger_version(self) -> None:
        """A ledger that a later version wrote stops the run before it builds: its push would
        refuse it, hour after hour, after each build."""
        database = self.config.database
        if not database.is_file():
            return
        try:
            with duckdb.connect(str(database), read_only=True) as con:
                refuse_newer(con, database)
        except NewerLedger as exc:
            raise RunError(f"{exc}; nothing was built or sent", ExitCode.DATABASE_ERROR) from None
        except duckdb.Error:  # not readable now (a lock, not a DuckDB file): the push says why
            return

    def check_export_folder(self) -> None:
        """A named export folder that is missing or unreadable is one line, not dbt's "file
        missing" for each table (the sync has not made it yet, or it belongs to another user)."""
        folder = self.config.export_dir
        if folder is None:
            return
        if folder.exists() and not folder.is_dir():
            raise RunError(
                f"KARTE export folder {folder} is a file: name the folder that holds the four"
                " tables (KARTE_EXPORT_DIR or --export-dir)",
                ExitCode.USAGE,
            )
        if not folder.is_dir():
            raise RunError(
                f"KARTE export folder {folder} does not exist (has the export sync run?)",
                ExitCode.STALE_EXPORT,
            )
        if not os.access(folder, os.R_OK | os.X_OK):
            raise RunError(
                f"KARTE export folder {folder} cannot be read by this user"
                f" ({current_user()}): give the job's user read access",
                ExitCode.USAGE,
            )
        if (folder / "current").is_dir() and not any(
            entry.name.startswith(EXPORT_TABLES) for entry in folder.iterdir()
        ):
            raise RunError(
                f"KARTE export folder {folder} holds no export table but a current folder: it is"
                f" the export sync's DEST; name {folder / 'current'} (KARTE_EXPORT_DIR or"
                " --export-dir)",
                ExitCode.USAGE,
            )

    def check_freshness(self) -> None:
        started = time.time()
        code, lines = self.dbt("source", "freshness")
        check_duckdb_adapter(lines)
        results = read_freshness(target_path(self.config) / "sources.json", started)
        quiet = quiet_window(results)
        if quiet:
            also = " (page_views has none either)" if len(quiet) > 1 else ""
            self.say(
                f"warning: {quiet[0].describe()}{also}: no conversion in the export (a quiet"
                " window), or none whose sync_date parses (those are rejected as"
                " invalid_sync_date); the run goes on"
            )
            results = [r for r in results if r not in quiet]
        quiet_spell = self.quiet_spell(results)
        overlong = [(r, w) for r, w in quiet_spell if r.age_hours > QUIET_SPELL_MAX_HOURS]
        if overlong:  # the export job runs, but its query (or the site's tag) has stopped
            result, written = overlong[0]
            raise RunError(
                f"{result.describe()}, though its files were written {written:.1f} h ago: the"
                f" export runs but has added no row in over {QUIET_SPELL_MAX_HOURS} h (its query"
                " or the site's tag broken?); a site quiet for longer: raise"
                " karte_freshness_error_hours",
                ExitCode.STALE_EXPORT,
            )
        for result, written in quiet_spell:
            self.say(
                f"warning: {result.describe()}, but its files were written {written:.1f} h ago:"
                " no new row since (a quiet spell on the site); the run goes on"
            )
        excused = [result for result, _ in quiet_spell]
        results = [r for r in results if r not in excused]
        quiet = quiet + excused
        for result in results:
            if result.status == "warn":
                self.say(f"warning: {result.describe()}")
        # an age says more than "no row with a time" (a table that is empty because it is stale)
        stale = sorted((r for r in results if r.status == "error"), key=lambda r: r.has_no_time)
        if stale:
            raise RunError(stale[0].describe(), ExitCode.STALE_EXPORT)
        ahead = [r for r in results if r.is_ahead]
        if ahead:  # every event would go out hours late
            raise RunError(ahead[0].describe_ahead(), ExitCode.STALE_EXPORT)
        # dbt counts the quiet conversions as an error: any other failure still stops the run
        if code != 0 and (not quiet or any(r.status not in ("pass", "warn") for r in results)):
            raise self.dbt_failed("dbt source freshness", code, lines)
        ages = ", ".join(
            f"{r.table} {r.age_hours:.1f} h old" for r in results if r.age_hours is not None
        )
        warned = bool(quiet) or any(r.status == "warn" for r in results)
        state = "export usable" if warned else "export fresh"  # a stale warning said why above
        self.say(f"{state} ({ages})" if ages else state)

    def quiet_spell(self, results: list[Freshness]) -> list[tuple[Freshness, float]]:
        """The stale results of tables whose files were written within their limit: the export
        runs, the site had nothing new to put in it (a small shop's night; the bundled Datahub
        queries export the page views of converters only). An export that stopped stops
        writing its files too. Each with the hours since its files were written. Without the
        export folder (the dbt vars name it), none."""
        if self.config.export_dir is None:
            return []
        excused = []
        for result in results:
            if result.status != "error" or result.has_no_time or result.has_unreadable_times:
                continue
            if result.age_hours is None or result.is_ahead or not result.limit_hours:
                continue
            written = written_hours_ago(self.config.export_dir, result.table)
            if written is not None and written <= result.limit_hours:
                excused.append((result, written))
        return excused

    def build(self) -> None:
        started = time.time()
        code, lines = self.dbt(*BUILD_ARGS)
        if code != 0:
            raise self.dbt_failed("dbt build", code, lines)
        built = built_invocation(target_path(self.config) / "run_results.json", started)
        if built is not None and built_elsewhere(self.config.database, built):
            selection = selection_option(self.config.dbt_args)
            if selection is not None:
                raise RunError(
                    f"dbt build with {selection} (after `sender run --`) left out"
                    " line_capi_build_info, so the push would send an older build: sender run"
                    f" builds the whole project; run a partial build with `dbt build {selection}"
                    " …` by hand; nothing was sent",
                    ExitCode.USAGE,
                )
            # a profile with a path of its own: the push would send an old build, hour after hour
            raise RunError(
                f"dbt build wrote another database than {self.config.database}: its"
                " line_capi_build_info is not this build's. The profile's path must be"
                " env_var('LINE_CAPI_DUCKDB') (profiles.example.yml), and the build must not"
                " leave out line_capi_build_info (--select, --exclude); nothing was sent",
                ExitCode.BUILD_FAILED,
            )
        self.say(f"dbt build ok: {dbt_error_line(lines)}")
        for warning in export_warnings(lines):
            self.say(warning)
        results = target_path(self.config) / "run_results.json"
        for warning in read_test_warnings(results, started, self.config.database):
            self.say(f"warning: {warning}")

    def push(self) -> int:
        self.pushing = True
        command = [sys.executable, "-m", "sender", "--debug", "push"]
        code, _ = run_logged(
            command,
            cwd=self.config.project_dir,
            env=self.child_env(),
            log=self.log,
            source="sender",
            echo_out=self.out,
            echo_err=self.err,
        )
        if code == ExitCode.INTERNAL_ERROR:
            self.say(f"the traceback is in {self.config.log_file}")
        signal_name = build_memory.killed_by(code)
        if signal_name is not None:
            raise RunError(
                f"sender push was killed by {signal_name}: what LINE had not acknowledged stays"
                " pending, and the next run sends it",
                ExitCode.INTERRUPTED,
            )
        return code

    def run(self) -> int:
        """The whole job. Its last log line is always `done: exit N` (sender.run_history reads
        it for `sender status`); the console gets it only after a success, an error having said
        its one line."""
        try:
            echo_done = True
            try:
                self.say(
                    f"start: project {self.config.project_dir}, database {self.config.database},"
                    f" export {self.config.export_dir or '(from the dbt vars)'}"
                )
                if self.config.export_note:
                    self.say(self.config.export_note)
                with run_lock(self.config.database):
                    if not self.config.database.exists():  # said once the run goes ahead
                        # a job started in another folder than its own (cron's home) with the
                        # relative default: a second database whose empty ledger sends it all
                        self.say(
                            f"note: database {self.config.database} is new: its ledger is"
                            " empty, so this run sends every conversion of the window (expected"
                            " on a job's first run; else the job's database is elsewhere: run"
                            " in its folder or give LINE_CAPI_DUCKDB an absolute path)"
                        )
                    self.check_ledger_version()
                    # dbt's target folder only while dbt writes it and its results are read:
                    # another site's build need not wait for this site's push
                    with target_lock(target_path(self.config), self.config.database, self.say):
                        self.check_export_folder()
                        self.check_freshness()
                        self.build()
                    code = self.push()
            except RunError as exc:
                self.log.write("run", f"error: {exc}; log: {self.config.log_file}", self.err)
                code, echo_done = int(exc.code), False
                self.error = str(exc)
            except KeyboardInterrupt:
                self.say(
                    "error: interrupted during the push (its summary above says what it sent):"
                    " what LINE had not acknowledged stays pending, and the next run sends it"
                    if self.pushing
                    else "error: interrupted before the push: nothing was sent"
                )
                code, echo_done = int(ExitCode.INTERRUPTED), False
            except PermissionError as exc:  # the job runs as a user the project's files refuse
                self.log.write("run", f"error: {permission_message(exc)}", self.err)
                code, echo_done = int(ExitCode.USAGE), False
            self.log.write("run", f"done: exit {code}", self.err if echo_done else None)
            return code
        finally:
            self.log.close()
