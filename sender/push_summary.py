"""What a push (or its dry run) did: the counts, the exit code they mean, and their text; and the
notes a push prints on the way (rows held back, rows not resent, a first push's event names)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import duckdb

from sender.database import ACCEPTED, EXPIRED, KEYS_TABLE, PAYLOAD_TABLE, REJECTED_BY_API
from sender.exit_codes import ExitCode
from sender.pending_rows import RESEND_HORIZON_SECONDS

# The summary's counter for each ledger status.
COUNTER_OF_STATUS = {ACCEPTED: "accepted", REJECTED_BY_API: "rejected", EXPIRED: "expired"}

# Why a push stopped early -> its exit code and the outcome recorded in the runs table.
STOP_REASONS = {
    "interrupted": (ExitCode.INTERRUPTED, "interrupted"),
    "auth": (ExitCode.AUTHENTICATION, "authentication_failed"),
    "tls": (ExitCode.TLS_CERTIFICATE, "tls_certificate"),
    "fatal": (ExitCode.UNEXPECTED_RESPONSE, "unexpected_response"),
    "retry_later": (ExitCode.PENDING_LEFT, "retry_later"),
    "unreachable": (ExitCode.PENDING_LEFT, "unreachable"),
    "unavailable": (ExitCode.PENDING_LEFT, "unavailable"),
    "refused": (ExitCode.UNEXPECTED_RESPONSE, "refused_every_event"),
    "ledger": (ExitCode.DATABASE_ERROR, "ledger_write_failed"),
    "error": (ExitCode.INTERNAL_ERROR, "error"),
}

_NOTES = {
    ExitCode.PENDING_LEFT: "some events are still pending; the next run sends them",
    ExitCode.REJECTED_BY_API: "LINE rejected some events: see line_capi_send_log "
    "where status = 'rejected_by_api'; once the model is fixed and rebuilt, "
    "sender push --retry-rejected sends them again",
}


@dataclass
class Summary:
    run_id: str
    dry_run: bool = False
    test: bool = False
    pending: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    expired: int = 0
    left_pending: int = 0  # held rows included
    held: int = 0  # rows with user.line_uid kept back: no channel id (sender.push)
    held_renamed: int = 0  # rows of an order the destination has under another event name
    not_resent: int = 0  # --resend: rows first accepted too long ago (pending_rows.find_resendable)
    retried: int = 0
    requests: int = 0
    batches: int = 0
    elapsed_s: float = 0.0
    events_per_s: float = 0.0
    exit_code: int = 0
    outcome: str = "ok"
    message: str | None = None
    shown: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # a dry run's, printed before its summary

    def as_dict(self) -> dict:
        data = asdict(self)
        for name in ("shown", "warnings", "held_renamed"):
            if not data[name]:
                data.pop(name)
        return data

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"))

    def lines(self) -> list[str]:
        """The summary for people (stdout): the payloads shown, then one line of counts."""
        if self.dry_run:
            return [
                *self.shown,
                f"dry run: {self.pending:,} pending events; would send {self.sent:,} in"
                f" {self.batches:,} requests"
                + (f", hold back {self.held:,} (user.line_uid)" if self.held else "")
                + (f", hold back {self.held_renamed:,} (renamed)" if self.held_renamed else "")
                + f" and record {self.expired:,} as expired"
                + (
                    f"; {self.not_resent:,} not sent again (accepted over 29 days ago)"
                    if self.not_resent
                    else ""
                )
                + (" (with test_flag)" if self.test else "")
                + "; nothing sent, nothing recorded",
            ]
        return [
            f"pending {self.pending:,}, sent {self.sent:,}, accepted {self.accepted:,}, "
            f"rejected {self.rejected:,}, expired {self.expired:,}, left pending"
            f" {self.left_pending:,}"
            + (f" (held back {self.held:,}: user.line_uid)" if self.held else "")
            + (f" (held back {self.held_renamed:,}: renamed)" if self.held_renamed else "")
            + f", retried {self.retried:,}, {self.requests:,} requests in"
            f" {self.elapsed_s:.1f}s, {self.events_per_s:,.0f} events/s"
        ]

    def exit_note(self) -> str | None:
        """One line for stderr when the exit code needs a word."""
        note = _NOTES.get(self.exit_code)
        return f"exit {int(self.exit_code)}: {note}" if note else None


def error_json(exit_code: int, message: str) -> str:
    """What ``push --json`` prints when it stops before a summary exists (no database, a bad
    setting, a locked file): the exit code and the one line stderr got."""
    return json.dumps(
        {"exit_code": int(exit_code), "outcome": "error", "message": message},
        separators=(",", ":"),
    )


def decide_exit(s: Summary, stop_reason: str | None) -> tuple[ExitCode, str]:
    """The exit code and outcome of a push (ExitCode's docstring gives the order)."""
    if stop_reason is not None:
        code, outcome = STOP_REASONS[stop_reason]
        # an outage passes and the next run sends what it left; a missing setting does not
        held = s.held or s.held_renamed
        return (ExitCode.USAGE if code == ExitCode.PENDING_LEFT and held else code), outcome
    if s.held:  # a setting is missing: the next run cannot send them either
        return ExitCode.USAGE, "channel_id_missing"
    if s.held_renamed:  # nor can it send these, until a person decides
        return ExitCode.USAGE, "renamed_events_held"
    if s.left_pending:
        return ExitCode.PENDING_LEFT, "pending_left"
    if s.rejected:
        return ExitCode.REJECTED_BY_API, "rejected_by_api"
    return ExitCode.OK, "ok"


def held_message(
    held: int, tag_id: str | None, *, dry_run: bool = False, others_sent: bool | None = True
) -> str:
    """The one line that names the missing setting for ``held`` rows kept back; ``others_sent``
    None: a push that stopped early, whose own line says what became of the others."""
    others = {True: ", the other events were sent", False: ", no other event was sent", None: ""}
    return (
        f"{held:,} events carry user.line_uid and"
        + (" a push would hold them back" if dry_run else " were not sent")
        + ": set LINE_CHANNEL_ID (the LINE Login channel that issued them)"
        + (f" for LINE Tag {tag_id}" if tag_id else "")
        + ", or pass --channel-id"
        + ("" if dry_run else f"; they stay pending{others[others_sent]}")
    )


def not_resent_message(events: int) -> str:
    return (
        f"{events:,} events were first accepted here more than {RESEND_HORIZON_SECONDS // 86_400}"
        " days ago and are not sent again: LINE de-duplicates within 30 days only, and would"
        " count them twice"
    )


def first_push_note(con: duckdb.DuckDBPyConnection) -> str:
    """The event names a first push to a destination sends, with what LINE counts once: a site
    moving from a connector, or beside its LINE Tag, counts every order twice when they differ."""
    names = con.execute(
        f"select event_name, count(*) from {PAYLOAD_TABLE} group by event_name"  # noqa: S608
        " order by count(*) desc, event_name"
    ).fetchall()
    listed = ", ".join(f"{name} ({count:,})" for name, count in names)
    return (
        f"a first push to this destination: the payload's event name{'s' * (len(names) != 1)}"
        f" {'are' if len(names) != 1 else 'is'} {listed}; LINE counts a conversion once only when"
        " the LINE Tag (or a connector that sent before this job) gave it the same event name and"
        " deduplication key"
    )


@dataclass(frozen=True)
class NewEventNames:
    """The payload's event names that no real event at a destination had, where others did,
    and which of their rows carry an order id the destination has under another name."""

    new: list[tuple[str, int]]  # (event name, rows), most rows first
    known: list[str]  # the names the destination has had
    renamed: list[tuple[str, str]]  # (event name, deduplication key) of rows of a new name whose
    # key the destination has under another name: the same order, renamed
    renamed_from: list[str] = field(default_factory=list)  # the names it has those keys under

    def renamed_names(self) -> list[str]:
        """The new names some of whose orders the destination has under another name."""
        return sorted({name for name, _ in self.renamed})

    def warning(self) -> str:
        listed = ", ".join(f"{name} ({count:,})" for name, count in self.new)
        return (
            f"events named {listed} go to this destination for the first time; it has had"
            f" {', '.join(self.known)} before: a conversion type added on purpose reads so once"
        )

    def held_message(self, held: int, *, dry_run: bool = False) -> str:
        """The line for the ``held`` rows of the new names, kept back (fewer than all under
        --limit)."""
        renamed = len(self.renamed)
        carry = "them carry order ids" if renamed != 1 else "them carries an order id"
        before = ", ".join(self.renamed_from or self.known)
        held_names = self.renamed_names()
        return (
            f"{held:,} events of the new name{'s' * (len(held_names) != 1)}"
            f" {', '.join(held_names)}"
            + (": a push would hold them back" if dry_run else " were not sent")
            + f": {renamed:,} of {carry} this destination has under {before}, and"
            " LINE would count each order twice; the build that renamed them named its other"
            " orders so too. A build without the site's vars (docs/operations.md, Several"
            " sites)? Build again with them. Two conversion types of one order on purpose:"
            " sender push --allow-renamed-events" + ("" if dry_run else "; they stay pending")
        )


def new_event_names(con: duckdb.DuckDBPyConnection, destination_id: int) -> NewEventNames | None:
    """The payload's event names new to the destination, where it had others (None when there
    are none): a build by hand without a site's vars sends the default event name, and LINE
    counts the same orders twice under a second one. Each name is looked up until its first
    key, so only a new name reads the whole ledger."""
    names = con.execute(
        f"select event_name, count(*) from {PAYLOAD_TABLE} group by event_name"  # noqa: S608
        " order by count(*) desc, event_name"
    ).fetchall()
    at_destination = f"from {KEYS_TABLE} where not is_test and destination_id = ?"  # noqa: S608

    def sent_before(name: str) -> bool:
        query = f"select exists (select 1 {at_destination} and event_name = ?)"
        return bool(con.execute(query, [destination_id, name]).fetchone()[0])

    new = [(name, count) for name, count in names if not sent_before(name)]
    if not new:  # the usual push: no scan of the ledger
        return None
    query = f"select distinct event_name {at_destination} order by event_name"
    known = [name for (name,) in con.execute(query, [destination_id]).fetchall()]
    if not known:
        return None
    renamed = con.execute(
        f"""
        select p.event_name, p.deduplication_key
        from {PAYLOAD_TABLE} as p
        where p.event_name in (select unnest(?))
            and exists (
                select 1 {at_destination}
                    and deduplication_key = p.deduplication_key and event_name <> p.event_name
            )
        """,  # noqa: S608
        [[name for name, _ in new], destination_id],
    ).fetchall()
    renamed_from = []
    if renamed:  # the names those orders went under (not every name the destination has had)
        query = (
            f"select distinct event_name {at_destination} and deduplication_key in"
            " (select unnest(?)) and event_name not in (select unnest(?)) order by event_name"
        )
        keys = sorted({str(k) for _, k in renamed})
        found = con.execute(query, [destination_id, keys, [name for name, _ in new]]).fetchall()
        renamed_from = [str(name) for (name,) in found]
    return NewEventNames(new, known, [(str(n), str(k)) for n, k in renamed], renamed_from)
