"""The ``sender`` command line: parses options, calls the library, prints. Nothing else."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated

import duckdb
import typer
from click.core import ParameterSource

from sender import alerts
from sender.build_info import SampleRefused, read_build_info
from sender.coverage import NO_COVERAGE, describe_event, read_coverage
from sender.database import (
    DEFAULT_MEMORY_LIMIT,
    DatabaseError,
    DatabaseLocked,
    NoPayload,
    connect,
    first_line,
    has_ledger,
    require_payload,
)
from sender.destinations import pending_destination
from sender.exit_codes import ExitCode, exit_code_table
from sender.file_modes import private_file, use_private_umask, write_private_text
from sender.ledger import LedgerWriteError, read_status
from sender.pending_rows import pending_sql
from sender.progress import Progress
from sender.push import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    PushOptions,
    Summary,
    dry_run,
    push,
)
from sender.report import DEFAULT_BUILDS, render
from sender.request_body import MAX_EVENTS_PER_REQUEST, PayloadFormatError
from sender.secret_env import read_secret, scrub
from sender.settings import (
    DEFAULT_DATABASE,
    DEFAULT_ENDPOINT,
    ConfigError,
    LineTarget,
    Secret,
    database_path,
    is_loopback_host,
)

app = typer.Typer(
    name="sender",
    help=(
        "Send the rows of the dbt model line_capi_payload to the LINE Conversion API.\n\n"
        "Example (the hourly job: freshness, dbt build, push): sender run --export-dir /data/karte"
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# -- shared options ------------------------------------------------------------------------------
DatabaseOpt = Annotated[
    str,
    typer.Option(
        "--database",
        "-d",
        envvar="LINE_CAPI_DUCKDB",
        help="DuckDB file written by dbt (holds line_capi_payload and the send ledger).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object (for schedulers).")]
TagIdOpt = Annotated[
    str | None,
    typer.Option("--tag-id", envvar="LINE_TAG_ID", help="LINE Tag id (a UUID)."),
]
EndpointOpt = Annotated[
    str,
    typer.Option(
        "--endpoint",
        envvar="LINE_CAPI_ENDPOINT",
        help="API base URL; http:// only to a loopback host (sender mock-server).",
    ),
]

# The exit codes under every command's help that a scheduler runs (one table: sender/exit_codes).
EXIT_CODES_EPILOG = "Exit codes:\n\n" + exit_code_table()

_debug = False


@app.callback()
def _options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="On an unexpected error, print the traceback (never the token)."
        ),
    ] = False,
) -> None:
    global _debug
    _debug = debug


def _die(message: str, code: ExitCode) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(int(code))


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def _secret(ctx: typer.Context, param: str, env_name: str, value: str | None) -> Secret | None:
    """The option's value when typed on the command line, else env ``env_name`` or the file
    env ``env_name``_FILE names (sender.secret_env); a bad source is exit 2."""
    typed = ctx.get_parameter_source(param) is ParameterSource.COMMANDLINE
    try:
        return read_secret(env_name, option=value if typed else None)
    except ConfigError as exc:
        raise _die(str(exc), ExitCode.USAGE) from None


def _open(
    database: str,
    *,
    read_only: bool,
    need_payload: bool = True,
    memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
) -> duckdb.DuckDBPyConnection:
    path = database_path(database)
    try:
        con = connect(path, read_only=read_only, memory_limit=memory_limit, notice=_warn)
        try:
            if need_payload:
                require_payload(con, path)
        except BaseException:
            con.close()  # an open handle would block the next open of this file
            raise
        return con
    except DatabaseLocked as exc:
        raise _die(str(exc), ExitCode.DATABASE_LOCKED) from None
    except NoPayload as exc:
        raise _die(str(exc), ExitCode.NO_PAYLOAD) from None
    except DatabaseError as exc:
        raise _die(str(exc), ExitCode.DATABASE_ERROR) from None


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (cron/CI timeouts) stops like Ctrl-C: the summary and the runs row are written."""

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not in the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _alert_settings() -> alerts.AlertSettings:
    try:
        return alerts.load_settings(os.environ)
    except ConfigError as exc:
        raise _die(str(exc), ExitCode.USAGE) from None


def _say(line: str) -> None:
    typer.echo(line, err=True)


def _alert_after_push(command):
    """Once the push has ended, however it ended, at most one alert (sender/alerts.py); a dry
    run stays off the network."""

    @functools.wraps(command)
    def run(**kwargs) -> None:
        if kwargs.get("dry_run_"):
            return command(**kwargs)
        settings = _alert_settings()
        code = ExitCode.INTERNAL_ERROR
        try:
            command(**kwargs)
            code = ExitCode.OK
        except typer.Exit as exc:
            code = exc.exit_code
            raise
        except KeyboardInterrupt:
            code = ExitCode.INTERRUPTED
            raise
        finally:
            alerts.after_push(
                settings,
                database=database_path(kwargs.get("database")),
                endpoint=kwargs.get("endpoint"),
                tag_id=kwargs.get("tag_id"),
                exit_code=code,
                say=_say,
            )

    return run


# -- push ----------------------------------------------------------------------------------------
@app.command("push", epilog=EXIT_CODES_EPILOG)
@_alert_after_push
def push_command(
    ctx: typer.Context,
    database: DatabaseOpt = DEFAULT_DATABASE,
    tag_id: TagIdOpt = None,
    access_token: Annotated[
        str | None,
        typer.Option(
            "--access-token",
            envvar="LINE_ACCESS_TOKEN",
            show_default=False,
            help="LINE Tag access token. Prefer the environment variable, or LINE_ACCESS_TOKEN_FILE"
            " naming a file that holds it: an option shows in ps.",
        ),
    ] = None,
    channel_id: Annotated[
        str | None,
        typer.Option(
            "--channel-id",
            envvar="LINE_CHANNEL_ID",
            help="LINE Login channel id (digits); needed only when rows carry user.line_uid.",
        ),
    ] = None,
    endpoint: EndpointOpt = DEFAULT_ENDPOINT,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_EVENTS_PER_REQUEST,
            help="Events per request (LINE's maximum is 100,000; bodies stay under 250 MB).",
        ),
    ] = DEFAULT_BATCH_SIZE,
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="Requests in flight at once.")
    ] = DEFAULT_CONCURRENCY,
    max_retries: Annotated[
        int, typer.Option(min=0, max=100, help="Retries of a request on 429/5xx/timeouts.")
    ] = DEFAULT_MAX_RETRIES,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for LINE's answer to one request.")
    ] = DEFAULT_TIMEOUT,
    backoff_base: Annotated[
        float, typer.Option(min=0.0, help="First retry delay in seconds (doubles each retry).")
    ] = DEFAULT_BACKOFF_BASE,
    max_backoff: Annotated[
        float, typer.Option(min=0.0, help="Longest wait between retries, Retry-After included.")
    ] = DEFAULT_MAX_BACKOFF,
    limit: Annotated[
        int | None, typer.Option(min=0, help="Send at most this many pending events.")
    ] = None,
    dry_run_: Annotated[
        bool,
        typer.Option("--dry-run", help="No network, no ledger writes: count events and batches."),
    ] = False,
    show: Annotated[int, typer.Option(min=0, help="With --dry-run: print this many payloads.")] = 0,
    test: Annotated[
        bool,
        typer.Option(
            "--test",
            help="Send with event.test_flag=true (a connection check; not counted as sent).",
        ),
    ] = False,
    resend: Annotated[
        bool, typer.Option(help="Ignore the ledger: send every row again (LINE de-duplicates).")
    ] = False,
    json_: JsonOpt = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only warnings and the summary.")
    ] = False,
    memory_limit: Annotated[
        str,
        typer.Option(
            envvar="LINE_CAPI_MEMORY_LIMIT",
            help="DuckDB memory limit (its cache of the table); memory stays flat below it.",
        ),
    ] = DEFAULT_MEMORY_LIMIT,
) -> None:
    """Send the pending rows of line_capi_payload to LINE and record each outcome.

    Rows go oldest first; each outcome lands in the ledger line_capi_send_log with its
    destination (endpoint and tag id), and rows already accepted, rejected or expired at that
    destination are skipped on the next run. A payload built from the bundled sample is sent to
    a loopback endpoint only.

    Examples:

        dbt build && sender push

        sender push --dry-run --show 3

        sender push --test --limit 5

        LINE_CAPI_ENDPOINT=http://127.0.0.1:8787 sender push --json
    """
    options = PushOptions(
        batch_size=batch_size,
        concurrency=concurrency,
        max_retries=max_retries,
        timeout=timeout,
        backoff_base=backoff_base,
        max_backoff=max_backoff,
        limit=limit,
        test=test,
        resend=resend,
    )
    if dry_run_:
        con = _open(database, read_only=True, memory_limit=memory_limit)
        try:
            summary = dry_run(con, options, show=show, endpoint=endpoint, tag_id=tag_id)
        except PayloadFormatError as exc:
            raise _die(str(exc), ExitCode.NO_PAYLOAD) from None
        finally:
            con.close()
        _print_summary(summary, json_)
        return
    if show:
        raise _die("--show works with --dry-run only", ExitCode.USAGE)
    token = _secret(ctx, "access_token", "LINE_ACCESS_TOKEN", access_token)
    try:
        target = LineTarget.from_values(
            endpoint=endpoint, tag_id=tag_id, token=token, channel_id=channel_id
        )
    except ConfigError as exc:
        raise _die(str(exc), ExitCode.USAGE) from None
    del access_token, token
    con = _open(database, read_only=False, memory_limit=memory_limit)
    progress = Progress(quiet=quiet)
    try:
        with _sigterm_as_interrupt():
            summary = push(con, target, options, progress)
    except ConfigError as exc:
        raise _die(str(exc), ExitCode.USAGE) from None
    except SampleRefused as exc:
        raise _die(str(exc), ExitCode.SAMPLE_DATA_REFUSED) from None
    except (PayloadFormatError, NoPayload) as exc:
        raise _die(str(exc), ExitCode.NO_PAYLOAD) from None
    except (LedgerWriteError, DatabaseError) as exc:
        raise _die(f"database {database}: {exc}", ExitCode.DATABASE_ERROR) from None
    except duckdb.Error as exc:
        raise _die(f"database {database}: {first_line(exc)}", ExitCode.DATABASE_ERROR) from None
    except KeyboardInterrupt:  # before sending started (while counting): nothing was sent
        raise _die("interrupted", ExitCode.INTERRUPTED) from None
    finally:
        con.close()
    if summary.message:
        typer.echo(f"error: {summary.message}" if summary.exit_code else summary.message, err=True)
    _print_summary(summary, json_)
    raise typer.Exit(int(summary.exit_code))


def _print_summary(summary: Summary, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), separators=(",", ":")))
        return
    s = summary
    if s.dry_run:
        for payload in s.shown:
            typer.echo(payload)
        typer.echo(
            f"dry run: {s.pending:,} pending events; would send {s.sent:,} in {s.batches:,} "
            f"requests and record {s.expired:,} as expired"
            + (" (with test_flag)" if s.test else "")
            + "; nothing sent, nothing recorded"
        )
        return
    typer.echo(
        f"pending {s.pending:,}, sent {s.sent:,}, accepted {s.accepted:,}, "
        f"rejected {s.rejected:,}, expired {s.expired:,}, left pending {s.left_pending:,}, "
        f"retried {s.retried:,}, {s.requests:,} requests in {s.elapsed_s:.1f}s, "
        f"{s.events_per_s:,.0f} events/s"
    )
    notes = {
        ExitCode.PENDING_LEFT: "some events are still pending; the next run sends them",
        ExitCode.REJECTED_BY_API: "LINE rejected some events: see line_capi_send_log "
        "where status = 'rejected_by_api'",
    }
    if s.exit_code in notes:
        typer.echo(f"exit {int(s.exit_code)}: {notes[s.exit_code]}", err=True)


# -- status --------------------------------------------------------------------------------------
@app.command()
def status(database: DatabaseOpt = DEFAULT_DATABASE, json_: JsonOpt = False) -> None:
    """Show the last build and its coverage, the last run, and per destination the ledger's
    counts and what is pending.

    Coverage is per LINE event name: conversions in the window, sendable, rejected (by reason),
    and how many sendable events carry each user identifier.

    "pending" without a destination is what the view line_capi_pending lists: the rows pending
    at the destination of the last push.

    Example:

        sender status --json
    """
    con = _open(database, read_only=True, need_payload=False)
    try:
        try:
            require_payload(con, database_path(database))
            has_payload = True
        except NoPayload:
            has_payload = False
        info = read_status(con, has_ledger=has_ledger(con), has_payload=has_payload)
        build = read_build_info(con)
        history = read_coverage(con)
    finally:
        con.close()
    latest = info.latest
    coverage = history.latest if history else None
    if json_:
        typer.echo(
            json.dumps(
                {
                    "database": database,
                    "pending": info.pending,
                    "counts": latest.counts if latest else {},
                    "test_events": latest.test_events if latest else 0,
                    "destinations": [d.as_dict() for d in info.destinations],
                    "build": build.as_dict() if build else None,
                    "last_run": info.last_run,
                    "coverage": coverage.as_dict() if coverage else None,
                },
                default=str,
            )
        )
        return
    typer.echo(f"database  {database}")
    if build is None:
        typer.echo("build     none finished (no line_capi_build_info)")
    else:
        sample = " (the bundled sample)" if build.is_sample else ""
        typer.echo(
            f"build     {build.built_at}Z from {build.export_location}{sample}:"
            f" {build.payload_rows:,} payload rows"
        )
    if coverage is None:
        typer.echo(f"coverage  {NO_COVERAGE}")
    else:
        typer.echo(
            f"coverage  build {coverage.invocation_id} built {coverage.built_at}Z,"
            f" as of {coverage.as_of}Z"
        )
        for event in coverage.events.values():
            for line in describe_event(event):
                typer.echo(f"          {line}")
    run = info.last_run
    if run is None:
        typer.echo("last run  none")
    else:
        finished = run["finished_at"] or "never (killed, or still running)"
        typer.echo(f"last run  {run['run_id']}  started {run['started_at']}  finished {finished}")
        if run["outcome"] is not None:
            typer.echo(
                f"          outcome {run['outcome']} (exit {run['exit_code']}): "
                f"pending {run['pending']:,}, accepted {run['accepted']:,}, "
                f"rejected {run['rejected']:,}, expired {run['expired']:,}, "
                f"left pending {run['left_pending']:,}, retried {run['retried']:,}"
            )
    for d in info.destinations:
        mark = " (last push)" if d.destination_id == info.latest_destination_id else ""
        counts = ", ".join(f"{k} {v:,}" for k, v in d.counts.items())
        pending = f"{d.pending:,}" if d.pending is not None else "?"
        typer.echo(f"ledger    {d.endpoint} tag {d.tag_id}{mark}")
        typer.echo(f"          {counts}, pending {pending} (test events {d.test_events:,})")
    if not info.destinations:
        typer.echo("ledger    nothing sent yet")
    typer.echo(
        "pending   "
        + (
            f"{info.pending:,}"
            if info.pending is not None
            else "? (no line_capi_payload: run dbt build)"
        )
    )


# -- report --------------------------------------------------------------------------------------
@app.command()
def report(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="The HTML file to write (replaced; readable by its owner only).",
        ),
    ],
    database: DatabaseOpt = DEFAULT_DATABASE,
    builds: Annotated[
        int,
        typer.Option(min=1, max=10_000, help="Builds to show (and runs per destination)."),
    ] = DEFAULT_BUILDS,
) -> None:
    """Write one self-contained HTML page: identifier shares over the last builds, rejections
    by reason, and the sends of each run per destination.

    Inline CSS and SVG only (no script, nothing fetched): it opens offline and can be attached
    to an email. Counts, event names, dates and destinations only; never personal data.

    Examples:

        sender report --output coverage.html

        sender report -o /tmp/last-week.html --builds 168
    """
    con = _open(database, read_only=True, need_payload=False)
    try:
        page = render(con, builds=builds)
    finally:
        con.close()
    try:
        write_private_text(output, page)
    except OSError as exc:
        raise _die(f"cannot write {output}: {exc.strerror}", ExitCode.USAGE) from None
    typer.echo(f"wrote {output} ({len(page.encode()):,} bytes)")


# -- preview -------------------------------------------------------------------------------------
@app.command()
def preview(
    database: DatabaseOpt = DEFAULT_DATABASE,
    tag_id: TagIdOpt = None,
    endpoint: EndpointOpt = DEFAULT_ENDPOINT,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Rows to show.")] = 20,
    width: Annotated[int, typer.Option(min=20, help="Cut payloads to this many characters.")] = 100,
    json_: Annotated[
        bool, typer.Option("--json", help="Print the payloads whole, one JSON object a line.")
    ] = False,
) -> None:
    """Show the first pending payloads (oldest first), as a table or as JSON lines.

    Pending at the destination LINE_TAG_ID at LINE_CAPI_ENDPOINT when a tag id is set, else at
    the destination of the last push.

    Examples:

        sender preview -n 5

        sender preview --json -n 100 | jq .user
    """
    con = _open(database, read_only=True)
    try:
        destination = None
        if has_ledger(con):
            destination = pending_destination(con, endpoint=endpoint, tag_id=tag_id)
        sql = pending_sql(
            destination_id=destination,
            columns="event_timestamp, event_name, deduplication_key, has_line_uid, payload",
        )
        rows = con.execute(
            f"select * from ({sql}) order by event_timestamp, deduplication_key limit {int(limit)}"  # noqa: S608
        ).fetchall()
    finally:
        con.close()
    if json_:
        for row in rows:
            typer.echo(row[4])
        return
    if not rows:
        typer.echo("nothing pending")
        return
    typer.echo(
        f"{'event time (UTC)':<20} {'event_name':<20} {'deduplication_key':<24} uid  payload"
    )
    for ts, name, key, has_uid, payload in rows:
        when = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        text = payload if len(payload) <= width else payload[: width - 1] + "…"
        typer.echo(f"{when:<20} {name:<20} {key:<24} {'yes' if has_uid else 'no ':<4} {text}")


# -- run -----------------------------------------------------------------------------------------
@app.command(
    "run",
    epilog=EXIT_CODES_EPILOG,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
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
        Path | None,
        typer.Option(
            "--project-dir",
            envvar="LINE_CAPI_PROJECT_DIR",
            help="Folder of dbt_project.yml. Default: the current folder if it has one, else "
            "the checkout this sender is installed from.",
        ),
    ] = None,
    log_file: Annotated[
        Path | None,
        typer.Option(
            "--log-file",
            envvar="LINE_CAPI_RUN_LOG",
            help="Where every line of dbt and the sender goes, with a timestamp (appended). "
            "Default: line_capi_run.log next to the database.",
        ),
    ] = None,
) -> None:
    """The hourly job: lock, dbt source freshness, dbt build, sender push.

    Arguments after -- go to every dbt command (--vars, --target, --profiles-dir, ...). The
    push reads LINE_TAG_ID, LINE_ACCESS_TOKEN (or LINE_ACCESS_TOKEN_FILE), LINE_CHANNEL_ID and
    LINE_CAPI_ENDPOINT. Relative paths are relative to the current folder. With
    LINE_CAPI_ALERT_WEBHOOK set, a run that needs a person posts one message there
    (docs/monitoring.md).

    Examples:

        KARTE_EXPORT_DIR=/data/karte/latest sender run

        sender run --export-dir /data/karte/latest -- --vars '{lookback_hours: 168}'
    """
    from sender.scheduled_run import (
        DEFAULT_LOG_NAME,
        RunConfig,
        RunLog,
        ScheduledRun,
        default_project_dir,
        find_dbt,
    )

    alert_settings = _alert_settings()
    try:  # a token file that cannot be read stops the run before the build, not after
        read_secret("LINE_ACCESS_TOKEN")
    except ConfigError as exc:
        raise _die(str(exc), ExitCode.USAGE) from None
    project = (project_dir or default_project_dir()).resolve()
    if not (project / "dbt_project.yml").is_file():
        raise _die(
            f"{project} has no dbt_project.yml: pass --project-dir or set LINE_CAPI_PROJECT_DIR",
            ExitCode.USAGE,
        )
    dbt = find_dbt()
    if dbt is None:
        raise _die(
            f"dbt is neither next to {sys.executable} nor on PATH: install the project "
            "(pip install -e .)",
            ExitCode.USAGE,
        )
    db = database_path(database).resolve()
    config = RunConfig(
        project_dir=project,
        database=db,
        export_dir=Path(export_dir.strip()).resolve() if (export_dir or "").strip() else None,
        log_file=(log_file or db.with_name(DEFAULT_LOG_NAME)).resolve(),
        dbt=dbt,
        dbt_args=tuple(ctx.args),
        env=dict(os.environ),
    )
    scheduled = ScheduledRun(config)
    try:
        with _sigterm_as_interrupt():
            code = scheduled.run()
    except Exception as exc:  # a bug in the run itself: its traceback goes to the log
        report_crash(exc, debug=_debug, log=config.log_file)
        code = int(ExitCode.INTERNAL_ERROR)

    def say(message: str) -> None:
        log = RunLog(config.log_file)
        try:
            log.write("run", message, sys.stderr)
        finally:
            log.close()

    alerts.after_run(alert_settings, database=db, env=config.env, exit_code=code, say=say)
    raise typer.Exit(code)


# -- mock-server ---------------------------------------------------------------------------------
@app.command("mock-server")
def mock_server_command(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port).")] = 8787,
    host: Annotated[str, typer.Option(help="Loopback address to bind.")] = "127.0.0.1",
    access_token: Annotated[
        str | None,
        typer.Option(
            "--access-token",
            envvar="LINE_ACCESS_TOKEN",
            show_default=False,
            help="Token the server expects (401 otherwise); also from LINE_ACCESS_TOKEN_FILE."
            " Default: 'mock-token'.",
        ),
    ] = None,
    tag_id: Annotated[
        str | None,
        typer.Option(
            "--tag-id", envvar="LINE_TAG_ID", help="Only this tag id (default: any UUID)."
        ),
    ] = None,
    delay: Annotated[float, typer.Option(min=0.0, help="Seconds added to every answer.")] = 0.0,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            help="Inject faults, in order: KIND[:COUNT], KIND one of 429, 500 (after keeping half "
            "the batch), 503, slow, drop, 401. Repeatable.",
        ),
    ] = None,
    chaos: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Share of requests answered by a random 429/500/503/drop."
        ),
    ] = 0.0,
    retry_after: Annotated[
        float, typer.Option(min=0.0, help="Retry-After seconds sent with injected 429/503.")
    ] = 1.0,
    poison: Annotated[
        list[str] | None,
        typer.Option(help="A deduplication_key whose requests always get 400. Repeatable."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per request.")] = False,
) -> None:
    """Run a local LINE-compatible Conversion API server to rehearse a run end to end.

    It checks what LINE checks and answers 202/400/401 like LINE; faults can be injected.
    Counters: GET /_mock/stats. Stop with Ctrl-C.

    Example:

        sender mock-server --port 8787 &
        LINE_CAPI_ENDPOINT=http://127.0.0.1:8787 sender push && sender status
    """
    from sender.mock_server import FAULT_KINDS, MockLineServer

    if not is_loopback_host(host):
        raise _die(
            f"--host {host} is not a loopback address; the mock server stays local", ExitCode.USAGE
        )
    expected = _secret(ctx, "access_token", "LINE_ACCESS_TOKEN", access_token)
    token = expected.reveal() if expected else "mock-token"
    del access_token, expected

    def log(message: str) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
        typer.echo(f"{stamp} mock-server: {message}", err=True)

    try:
        server = MockLineServer(
            host=host,
            port=port,
            token=token,
            tag_id=tag_id,
            delay=delay,
            chaos=chaos,
            log=None if quiet else log,
        )
    except OSError as exc:
        raise _die(f"cannot listen on {host}:{port}: {exc.strerror}", ExitCode.USAGE) from None
    for spec in fault or []:
        kind, _, count = spec.partition(":")
        if kind not in FAULT_KINDS or (count and not count.isdigit()):
            server.httpd.server_close()
            raise _die(
                f"--fault {spec!r}: use KIND[:COUNT], KIND one of {', '.join(FAULT_KINDS)}",
                ExitCode.USAGE,
            )
        server.inject(kind, int(count or 1), retry_after=retry_after)
    if poison:
        server.poison(*poison)
    tag_note = tag_id or "any UUID"
    log(f"listening on {server.url} (tag id: {tag_note}); stats at {server.url}/_mock/stats")
    try:
        with _sigterm_as_interrupt():
            server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        log(f"stopped: {json.dumps(server.stats())}")


def report_crash(exc: BaseException, *, debug: bool, log: Path | None = None) -> None:
    """One line on stderr; the traceback (no locals) with --debug, or in ``log``."""
    text = scrub("".join(traceback.format_exception(exc)))
    if log is not None:
        with private_file(log, "a") as f:
            f.write(text)
    if debug:
        sys.stderr.write(text)
    where = f"; the traceback is in {log}" if log else ""
    if not log and not debug:
        where = "; run with --debug for the traceback"
    message = scrub(f"{type(exc).__name__}: {first_line(exc)}")
    typer.echo(f"error: internal error ({message}){where}", err=True)


def main() -> None:
    """The console entry: an unexpected exception exits with its own code, as one line."""
    # Everything this process and its children (dbt under `sender run`) create is private.
    use_private_umask()
    try:
        app(prog_name="sender")
    except Exception as exc:  # a bug: the scheduler sees INTERNAL_ERROR, not a failed send
        report_crash(exc, debug=_debug)
        sys.exit(int(ExitCode.INTERNAL_ERROR))


if __name__ == "__main__":  # pragma: no cover
    main()
