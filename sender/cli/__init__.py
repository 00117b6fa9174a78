"""The ``sender`` command line: parses options, calls the library, prints. Nothing else.

One module per command group: ``common`` (the app, shared options, the database, errors to exit
codes), ``push``, ``inspect`` (status, report, preview), ``run`` (run, compact), ``mock``
(mock-server).
"""

from __future__ import annotations

import contextlib
import importlib
import sys

import typer

from sender.cli.common import app, flags, report_crash, usage_error
from sender.cli.push import json_owed
from sender.errors import path_mistake
from sender.exit_codes import ExitCode
from sender.file_modes import use_private_umask

__all__ = ["app", "main", "report_crash"]

# each module registers its commands, in the order --help lists them
for _module in ("push", "inspect", "run", "mock"):
    importlib.import_module(f"sender.cli.{_module}")


def main() -> None:
    """The console entry: an unexpected exception exits with its own code, as one line."""
    # Everything this process and its children (dbt under `sender run`) create is private.
    use_private_umask()
    # a terminal or cron under a non-UTF-8 locale (EUC-JP, Latin-1) cannot show every character
    # of the help (Rich's bullets) or of a path: a replacement character, never a crash
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):  # not a text file (a test harness)
            stream.reconfigure(errors="replace")
    try:
        sys.exit(_run_app())
    except SystemExit as exc:
        owed = json_owed(sys.argv[1:], exc.code)
        if owed:
            print(owed)
        raise
    except Exception as exc:  # a bug: the scheduler sees INTERNAL_ERROR, not a failed send
        mistake = path_mistake(exc)  # or a path a user gave, which the system refuses
        if mistake is None:
            report_crash(exc, debug=flags.debug)
        else:
            typer.echo(f"error: {mistake}", err=True)
        code = ExitCode.INTERNAL_ERROR if mistake is None else ExitCode.USAGE
        owed = json_owed(sys.argv[1:], code, mistake)
        if owed:
            with contextlib.suppress(OSError, ValueError):  # stdout itself may be what failed
                print(owed)
        sys.exit(int(code))


def _run_app() -> int:
    """The app without Typer's standalone mode, whose refusals of the command line are a framed
    box of five lines: here they are one line on stderr, scrubbed of the token (pasted as an
    argument by mistake, or into another setting's value)."""
    try:
        code = app(prog_name="sender", standalone_mode=False)
    except typer.Abort:  # a Ctrl-C that no command's own handler met (no command prompts)
        typer.echo("error: interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:
        # Typer's own copy of click (0.29) or click's: the parser's errors, by their shape
        exit_code = getattr(exc, "exit_code", None)
        if not (hasattr(exc, "format_message") and isinstance(exit_code, int)):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # `sender` alone: its help
            help_text = exc.format_message()  # empty when Rich has printed it already
            if help_text:
                typer.echo(help_text, err=True)
        else:
            usage_error(exc)
        return exit_code
    return code if isinstance(code, int) else 0
