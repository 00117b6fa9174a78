"""``sender run``: the hourly job in one command, for cron, systemd, CI and containers.

1. Take the lock file next to the database: a second run exits at once. Then, until the build
   is done, the lock of dbt's target folder: a run for another database in the same checkout
   waits its turn, as both would write ``sources.json`` and ``run_results.json``
   (sender.run_locks).
2. ``dbt source freshness``: a stale export stops the run with one line naming the table and age
   (what counts as stale: sender.freshness).
3. ``dbt build`` of the models and data tests (unit tests belong to development and CI); why a
   dbt command failed, in one line: sender.dbt_output; its results: sender.dbt_artifacts.
4. ``sender push``, whose exit code is the run's.

Every line dbt and the sender print goes to the run log with a timestamp (sender.run_log); the
console gets the run's own lines and the push's output.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import duckdb

from sender import build_memory
from sender.alert_settings import RUN_ONLY_ENV
from sender.build_info import holds_sample_marker
from sender.build_memory import PLUGIN_MISSING
from sender.database import DatabaseError
from sender.dbt_artifacts import built_elsewhere, built_invocation, read_test_warnings
from sender.dbt_output import check_duckdb_adapter, dbt_error_line, dbt_failure, export_warnings
from sender.dbt_vars import (
    PROJECT_VARS_ENV,
    declared_var_names,
    merge_vars,
    project_export_dir,
    take_export_dir,
    with_export_dir,
)
from sender.errors import RunError
from sender.exit_codes import ExitCode
from sender.freshness import (
    PAGE_VIEWS_BEHIND_HOURS,
    QUIET_SPELL_MAX_HOURS,
    UnmatchedPageViews,
    WithoutPageView,
    arrived_late,
    find_quiet_spell,
    page_views_behind,
    page_views_trail,
    pv_ids_differ,
    quiet_window,
    read_freshness,
)
from sender.ledger_migration import NewerLedger, refuse_newer
from sender.run_history import (
    BUILD_OK,
    ExportCheck,
    export_checked_line,
    last_export_check,
    last_send_of,
    run_log_path,
)
from sender.run_locks import current_user, run_lock, target_lock
from sender.run_log import RunLog, RunLogError, run_logged
from sender.settings import ConfigError, optional_path
from sender.tls import CA_BUNDLE_VARIABLES

PROJECT_FILE = "dbt_project.yml"
# touched by the profile's plugin during the build (build_memory.PLUGIN_SEEN_ENV)
PLUGIN_SEEN_FILE = ".line_capi_plugin_seen"
DBT_ENV_VAR = "LINE_CAPI_DBT"
# the access token and its file: the push needs them, dbt does not
TOKEN_ENV = ("LINE_ACCESS_TOKEN", "LINE_ACCESS_TOKEN_FILE")
# Paths the push reads from its environment: a relative one is the run's current folder's.
RELATIVE_TO_START = ("LINE_ACCESS_TOKEN_FILE", *CA_BUNDLE_VARIABLES, "SSL_CERT_DIR")
BUILD_ARGS = ("build", "--exclude-resource-type", "unit_test")


# dbt's node selection, after `sender run --`: a build that leaves out line_capi_build_info
SELECTION_OPTIONS = ("--select", "-s", "--models", "-m", "--exclude", "--selector")


# the export's four tables, as files, parts or folders of parts start their names
EXPORT_TABLES = ("conversions", "page_views", "line_users", "user_master")


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


def permission_message(exc: PermissionError) -> str:
    """One line for a file the job's user may not write (the project was set up as another)."""
    where = exc.filename or "a file of the project"
    return (
        f"permission denied: {where}: this run's user ({current_user()}) may not use it; run"
        " the job as the user that owns the project (its data, target and logs folders), or"
        " give them to it (chown -R)"
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
    value = (config.env.get("DBT_TARGET_PATH") or "").strip() or "target"
    args = list(config.dbt_args)
    for i, arg in enumerate(args):
        if arg == "--target-path" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--target-path="):
            value = arg.split("=", 1)[1]
    path = Path(value)
    return path if path.is_absolute() else config.project_dir / path


class ScheduledRun:
    def __init__(
        self, config: RunConfig, *, out: IO[str] | None = None, err: IO[str] | None = None
    ) -> None:
        self.config = config
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.error: str | None = None  # the one error line of a run that stopped
        self.error_in_own_words = False  # the sender's words, not dbt's (sender.errors.RunError)
        self.built = False  # whether this run built: its alert checks the build's coverage
        self.pushing = False  # whether the push has started: an interrupt before it sent nothing
        # the last run's freshness check, read before this run logs its own (arrived_late)
        self.export_checked: ExportCheck | None = None
        self.page_view_newest: float | None = None  # Unix time, from the freshness check
        self.freshness_checked_at: float | None = None  # when it measured the export's ages
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
        # dbt's own settings without the spaces and carriage returns of a .env saved with Windows
        # line endings, as the sender reads its own (DBT_TARGET_PATH made a folder "target\r")
        env = {k: v.strip() if k.startswith("DBT_") else v for k, v in self.config.env.items()}
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
        # files the push reads, named from the folder the run started in: the push runs in the
        # project folder (a token file that passed the run's check failed after the build)
        for name in RELATIVE_TO_START:
            value = env.get(name, "").strip()
            if value and not value.startswith("~") and not os.path.isabs(value):
                env[name] = os.path.abspath(value)
        # the names under vars: in dbt_project.yml, for dbt's check of var names (a slip there
        # would run with the default), which sees only --vars itself
        env[PROJECT_VARS_ENV] = json.dumps(
            declared_var_names(self.config.project_dir / PROJECT_FILE)
        )
        for name in RUN_ONLY_ENV:  # the run alerts once for the whole job (sender/alerts.py)
            env.pop(name, None)
        return env

    def dbt(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
        command = [self.config.dbt, *args, *self.config.dbt_args]
        # dbt has no use for the access token: it is not handed to it
        full = {k: v for k, v in self.child_env().items() if k not in TOKEN_ENV} | (env or {})
        cwd = self.config.project_dir
        return run_logged(command, cwd=cwd, env=full, log=self.log, source="dbt")

    def dbt_failed(self, step: str, code: int, lines: list[str]) -> RunError:
        return dbt_failure(
            step, code, lines, database=self.config.database, project_dir=self.config.project_dir
        )

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
            # a ~ that no shell expanded (systemd's EnvironmentFile, Docker's env file)
            tilde = "; a ~ in it is not expanded: give the full path" if "~" in folder.parts else ""
            raise RunError(
                f"KARTE export folder {folder} does not exist (has the export sync run?){tilde}",
                ExitCode.USAGE if tilde else ExitCode.STALE_EXPORT,
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
        # each table's age, the stale ones too: the next run reads them back (arrived_late)
        ages = {
            r.table: r.age_hours for r in results if r.age_hours is not None and not r.has_no_time
        }
        self.freshness_checked_at = next((r.checked_at for r in results if r.checked_at), None)
        page_views = next((r for r in results if r.table == "page_views"), None)
        if page_views is not None and page_views.age_hours is not None:
            if not page_views.has_no_time and not page_views.has_unreadable_times:
                measured = page_views.checked_at or started
                self.page_view_newest = measured - page_views.age_hours * 3600
        quiet = quiet_window(results)
        if quiet:
            also = " (page_views has none either)" if len(quiet) > 1 else ""
            self.say(
                f"warning: {quiet[0].describe()}{also}: no conversion in the export (a quiet"
                " window), or none whose sync_date parses (those are rejected as"
                " invalid_sync_date); the run goes on"
            )
            results = [r for r in results if r not in quiet]
        quiet_spell = find_quiet_spell(results, self.config.export_dir)
        for result, _ in quiet_spell:
            late = arrived_late(result, self.export_checked, started)
            if late is not None:  # new rows, hours old: no quiet spell
                # this check, for the next run's: only rows newer than these stop it again
                self.log.write("run", export_checked_line("stale", ages))
                raise RunError(late, ExitCode.STALE_EXPORT)
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
            if behind := page_views_behind(results, result):
                self.say(f"warning: {result.describe()}{behind}; the run goes on")
                continue
            if self.export_checked is not None and self.export_checked.state == "stale":
                self.say(
                    f"warning: {result.describe()}: no new row since the last run, which stopped"
                    " on rows that came hours late; they go out in this run, as old as their"
                    " times say (times early by a wrong offset go out wrong: fix the export,"
                    " docs/troubleshooting.md); the run goes on"
                )
                continue
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
        warned = bool(quiet) or any(r.status == "warn" for r in results)
        # a stale warning said why above
        self.say(export_checked_line("usable" if warned else "fresh", ages))

    def build(self) -> None:
        started = time.time()
        seen = target_path(self.config) / PLUGIN_SEEN_FILE
        seen.unlink(missing_ok=True)
        code, lines = self.dbt(*BUILD_ARGS, env={build_memory.PLUGIN_SEEN_ENV: str(seen)})
        if code != 0:
            raise self.dbt_failed("dbt build", code, lines)
        plugin_loaded = seen.exists()
        seen.unlink(missing_ok=True)
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
        self.say(f"{BUILD_OK}{dbt_error_line(lines)}")
        if not plugin_loaded:
            self.say(
                f"warning: {PLUGIN_MISSING} (a"
                " profiles.yml copied before it existed?): what dbt writes may be readable by"
                " others, and the build's memory limit is not applied; copy the plugins: entry"
                ' of profiles.example.yml into it (docs/operations.md, "Upgrading")'
            )
        for warning in export_warnings(lines):
            self.say(warning)
        results = target_path(self.config) / "run_results.json"
        for warning in read_test_warnings(results, started, self.config.database):
            self.say(f"warning: {warning}")
        # its ages as of the freshness check, as the run's `export fresh (…)` line says them
        trailing, unmatched = self.page_views_of_conversions()
        trail = page_views_trail(trailing, self.freshness_checked_at or started)
        if trail is not None:
            self.say(f"warning: {trail}")
        differ = pv_ids_differ(unmatched)
        if differ is not None:
            self.say(f"warning: {differ}")

    def page_views_of_conversions(
        self,
    ) -> tuple[WithoutPageView | None, UnmatchedPageViews | None]:
        """The build's conversions (sent or rejected: one without its page view may have no
        other identifier) against the export's newest page view (freshness check): those whose
        pv_id names no page view of the export and that are over PAGE_VIEWS_BEHIND_HOURS newer
        than it (page views that trail), and, of the others with a pv_id, how many name none
        (the two tables' pv_ids differ). (None, None) without a page view time, or when the
        database cannot be read now. Read from int_conversions_joined, the table both marts are
        made from, where a conversion matched to its page view has its time difference."""
        page_view = self.page_view_newest
        if page_view is None:
            return None, None
        after = int(page_view + PAGE_VIEWS_BEHIND_HOURS * 3600)
        unmatched = "pv_id is not null and seconds_after_page_view is null"
        trails = f"event_timestamp > {after} and {unmatched}"
        try:
            with duckdb.connect(str(self.config.database), read_only=True) as con:
                row = con.execute(
                    f"select count(*) filter (where {trails}),"  # noqa: S608 - numbers only
                    f" arg_max(event_name, event_timestamp) filter (where {trails}),"
                    f" max(event_timestamp) filter (where {trails}),"
                    f" count(*) filter (where event_timestamp <= {after} and pv_id is not null),"
                    f" count(*) filter (where event_timestamp <= {after} and {unmatched})"
                    " from int_conversions_joined"
                ).fetchone()
        except duckdb.Error:
            return None, None
        if not row:
            return None, None
        trailing = (
            WithoutPageView(int(row[0]), str(row[1]), float(row[2]), page_view) if row[0] else None
        )
        return trailing, UnmatchedPageViews(int(row[3]), int(row[4]))

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

    def check_database_kept(self, sent_before: str | None) -> None:
        """A database that is gone while its run log holds runs that sent from it (deleted, or a
        restore forgotten) stops the run: a new one would send the window again and start the
        ledger and the coverage history afresh, with exit 0 and nothing for anyone to notice."""
        database = self.config.database
        if database.exists() or sent_before is None:
            return
        if self.config.export_dir is not None and holds_sample_marker(self.config.export_dir):
            return  # the demo's database: nothing of a real job to lose
        log = self.config.log_file
        raise RunError(
            f"database {database} is missing, but its run log {log} records events sent from it"
            f" until {sent_before}: it was deleted or moved. Put the last backup in its place"
            ' (docs/operations.md, "Backups, and a lost database"), or, to start a new ledger'
            " (this run would send every conversion of its window again; LINE counts each"
            f" once), move the run log aside: mv {log} {log}.old; nothing was built or sent",
            ExitCode.DATABASE_ERROR,
        )

    def run(self) -> int:
        """The whole job. Its last log line is always `done: exit N` (sender.run_history reads
        it for `sender status`); the console gets it only after a success, an error having said
        its one line."""
        try:
            echo_done = True
            # read before this run's lines: whether an earlier run sent from this database
            sent_before = last_send_of(
                self.config.log_file, self.config.database, sample=holds_sample_marker
            )
            self.export_checked = last_export_check(self.config.log_file)
            try:
                self.say(
                    f"start: project {self.config.project_dir}, database {self.config.database},"
                    f" export {self.config.export_dir or '(from the dbt vars)'}"
                )
                if self.config.export_note:
                    self.say(self.config.export_note)
                with run_lock(self.config.database):
                    self.check_database_kept(sent_before)
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
                        self.built = True
                    code = self.push()
            except RunError as exc:
                self.log.write("run", f"error: {exc}; log: {self.config.log_file}", self.err)
                code, echo_done = int(exc.code), False
                self.error, self.error_in_own_words = str(exc), exc.own_words
            except KeyboardInterrupt:
                self.say(
                    "error: interrupted during the push (its summary above says what it sent):"
                    " what LINE had not acknowledged stays pending, and the next run sends it"
                    if self.pushing
                    else "error: interrupted before the push: nothing was sent"
                )
                code, echo_done = int(ExitCode.INTERRUPTED), False
            except PermissionError as exc:  # the job runs as a user the project's files refuse
                self.error, self.error_in_own_words = permission_message(exc), True
                self.log.write("run", f"error: {self.error}", self.err)
                code, echo_done = int(ExitCode.USAGE), False
            self.log.write("run", f"done: exit {code}", self.err if echo_done else None)
            return code
        finally:
            self.log.close()
