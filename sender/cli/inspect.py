"""The read-only commands: ``sender status``, ``sender report``, ``sender preview``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sender.build_info import read_build_info
from sender.cli.common import (
    DatabaseOpt,
    EndpointOpt,
    Failure,
    JsonOpt,
    RunLogOpt,
    TagIdOpt,
    app,
    errors_as_json,
    exits_on_error,
    flags,
    open_database,
    out,
    warn,
)
from sender.exit_codes import ExitCode
from sender.preview import first_pending, table_lines
from sender.push_summary import error_json
from sender.report import DEFAULT_BUILDS, render, write_report
from sender.run_history import last_run, other_database_message, run_log_path
from sender.settings import DEFAULT_DATABASE, DEFAULT_ENDPOINT, database_path, dry_run_settings
from sender.status import job_lines, read_status_report


@app.command()
@errors_as_json
def status(
    database: DatabaseOpt = DEFAULT_DATABASE, json_: JsonOpt = False, log_file: RunLogOpt = None
) -> None:
    """Show the last build, its coverage, the last run and the ledger per destination.

    Per destination: the ledger's counts and what is pending.

    Coverage is per LINE event name: conversions in the window, sendable, rejected (by reason),
    and how many sendable events carry each user identifier.

    "pending" without a destination is what the view line_capi_pending lists: the rows pending
    at the destination of the last push.

    The last job comes from sender run's log: give --log-file (or LINE_CAPI_RUN_LOG) as the job
    gives it, when it logs elsewhere than next to the database.

    Example:

        sender status --json
    """
    try:
        con = open_database(database, read_only=True, need_payload=False)
    except Failure as exc:
        if exc.exit_code in (ExitCode.DATABASE_LOCKED, ExitCode.NO_PAYLOAD):
            _show_last_job_without_database(database, exc, json_=json_, log_file=log_file)
        raise
    try:
        with exits_on_error(database):
            path = database_path(database)
            run_log = named_run_log(path, log_file)
            report_ = read_status_report(con, database=str(path), path=path, run_log=run_log)
    finally:
        con.close()
    if json_:
        out(json.dumps(report_.as_dict(), default=str))
        return
    for line in report_.lines():
        out(line)


def named_run_log(database: Path, log_file: str | None) -> Path | None:
    """The run log to read the last job from; a log named that does not exist (a typo, or the
    job logs elsewhere) is a warning, not a silently missing last job, and one that holds
    another database's runs is not read (its last job would pass for this one's)."""
    path = run_log_path(database, log_file)
    named = bool((log_file or "").strip())
    if named and not path.exists():
        warn(f"run log {path} does not exist (--log-file, env LINE_CAPI_RUN_LOG): no last job")
    elif named and (not path.is_file() or last_run(path) is None):
        # a folder, the database, an export file: nothing of a job to read there
        warn(
            f"run log {path} holds no run of sender run (--log-file, env LINE_CAPI_RUN_LOG):"
            " no last job"
        )
        return None
    shared = other_database_message(path, database)
    if shared is not None:
        warn(f"{shared}; no last job")
        return None
    return path


def _show_last_job_without_database(
    database: str, exc: Failure, *, json_: bool, log_file: str | None
) -> None:
    """What the run log still tells when the database cannot be read: while a run holds it
    (every hour, for a while), whether the last job is running and since when; before a first
    run built it, why that run stopped (a token not set, a missing export). The build, coverage
    and ledger wait for the database; the exit code stays, for a script that needs them."""
    path = database_path(database)
    run_log = named_run_log(path, log_file)
    job = last_run(run_log) if run_log is not None else None
    locked = exc.exit_code == ExitCode.DATABASE_LOCKED
    if json_:
        got = json.loads(error_json(exc.exit_code, exc.message))
        got |= {"database": str(path), "last_job": job.as_dict() if job else None}
        out(json.dumps(got, separators=(",", ":")))
        flags.json_printed = True
        return
    if not locked and job is None:  # no database and no run: the error line says it all
        return
    out(f"database  {path} ({'held by another process' if locked else 'does not exist'})")
    for line in job_lines(job):
        out(line)


@app.command()
def report(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="The HTML file to write (replaced; readable by its owner only); - for stdout.",
        ),
    ],
    database: DatabaseOpt = DEFAULT_DATABASE,
    builds: Annotated[
        int,
        typer.Option(min=1, max=10_000, help="Builds to show (and runs per destination)."),
    ] = DEFAULT_BUILDS,
) -> None:
    """Write one self-contained HTML page of coverage, rejections and sends.

    It shows identifier shares over the last builds, rejections by reason, and the sends of
    each run per destination.

    Inline CSS and SVG only (no script, nothing fetched): it opens offline and can be attached
    to an email. Counts, event names, dates and destinations only; never personal data.

    Examples:

        sender report --output coverage.html

        sender report -o /tmp/last-week.html --builds 168
    """
    con = open_database(database, read_only=True, need_payload=False)
    try:
        with exits_on_error(database):
            if str(output) == "-":
                page = render(con, builds=builds)
            else:
                size = write_report(con, output, builds=builds)
    finally:
        con.close()
    if str(output) == "-":  # the page is stdout: the line goes to stderr, when it was all read
        out(page.removesuffix("\n"))
        if not flags.stdout_closed:
            typer.echo(f"wrote - ({len(page.encode()):,} bytes)", err=True)
        return
    typer.echo(f"wrote {output} ({size:,} bytes)")


@app.command()
@errors_as_json
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
    the destination of the last push. The build they come from (when, from which export) is
    the first line on stderr: after a failed build it is still the build before.

    Examples:

        sender preview -n 5

        sender preview --json -n 100 | jq .user
    """
    with exits_on_error():  # as a push or a dry run checks them: a typo is not "all pending"
        where = dry_run_settings(endpoint=endpoint, tag_id=tag_id, channel_id=None)
    endpoint, tag_id = where["endpoint"], where["tag_id"]
    con = open_database(database, read_only=True)
    try:
        with exits_on_error(database):
            rows = first_pending(con, endpoint=endpoint, tag_id=tag_id, limit=limit)
            build = read_build_info(con)
    finally:
        con.close()
    # which build the rows are from: after a failed build, still the one before it (the sample?)
    if build is not None:
        typer.echo(f"build {build.describe()}", err=True)
    lines = [row.payload for row in rows] if json_ else table_lines(rows, width=width)
    for line in lines:
        out(line)
        if flags.stdout_closed:
            break
