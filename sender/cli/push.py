"""``sender push``: options in, the push (sender.push) or its dry run, the summary out."""

from __future__ import annotations

import functools
import math
import os
from typing import Annotated

import typer

from sender import alerts, heartbeat
from sender.alert_settings import load_settings
from sender.cli.common import (
    EXIT_CODES_EPILOG,
    JSON_COMMANDS,
    DatabaseOpt,
    EndpointOpt,
    JsonOpt,
    TagIdOpt,
    app,
    die,
    errors_as_json,
    exits_on_error,
    flags,
    open_database,
    out,
    say,
    secret_option,
    sigterm_as_interrupt,
    warn,
)
from sender.database import DEFAULT_MEMORY_LIMIT, memory_limit_problem
from sender.dry_run import dry_run
from sender.exit_codes import ExitCode
from sender.ledger import utc_now
from sender.line_rules import MAX_EVENTS_PER_REQUEST
from sender.progress import Progress
from sender.push import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    PushOptions,
    push,
)
from sender.push_summary import Summary, error_json
from sender.secret_env import scrub
from sender.settings import (
    DEFAULT_DATABASE,
    DEFAULT_ENDPOINT,
    LineTarget,
    database_path,
    dry_run_settings,
)


def _alert_after_push(command):
    """Once the push has ended, however it ended, at most one alert (sender/alerts.py), and the
    heartbeat after a push that exited 0 (sender/heartbeat.py); a dry run stays off the network."""

    @functools.wraps(command)
    def run(**kwargs) -> None:
        if kwargs.get("dry_run_"):
            return command(**kwargs)
        with exits_on_error():
            settings = load_settings(os.environ, notice=warn)
        code = ExitCode.INTERNAL_ERROR
        started = utc_now()  # the alert reads only what this push recorded
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
            alert_lost = alerts.after_push(
                settings,
                database=database_path(kwargs.get("database")),
                endpoint=kwargs.get("endpoint"),
                tag_id=kwargs.get("tag_id"),
                exit_code=code,
                say=say,
                since=started,
            )
            if not kwargs.get("test"):  # a connection check is not the job
                heartbeat.beat(settings.heartbeat, code, say, alert_lost=alert_lost)

    return run


def json_owed(argv: list[str], exit_code: object, message: str | None = None) -> str | None:
    """The JSON object a `--json` command still owes stdout when it printed none: refused by the
    option parser, or stopped by a bug or a path the system refuses (its one line, ``message``,
    is on stderr)."""
    owed = exit_code in (ExitCode.USAGE, ExitCode.INTERNAL_ERROR)
    if not owed or flags.json_printed or "--json" not in argv:
        return None
    # the command is the first word that is not an option (`sender --debug status --json`)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command not in JSON_COMMANDS:
        return None
    if message is not None:
        return error_json(int(exit_code), message)
    if exit_code == ExitCode.INTERNAL_ERROR:
        return error_json(ExitCode.INTERNAL_ERROR, "internal error: see stderr")
    return error_json(
        ExitCode.USAGE, f"an option or argument was refused: see stderr, or sender {command} --help"
    )


# The longest wait any of the timing options may ask for: an hour, the schedule's period. Beyond
# it a value is a typo (1e308 overflowed the retry's sleep; inf waited forever).
MAX_SECONDS = 3600.0


def finite_seconds(value: float) -> float:
    """A number of seconds: ``nan`` passes every range check, so it is refused here."""
    if math.isnan(value):
        raise typer.BadParameter(f"{value} is not a number of seconds")
    return value


def checked_memory_limit(value: str) -> str:
    """--memory-limit / LINE_CAPI_MEMORY_LIMIT as DuckDB will take it: checked as the options
    are read, so that `sender run` refuses it before the build rather than after."""
    reason = memory_limit_problem(value)
    if reason is not None:
        raise typer.BadParameter(
            f"{value!r} is not a memory limit DuckDB accepts ({reason}): give a size such as"
            " 32MB or 1GiB, or a share of the machine's memory such as 10%"
        )
    return value


@app.command("push", epilog=EXIT_CODES_EPILOG)
@errors_as_json  # outermost: a malformed alert setting, refused before the push, is JSON too
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
            envvar="LINE_CAPI_BATCH_SIZE",
            help="Events per request (LINE's maximum is 100,000; bodies stay under 250 MB).",
        ),
    ] = DEFAULT_BATCH_SIZE,
    concurrency: Annotated[
        int,
        typer.Option(
            min=1, max=64, envvar="LINE_CAPI_CONCURRENCY", help="Requests in flight at once."
        ),
    ] = DEFAULT_CONCURRENCY,
    max_retries: Annotated[
        int,
        typer.Option(
            min=0,
            max=100,
            envvar="LINE_CAPI_MAX_RETRIES",
            help="Retries of a request on 408/425/429/5xx, timeouts and dropped connections.",
        ),
    ] = DEFAULT_MAX_RETRIES,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            max=MAX_SECONDS,
            envvar="LINE_CAPI_TIMEOUT",
            callback=finite_seconds,
            help="Seconds to wait for LINE's answer to one request.",
        ),
    ] = DEFAULT_TIMEOUT,
    backoff_base: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=MAX_SECONDS,
            envvar="LINE_CAPI_BACKOFF_BASE",
            callback=finite_seconds,
            help="Retry delay in seconds, doubled each retry; each wait is half to all of it.",
        ),
    ] = DEFAULT_BACKOFF_BASE,
    max_backoff: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=MAX_SECONDS,
            envvar="LINE_CAPI_MAX_BACKOFF",
            callback=finite_seconds,
            help="Longest wait between retries; a longer Retry-After ends the sending, the next run"
            " sends the rest.",
        ),
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
            help="Send with event.test_flag=true (a connection check; not counted as sent; with"
            " --resend --limit 1 it sends one event even when nothing is pending).",
        ),
    ] = False,
    resend: Annotated[
        bool,
        typer.Option(
            help="Ignore the ledger: send every row again (LINE de-duplicates within 30 days;"
            " a row first accepted here more than 29 days ago is left out)."
        ),
    ] = False,
    retry_rejected: Annotated[
        bool,
        typer.Option(
            "--retry-rejected",
            help="Send the events LINE refused here (rejected_by_api) again with the pending"
            " ones: once the model that made them invalid is fixed and rebuilt.",
        ),
    ] = False,
    allow_renamed: Annotated[
        bool,
        typer.Option(
            "--allow-renamed-events",
            help="Send the events of an event name new to this destination whose order ids it"
            " has under another name (held back otherwise: LINE would count the order twice):"
            " two conversion types of one order, on purpose.",
        ),
    ] = False,
    json_: JsonOpt = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only warnings and the summary.")
    ] = False,
    memory_limit: Annotated[
        str,
        typer.Option(
            envvar="LINE_CAPI_MEMORY_LIMIT",
            callback=checked_memory_limit,
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

        sender push --test --resend --limit 5

        sender push --retry-rejected

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
        retry_rejected=retry_rejected,
        allow_renamed=allow_renamed,
    )
    if resend and retry_rejected:
        raise die(
            "--retry-rejected sends the refused events with the pending ones; --resend already"
            " sends every row: give one of them",
            ExitCode.USAGE,
        )
    if dry_run_:
        # what push would refuse before sending, except the token: a dry run sends nothing
        with exits_on_error():
            where = dry_run_settings(endpoint=endpoint, tag_id=tag_id, channel_id=channel_id)
        con = open_database(database, read_only=True, memory_limit=memory_limit)
        try:
            with exits_on_error(database):
                summary = dry_run(con, options, show=show, **where)
        finally:
            con.close()
        for warning in summary.warnings:
            warn(warning)
        if summary.message:
            warn(summary.message)
        _print_summary(summary, json_)
        return
    if show:
        raise die("--show works with --dry-run only", ExitCode.USAGE)
    with exits_on_error():
        token = secret_option(ctx, "access_token", "LINE_ACCESS_TOKEN", access_token)
        target = LineTarget.from_values(
            endpoint=endpoint, tag_id=tag_id, token=token, channel_id=channel_id
        )
    del access_token, token
    con = open_database(database, read_only=False, memory_limit=memory_limit)
    try:
        # an interrupt before sending started (while counting): nothing was sent
        with exits_on_error(database), sigterm_as_interrupt():
            summary = push(con, target, options, Progress(quiet=quiet))
    finally:
        con.close()
    if summary.message:
        message = scrub(summary.message)
        typer.echo(f"error: {message}" if summary.exit_code else message, err=True)
    _print_summary(summary, json_)
    raise typer.Exit(int(summary.exit_code))


def _print_summary(summary: Summary, as_json: bool) -> None:
    if as_json:
        out(scrub(summary.as_json()))
        flags.json_printed = True
        return
    for line in summary.lines():
        out(line)
    note = summary.exit_note()
    if note:
        typer.echo(note, err=True)
