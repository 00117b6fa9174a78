"""The ``sender`` command line: parses options, calls the library, prints. Nothing else.

One module per command group: ``common`` (the app, shared options, the database, errors to exit
codes), ``push``, ``inspect`` (status, report, preview), ``run``, ``mock`` (mock-server).
"""

from __future__ import annotations

import importlib
import sys

from sender.cli.common import app, flags, report_crash
from sender.cli.push import json_for_refused_command_line
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
    try:
        app(prog_name="sender")
    except SystemExit as exc:
        owed = json_for_refused_command_line(sys.argv[1:], exc.code)
        if owed:
            print(owed)
        raise
    except Exception as exc:  # a bug: the scheduler sees INTERNAL_ERROR, not a failed send
        report_crash(exc, debug=flags.debug)
        sys.exit(int(ExitCode.INTERNAL_ERROR))
