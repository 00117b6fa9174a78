"""What dbt's console lines mean to ``sender run``: the one line that says why a dbt command
failed (``dbt_failure``, with its exit code), the export's warnings, the engine dbt runs on.

DuckDB's CSV errors name a file, not what is wrong with it: the hints here say it, once. The
rows that such an error quotes may be customers' data: ``QuotedRowFilter`` leaves them out of
the run log and the console, and ``hide_quoted_rows`` out of the error itself, before dbt prints
or stores it (the profile's plugin, sender/dbt_private_files.py).
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from sender import build_memory
from sender.database import is_lock_error, locked
from sender.errors import RunError
from sender.exit_codes import ExitCode

# dbt's console lines: colour codes and an HH:MM:SS prefix
_DBT_PREFIX = re.compile(r"^(?:\x1b\[[0-9;]*m)*(?:\d\d:\d\d:\d\d\s+)?")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


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
# left out already (by the profile's plugin, in dbt's process): kept as it is
_QUOTED_ROW = re.compile(r"(Original Line: )(?!\(not shown: )(.+)$")
# A quote left open runs the row on over the lines that follow (dozens of other customers'
# rows) up to the error's description: its known wordings, shown; DuckDB's "Possible fixes:" or
# its list of options ends the quoted rows too. Not a blank line: a quoted value may hold one.
_CSV_PROBLEM = re.compile(
    r"^\s*(Value with unterminated quote found|Expected Number of Columns: \d+ Found: \d+"
    r"|Invalid unicode|Maximum line size of \d+ bytes exceeded)"
)
# ... and so does the line that says what the profile's plugin left out (dbt_private_files)
_AFTER_QUOTED_ROW = re.compile(r"^\s*(Possible fixes:|file = |\(not shown: )")


def without_quoted_row(text: str) -> str:
    """``text`` without the export row a DuckDB error quotes, which may be a customer's data."""
    return _QUOTED_ROW.sub(
        lambda m: (
            f"{m[1]}(not shown: {len(m[2])} characters of the export, which may be a"
            " customer's data; the line number above says which row of the file)"
        ),
        text,
    )


class QuotedRowFilter:
    """One process's output lines, without the export rows a DuckDB error quotes: the row on
    the ``Original Line:`` line, and every line after it up to the error's description (a
    value whose quote is left open runs the row on over the file's next rows)."""

    def __init__(self) -> None:
        self._in_row = False
        self._hidden_lines = 0
        self._hidden_characters = 0

    def __call__(self, text: str) -> list[str]:
        """The lines to keep for ``text``: itself, made safe; none while it is part of a
        quoted row; or a line saying what was left out, then ``text``, at the row's end."""
        if _QUOTED_ROW.search(text) or text.rstrip().endswith("Original Line:"):
            self._in_row, self._hidden_lines, self._hidden_characters = True, 0, 0
            return [without_quoted_row(text)]
        if not self._in_row:
            return [text]
        if not (_CSV_PROBLEM.match(text) or _AFTER_QUOTED_ROW.match(text)):
            self._hidden_lines += 1
            self._hidden_characters += len(text)
            return []
        return [*self.finish(), text]

    def finish(self) -> list[str]:
        """At the end of the quoted rows, or of the output: the line saying what was left out."""
        hidden, self._in_row = self._hidden_lines, False
        self._hidden_lines = 0
        if not hidden:
            return []
        return [
            f"(not shown: {hidden} more line{'s' * (hidden != 1)} of the export,"
            f" {self._hidden_characters} characters: a quoted value left open runs on over the"
            " rows after it)"
        ]


def hide_quoted_rows(text: str) -> str:
    """A whole message (lines) without the export rows a DuckDB error quotes in it."""
    rows = QuotedRowFilter()
    kept = [line for part in text.split("\n") for line in rows(part)]
    return "\n".join([*kept, *rows.finish()])


# rows ending in CRLF and in LF in one file (a row added with `echo >>` to a copy of the sample,
# which is saved with CRLF): DuckDB's sniffer finds no dialect and its message does not say why
_SNIFFED_FILE = re.compile(r'Error when sniffing file "([^"]+)"')
MIXED_LINE_ENDINGS_HINT = (
    " (the file mixes line endings: some rows end in CRLF, others in LF, as when a row is added"
    " by hand to a file saved on Windows; save it with one kind, e.g. sed -i 's/\\r$//' FILE)"
)
# a row longer than DuckDB reads: a well-formed file, not a malformed one (said further down)
_LINE_TOO_LONG = re.compile(r"Maximum line size of ([0-9]+) bytes exceeded")
LINE_TOO_LONG_HINT = (
    " (a row over {size} bytes, the most DuckDB reads in a line: an order with tens of thousands"
    " of items in its items JSON? cut the items in the export's query, at most 100 are read, or"
    " export the table as Parquet, which has no line limit)"
)
# a .gz or .parquet file DuckDB cannot read whole: its line names the file, not how it came to be
GZIP_HINTS = (
    (
        re.compile(r"Unexpected end of GZIP stream"),
        " (the gzip file is cut short: its export or copy did not finish, or the disk filled;"
        " export or copy it again, and let the sync finish before the build)",
    ),
    (
        re.compile(r"Input is not a GZIP stream"),
        " (the file is named .gz but is not gzip-compressed: rename it without .gz, or compress"
        " it with gzip)",
    ),
    (
        re.compile(r"No magic bytes found at (the )?end of file"),
        " (not a whole Parquet file: its export or copy did not finish, or the file is another"
        " format named .parquet; export or copy it again)",
    ),
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


def export_warnings(lines: list[str]) -> list[str]:
    """The project's own warnings among dbt's console lines (an optional column of the export
    missing, a dbt var that nothing reads), each once."""
    found: list[str] = []
    for line in lines:
        text = _DBT_PREFIX.sub("", ANSI.sub("", line)).strip()
        if text.startswith(("warning: KARTE export", "warning: dbt var ")) and text not in found:
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
    clean = [_DBT_PREFIX.sub("", ANSI.sub("", line)).strip() for line in lines]
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
        found = _ADAPTER.search(ANSI.sub("", line))
        if found and found.group(1) != "duckdb":
            raise RunError(
                f"sender run builds on DuckDB only, and the dbt target is {found.group(1)}: on"
                " Spark, build with dbt, load the payload into the DuckDB file and run sender"
                ' push (docs/spark.md, "The sender and a Spark-built table"); nothing was'
                " built or sent",
                ExitCode.USAGE,
            )


def dbt_failure(
    step: str, code: int, lines: list[str], *, database: Path, project_dir: Path
) -> RunError:
    """Why a dbt command failed: another process holding the database is a lock, not a
    failed build; a kill or a lack of memory says so rather than which model it stopped in."""
    signal_name = build_memory.killed_by(code, shell_codes=True)
    if signal_name is not None:
        return RunError(build_memory.killed_message(step, signal_name), ExitCode.BUILD_FAILED)
    held = [line for line in lines if is_lock_error(line)]
    if held:
        return RunError(str(locked(database, held[0])), ExitCode.DATABASE_LOCKED)
    short_of = build_memory.out_of_memory(lines)
    if short_of is not None:
        return RunError(f"{step} failed: {short_of}", ExitCode.BUILD_FAILED)
    why = _NO_EXPORT_NAMED.sub(NO_EXPORT_NAMED, dbt_error_line(lines))
    for said in _SET_THE_VAR:
        why = why.replace(said, SET_THE_FOLDER)
    if _NO_PROFILE.search(why):
        return RunError(
            f"{step} failed: dbt found no profile ({why.removeprefix('Error: ')}): copy"
            f" profiles.example.yml to profiles.yml in {project_dir} (make setup"
            " does), or set DBT_PROFILES_DIR to the folder of yours",
            ExitCode.USAGE,
        )
    if code == 2 and (
        _DBT_MISSING_VALUE.match(why)
        or any(_DBT_USAGE.match(ANSI.sub("", line).strip()) for line in lines)
    ):
        return RunError(
            f"{step} refused the arguments after `sender run --`: {why.removeprefix('Error: ')}",
            ExitCode.USAGE,
        )
    if _MALFORMED_CSV.search(why):
        # "CSV Error on Line: N" names its file further down, in DuckDB's list of options
        named = [m.group(1).strip() for m in map(_CSV_FILE_OPTION.match, lines) if m]
        if named and named[0] not in why:
            why = f"{why.rstrip('.')} of {named[0]}"
        not_utf8 = any(_NOT_UTF8 in line for line in lines)
        sniffed = _SNIFFED_FILE.search(why)
        too_long = next(filter(None, map(_LINE_TOO_LONG.search, lines)), None)
        if too_long:
            hint = LINE_TOO_LONG_HINT.format(size=f"{int(too_long.group(1)):,}")
        elif not_utf8:
            hint = NOT_UTF8_HINT
        elif sniffed and mixes_line_endings(Path(sniffed.group(1))):
            hint = MIXED_LINE_ENDINGS_HINT
        else:
            hint = MALFORMED_CSV_HINT
        why = why.rstrip(".") + hint
    for gzip_error, hint in GZIP_HINTS:
        if gzip_error.search(why):
            why = why.rstrip(".") + hint
    # the project's own refusals of a setting are its words; any other is dbt's or DuckDB's
    if _CONFIGURATION_ERROR.match(why):
        return RunError(f"{step} failed: {why}", ExitCode.USAGE)
    return RunError(f"{step} failed: {why}", ExitCode.BUILD_FAILED, own_words=False)
