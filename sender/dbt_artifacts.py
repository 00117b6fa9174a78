"""dbt's result files, as ``sender run`` reads them after each command: only those the command
it just ran wrote (by their ``generated_at``), which build the database records, and what the
data tests that only warn found.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb

from sender.build_info import read_build_info

# dbt's generated_at is taken after the command starts; a second of slack for its rounding
ARTIFACT_CLOCK_SLACK_SECONDS = 1.0


def read_artifact(path: Path, since: float) -> dict | None:
    """A dbt artifact (sources.json, run_results.json) that dbt wrote at or after ``since``
    (Unix seconds), by the time in its metadata (``generated_at``), which dbt takes from this
    machine's clock as ``since`` is; None when it is older, missing or unreadable. Not by the
    file's mtime: a network share stamps it with its own clock, which may lag."""
    try:
        artifact = json.loads(path.read_text(encoding="utf-8"))
        written = dt.datetime.fromisoformat(artifact["metadata"]["generated_at"])
    except (OSError, ValueError, TypeError, KeyError):  # TypeError: JSON that is no object
        return None
    written = written if written.tzinfo else written.replace(tzinfo=dt.UTC)
    return artifact if written.timestamp() >= since - ARTIFACT_CLOCK_SLACK_SECONDS else None


def read_results(path: Path, since: float) -> list[dict]:
    """The ``results`` of a dbt artifact written after ``since`` (see read_artifact); none when
    it is older, missing or unreadable."""
    results = (read_artifact(path, since) or {}).get("results")
    return results if isinstance(results, list) else []


def built_invocation(path: Path, since: float) -> str | None:
    """The invocation id of the dbt command that wrote ``path`` (run_results.json) after
    ``since`` (see read_artifact); None when it is older, missing or unreadable."""
    metadata = (read_artifact(path, since) or {}).get("metadata") or {}
    invocation = metadata.get("invocation_id")
    return invocation if isinstance(invocation, str) else None


def built_elsewhere(database: Path, invocation_id: str) -> bool:
    """Whether the build ``invocation_id`` is not the one ``database`` records (no file, no
    build info, another build). A file that cannot be read now is not judged: the push says
    why."""
    if not database.is_file():
        return True
    try:
        with duckdb.connect(str(database), read_only=True) as con:
            info = read_build_info(con)
    except duckdb.Error:
        return False
    return info is None or info.invocation_id != invocation_id


# The data test that names the LINE event names a build left out that the one before it made,
# and what most often causes it (said by its warning and by the alert of sender.alerts)
CONVERSION_TYPE_LEFT_OUT = "assert_no_conversion_type_left_out"
CONVERSION_TYPE_LEFT_OUT_CAUSE = (
    "var karte_conversion_events replaces the default buy sent as Conversion (list buy in it"
    " too), or the build ran without the site's vars"
)

# What a data test that only warns means, for the line sender run prints (docs/troubleshooting.md)
WARNING_MEANINGS = {
    "assert_each_configured_event_has_conversions": (
        "a configured conversion type had no conversion in this build's window: is its KARTE"
        " event name spelt as in the export?"
    ),
    "assert_each_configured_event_is_mostly_sendable": (
        "nearly every conversion of a configured type was rejected in this build's window, so"
        " nothing of it goes to LINE: see line_capi_rejected and docs/troubleshooting.md"
    ),
    CONVERSION_TYPE_LEFT_OUT: (
        "the previous build made these LINE event names and this one is not configured for"
        " them, so their conversions are neither sent nor rejected: "
        f"{CONVERSION_TYPE_LEFT_OUT_CAUSE} (docs/troubleshooting.md)"
    ),
}


# The warning tests whose rows the line names (at most WARNING_ROWS_SHOWN), each row as text.
WARNING_ROWS = {
    "assert_each_configured_event_has_conversions": lambda row: f"{row[0]} sent as {row[1]}",
    "assert_each_configured_event_is_mostly_sendable": (
        lambda row: f"{row[0]}: {row[1]:,} of {row[2]:,} rejected, most as {row[3]}"
    ),
    CONVERSION_TYPE_LEFT_OUT: lambda row: f"{row[0]} left out",
}
WARNING_ROWS_SHOWN = 5


def _warning_rows(database: Path | None, name: str, sql: object) -> list[str]:
    """The first rows a warning test returned, run again (its compiled SQL, read-only) on the
    database the build just wrote; none when that cannot be done."""
    show = WARNING_ROWS.get(name)
    if database is None or show is None or not isinstance(sql, str) or not sql.strip():
        return []
    try:
        with duckdb.connect(str(database), read_only=True) as con:
            # the project's own test, as dbt compiled it for this build
            rows = con.sql(sql).limit(WARNING_ROWS_SHOWN).fetchall()
    except Exception:  # noqa: BLE001 - a detail of a warning never stops the run: the count says it
        return []
    return [show(row) for row in rows]


def read_test_warnings(path: Path, since: float, database: Path | None = None) -> list[str]:
    """One line per data test that warned in the dbt build that wrote ``path`` (its
    run_results.json) after ``since``; with ``database``, naming what it found."""
    lines = []
    for result in read_results(path, since):
        if result.get("status") != "warn":
            continue
        parts = str(result.get("unique_id", "?")).split(".")  # test.<project>.<name>
        name = parts[2] if len(parts) > 2 else parts[0]
        failures = result.get("failures")
        rows = ""
        if isinstance(failures, int):
            rows = f" ({failures} row{'' if failures == 1 else 's'})"
        found = _warning_rows(database, name, result.get("compiled_code"))
        if found:
            rows = f" ({', '.join(found)})"
        meaning = WARNING_MEANINGS.get(name, "see docs/troubleshooting.md")
        lines.append(f"dbt test {name} warned{rows}: {meaning}")
    return lines
