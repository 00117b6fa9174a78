"""What every command shares: the Typer app, the common options, opening the database, and
the one place where errors become exit codes."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import duckdb
import typer

from sender.database import DEFAULT_MEMORY_LIMIT, connect, first_line, require_payload
from sender.errors import known_error
from sender.exit_codes import BACKUP_MEANINGS, COMPACT_MEANINGS, ExitCode, exit_code_table
from sender.file_modes import private_file
from sender.push_summary import error_json
from sender.secret_env import read_secret, scrub
from sender.settings import Secret, database_path

app = typer.Typer(
    name="sender",
    help=(
        "Send the rows of the dbt model line_capi_payload to the LINE Conversion API.\n\n"
        "Example (the hourly job: freshness, dbt build, push):"
        " sender run --export-dir /srv/karte/current"
    ),
    no_args_is_help=True,
    # Markdown: a docstring's wrapped lines are one paragraph and the exit codes a list (Typer's
    # rich mode keeps each source line break, then wraps again)
    rich_markup_mode="markdown",
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
RunLogOpt = Annotated[
    str | None,
    typer.Option(
        "--log-file",
        envvar="LINE_CAPI_RUN_LOG",
        help="sender run's log, where every line of dbt and the sender goes, with a timestamp "
        "(appended). Default: next to the database, named after it (line_capi_run.log for "
        "line_capi.duckdb).",
    ),
]
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
COMPACT_EXIT_CODES_EPILOG = "Exit codes:\n\n" + exit_code_table(COMPACT_MEANINGS)
BACKUP_EXIT_CODES_EPILOG = "Exit codes:\n\n" + exit_code_table(BACKUP_MEANINGS)


class _Flags:
    debug = False
    # set once a --json command has printed its one object (summary or error)
    json_printed = False
    # set once the reader of stdout has closed it (out)
    stdout_closed = False


flags = _Flags()


def _checkout_commit() -> str | None:
    """The commit of the git checkout the sender runs from, or None (no git, not a checkout): a
    development version (0.2.0.dev0) names no commit, and "Unreleased" items differ by commit."""
    import subprocess

    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _print_version(wanted: bool) -> None:
    if wanted:
        from importlib.metadata import PackageNotFoundError, version

        commit = _checkout_commit()
        try:
            print(f"sender {version('line-capi-dbt')}" + (f" (commit {commit})" if commit else ""))
        except PackageNotFoundError:  # a checkout that was never installed
            print("sender (not installed: run make setup)")
        raise typer.Exit()


@app.callback()
def _options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="On an unexpected error, print the traceback (never the token)."
        ),
    ] = False,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the installed version and exit.",
        ),
    ] = False,
) -> None:
    flags.debug = debug


class Failure(typer.Exit):
    """An error already said on stderr as one line; ``message`` is that line (for --json)."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(int(code))
        self.message = message


def die(message: str, code: ExitCode) -> Failure:
    # scrubbed: a token pasted into another setting comes back in that setting's error
    message = scrub(message)
    typer.echo(f"error: {message}", err=True)
    return Failure(message, code)


# The commands with --json: an error before their object still prints one (errors_as_json).
JSON_COMMANDS = ("push", "status", "preview")


def errors_as_json(command):
    """With --json, an error that stops the command before its object (a locked or missing
    database, a bad setting) still prints one JSON object on stdout, for a scheduler that reads
    it: the exit code and the line stderr got."""

    @functools.wraps(command)
    def run(**kwargs) -> None:
        try:
            command(**kwargs)
        except Failure as exc:
            if kwargs.get("json_") and not flags.json_printed:
                out(error_json(exc.exit_code, exc.message))
                flags.json_printed = True
            raise

    return run


def out(text: str) -> None:
    """One line of the command's output on stdout. A reader that closed it early (``sender
    preview | head``) had what it wanted: the rest of the output goes nowhere and the command
    ends with its own exit code, where click's would be 1, the code of events left pending."""
    if flags.stdout_closed:
        return
    try:
        typer.echo(text)
    except BrokenPipeError:
        flags.stdout_closed = True
        # the interpreter's last flush of what is buffered must not fail again at exit
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (open until exit)


def warn(message: str) -> None:
    typer.echo(f"warning: {scrub(message)}", err=True)


def say(line: str) -> None:
    typer.echo(scrub(line), err=True)


def usage_error(exc: Exception) -> None:
    """The option parser's refusal (an unknown option, a bad value) as one line on stderr."""
    message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    where = f"see {ctx.command_path} --help" if ctx is not None else "see sender --help"
    if ctx is not None and ctx.command_path == "sender run" and "No such option" in message:
        # most often one of dbt's (--vars, --select), which go after `--`
        where = f"dbt's options go after --: sender run -- --vars '{{…}}'; {where}"
    typer.echo(scrub(f"error: {message} ({where})"), err=True)


@contextlib.contextmanager
def exits_on_error(database: Path | str | None = None) -> Iterator[None]:
    """Every command's errors: one a user can act on (sender.errors) is one line on stderr and
    its exit code; anything else (a bug) goes on to main()."""
    try:
        yield
    except Exception as exc:
        known = known_error(exc, database=database)
        if known is None:
            raise
        raise die(known[1], known[0]) from None
    except KeyboardInterrupt:
        raise die("interrupted", ExitCode.INTERRUPTED) from None


def secret_option(
    ctx: typer.Context, param: str, env_name: str, value: str | None
) -> Secret | None:
    """The option's value when typed on the command line, else env ``env_name`` or the file
    env ``env_name``_FILE names (sender.secret_env); a bad source is a ConfigError."""
    # by name: Typer 0.29 brings its own copy of click, whose ParameterSource is not click's
    source = ctx.get_parameter_source(param)
    typed = getattr(source, "name", None) == "COMMANDLINE"
    return read_secret(
        env_name,
        option=value if typed else None,
        option_name="--" + param.replace("_", "-"),
        notice=warn,
    )


def open_database(
    database: str,
    *,
    read_only: bool,
    need_payload: bool = True,
    memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
) -> duckdb.DuckDBPyConnection:
    path = database_path(database)
    with exits_on_error():
        con = connect(path, read_only=read_only, memory_limit=memory_limit, notice=warn)
        try:
            if need_payload:
                require_payload(con, path)
        except BaseException:
            con.close()  # an open handle would block the next open of this file
            raise
        return con


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (cron/CI timeouts, systemd) stops like Ctrl-C: the summary and the runs row are
    written. Only the first SIGINT or SIGTERM stops; the process ignores the ones after it until
    it exits: Ctrl-C reaches every process of the terminal's group and `sender run` then stops its
    push as well, and a second interrupt in the middle of stopping cut the clean-up short (the
    ledger's last commit, the summary; exit 70 or killed)."""
    stopping = False

    def handler(signum, frame):  # noqa: ARG001
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    numbers = (signal.SIGTERM, signal.SIGINT)
    try:
        previous = {number: signal.signal(number, handler) for number in numbers}
    except ValueError:  # not in the main thread
        yield
        return
    try:
        yield
    finally:
        for number, before in previous.items():
            signal.signal(number, signal.SIG_IGN if stopping else before)


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
