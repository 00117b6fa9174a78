"""``sender run``: the hourly job (sender.scheduled_run), its options and its alert; and
``sender compact`` and ``sender backup``, the database's upkeep between two runs
(sender.compaction)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from sender import alerts, heartbeat
from sender.alert_settings import AlertSettings, load_settings
from sender.build_info import (
    SAMPLE_MARKER,
    check_sample_database,
    check_sample_destination,
    holds_sample_marker,
)
from sender.cli.common import (
    BACKUP_EXIT_CODES_EPILOG,
    COMPACT_EXIT_CODES_EPILOG,
    EXIT_CODES_EPILOG,
    DatabaseOpt,
    Failure,
    RunLogOpt,
    app,
    die,
    exits_on_error,
    flags,
    out,
    report_crash,
    sigterm_as_interrupt,
    warn,
)
from sender.compaction import backup, compact
from sender.database import check_is_duckdb_file, database_name_problem
from sender.errors import RunError, path_mistake
from sender.exit_codes import ExitCode
from sender.ledger import utc_now
from sender.run_history import SETTINGS_STOP_START, other_database_message, run_log_path
from sender.run_log import RunLog
from sender.scheduled_run import ScheduledRun, run_config
from sender.secret_env import read_secret
from sender.settings import DEFAULT_DATABASE, ConfigError, database_path, target_from_env


def check_push_options_from_env() -> None:
    """The push's tuning from the environment (LINE_CAPI_BATCH_SIZE, ...), checked by the push
    command's own option parser, so that a bad value stops the run before the build."""
    push = typer.main.get_command(app).commands["push"]
    try:
        push.make_context("push", [])
    except typer.BadParameter as exc:
        raise ConfigError(" ".join(exc.format_message().split())) from None


@app.command(
    "run",
    epilog=EXIT_CODES_EPILOG,
    context_settings={"allow_extra_args": True},
)
def run_command(
    ctx: typer.Context,
    export_dir: Annotated[
        str | None,
        typer.Option(
            "--export-dir",
            envvar="KARTE_EXPORT_DIR",
            help="Folder of the KARTE export files (the sample only for rehearsals).",
        ),
    ] = None,
    database: DatabaseOpt = DEFAULT_DATABASE,
    project_dir: Annotated[
        str | None,
        typer.Option(
            "--project-dir",
            envvar="LINE_CAPI_PROJECT_DIR",
            help="Folder of dbt_project.yml. Default: the current folder if it has one, else "
            "the checkout this sender is installed from.",
        ),
    ] = None,
    log_file: RunLogOpt = None,
) -> None:
    """The hourly job: lock, dbt source freshness, dbt build, sender push.

    Arguments after -- go to every dbt command (--vars, --target, --profiles-dir, ...);
    several --vars are merged into one, each var keeping its last value. The
    push reads LINE_TAG_ID, LINE_ACCESS_TOKEN (or LINE_ACCESS_TOKEN_FILE), LINE_CHANNEL_ID and
    LINE_CAPI_ENDPOINT. Relative paths are relative to the current folder. With
    LINE_CAPI_ALERT_WEBHOOK set, a run that needs a person posts one message there; with
    LINE_CAPI_HEARTBEAT_URL set, a run that exits 0 pings that monitor (docs/monitoring.md).

    Examples:

        KARTE_EXPORT_DIR=/srv/karte/current sender run

        sender run --export-dir /srv/karte/current -- --vars '{lookback_hours: 168}'
    """
    try:
        with exits_on_error():
            alert_settings = load_settings(os.environ, notice=warn)
    except Failure as failure:  # logged for sender status; not alerted: the alert is what is wrong
        stopped_by_settings(failure, AlertSettings(), database=database, log_file=log_file)
        raise
    rehearsal = False
    try:
        with exits_on_error():
            # the push's settings, checked as the push checks them: a mistake stops the run
            # before the build, not after it
            token = read_secret("LINE_ACCESS_TOKEN", notice=warn)
            target = target_from_env(os.environ, token)
            check_push_options_from_env()
            config = run_config(
                database=database_path(database),
                export_dir=export_dir,
                project_dir=project_dir,
                log_file=log_file,
                dbt_args=tuple(ctx.args),
                env=dict(os.environ),
            )
            if (named := database_name_problem(database_path(database))) is not None:
                raise ConfigError(named)
            if config.database.exists():  # dbt would fail on it after the freshness check
                check_is_duckdb_file(config.database)
            elif not config.database.parent.is_dir():
                # a typo (date/ for data/) or a ~ no shell expanded: the run would create the
                # folder for its log and lock, and build a second, empty ledger there
                raise ConfigError(
                    f"the folder of the database {config.database} does not exist: create it,"
                    " or fix LINE_CAPI_DUCKDB (or --database)"
                )
            if config.export_dir is not None and holds_sample_marker(config.export_dir):
                # the push would refuse it after the build; say so before the build
                where = (
                    f"export {config.export_dir} is the bundled sample (it holds {SAMPLE_MARKER})"
                )
                check_sample_destination(where, target.endpoint)
                # a rehearsal sent to sender mock-server (make demo) that a real job's database
                # refuses is no run of that job: neither its run log (`sender status`, the
                # job's next "resolved") nor its alert hears of it, the console does
                rehearsal = True
                check_sample_database(where, config.database)
                rehearsal = False
            shared = other_database_message(config.log_file, config.database)
            if shared is not None:  # its alerts and `status` would count the other's runs
                raise ConfigError(shared)
            job = ScheduledRun(config)  # opens the run log: exit 2 if it cannot be written (exit 10
            # for the default one, next to the database: that folder is the database's)
    except Failure as failure:
        if not rehearsal:
            stopped_by_settings(failure, alert_settings, database=database, log_file=log_file)
        raise
    # the alert reads only what this job's push and build recorded (by the ledger's clock, which
    # is this machine's: a clock stepped back by more than the build takes would hide the push)
    started = utc_now()

    def say(message: str) -> None:
        log = RunLog(config.log_file, rotate=False)
        try:
            log.write("run", message, sys.stderr)
        finally:
            log.close()

    try:
        with sigterm_as_interrupt():
            code = job.run()
    except Exception as exc:  # a bug in the run itself: its traceback goes to the log
        mistake = path_mistake(exc)  # or a path the system refuses: the user's to fix
        if mistake is not None:
            typer.echo(f"error: {mistake}", err=True)
            code = int(ExitCode.USAGE)
        else:
            report_crash(exc, debug=flags.debug, log=config.log_file)
            code = int(ExitCode.INTERNAL_ERROR)
        # the run's end, as every run's: `sender status` and the alerts' streaks read it (a log
        # that refused the run's own lines refuses it too)
        with contextlib.suppress(Exception):
            log = RunLog(config.log_file, rotate=False)
            try:
                log.write("run", f"done: exit {code}", None)
            finally:
                log.close()

    alert_lost = alerts.after_run(
        alert_settings,
        database=config.database,
        env=config.env,
        exit_code=code,
        say=say,
        since=started,
        pushed=job.pushing,
        built=job.built,
        run_log=config.log_file,
        error=job.error if job.error_in_own_words else None,
    )
    heartbeat.beat(alert_settings.heartbeat, code, say, alert_lost=alert_lost)
    raise typer.Exit(code)


def stopped_by_settings(
    failure: Failure, settings: AlertSettings, *, database: str, log_file: str | None
) -> None:
    """A run its settings stop before it starts (a token file it cannot read, no LINE_TAG_ID)
    is a run all the same: under cron or systemd nobody reads its stderr, so it leaves its lines
    in the run log, where ``sender status`` reads the last run, and it alerts."""
    try:
        path = database_path(database)
        log_path = run_log_path(path, log_file)
        beside = log_path == run_log_path(path, None)
        if beside and (
            database_name_problem(path)
            or not path.parent.is_dir()
            or (path.exists() and not path.is_file())
        ):
            # the default log goes beside the database: not into /dev for -d /dev/null, nor
            # into a folder of a mistyped path that it would create, nor beside a name in quotes
            raise ConfigError(f"no log beside database {path}")
        if other_database_message(log_path, path) is not None:  # another site's log: left alone
            raise ConfigError(f"run log {log_path} is another database's")
        log = RunLog(log_path)
    except ConfigError:  # the log itself is what is wrong (or the database path): stderr only
        path, log_path, log = None, None, None
    if log is not None:
        try:
            log.write("run", f"{SETTINGS_STOP_START}, before the lock and the build")
            log.write("run", f"error: {failure.message}")
            log.write("run", f"done: exit {int(failure.exit_code)}")
        finally:
            log.close()

    def say(message: str) -> None:
        if log_path is None:
            typer.echo(message, err=True)
            return
        # into the run log too, after the run's end: a lost alert's findings are read back from
        # there and posted by the next run (sender.alerts.carried_findings)
        try:
            said = RunLog(log_path, rotate=False)
        except ConfigError:  # written a moment ago, refused now: the console still gets it
            typer.echo(message, err=True)
            return
        try:
            said.write("run", message, sys.stderr)
        finally:
            said.close()

    alerts.after_run(
        settings,
        database=path or Path(DEFAULT_DATABASE),
        env=dict(os.environ),
        exit_code=int(failure.exit_code),
        say=say,
        since=utc_now(),  # stopped before the push and the build: nothing of the ledger's
        run_log=log_path,
        error=failure.message,
    )


@app.command("compact", epilog=COMPACT_EXIT_CODES_EPILOG)
def compact_command(database: DatabaseOpt = DEFAULT_DATABASE) -> None:
    """Write the database afresh, giving back the space of what it no longer holds.

    The file keeps its largest size (after a catch-up over a long window, that of its tables):
    run this between two scheduled runs. Every table and view is copied into a new file, each
    table's rows compared, and the new file moved over the old one. A sender run starting
    meanwhile exits 13; a push or dbt build holding the file makes this exit 5.

    Example:

        sender compact -d data/line_capi.duckdb
    """
    path = database_path(database)
    with exits_on_error(path), sigterm_as_interrupt():
        try:
            done = compact(path)
        except RunError as exc:
            raise die(str(exc), exc.code) from None
    out(done.describe(path))


@app.command("backup", epilog=BACKUP_EXIT_CODES_EPILOG)
def backup_command(
    dest: Annotated[
        Path,
        typer.Argument(
            help="A new file, or a folder: each backup then gets a name of its own"
            " (line_capi-20261207T031500Z.duckdb).",
            show_default=False,
        ),
    ],
    database: DatabaseOpt = DEFAULT_DATABASE,
) -> None:
    """Copy the database (the send ledger, the coverage history, the last build) to a new file.

    Run it between two scheduled runs, for instance daily at :10: it holds the run lock (a sender
    run starting meanwhile exits 13), and a push or dbt build holding the file makes it exit 5.
    Every table and view is copied and each table's rows compared; the copy is private (0600).
    Restoring is copying it back in place of the database between runs (docs/operations.md).

    Example:

        sender backup -d data/line_capi.duckdb /srv/backup/line-capi/
    """
    path = database_path(database)
    with exits_on_error(path), sigterm_as_interrupt():
        try:
            done = backup(path, dest)
        except RunError as exc:
            raise die(str(exc), exc.code) from None
    out(done.describe(path))
