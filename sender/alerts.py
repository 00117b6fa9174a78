"""Alerts: one message to a Slack-compatible incoming webhook when a run needs a person.

A run gathers its findings and posts at most one message (``{"text": ...}``): a push or run that
failed (its exit code; a failing ``sender run`` once, then once a day), events left pending by
several runs in a row (then once a day while it lasts), a gap in the windows sent, events LINE
rejected, the run's warnings no one would read otherwise, what the identifier coverage says about
the latest build (sender/coverage_alerts.py); and, once, the end of a failure or pending streak
alerted on. The settings and thresholds are sender/alert_settings.py's.
Messages hold counts, event names, the tag id, the endpoint's host, exit code names and the
sender's own words for a stale export (a table, an age, a folder): never the token, the webhook
URL, a deduplication key or a hash. A webhook that fails is one line on stderr; it never changes the
exit code. The thresholds are documented in docs/monitoring.md.
"""

# ruff: noqa: S608 - SQL is built from this package's constant table names; values are bound.

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import duckdb

from sender.alert_settings import AlertSettings, Say
from sender.build_memory import PLUGIN_MISSING
from sender.coverage import CoverageHistory, read_coverage
from sender.coverage_alerts import builds_to_read, coverage_findings
from sender.database import RUNS_TABLE, DatabaseError, connect, fetch_one, table_exists
from sender.dbt_artifacts import CONVERSION_TYPE_LEFT_OUT, CONVERSION_TYPE_LEFT_OUT_CAUSE
from sender.destinations import destination_id
from sender.exit_codes import MEANINGS, ExitCode
from sender.freshness import PAGE_VIEWS_TRAIL, PAGE_VIEWS_UNMATCHED
from sender.monitoring_request import request_once
from sender.run_history import (
    exit_codes,
    runs_in_a_row_saying,
    streak_before_last,
    undelivered_alert,
)
from sender.secret_env import scrub
from sender.settings import (
    DEFAULT_ENDPOINT,
    ConfigError,
    Secret,
    validate_endpoint,
    validate_tag_id,
)
from sender.window_gap import COMPLETE_RUN, find_window_gap

# Not alerted on: success; pending rows (the streak rule covers them); a run that found another
# one running; an interruption (a person or the scheduler's timeout stopped it on purpose).
QUIET_EXIT_CODES = frozenset(
    {ExitCode.OK, ExitCode.PENDING_LEFT, ExitCode.ALREADY_RUNNING, ExitCode.INTERRUPTED}
)
# A finding that says a problem alerted on has ended starts so; it is not counted as a problem.
RESOLVED = "resolved: "
# sender run's own stops: nothing was built or pushed, so only the exit code says anything.
RUN_STOPS_BEFORE_PUSH = frozenset(
    {ExitCode.USAGE, ExitCode.STALE_EXPORT, ExitCode.BUILD_FAILED, ExitCode.ALREADY_RUNNING}
)


# -- findings ------------------------------------------------------------------------------------
def exit_finding(command: str, code: int) -> str | None:
    """What a failed ``sender push`` or ``sender run`` says, by exit code name."""
    try:
        known = ExitCode(code)
    except ValueError:
        return f"`sender {command}` exited {code}"
    if known in QUIET_EXIT_CODES:
        return None
    return f"`sender {command}` exited {int(known)} {known.name}: {MEANINGS[known]}"


# sender run's stops whose one error line is the run's own words (a table, an age, a folder; the
# database and who holds it; a setting, a dbt var or a run log that cannot be written; a ledger
# a later version wrote; a build that ran out of memory or disk, or was killed): the message
# carries it, the cause rather than the code's label. dbt's own reason for a failed build may
# quote the export's values: the run does not pass it (sender.errors.RunError), it stays in the
# log.
OWN_WORDS_EXIT_CODES = frozenset(
    {
        ExitCode.STALE_EXPORT,
        ExitCode.DATABASE_LOCKED,
        ExitCode.USAGE,
        ExitCode.DATABASE_ERROR,
        ExitCode.BUILD_FAILED,
    }
)


# Quiet once, not hour after hour: runs that keep finding the lock held, or keep being stopped
# (by the scheduler's timeout), mean a run that hangs or takes longer than the schedule allows.
QUIET_UNLESS_REPEATED = {
    ExitCode.ALREADY_RUNNING: "another run has held the lock all that time: one hangs (its"
    " process is still there), or runs take longer than the hour",
    ExitCode.INTERRUPTED: "each was stopped before it finished: the scheduler's timeout (a run"
    " that hangs, or takes longer than allowed), or something kills it",
}


def run_exit_finding(
    code: int,
    *,
    error: str | None,
    earlier_codes: list[int],
    repeat_runs: int,
    stuck_runs: int = 3,
) -> str | None:
    """What a failed ``sender run`` says: once when it starts failing with a code, then again
    every ``repeat_runs`` runs while it keeps failing so (``earlier_codes``: the exit codes of the
    runs before it, oldest first), not at every hour of an outage. A code in
    QUIET_UNLESS_REPEATED says so from the ``stuck_runs``-th run in a row."""
    streak = 1
    for earlier in reversed(earlier_codes):
        if earlier != code:
            break
        streak += 1
    if code in QUIET_UNLESS_REPEATED:
        if streak < stuck_runs or (streak - stuck_runs) % repeat_runs:
            return None
        why = QUIET_UNLESS_REPEATED[code]
        return f"`sender run` exited {code} {ExitCode(code).name} {streak} runs in a row: {why}"
    finding = exit_finding("run", code)
    if finding is None or (streak - 1) % repeat_runs:
        return None
    if error and code in OWN_WORDS_EXIT_CODES:
        finding = f"`sender run` exited {code} {ExitCode(code).name}: {error}"
    if streak > 1:
        finding += f" (still: {streak} runs in a row)"
    return finding


def run_recovery_finding(before: tuple[int, int] | None, *, stuck_runs: int = 3) -> str | None:
    """What a ``sender run`` that exited 0 says of the failures before it (``before``: their exit
    code and how many runs in a row ended with it), when those were alerted on."""
    if before is None:
        return None
    code, streak = before
    if code in QUIET_UNLESS_REPEATED:
        if streak < stuck_runs:
            return None
    elif exit_finding("run", code) is None:
        return None
    try:
        code_name = f"{code} {ExitCode(code).name}"
    except ValueError:
        code_name = str(code)
    runs = "1 run" if streak == 1 else f"{streak:,} runs in a row"
    found = f"{RESOLVED}`sender run` exited 0 OK, after {runs} that exited {code_name}"
    if code == ExitCode.REJECTED_BY_API:  # no new refusal: the refused events are not sent again
        found += (
            ": LINE refused no event since; those it refused stay rejected_by_api"
            " (line_capi_send_log), sent again by `sender push --retry-rejected` once the cause"
            " is fixed"
        )
    return found


def _pending_runs_newest_first(
    con: duckdb.DuckDBPyConnection, destination: int
) -> Iterator[tuple[int, bool]]:
    """(rows left pending, whether the run left none) of the runs at ``destination``, newest
    first, read a few at a time. A run killed before it finished counts as one that left rows
    pending."""
    cursor = con.cursor()
    cursor.execute(
        f"select left_pending, finished_at from {RUNS_TABLE} where destination_id = ?"
        " and not is_test order by started_at desc",
        [destination],
    )
    while rows := cursor.fetchmany(64):
        for left, finished in rows:
            yield int(left or 0), finished is not None and not left


def pending_finding(
    con: duckdb.DuckDBPyConnection,
    settings: AlertSettings,
    *,
    endpoint: str,
    tag_id: str,
    remind: bool = True,
) -> str | None:
    """When the run that just ended is the N-th in a row to leave rows pending; again every
    ``repeat_runs`` runs while the streak lasts (``remind``; a failed exit code reminds on its
    own); and once when a run leaves nothing pending after such a streak."""
    if not table_exists(con, RUNS_TABLE):
        return None
    destination = destination_id(con, endpoint, tag_id, create=False)
    if destination is None:
        return None
    runs = _pending_runs_newest_first(con, destination)
    newest = next(runs, None)
    if newest is None:
        return None
    left, clean = newest
    streak = 0
    for _, earlier_clean in runs:
        if earlier_clean:
            break
        streak += 1
    limit = settings.pending_runs
    if clean:
        if streak < limit:  # never alerted
            return None
        return (
            f"{RESOLVED}nothing left pending by the last run, after {streak:,} runs in a row that"
            " left events pending"
        )
    streak += 1  # the run that just ended
    if streak != limit and not (
        remind and streak > limit and (streak - limit) % settings.repeat_runs == 0
    ):
        return None
    return (
        f"events left pending by {streak:,} runs in a row ({left:,} after the last run): "
        + _pending_cause(con, destination)
    )


def _pending_cause(con: duckdb.DuckDBPyConnection, destination: int) -> str:
    """Why the last run at ``destination`` left events pending, by its exit code: a refused
    token read as "LINE unreachable or throttling" for the days of an outage of its own."""
    row = fetch_one(
        con,
        f"select exit_code from {RUNS_TABLE} where destination_id = ? and not is_test"
        " order by started_at desc limit 1",
        [destination],
    )
    try:
        code = ExitCode(int(row[0])) if row and row[0] is not None else None
    except ValueError:
        code = None
    if code is None or code in (ExitCode.PENDING_LEFT, ExitCode.INTERRUPTED):
        return "LINE unreachable or throttling, or runs cut short"
    return f"the last run exited {int(code)} {code.name}: {MEANINGS[code]}"


def window_gap_finding(con: duckdb.DuckDBPyConnection, *, endpoint: str, tag_id: str) -> str | None:
    """After the run that just ended, when it left nothing pending (the first push back after
    an outage): whether its build's window started after the last push before it that did
    (sender.window_gap). Once: the next run has this one. Not at the runs of the outage itself,
    which would say it every hour, before a catch-up can send anything."""
    if not table_exists(con, RUNS_TABLE):
        return None
    destination = destination_id(con, endpoint, tag_id, create=False)
    if destination is None:
        return None
    row = con.execute(
        f"select started_at, {COMPLETE_RUN} from {RUNS_TABLE}"
        " where destination_id = ? and not is_test order by started_at desc limit 1",
        [destination],
    ).fetchall()
    if not row or not row[0][1]:
        return None
    latest = row[0][0]
    gap = find_window_gap(con, destination, before=latest)
    return gap.describe() if gap is not None else None


def pushed_since(
    con: duckdb.DuckDBPyConnection, since: dt.datetime, destination: int | None = None
) -> bool:
    """Whether a push (not a connection test) recorded a run, at ``destination`` or at any, at or
    after ``since`` (naive UTC, as the ledger keeps it): the command that started then pushed."""
    if not table_exists(con, RUNS_TABLE):
        return False
    at = "" if destination is None else " and destination_id = ?"
    row = fetch_one(
        con,
        f"select count(*) from {RUNS_TABLE} where started_at >= ? and not is_test{at}",
        [since] if destination is None else [since, destination],
    )
    return bool(row and int(row[0]))


def rejected_count_finding(
    con: duckdb.DuckDBPyConnection, since: dt.datetime, destination: int
) -> list[str]:
    """How many events LINE rejected in the pushes since ``since`` at ``destination`` (the exit
    code's finding says only that some were): a steady trickle and a model change LINE refuses
    whole read alike without it."""
    row = fetch_one(
        con,
        f"select sum(rejected), sum(sent) from {RUNS_TABLE}"
        " where started_at >= ? and not is_test and destination_id = ?",
        [since, destination],
    )
    if not row or not row[0]:
        return []
    rejected, sent = int(row[0]), int(row[1] or 0)
    return [
        f"LINE rejected {rejected:,} of the {sent:,} events sent (HTTP 400: each event alone);"
        " they are not sent again: see line_capi_send_log where status = 'rejected_by_api', fix"
        " the model, then sender push --retry-rejected"
    ]


def _first_push_since(con: duckdb.DuckDBPyConnection, history: CoverageHistory) -> bool:
    """True unless an earlier push already followed the latest build (it checked it then)."""
    built_at = history.builds[-1].built_at
    if built_at is None or not table_exists(con, RUNS_TABLE):
        return True
    row = fetch_one(con, f"select count(*) from {RUNS_TABLE} where started_at >= ?", [built_at])
    return not row or int(row[0]) <= 1


def database_findings(
    database: Path,
    settings: AlertSettings,
    *,
    endpoint: str | None,
    tag_id: str | None,
    exit_code: int,
    since: dt.datetime,
    built: bool | None = None,
) -> list[str]:
    """What the ledger and the coverage say after a push (or a run) that started at ``since``
    (naive UTC) and exited ``exit_code``; nothing when the file cannot be read. The ledger's
    findings only when it recorded a push at the destination; the coverage's for a push
    (``built`` None) when no earlier push followed the latest build, for a run when it built
    (``built``). A command stopped before either (another process held the database) would
    repeat the last push's findings, such as a "resolved" or a catch-up to run, when its own
    cause is what matters."""
    try:
        con = connect(database, read_only=True)
    except DatabaseError:
        return []
    findings: list[str] = []
    try:
        destination = (
            destination_id(con, endpoint, tag_id, create=False)
            if endpoint and tag_id and table_exists(con, RUNS_TABLE)
            else None
        )
        if destination is not None and pushed_since(con, since, destination):
            # a failed exit code has its own reminder: a pending streak reminds only for exit 1
            remind = exit_code == ExitCode.PENDING_LEFT
            found = pending_finding(con, settings, endpoint=endpoint, tag_id=tag_id, remind=remind)
            if found:
                findings.append(found)
            found = window_gap_finding(con, endpoint=endpoint, tag_id=tag_id)
            if found:
                findings.append(found)
            if exit_code == ExitCode.REJECTED_BY_API:
                findings.extend(rejected_count_finding(con, since, destination))
        history = read_coverage(con, builds=builds_to_read(settings))
        if (
            history
            and history.builds
            and (
                built
                if built is not None
                else pushed_since(con, since) and _first_push_since(con, history)
            )
        ):
            findings.extend(coverage_findings(history, settings))
        return findings
    except duckdb.Error:  # a ledger or coverage of another layout: what was found, and the exit's
        return findings
    finally:
        con.close()


# -- the message ---------------------------------------------------------------------------------
def _mrkdwn(text: str) -> str:
    """Slack's three control characters, escaped: a text is shown as it is, never as a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class Where:
    """The destination a message names: the tag id and the endpoint's host, when valid."""

    tag_id: str | None
    endpoint: str | None

    @classmethod
    def from_values(cls, *, tag_id: str | None, endpoint: str | None) -> Where:
        try:
            tag = validate_tag_id(tag_id)
        except ConfigError:
            tag = None
        try:
            url = validate_endpoint(endpoint or DEFAULT_ENDPOINT)
        except ConfigError:
            url = None
        return cls(tag, url)

    def describe(self) -> str:
        host = urlsplit(self.endpoint).netloc if self.endpoint else None
        tag = f"LINE Tag {self.tag_id}" if self.tag_id else "no valid LINE_TAG_ID"
        return f"{tag} at {host}" if host else tag


def compose(where: Where, findings: list[str]) -> str:
    problems = sum(not f.startswith(RESOLVED) for f in findings)
    count = "1 problem" if problems == 1 else f"{problems} problems"
    head = f"line-capi ({where.describe()}): " + (count if problems else "resolved")
    return "\n".join([_mrkdwn(head), *(f"• {_mrkdwn(f)}" for f in findings)])


def post(webhook: Secret, text: str) -> str | None:
    """POST ``{"text": text}`` once; None when delivered, else why not (never the URL)."""
    return request_once("POST", webhook, json={"text": text})


def notify(settings: AlertSettings, where: Where, findings: list[str], say: Say) -> bool:
    """One message for all findings, when a webhook is set and there is something to say;
    whether it was not delivered."""
    if settings.webhook is None or not findings:
        return False
    # a run's own error line may quote a setting, where a token pasted by mistake would show
    # and the header names the endpoint
    failure = post(settings.webhook, scrub(compose(where, findings)))
    if failure:
        say(f"warning: alert not delivered: the alert webhook {failure}")
        # said here instead, once as it would have been posted: a streak's alert is not
        # posted again, and the `alert:` lines reach the run log and a cron job's mail
        for finding in findings:
            say(f"alert: {scrub(finding)}")
        return True
    said = "; ".join(scrub(finding) for finding in findings)
    say(f"alert sent to the alert webhook ({len(findings)} finding(s)): {said}")
    return False


# Warnings of `sender run` that no exit code carries, alerted on when they keep coming: (words of
# the warning, runs in a row, the finding). Once per streak: the warning itself is at every run.
RUN_WARNINGS_ALERTED = (
    # the page views an hour or two late now and then is not an export that fell behind
    (
        PAGE_VIEWS_TRAIL,
        3,
        "page views trailed the conversions at 3 runs in a row: the conversions they sent went"
        " without IP address, user agent and click id; the page_views export runs behind the"
        " conversions' or has stopped (the run log's warning gives how far)",
    ),
    # nearly every conversion without its page view: one query's pv_id changed
    (
        PAGE_VIEWS_UNMATCHED,
        3,
        "nearly every conversion named a page view (pv_id) the export did not hold, at 3 runs in"
        " a row: they went without IP address, user agent and click id; the conversions and"
        " page_views exports write pv_id differently (the run log's warning gives how many)",
    ),
    # a conversion type the build before made and this one does not: said at once (the next
    # build compares with this one and is silent), as the orders go neither out nor to rejected
    (
        f"dbt test {CONVERSION_TYPE_LEFT_OUT} warned",
        1,
        "a LINE event name the previous build made is not in this build (see the run's warning):"
        f" its conversions are neither sent nor rejected; {CONVERSION_TYPE_LEFT_OUT_CAUSE}",
    ),
    # the profile of an older version (make setup never overwrites it): said at once
    (
        PLUGIN_MISSING,
        1,
        "dbt built without the profile's plugin sender.dbt_private_files: what dbt writes may be"
        " readable by other users of the machine, and the build's memory limit is not applied;"
        " copy the plugins: entry of profiles.example.yml into profiles.yml (docs/operations.md,"
        ' "Upgrading")',
    ),
)


def run_warning_findings(run_log: Path) -> list[str]:
    """The findings of RUN_WARNINGS_ALERTED that the run which just ended makes due: its
    warning said at that many runs in a row, this one the last (the runs read back from the
    run log). The exit code stays 0 for each, and neither changes what a build counts at once:
    page views that trail the conversions (sender.freshness.page_views_trail) send them without
    IP address, user agent and click id, and the identifiers' shares fall only as the day's
    window fills; a profile without the plugin leaves dbt's files readable by others."""
    return [
        finding
        for words, runs, finding in RUN_WARNINGS_ALERTED
        if runs_in_a_row_saying(run_log, words) == runs
    ]


# The findings of an alert the webhook did not take that the next run posts again, at most.
MAX_CARRIED = 20
CARRIED = "not delivered after the run that finished"


def carried_findings(lost: tuple[str, list[str]] | None, findings: list[str]) -> list[str]:
    """The findings of the last run's alert that the webhook did not take (``lost``: when that
    run finished, and its findings; sender.run_history.undelivered_alert), to post with this
    run's ``findings``: a streak alerts once, so a lost alert was not said again, and a failing
    run pings no heartbeat that its absence could tell. Each names the run it was found by;
    one this run found again is not repeated."""
    if lost is None:
        return []
    finished, texts = lost
    carried = []
    for text in texts[:MAX_CARRIED]:
        original = text.split(f" ({CARRIED} ", 1)[0]
        if original in findings or any(c.startswith(original) for c in carried):
            continue
        carried.append(text if original != text else f"{text} ({CARRIED} {finished})")
    return carried


def _guarded(check: Callable[[], None], say: Say) -> None:
    try:
        check()
    except Exception as exc:  # an alert must never change the exit code of what it reports on
        text = str(exc).strip().splitlines()
        say(f"warning: alert check failed: {type(exc).__name__}: {text[0] if text else ''}")


def after_push(
    settings: AlertSettings,
    *,
    database: Path,
    endpoint: str | None,
    tag_id: str | None,
    exit_code: int,
    say: Say,
    since: dt.datetime,
) -> bool:
    """The alert of a ``sender push`` started on its own (not by ``sender run``) at ``since``
    (naive UTC); whether it could not be delivered (the heartbeat is then held back)."""
    if settings.webhook is None:
        return False
    undelivered = False

    def check() -> None:
        nonlocal undelivered
        where = Where.from_values(tag_id=tag_id, endpoint=endpoint)
        findings = [f for f in [exit_finding("push", exit_code)] if f]
        findings += database_findings(
            database,
            settings,
            endpoint=where.endpoint,
            tag_id=where.tag_id,
            exit_code=exit_code,
            since=since,
        )
        undelivered = notify(settings, where, findings, say)

    _guarded(check, say)
    return undelivered


def after_run(
    settings: AlertSettings,
    *,
    database: Path,
    env: Mapping[str, str],
    exit_code: int,
    say: Say,
    since: dt.datetime,
    pushed: bool = False,
    built: bool = False,
    run_log: Path | None = None,
    error: str | None = None,
) -> bool:
    """The alert of a ``sender run`` started at ``since`` (naive UTC): its own stops, or its
    push's outcome (the push it starts never alerts itself: it gets no webhook); ``pushed``,
    ``built``: whether it started its push, whether it built (neither: the database is not
    read). ``run_log`` holds the exit codes of the earlier runs (this one's last),
    ``error`` this run's one error line, when it is the sender's own words. Without a webhook,
    each finding that the run's error line and exit code do not already say (a pending streak, a
    share drop, a window gap, a run that keeps finding the lock held) is one ``alert: ...`` line
    of the run's output instead: a job whose only channel is its scheduler's mail (cron) mails a
    failed exit code or such a line, and so hears of an outage once, not every hour of it.
    Whether an alert could not be delivered (the heartbeat is then held back: sender.heartbeat)."""
    undelivered = False

    def check() -> None:
        nonlocal undelivered
        where = Where.from_values(
            tag_id=env.get("LINE_TAG_ID"), endpoint=env.get("LINE_CAPI_ENDPOINT")
        )
        # a long healthy log is not read back every hour: only a failure counts its streak
        counted = exit_code not in QUIET_EXIT_CODES or exit_code in QUIET_UNLESS_REPEATED
        codes = exit_codes(run_log) if run_log is not None and counted else []
        if codes and codes[-1] == exit_code:  # this run's own line
            codes = codes[:-1]
        found = run_exit_finding(
            exit_code,
            error=error,
            earlier_codes=codes,
            repeat_runs=settings.repeat_runs,
            stuck_runs=settings.pending_runs,
        )
        if exit_code == ExitCode.OK and run_log is not None:
            found = run_recovery_finding(
                streak_before_last(run_log), stuck_runs=settings.pending_runs
            )
        findings = [found] if found else []
        if built and run_log is not None:
            findings += run_warning_findings(run_log)
        if exit_code not in RUN_STOPS_BEFORE_PUSH and (pushed or built):
            findings += database_findings(
                database,
                settings,
                endpoint=where.endpoint,
                tag_id=where.tag_id,
                exit_code=exit_code,
                since=since,
                built=built,
            )
        if settings.webhook is None:
            # the run's own error line already says why it failed: not said twice
            own_line = exit_code not in QUIET_EXIT_CODES
            said = [found] if found is not None and own_line else []
            for finding in findings:
                if finding not in said:
                    say(f"alert: {scrub(finding)}")
            return
        if run_log is not None:
            findings += carried_findings(undelivered_alert(run_log), findings)
        undelivered = notify(settings, where, findings, say)

    _guarded(check, say)
    return undelivered
