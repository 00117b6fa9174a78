"""What ``sender status`` shows: the last build and its coverage, the last run, and per
destination the ledger's counts and what is pending; as lines for people or as one dict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from sender.build_info import BuildInfo, read_build_info
from sender.coverage import NO_COVERAGE, BuildCoverage, describe_event, read_coverage
from sender.database import NoPayload, has_ledger, require_payload
from sender.ledger_migration import recorded_version
from sender.ledger_status import LedgerStatus, read_status
from sender.run_history import WARNINGS_KEPT, LastRun, last_run

_INDENT = " " * 10


def job_lines(job: LastRun | None) -> list[str]:
    """``sender status``'s lines for the last job: the job, its alert when it was not delivered,
    its heartbeat (when it pinged or failed to), its first warning (an exit code 0 says none),
    and when one last succeeded."""
    if job is None:
        return []
    ok = job.describe_last_ok()
    beat = [f"{_INDENT}heartbeat {job.heartbeat}"] if job.heartbeat else []
    lost = [f"{_INDENT}alert {job.alert}"] if job.alert and job.alert != "sent" else []
    warned = []
    if job.warnings:
        more = len(job.warnings) - 1
        count = f"{more}{' or more' if len(job.warnings) == WARNINGS_KEPT else ''}"
        also = f" (and {count} more in the run log)" if more else ""
        warned = [f"{_INDENT}warning: {job.warnings[0]}{also}"]
    return [
        f"last job  sender run {job.describe()}",
        *lost,
        *beat,
        *warned,
        *([f"last ok   {ok}"] if ok else []),
    ]


NOTHING_RECORDED = (
    "nothing recorded: no push there got an answer to record (a mistyped tag id, or a wrong"
    " token or endpoint, corrected since?); pending not counted"
)
UNFINISHED_RUN = "never (it stopped before recording its end: killed, a crash, or a full disk)"


@dataclass(frozen=True)
class StatusReport:
    database: str
    ledger: LedgerStatus
    build: BuildInfo | None
    coverage: BuildCoverage | None
    job: LastRun | None = None  # the last `sender run`, from its log
    layout: tuple[int, str] | None = None  # the ledger's layout number, and the sender that gave it

    def as_dict(self) -> dict:
        latest = self.ledger.latest
        return {
            "database": self.database,
            "pending": self.ledger.pending,
            "counts": latest.counts if latest else {},
            "test_events": latest.test_events if latest else 0,
            "destinations": [d.as_dict() for d in self.ledger.destinations],
            "ledger_layout": (
                {"version": self.layout[0], "written_by": self.layout[1]} if self.layout else None
            ),
            "build": self.build.as_dict() if self.build else None,
            "last_run": self.ledger.last_run,
            "last_job": self.job.as_dict() if self.job else None,
            "coverage": self.coverage.as_dict() if self.coverage else None,
        }

    def lines(self) -> list[str]:
        return [
            f"database  {self.database}",
            *self._build_lines(),
            *self._coverage_lines(),
            *self._job_lines(),
            *self._run_lines(),
            *self._ledger_lines(),
        ]

    def _build_lines(self) -> list[str]:
        build = self.build
        if build is None:
            return ["build     none finished (no line_capi_build_info)"]
        return [f"build     {build.describe()}"]

    def _coverage_lines(self) -> list[str]:
        coverage = self.coverage
        if coverage is None:
            return [f"coverage  {NO_COVERAGE}"]
        lines = [
            f"coverage  build {coverage.invocation_id} built {coverage.built_at}Z,"
            f" as of {coverage.as_of}Z"
        ]
        for event in coverage.events.values():
            lines.extend(_INDENT + line for line in describe_event(event))
        return lines

    def _job_lines(self) -> list[str]:
        # only where `sender run` runs the job: a push started by hand has no run log
        return job_lines(self.job)

    def _run_lines(self) -> list[str]:
        run = self.ledger.last_run
        if run is None:
            return ["last run  none"]
        # not "still running": a running push holds the database, so this read could not open it
        finished = run["finished_at"] or UNFINISHED_RUN
        lines = [f"last run  {run['run_id']}  started {run['started_at']}  finished {finished}"]
        if run["outcome"] is not None:
            lines.append(
                f"{_INDENT}outcome {run['outcome']} (exit {run['exit_code']}): "
                f"pending {run['pending']:,}, accepted {run['accepted']:,}, "
                f"rejected {run['rejected']:,}, expired {run['expired']:,}, "
                f"left pending {run['left_pending']:,}, retried {run['retried']:,}"
            )
        return lines

    def _ledger_lines(self) -> list[str]:
        info = self.ledger
        lines = []
        if self.layout:  # docs/sender.md, "Layout numbers"
            lines.append(f"ledger    layout {self.layout[0]}, numbered by sender {self.layout[1]}")
        for d in info.destinations:
            mark = " (last push)" if d.destination_id == info.latest_destination_id else ""
            counts = ", ".join(f"{k} {v:,}" for k, v in d.counts.items())
            pending = f"{d.pending:,}" if d.pending is not None else "?"
            lines.append(f"ledger    {d.endpoint} tag {d.tag_id}{mark}")
            if not mark and not d.test_events and not any(d.counts.values()):
                # a push that stopped at its first answer (a mistyped tag id, a wrong token):
                # "everything pending" there would read as events waiting to be sent
                lines.append(f"{_INDENT}{NOTHING_RECORDED}")
                continue
            lines.append(f"{_INDENT}{counts}, pending {pending} (test events {d.test_events:,})")
        if not info.destinations:
            lines.append("ledger    nothing sent yet")
        pending = (
            f"{info.pending:,}"
            if info.pending is not None
            else "? (no line_capi_payload: run dbt build)"
        )
        lines.append(f"pending   {pending}")
        return lines


def read_status_report(
    con: duckdb.DuckDBPyConnection, *, database: str, path: Path, run_log: Path | None = None
) -> StatusReport:
    try:
        require_payload(con, path)
        has_payload = True
    except NoPayload:
        has_payload = False
    history = read_coverage(con)
    return StatusReport(
        database=database,
        ledger=read_status(con, has_ledger=has_ledger(con), has_payload=has_payload),
        build=read_build_info(con),
        coverage=history.latest if history else None,
        job=last_run(run_log) if run_log is not None else None,
        layout=recorded_version(con),
    )
