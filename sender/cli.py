"""The ``sender`` command line: parses options, calls the library, prints. Nothing else."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import sys
from typing import Annotated

import duckdb
import typer

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
from sender.exit_codes import ExitCode
from sender.ledger import LedgerWriteError, read_status
from sender.pending_rows import count_pending, pending_sql
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
from sender.request_body import MAX_EVENTS_PER_REQUEST, PayloadFormatError
from sender.settings import (
    DEFAULT_DATABASE,
    DEFAULT_ENDPOINT,
    ConfigError,
    LineTarget,
    database_path,
    is_loopback_host,
)

app = typer.Typer(
    name="sender",
    help=(
        "Send the rows of the dbt model line_capi_payload to the LINE Conversion API.\n\n"
        "Example (hourly job): dbt build && sender push"
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


def _die(message: str, code: ExitCode) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(int(code))


def _open(
    database: str,
    *,
    read_only: bool,
    need_payload: bool = True,
    memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
) -> duckdb.DuckDBPyConnection:
    path = database_path(database)
    try:
        con = connect(path, read_only=read_only, memory_limit=memory_limit)
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
        raise _die(str(exc), ExitCode.DATABASE_LOCKED) from None


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


# -- push ----------------------------------------------------------------------------------------
@app.command("push")
def push_command(
    database: DatabaseOpt = DEFAULT_DATABASE,
    tag_id: Annotated[
        str | None,
        typer.Option("--tag-id", envvar="LINE_TAG_ID", help="LINE Tag id (a UUID)."),
    ] = None,
    access_token: Annotated[
        str | None,
        typer.Option(
            "--access-token",
            envvar="LINE_ACCESS_TOKEN",
            show_default=False,
            help="LINE Tag access token. Prefer the environment variable: an option shows in ps.",
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
    endpoint: Annotated[
        str,
        typer.Option(
            "--endpoint",
            envvar="LINE_CAPI_ENDPOINT",
            help="API base URL; http:// only to a loopback host (sender mock-server).",
        ),
    ] = DEFAULT_ENDPOINT,
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

    Rows go oldest first; each outcome lands in the ledger line_capi_send_log, and rows already
    accepted, rejected or expired are skipped on the next run.

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
            summary = dry_run(con, options, show=show)
        except PayloadFormatError as exc:
            raise _die(str(exc), ExitCode.NO_PAYLOAD) from None
        finally:
            con.close()
        _print_summary(summary, json_)
        return
    if show:
        raise _die("--show works with --dry-run only", ExitCode.USAGE)
    try:
        target = LineTarget.from_values(
            endpoint=endpoint, tag_id=tag_id, token=access_token, channel_id=channel_id
        )
    except ConfigError as exc:
        raise _die(str(exc), ExitCode.USAGE) from None
    del access_token
    con = _open(database, read_only=False, memory_limit=memory_limit)
    progress = Progress(quiet=quiet)
    try:
        with _sigterm_as_interrupt():
            summary = push(con, target, options, progress)
    except ConfigError as exc:
        raise _die(str(exc), ExitCode.USAGE) from None
    except PayloadFormatError as exc:
        raise _die(str(exc), ExitCode.NO_PAYLOAD) from None
    except LedgerWriteError as exc:
        raise _die(f"database {database}: {exc}", ExitCode.DATABASE_LOCKED) from None
    except duckdb.Error as exc:
        raise _die(f"database {database}: {first_line(exc)}", ExitCode.DATABASE_LOCKED) from None
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
    """Show the last run, the ledger's counts by status and how many rows are pending.

    Example:

        sender status --json
    """
    con = _open(database, read_only=True, need_payload=False)
    try:
        ledger = has_ledger(con)
        try:
            require_payload(con, database_path(database))
            pending = count_pending(con, use_ledger=ledger)
        except NoPayload:
            pending = None
        info = read_status(con, has_ledger=ledger, pending=pending)
    finally:
        con.close()
    if json_:
        typer.echo(
            json.dumps(
                {
                    "database": database,
                    "pending": info.pending,
                    "counts": info.counts,
                    "test_events": info.test_events,
                    "last_run": info.last_run,
                },
                default=str,
            )
        )
        return
    typer.echo(f"database  {database}")
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
    counts = ", ".join(f"{k} {v:,}" for k, v in info.counts.items())
    typer.echo(f"ledger    {counts} (test events {info.test_events:,})")
    typer.echo(
        "pending   "
        + (
            f"{info.pending:,}"
            if info.pending is not None
            else "? (no line_capi_payload: run dbt build)"
        )
    )


# -- preview -------------------------------------------------------------------------------------
@app.command()
def preview(
    database: DatabaseOpt = DEFAULT_DATABASE,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Rows to show.")] = 20,
    width: Annotated[int, typer.Option(min=20, help="Cut payloads to this many characters.")] = 100,
    json_: Annotated[
        bool, typer.Option("--json", help="Print the payloads whole, one JSON object a line.")
    ] = False,
) -> None:
    """Show the first pending payloads (oldest first), as a table or as JSON lines.

    Examples:

        sender preview -n 5

        sender preview --json -n 100 | jq .user
    """
    con = _open(database, read_only=True)
    try:
        sql = pending_sql(
            use_ledger=has_ledger(con),
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


# -- mock-server ---------------------------------------------------------------------------------
@app.command("mock-server")
def mock_server_command(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port).")] = 8787,
    host: Annotated[str, typer.Option(help="Loopback address to bind.")] = "127.0.0.1",
    access_token: Annotated[
        str | None,
        typer.Option(
            "--access-token",
            envvar="LINE_ACCESS_TOKEN",
            show_default=False,
            help="Token the server expects (401 otherwise). Default: 'mock-token'.",
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
    token = access_token or "mock-token"
    del access_token

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


def main() -> None:  # pragma: no cover - console entry for environments without the script
    app(prog_name="sender")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
