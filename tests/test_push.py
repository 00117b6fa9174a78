"""`sender push` against a real loopback server: every response path, batching and the ledger."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import duckdb
import pytest
from sender_fixtures import (
    CHANNEL_ID,
    FAST,
    TAG_ID,
    invoke,
    ledger_counts,
    ledger_rows,
    make_event,
    mock_server,
    push_now,
    sender_env,
    write_bulk_payload,
    write_payload,
)

from sender.exit_codes import ExitCode
from sender.mock_server import Answer

DAY = 86_400


def test_all_delivered_once_then_nothing_pending(db):
    with mock_server() as srv:
        s = push_now(db, srv.url, batch_size=100, concurrency=3)
        assert (s.pending, s.accepted, s.exit_code) == (250, 250, ExitCode.OK)
        assert s.requests == 3 and s.batches == 3
        assert len(srv.accepted) == 250 and max(srv.accepted.values()) == 1
        again = push_now(db, srv.url)
        assert (again.pending, again.requests, again.exit_code) == (0, 0, ExitCode.OK)
    rows = ledger_rows(db)
    assert len(rows) == 250 and {r[2] for r in rows} == {"accepted"}
    assert {r[3] for r in rows} == {202} and {r[4] for r in rows} == {1}


def test_oldest_first_with_one_worker(tmp_path):
    db = tmp_path / "order.duckdb"
    now = int(time.time())
    events = [make_event(i, ts=now - 1000 + (i * 37) % 900, key=f"o-{i:03d}") for i in range(120)]
    write_payload(db, events)
    seen: list[tuple[int, str]] = []

    def spy(record, events):
        seen.extend(
            (ev["event"]["event_timestamp"], ev["event"]["deduplication_key"]) for ev in events
        )

    with mock_server(on_record=spy) as srv:
        push_now(db, srv.url, batch_size=7, concurrency=1)
    assert seen == sorted(seen) and len(seen) == 120


def test_body_is_the_payload_text_unchanged(db):
    import duckdb

    bodies = []
    with mock_server(on_request=lambda request: bodies.append(request.body)) as srv:
        push_now(db, srv.url, batch_size=1000)
    con = duckdb.connect(str(db), read_only=True)
    payloads = [
        r[0]
        for r in con.execute(
            "select payload from line_capi_payload order by event_timestamp, deduplication_key"
        ).fetchall()
    ]
    con.close()
    assert bodies == [("[" + ",".join(payloads) + "]").encode()]


@pytest.mark.parametrize(
    ("batch_size", "requests", "message"),
    [
        # the refused batch, then ten of its events alone
        (100, 11, "LINE answered 400 to each of 10 events sent one by one from a refused batch"),
        # too small to probe: bisected whole (23 requests), then judged
        (12, 23, "LINE answered 400 to each of the 12 events of a batch sent one by one"),
    ],
)
def test_a_request_refused_whatever_it_holds_stops_the_run_with_everything_pending(
    tmp_path, batch_size, requests, message
):
    """400 for every request (a channel id or an event name LINE refuses): bisecting every batch
    down to single events would cost two requests an event and record each as rejected."""
    db = tmp_path / "refused.duckdb"
    write_bulk_payload(db, 500)
    with mock_server(on_request=lambda request: Answer(400)) as srv:
        s = push_now(db, srv.url, batch_size=batch_size, concurrency=1)
        assert srv.stats()["requests"] == s.requests == requests
    assert (s.exit_code, s.outcome) == (ExitCode.UNEXPECTED_RESPONSE, "refused_every_event")
    assert (s.accepted, s.rejected, s.left_pending) == (0, 0, 500)
    assert s.message.startswith(message)
    assert ledger_counts(db) == {}


def test_a_small_run_refused_whole_stays_pending(tmp_path):
    """A quiet hour's three events, each refused alone, nothing accepted: too few to tell bad
    events from a request LINE refuses (a wrong channel id), so nothing is recorded as rejected
    for good; the run stops as for a larger batch."""
    db = tmp_path / "small-refused.duckdb"
    write_bulk_payload(db, 3)
    with mock_server(on_request=lambda request: Answer(400)) as srv:
        s = push_now(db, srv.url, batch_size=100, concurrency=1)
        assert srv.stats()["requests"] == s.requests == 5  # 3, then 1 and 2, then 1 and 1
    assert (s.exit_code, s.outcome) == (ExitCode.UNEXPECTED_RESPONSE, "refused_every_event")
    assert (s.accepted, s.rejected, s.left_pending) == (0, 0, 3)
    assert s.message.startswith("LINE answered 400 to each of the 3 events of the run")
    assert "too few to tell" in s.message
    assert ledger_counts(db) == {}


def test_small_batches_refused_whole_stop_the_run_once_ten_events_are_refused(tmp_path):
    """Batches of 3 against a LINE that refuses every request: ten events refused alone, none
    accepted, are as telling as a larger batch; the run stops there, not after every event."""
    db = tmp_path / "small-batches-refused.duckdb"
    write_bulk_payload(db, 30)
    with mock_server(on_request=lambda request: Answer(400)) as srv:
        s = push_now(db, srv.url, batch_size=3, concurrency=1)
        assert srv.stats()["requests"] == s.requests == 20  # 5 a batch of 3, four batches
    assert (s.exit_code, s.outcome) == (ExitCode.UNEXPECTED_RESPONSE, "refused_every_event")
    assert (s.accepted, s.rejected, s.left_pending) == (0, 0, 30)
    assert s.message.startswith("LINE answered 400 to each of 12 events sent one by one from small")
    assert ledger_counts(db) == {}


def test_a_small_batch_refused_whole_is_rejected_once_the_run_accepts_others(tmp_path):
    """The same small batch in a run that LINE accepts other events of: its events are the
    ones refused, recorded as rejected_by_api once the run is over."""
    db = tmp_path / "small-poisoned.duckdb"
    write_bulk_payload(db, 9)
    with mock_server() as srv:
        srv.poison(*[f"bulk-{i:08d}" for i in range(3)])  # the whole first batch
        s = push_now(db, srv.url, batch_size=3, concurrency=1)
    assert (s.exit_code, s.accepted, s.rejected, s.left_pending) == (
        ExitCode.REJECTED_BY_API,
        6,
        3,
        0,
    )
    assert ledger_counts(db) == {"accepted": 6, "rejected_by_api": 3}


def test_a_bad_event_left_alone_by_a_retry_is_judged_with_the_next_hours_events(tmp_path):
    """A 429 to the bad event's own request leaves it the only one pending. The next run has it
    alone, refused, nothing accepted: too few to tell it from a refused request, so it stays
    pending (exit 7). The run after, with the next hour's event accepted, records it as
    rejected_by_api: a quiet hour delays the verdict, it never loses the event."""
    db = tmp_path / "left-alone.duckdb"
    write_bulk_payload(db, 3)
    bad = "bulk-00000001"
    busy = [True]

    def busy_for_it_alone(request):
        keys = [event["event"]["deduplication_key"] for event in json.loads(request.body)]
        return Answer(429) if busy[0] and keys == [bad] else None

    with mock_server(on_request=busy_for_it_alone) as srv:
        srv.poison(bad)
        s = push_now(db, srv.url, max_retries=1)
        assert (s.exit_code, s.accepted, s.rejected, s.left_pending) == (
            ExitCode.PENDING_LEFT,
            2,
            0,
            1,
        )
        busy[0] = False
        s = push_now(db, srv.url)
        assert (s.exit_code, s.outcome, s.left_pending) == (
            ExitCode.UNEXPECTED_RESPONSE,
            "refused_every_event",
            1,
        )
        assert s.message.startswith("LINE answered 400 to the one event of the run")
        assert ledger_counts(db) == {"accepted": 2}
        write_bulk_payload(db, 4)  # the next hour's build: one more event
        s = push_now(db, srv.url)
        assert srv.accepted_keys() == {"bulk-00000000", "bulk-00000002", "bulk-00000003"}
    assert (s.exit_code, s.accepted, s.rejected, s.left_pending) == (
        ExitCode.REJECTED_BY_API,
        1,
        1,
        0,
    )
    assert ledger_counts(db) == {"accepted": 3, "rejected_by_api": 1}


def test_a_refused_batch_cut_short_leaves_its_refusals_pending(tmp_path):
    """A bisection stopped half-way (here by a long Retry-After) has not shown whether the
    events or the request are refused: its refusals wait for the next run, not recorded."""
    db = tmp_path / "cut-short.duckdb"
    write_bulk_payload(db, 15)
    answers = iter([Answer(400)] * 6 + [Answer(429, {"Retry-After": "3600"})])
    with mock_server(on_request=lambda request: next(answers, Answer(400))) as srv:
        s = push_now(db, srv.url, batch_size=15, concurrency=1)
        assert srv.stats()["requests"] == 7
    assert (s.outcome, s.rejected, s.left_pending) == ("retry_later", 0, 15)
    assert ledger_counts(db) == {}


def test_invalid_events_at_the_start_of_a_batch_are_rejected_not_taken_for_a_refused_request(
    tmp_path,
):
    """Bisection answers a batch's first half first: ten invalid events there are refused before
    any valid one is sent. The batch's other events are accepted, so the ten are rejected."""
    db = tmp_path / "first-ten.duckdb"
    write_bulk_payload(db, 100)
    with mock_server() as srv:
        srv.poison(*[f"bulk-{i:08d}" for i in range(10)])
        s = push_now(db, srv.url, batch_size=100, concurrency=1)
    assert (s.exit_code, s.accepted, s.rejected, s.left_pending) == (
        ExitCode.REJECTED_BY_API,
        90,
        10,
        0,
    )
    assert ledger_counts(db) == {"accepted": 90, "rejected_by_api": 10}


def test_poisoned_row_among_thousands_only_it_rejected(tmp_path):
    db = tmp_path / "poison.duckdb"
    write_bulk_payload(db, 5000)
    with mock_server() as srv:
        srv.poison("bulk-00003217")
        s = push_now(db, srv.url, batch_size=1000, concurrency=4)
        assert s.rejected == 1 and s.accepted == 4999 and s.left_pending == 0
        assert s.exit_code == ExitCode.REJECTED_BY_API
        assert len(srv.accepted) == 4999 and set(srv.accepted.values()) == {1}
        assert ("Purchase", "bulk-00003217") not in srv.accepted
        # bisection: one 1000-batch -> about 2*log2(1000) extra requests, not 1000
        assert s.requests < 5 + 2 * 11
        again = push_now(db, srv.url)
        assert again.pending == 0 and again.requests == 0
    counts = ledger_counts(db)
    assert counts == {"accepted": 4999, "rejected_by_api": 1}
    rejected = [r for r in ledger_rows(db) if r[2] == "rejected_by_api"]
    assert rejected[0][1] == "bulk-00003217" and rejected[0][3] == 400


def test_401_stops_at_once_without_retry(db):
    with mock_server(token="another-token") as srv:  # noqa: S106
        s = push_now(db, srv.url, batch_size=10, concurrency=2, max_retries=5)
        assert s.exit_code == ExitCode.AUTHENTICATION
        assert srv.stats()["by_status"] == {"401": srv.stats()["requests"]}
        assert srv.stats()["requests"] <= 2  # the requests already in flight, nothing more
        assert s.sent == 10 * srv.stats()["requests"]
        assert "0f8fad5b-d9cb-469f-a165-70867728950e" in s.message
    assert ledger_counts(db) == {}


def test_only_the_events_that_went_out_count_as_sent(db):
    def slow_refusal(request):
        time.sleep(0.3)  # meanwhile the other workers take their batches, and wait their turn
        return Answer(401)

    with mock_server(on_request=slow_refusal) as srv:
        s = push_now(db, srv.url, batch_size=10, concurrency=4)
        assert srv.stats()["requests"] == 1
    assert (s.exit_code, s.sent, s.accepted) == (ExitCode.AUTHENTICATION, 10, 0)


def test_403_is_authentication_too(db):
    with mock_server(on_request=lambda request: Answer(403)) as srv:
        s = push_now(db, srv.url)
        # the first request goes alone: one 403, nothing more
        assert s.exit_code == ExitCode.AUTHENTICATION and srv.stats()["by_status"] == {"403": 1}
    assert "the access token is wrong" in s.message and "web page" not in s.message
    # the mock server of a rehearsal started with another token than the job's: not "LINE"
    assert s.message.startswith(f"{srv.url} (not LINE's endpoint) answered HTTP 403 for LINE Tag")
    # a proxy or firewall that refuses the request answers with a web page: said first
    page = Answer(403, headers={"Content-Type": "text/html; charset=utf-8"})
    with mock_server(on_request=lambda request: page) as srv:
        s = push_now(db, srv.url)
    assert s.exit_code == ExitCode.AUTHENTICATION
    assert (
        "HTTP 403 for LINE Tag 0f8fad5b-d9cb-469f-a165-70867728950e with a web page, which a"
        in (s.message)
    )
    assert "proxy or a firewall sends when it refuses a request" in s.message


def test_404_wrong_endpoint_stops(db):
    with mock_server() as srv:
        s = push_now(db, srv.url + "/capi", concurrency=1)
        assert s.exit_code == ExitCode.UNEXPECTED_RESPONSE and s.requests == 1


def test_another_tags_id_stops_as_a_bad_token(db):
    """LINE answers 401 when the token is another tag's, and so does the mock."""
    with mock_server(tag_id="11111111-2222-4333-8444-555555555555") as srv:
        s = push_now(db, srv.url, concurrency=1)
        assert s.exit_code == ExitCode.AUTHENTICATION and s.requests == 1
        assert "belongs to another tag" in s.message


def test_429_retry_after_is_honoured(db):
    with mock_server() as srv:
        srv.inject("429", retry_after=0.4)
        started = time.monotonic()
        s = push_now(db, srv.url, batch_size=1000, concurrency=1, max_backoff=2.0)
        assert time.monotonic() - started >= 0.4
        assert (s.accepted, s.retried, s.exit_code) == (250, 1, ExitCode.OK)


@pytest.mark.parametrize("max_retries", [5, 0])
def test_retry_after_longer_than_max_backoff_leaves_the_rest_for_the_next_run(db, max_retries):
    """LINE's wait is honoured, not cut short: no request before it, so none in this run (with
    no retries left as well: the other workers must not go on sending)."""
    with mock_server() as srv:
        srv.inject("429", retry_after=3600)
        started = time.monotonic()
        s = push_now(
            db, srv.url, batch_size=100, concurrency=2, max_backoff=0.2, max_retries=max_retries
        )
        assert time.monotonic() - started < 5
        assert (s.accepted, s.left_pending, s.requests) == (0, 250, 1)
        assert (s.exit_code, s.outcome) == (ExitCode.PENDING_LEFT, "retry_later")
        assert "Retry-After" in s.message and "3,600s" in s.message
        assert ledger_counts(db) == {}
        # the next run sends them
        assert push_now(db, srv.url).accepted == 250


def test_500_after_partial_accept_is_retried_with_the_same_keys(db):
    with mock_server() as srv:
        srv.inject("500", accept_fraction=0.5)
        s = push_now(db, srv.url, batch_size=1000, concurrency=1)
        assert (s.accepted, s.retried, s.exit_code) == (250, 1, ExitCode.OK)
        # the first 125 arrived twice (LINE de-duplicates on event name + key), none lost
        assert len(srv.accepted) == 250
        assert sum(1 for n in srv.accepted.values() if n == 2) == 125


@pytest.mark.parametrize("kind", ["503", "drop"])
def test_transient_faults_are_retried(db, kind):
    with mock_server() as srv:
        srv.inject(kind, times=2, retry_after=0.01)
        s = push_now(db, srv.url, batch_size=100, concurrency=1)
        assert (s.accepted, s.retried, s.exit_code) == (250, 2, ExitCode.OK)
        assert set(srv.accepted.values()) == {1}


def test_slow_answer_times_out_and_is_retried_at_least_once(db):
    with mock_server() as srv:
        srv.inject("slow", delay=1.0)
        s = push_now(db, srv.url, batch_size=1000, concurrency=1, timeout=0.3)
        assert s.accepted == 250 and s.retried == 1
        time.sleep(0.9)  # the slow request finishes on the server side too
        assert len(srv.accepted) == 250 and max(srv.accepted.values()) <= 2


def test_exhausted_retries_leave_rows_pending_then_next_run_sends_them(db):
    with mock_server() as srv:
        srv.inject("503", times=3, retry_after=0.01)
        s = push_now(db, srv.url, batch_size=1000, concurrency=1, max_retries=2)
        assert (s.accepted, s.left_pending, s.exit_code) == (0, 250, ExitCode.PENDING_LEFT)
        assert ledger_counts(db) == {}
        again = push_now(db, srv.url, batch_size=1000)
        assert again.accepted == 250 and again.exit_code == ExitCode.OK
        assert set(srv.accepted.values()) == {1}


def test_connection_refused_leaves_everything_pending(db):
    # 25 batches, and LINE out of reach: the first batch's two attempts, not fifty
    s = push_now(db, "http://127.0.0.1:9", max_retries=1, batch_size=10, concurrency=1)
    assert (s.exit_code, s.outcome) == (ExitCode.PENDING_LEFT, "unreachable")
    assert (s.left_pending, s.requests) == (250, 2)
    assert "LINE could not be reached in 2 attempts (connection error (ConnectionError:" in (
        s.message
    )
    assert "Connection refused" in s.message and "a proxy (HTTPS_PROXY) or a firewall" in s.message
    assert s.sent == 0  # nothing left the machine
    assert ledger_counts(db) == {}
    # --max-retries 0: one attempt, said as one
    s = push_now(db, "http://127.0.0.1:9", max_retries=0, batch_size=10, concurrency=1)
    assert "LINE could not be reached in 1 attempt (connection error" in s.message


@contextlib.contextmanager
def listener(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that hands each connection to ``answer``: its URL."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                answer(conn)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


@contextlib.contextmanager
def dropping_every_connection() -> Iterator[tuple[str, list[int]]]:
    """A listener that resets each connection as soon as it comes (a firewall that resets, a
    server going down): its URL, and the count of connections it took."""
    taken = [0]

    def reset(conn: socket.socket) -> None:
        taken[0] += 1
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with listener(reset) as url:
        yield url, taken


def test_the_other_workers_wait_out_the_first_batchs_retries_then_all_send(db):
    """LINE asks for a pause twice, then takes the first batch: the other three workers sent
    nothing meanwhile (the first three requests are one batch, its retries), then every batch
    went, each once."""
    bodies = []

    def pause_twice(request):
        bodies.append(request.body)
        return Answer(429, headers={"Retry-After": "0.05"}) if len(bodies) <= 2 else None

    with mock_server(on_request=pause_twice) as srv:
        s = push_now(db, srv.url, batch_size=10, concurrency=4, max_retries=5)
        assert len(srv.accepted) == 250
    assert bodies[0] == bodies[1] == bodies[2] and len(set(bodies)) == 25
    assert (s.exit_code, s.accepted, s.retried, s.requests) == (ExitCode.OK, 250, 2, 27)
    assert ledger_counts(db) == {"accepted": 250}


def test_line_down_midway_stops_the_run_at_the_second_request_in_a_row_it_fails(db):
    """LINE accepted the first batches, then answered 503 to everything: every other batch
    spent its retries (a refused batch cut into single events, thousands of them, held the job
    for hours past its hour). One failed batch is bad luck (above); two in a row stop the run."""
    answered = []

    def down_after_two(request):
        answered.append(request)
        return Answer(503) if len(answered) > 2 else None

    with mock_server(on_request=down_after_two) as srv:
        s = push_now(db, srv.url, batch_size=50, concurrency=1, max_retries=2)
        assert len(srv.accepted) == 100
    assert (s.exit_code, s.outcome) == (ExitCode.PENDING_LEFT, "unavailable")
    assert (s.accepted, s.left_pending, s.requests) == (100, 150, 2 + 3 + 3)
    assert s.message.startswith(
        "LINE accepted events in this run, then the retries of 2 requests in a row ended without"
        " an answer it took (the last: HTTP 503"
    ), s.message


def test_line_out_of_reach_costs_one_batchs_retries_whatever_the_workers(db):
    """Four workers, 25 batches, every connection dropped: the first batch's three attempts,
    while the other workers wait for them, then the run stops (the drill saw 21 connections)."""
    with dropping_every_connection() as (url, taken):
        s = push_now(db, url, max_retries=2, batch_size=10, concurrency=4)
    assert (s.exit_code, s.outcome, s.left_pending) == (ExitCode.PENDING_LEFT, "unreachable", 250)
    assert taken[0] == s.requests == 3
    assert s.message.startswith("LINE could not be reached in 3 attempts (connection error")
    assert ledger_counts(db) == {}


def test_a_proxy_url_with_a_password_is_never_shown(db, monkeypatch):
    # a port out of range: requests' message quotes the whole proxy URL
    proxy = "http://alice:Pr0xyPassw0rd@proxy.example:99999"
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.setenv("https_proxy", proxy)
    s = push_now(db, "https://conversion-api.example.invalid", max_retries=0, batch_size=10)
    assert s.outcome == "unreachable" and "Pr0xyPassw0rd" not in s.message
    assert "//***@proxy.example:99999" in s.message


def test_answers_later_than_the_timeout_are_told_from_an_unreachable_line(db):
    with mock_server() as srv:
        srv.inject("slow", times=2, delay=0.5)
        s = push_now(db, srv.url, batch_size=10, concurrency=1, max_retries=1, timeout=0.2)
    assert (s.exit_code, s.outcome) == (ExitCode.PENDING_LEFT, "unavailable")
    assert s.message.startswith(
        "LINE did not answer within --timeout (timeout (ReadTimeout)) in 2 attempts"
    )
    assert s.sent == 10  # the request went out


@pytest.mark.parametrize("concurrency", [1, 4])
def test_line_down_for_a_whole_batch_stops_the_run_before_the_other_batches(db, concurrency):
    # with four workers too: the others wait for the first batch's retries, not retry alongside
    with mock_server() as srv:
        srv.inject("503", times=100, retry_after=None)
        s = push_now(db, srv.url, batch_size=10, concurrency=concurrency, max_retries=2)
        assert srv.stats()["requests"] == 3
    assert (s.exit_code, s.outcome, s.left_pending) == (ExitCode.PENDING_LEFT, "unavailable", 250)
    assert s.message.startswith("LINE answered HTTP 503 to 3 attempts, and accepted nothing")
    assert ledger_counts(db) == {}


def test_a_failed_batch_after_accepted_ones_does_not_stop_the_run(db):
    answered = []

    def second_batch_fails(request):
        answered.append(request)
        return Answer(503) if 2 <= len(answered) <= 4 else None

    with mock_server(on_request=second_batch_fails) as srv:
        s = push_now(db, srv.url, batch_size=50, concurrency=1, max_retries=2)
        assert len(srv.accepted) == 200
    assert (s.exit_code, s.outcome) == (ExitCode.PENDING_LEFT, "pending_left")
    assert (s.accepted, s.left_pending, s.requests) == (200, 50, 7)


@pytest.mark.parametrize("status", [200, 204])
def test_a_2xx_other_than_202_is_not_taken_for_a_delivery(db, status):
    """LINE answers 202: a 200 is a proxy's page or another server, and LINE never got them."""
    with mock_server(on_request=lambda request: Answer(status)) as srv:
        s = push_now(db, srv.url)
        assert srv.stats()["requests"] == 1
    assert (s.exit_code, s.outcome) == (ExitCode.UNEXPECTED_RESPONSE, "unexpected_response")
    assert f"answered HTTP {status}, where LINE answers 202: something else answered" in s.message
    assert "nothing was recorded as delivered" in s.message
    assert ledger_counts(db) == {} and s.left_pending == 250


def test_expired_events_are_recorded_not_sent(tmp_path):
    db = tmp_path / "expired.duckdb"
    now = int(time.time())
    events = [
        make_event(1, ts=now - 91 * 86400, key="too-old"),
        make_event(2, ts=now * 1000, key="milliseconds"),
        make_event(3, ts=now - 60, key="fresh"),
    ]
    write_payload(db, events)
    with mock_server() as srv:
        s = push_now(db, srv.url)
        assert (s.expired, s.accepted, s.exit_code) == (2, 1, ExitCode.OK)
        assert srv.accepted_keys() == {"fresh"}
    status = {r[1]: (r[2], r[8]) for r in ledger_rows(db)}
    assert status["too-old"][0] == "expired" and "90 days" in status["too-old"][1]
    assert status["milliseconds"][0] == "expired"
    assert status["fresh"] == ("accepted", None)


def test_channel_id_header_only_when_needed(tmp_path):
    db = tmp_path / "uid.duckdb"
    events = [make_event(i, line_uid=(i >= 10), key=f"u-{i:02d}") for i in range(20)]
    events.sort(key=lambda e: e["event"]["deduplication_key"])
    now = int(time.time())
    for i, ev in enumerate(events):
        ev["event"]["event_timestamp"] = now - 100 + i
    write_payload(db, events)
    with mock_server() as srv:
        s = push_now(db, srv.url, channel_id=CHANNEL_ID, batch_size=10, concurrency=1)
        assert s.accepted == 20
        channels = [r.channel_id for r in srv.requests]
        assert channels == [None, CHANNEL_ID]


def test_without_a_channel_id_line_uid_rows_are_held_and_the_others_sent(tmp_path):
    """A site that starts using LINE Login must not stop every other event: the rows that need
    X-Line-ChannelID stay pending, the rest go, and the exit code names the missing setting."""
    db = tmp_path / "uid.duckdb"
    events = [make_event(i, line_uid=i in (2, 5, 6)) for i in range(8)]
    write_payload(db, events)
    uids = {f"order-{i:07d}" for i in (2, 5, 6)}
    with mock_server() as srv:
        r = invoke(["push", *FAST, "--batch-size", "2", "--json"], sender_env(db, srv.url))
        assert r.exit_code == ExitCode.USAGE, r.stderr
        error = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
        assert len(error) == 1 and "3 events carry user.line_uid" in error[0], r.stderr
        assert "LINE_CHANNEL_ID" in error[0]
        assert error[0].endswith("they stay pending, the other events were sent")
        summary = json.loads(r.stdout)
        assert (summary["accepted"], summary["held"], summary["left_pending"]) == (5, 3, 3)
        assert summary["outcome"] == "channel_id_missing"
        assert srv.accepted_keys() == {f"order-{i:07d}" for i in range(8)} - uids
        assert all(req.channel_id is None for req in srv.requests)
        # the setting made: the next push sends only what was held, with the header
        s = push_now(db, srv.url, channel_id=CHANNEL_ID)
        assert (s.pending, s.accepted, s.held, s.exit_code) == (3, 3, 0, ExitCode.OK)
        assert srv.requests[-1].channel_id == CHANNEL_ID
        assert srv.stats()["duplicates"] == 0


def test_held_line_uid_rows_name_their_setting_even_when_line_is_down(tmp_path):
    """An outage passes and the next run sends what it left (exit 1); the missing setting does
    not: exit 2, and the one line names both."""
    db = tmp_path / "uid-down.duckdb"
    write_payload(db, [make_event(i, line_uid=i in (0, 3)) for i in range(6)])
    with mock_server() as srv:
        srv.inject("503", times=100, retry_after=None)
        s = push_now(db, srv.url, max_retries=1)
    assert (s.exit_code, s.outcome, s.held, s.accepted) == (ExitCode.USAGE, "unavailable", 2, 0)
    outage, held = s.message.split("; also ")
    assert outage.startswith("LINE answered HTTP 503 to 2 attempts, and accepted nothing")
    assert held.startswith("2 events carry user.line_uid and were not sent: set LINE_CHANNEL_ID")
    assert held.endswith("; they stay pending")  # what became of the others, the outage says


def test_held_line_uid_rows_alone_do_not_claim_other_events_were_sent(tmp_path):
    db = tmp_path / "uid-only.duckdb"
    write_payload(db, [make_event(i, line_uid=True) for i in range(2)])
    with mock_server() as srv:
        s = push_now(db, srv.url)
    assert (s.sent, s.held, s.exit_code) == (0, 2, ExitCode.USAGE)
    assert s.message.endswith("they stay pending, no other event was sent")


def test_a_test_send_is_flagged_under_keys_of_its_own_and_does_not_count_as_sent(db):
    first_five = {f"order-{i:07d}" for i in range(5)}  # the oldest events
    with mock_server() as srv:
        s = push_now(db, srv.url, test=True, limit=5)
        assert s.accepted == 5
        assert srv.requests[0].test_flags == 5
        # LINE sees test-<key>: the real event can never be taken for a duplicate of it
        assert srv.accepted_keys() == {f"test-{key}" for key in first_five}
        rows = ledger_rows(db)
        assert {r[1] for r in rows} == first_five and all(r[7] for r in rows)  # is_test
        real = push_now(db, srv.url, batch_size=1000)
        assert real.pending == 250 and real.accepted == 250
        assert srv.requests[-1].test_flags == 0
        assert srv.stats()["duplicates"] == 0
        assert srv.accepted_keys() >= first_five
        # once every event was sent, a connection check sends nothing, and says what does
        r = invoke(["push", *FAST, "--test", "--limit", "5"], sender_env(db, srv.url))
        assert r.exit_code == ExitCode.OK and r.stdout.startswith("pending 0, sent 0")
        assert "nothing is pending at this destination, so --test sends nothing; add --resend" in (
            r.stderr
        )
        r = invoke(["push", *FAST, "--test", "--resend", "--limit", "5"], sender_env(db, srv.url))
        assert r.stdout.startswith("pending 5, sent 5, accepted 5") and "add --resend" not in (
            r.stderr
        )


def test_a_test_key_keeps_to_lines_256_characters_and_only_the_events_key_changes():
    import pyarrow as pa

    from sender.request_body import PayloadFormatError, as_test_events

    title = '"deduplication_key":"not-this-one"'
    payloads = [
        json.dumps(make_event(1, key="k" * 256), separators=(",", ":")),
        json.dumps(
            {"event": {"event_name": "A", "deduplication_key": "ORD-1"}, "web": {"title": title}},
            separators=(",", ":"),
        ),
    ]
    events = [json.loads(p) for p in as_test_events(pa.array(payloads)).to_pylist()]
    assert events[0]["event"]["deduplication_key"] == "test-" + "k" * 251
    assert events[1]["event"] == {
        "test_flag": True,
        "event_name": "A",
        "deduplication_key": "test-ORD-1",
    }
    assert events[1]["web"]["title"] == title
    assert all(e["event"]["test_flag"] is True for e in events)
    # a key the model would never write is refused, not sent as a test under the real key
    with pytest.raises(PayloadFormatError, match="no deduplication_key of"):
        as_test_events(pa.array(['{"event":{"deduplication_key":"ORD#1"}}']))


def test_limit_sends_the_oldest_first(db):
    with mock_server() as srv:
        s = push_now(db, srv.url, limit=30, batch_size=1000)
        assert (s.pending, s.accepted) == (30, 30)
        rest = push_now(db, srv.url, batch_size=1000)
        assert rest.pending == 220


def test_resend_ignores_the_ledger(db):
    with mock_server() as srv:
        push_now(db, srv.url, batch_size=1000)
        s = push_now(db, srv.url, batch_size=1000, resend=True)
        assert s.pending == 250 and s.accepted == 250
        assert set(srv.accepted.values()) == {2}


def test_dry_run_touches_neither_network_nor_ledger(db):
    import duckdb

    with mock_server() as srv:
        r = invoke(
            ["push", "--dry-run", "--show", "2", "--batch-size", "100"], sender_env(db, srv.url)
        )
        assert r.exit_code == 0, r.stderr
        assert srv.stats()["requests"] == 0
    assert "250 pending events" in r.stdout and "3 requests" in r.stdout
    shown = [line for line in r.stdout.splitlines() if line.startswith('{"event":{')]
    assert len(shown) == 2 and json.loads(shown[0])["event"]["event_name"] == "Purchase"
    con = duckdb.connect(str(db), read_only=True)
    tables = {t[0] for t in con.execute("show tables").fetchall()}
    con.close()
    assert "line_capi_send_log" not in tables  # not even created


def test_dry_run_test_shows_the_spliced_flag(db):
    r = invoke(["push", "--dry-run", "--test", "--show", "1", "--json"], sender_env(db))
    summary = json.loads(r.stdout)
    assert summary["shown"][0].startswith('{"event":{"test_flag":true,"source_type":"web"')
    event = json.loads(summary["shown"][0])["event"]
    assert event["test_flag"] is True and event["deduplication_key"] == "test-order-0000000"


def test_cli_json_summary_and_exit_code(db):
    with mock_server() as srv:
        srv.poison("order-0000007")
        r = invoke(["push", *FAST, "--json", "--batch-size", "50"], sender_env(db, srv.url))
    assert r.exit_code == ExitCode.REJECTED_BY_API
    summary = json.loads(r.stdout)
    for key in (
        "pending",
        "sent",
        "accepted",
        "rejected",
        "expired",
        "retried",
        "elapsed_s",
        "events_per_s",
        "left_pending",
        "requests",
    ):
        assert key in summary
    assert (summary["pending"], summary["accepted"], summary["rejected"]) == (250, 249, 1)


def test_cli_plain_log_lines_off_a_terminal(db):
    with mock_server() as srv:
        r = invoke(["push", *FAST], sender_env(db, srv.url))
    assert r.exit_code == 0
    assert "accepted 250" in r.stdout
    assert " sender: run " in r.stderr  # timestamped log line, no progress bar escape codes
    assert "\r" not in r.stderr


@pytest.mark.parametrize(("batch_size", "requests"), [(6000, 2), (20_000, 1), (5000, 3)])
def test_each_request_takes_the_batch_size_whatever_the_scan_chunk(tmp_path, batch_size, requests):
    """Batches were cut within the scan's chunks of 10,000 rows: --batch-size 6000 sent 6,000
    then 4,000, three requests for 11,505 events, and a batch size above 10,000 sent 10,000."""
    db = tmp_path / "line_capi.duckdb"
    write_bulk_payload(db, 11_505)
    dry = invoke(["push", "--dry-run", "--batch-size", str(batch_size), "--json"], sender_env(db))
    assert json.loads(dry.stdout)["batches"] == requests, dry.stdout
    with mock_server() as srv:
        summary = push_now(db, srv.url, batch_size=batch_size, concurrency=2)
        assert (summary.accepted, summary.requests) == (11_505, requests)
        assert srv.stats()["requests"] == requests


def test_body_size_cap_splits_batches():
    import pyarrow as pa

    from sender.batches import split_by_size
    from sender.request_body import build_body

    elements = ['{"event":{"k":"' + "x" * 89 + '"}}'] * 10  # 100 bytes each with a comma
    table = pa.table({"payload": pa.array(elements)})
    parts = list(split_by_size(table, batch_size=10, max_bytes=450))
    assert sum(p.num_rows for p in parts) == 10 and len(parts) > 1
    for part in parts:
        body = build_body(part.column("payload"))
        assert len(body) == len(bytes(body)) <= 450
        assert json.loads(bytes(body))[0]["event"]["k"].startswith("x")


def test_body_is_the_payloads_joined_exactly():
    import pyarrow as pa

    from sender.request_body import build_body

    column = pa.array(['{"a":1}', '{"b":2}', '{"c":3}'])
    assert bytes(build_body(column)) == b'[{"a":1},{"b":2},{"c":3}]'
    assert bytes(build_body(column.slice(1, 2))) == b'[{"b":2},{"c":3}]'
    assert bytes(build_body(column.slice(2, 1))) == b'[{"c":3}]'
    assert bytes(build_body(pa.chunked_array([column[:1], column[1:]]))) == bytes(
        build_body(column)
    )


def test_a_ledger_that_cannot_be_written_stops_the_run_with_one_line(db):
    import duckdb

    con = duckdb.connect(str(db))
    con.execute(
        "create table line_capi_send_keys (event_name varchar not null,"
        " deduplication_key varchar not null check (deduplication_key <> 'order-0000150'),"
        " event_timestamp bigint not null, outcome_id bigint not null, is_test boolean not null,"
        " destination_id integer not null)"
    )
    con.close()
    with mock_server() as srv:
        r = invoke(
            ["push", *FAST, "--batch-size", "50", "--concurrency", "1"], sender_env(db, srv.url)
        )
    assert r.exit_code == ExitCode.DATABASE_ERROR
    assert r.stderr.strip().splitlines()[-1].startswith("error: database ")
    assert "cannot record outcomes in the ledger" in r.stderr and "Traceback" not in r.stderr
    recorded = {row[1] for row in ledger_rows(db)}
    assert "order-0000150" not in recorded and len(recorded) % 50 == 0  # whole batches only
    assert len(recorded) < 250


def test_a_proxy_in_the_environment_is_never_used_for_a_loopback_endpoint(db, monkeypatch):
    # a proxy that does not exist: if it were used, every request would fail
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with mock_server() as srv:
        s = push_now(db, srv.url, max_retries=0)
    assert s.accepted == 250


@contextlib.contextmanager
def proxy_wanting_credentials() -> Iterator[tuple[str, list[bytes]]]:
    """An HTTP proxy on 127.0.0.1 that answers every CONNECT with 407."""
    connects = []

    def refuse(conn: socket.socket) -> None:
        connects.append(conn.recv(65536).split(b"\r\n", 1)[0])
        conn.sendall(
            b"HTTP/1.1 407 Proxy Authentication Required\r\n"
            b'Proxy-Authenticate: Basic realm="office"\r\nContent-Length: 0\r\n\r\n'
        )

    with listener(refuse) as url:
        yield url, connects


def test_a_proxy_that_wants_credentials_stops_the_run_at_once(db, monkeypatch):
    with proxy_wanting_credentials() as (proxy, connects):
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        monkeypatch.setenv("https_proxy", proxy)
        s = push_now(db, "https://conversion-api.example.invalid", max_retries=5)
    # one CONNECT, no retry: retrying cannot give the proxy its credentials
    assert [line.rsplit(b" ", 1)[0] for line in connects] == [
        b"CONNECT conversion-api.example.invalid:443"
    ]
    assert (s.exit_code, s.left_pending) == (ExitCode.UNEXPECTED_RESPONSE, 250)
    assert s.message.startswith(
        "the proxy refused the connection to https://conversion-api.example.invalid (Tunnel"
        " connection failed: 407 Proxy Authentication Required): give HTTPS_PROXY its user and"
        " password"
    )
    assert ledger_counts(db) == {}


def test_redirects_are_not_followed(db):
    """A 3xx would carry the token to another host: it stops the run instead."""
    redirect = Answer(307, headers={"Location": "http://127.0.0.1:9/steal"})
    with mock_server(on_request=lambda request: redirect) as srv:
        s = push_now(db, srv.url)
    assert s.exit_code == ExitCode.UNEXPECTED_RESPONSE and s.requests <= 4


def test_413_splits_the_request_until_it_fits(db):

    def small_bodies_only(request):
        return Answer(413) if len(request.body) > 20_000 else None

    with mock_server(on_request=small_bodies_only) as srv:
        s = push_now(db, srv.url, batch_size=250, concurrency=1)
        assert (s.accepted, s.rejected, s.exit_code) == (250, 0, ExitCode.OK)
        assert set(srv.accepted.values()) == {1}


def test_413_for_one_event_alone_stops_with_everything_pending(tmp_path):
    """An event is a few kB and LINE takes 300 MB: a 413 for one event alone comes from a limit
    on the way (a proxy), not from the event. Nothing is recorded as rejected; all stays
    pending for a run that gets through."""
    db = tmp_path / "too-large.duckdb"
    write_bulk_payload(db, 20)
    with mock_server(on_request=lambda request: Answer(413)) as srv:
        s = push_now(db, srv.url, batch_size=4, concurrency=1)
        assert srv.stats()["requests"] == s.requests == 3  # 4 events, then 2, then 1: stop
    assert (s.exit_code, s.outcome) == (ExitCode.UNEXPECTED_RESPONSE, "unexpected_response")
    assert (s.accepted, s.rejected, s.left_pending) == (0, 0, 20)
    assert "answered HTTP 413 (too large) to a request of one event" in s.message
    assert "check HTTPS_PROXY" in s.message and s.message.endswith("the events stay pending")
    assert ledger_counts(db) == {}


def test_a_resend_leaves_out_what_line_would_count_twice(tmp_path):
    """LINE de-duplicates within 30 days only. With a long lookback the payload holds events
    first accepted here over 29 days ago: --resend leaves them out (and says so); an old event
    first accepted recently, and every event of a test resend, goes again."""
    db = tmp_path / "resend.duckdb"
    now = int(time.time())
    events = [make_event(i, ts=now - 45 * DAY + i) for i in range(3)]  # 45 days old
    events += [make_event(i, ts=now - 3600 + i) for i in range(3, 6)]  # an hour old
    write_payload(db, events)
    with mock_server() as srv:
        assert push_now(db, srv.url, batch_size=2).accepted == 6
        # forty days pass for the first batch (two events): as if accepted back then
        con = duckdb.connect(str(db))
        shift = f"outcome_id - {40 * DAY * 10**9}"
        con.execute(
            f"update line_capi_send_batches set outcome_id = {shift} where outcome_id in ("
            " select outcome_id from line_capi_send_keys where deduplication_key in (?, ?))",
            ["order-0000000", "order-0000001"],
        )
        con.execute(
            f"update line_capi_send_keys set outcome_id = {shift}"
            " where deduplication_key in (?, ?)",
            ["order-0000000", "order-0000001"],
        )
        con.close()
        dry = invoke(["push", "--dry-run", "--resend"], sender_env(db, srv.url))
        assert dry.exit_code == 0, dry.stderr
        assert "would send 4 in 1 requests" in dry.stdout
        assert "2 not sent again (accepted over 29 days ago)" in dry.stdout
        r = invoke(["push", *FAST, "--resend", "--json"], sender_env(db, srv.url))
        assert r.exit_code == 0, r.stderr
        assert "2 events were first accepted here more than 29 days ago" in r.stderr
        summary = json.loads(r.stdout)
        assert (summary["pending"], summary["accepted"], summary["not_resent"]) == (4, 4, 2)
        times = {key: n for (_, key), n in srv.accepted.items()}
        assert times == {f"order-{i:07d}": 1 if i < 2 else 2 for i in range(6)}
        test = push_now(db, srv.url, resend=True, test=True)
        assert (test.pending, test.not_resent) == (6, 0)


def _set_build_window(db, *, lookback_hours: int) -> None:
    """The build info columns that dbt writes and the fixture leaves out: as_of and the window."""
    import datetime as dt

    con = duckdb.connect(str(db))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute("alter table line_capi_build_info add column as_of timestamp")
    con.execute("alter table line_capi_build_info add column lookback_hours bigint")
    con.execute(
        "update line_capi_build_info set as_of = ?, lookback_hours = ?", [now, lookback_hours]
    )
    con.close()


def test_the_catch_up_after_a_very_long_outage_reaches_back_no_further_than_line_accepts():
    """After 128 days it said `lookback_hours: 3079`: a build over events LINE refuses as too
    old, where 2160 hours (90 days) is the most that can still be sent."""
    import datetime as dt

    from sender.window_gap import WindowGap

    as_of = dt.datetime(2026, 12, 4, 10)
    long_ = WindowGap(as_of - dt.timedelta(days=128), as_of - dt.timedelta(hours=24), as_of)
    assert long_.needed_hours > 2160
    assert "`sender run -- --vars '{lookback_hours: 2160}'` (LINE takes no event older than 90" in (
        long_.describe()
    )
    # the last complete push covered what its export held: up to 3 hours before it started
    short = WindowGap(as_of - dt.timedelta(hours=31), as_of - dt.timedelta(hours=24), as_of)
    assert "{lookback_hours: 35}" in short.describe() and "older than" not in short.describe()


@pytest.mark.parametrize(
    ("hours_ago", "lookback_hours", "catch_up"),
    [
        (30, 24, 35),  # an outage longer than the window
        # a day's outage: the conversions KARTE added, or the export wrote, after the last push
        # had read it, at most 3 hours before it, were in no later window (they were silent)
        (22, 24, 27),
        # hourly runs with a window of an hour: each run misses what came late
        (1, 1, 6),
        (20, 24, None),  # covered: 20 hours plus the export's 3 are within the window
    ],
)
def test_an_outage_longer_than_the_window_is_said_and_alerted_once(
    tmp_path, hours_ago, lookback_hours, catch_up
):
    """LINE out of reach for 30 hours with a 24-hour window: the conversions of the first six
    hours were in no payload that was sent whole, and no count would ever show it. The first
    push back warns with the catch-up to run; its alert says it once, not at the next run."""
    from sender.alerts import window_gap_finding
    from sender.window_gap import EXPORT_DELAY_HOURS

    db = tmp_path / "gap.duckdb"
    write_payload(db, [make_event(i) for i in range(5)])
    with mock_server() as srv:
        assert push_now(db, srv.url).exit_code == ExitCode.OK
        con = duckdb.connect(str(db))  # that push was hours ago, and none left nothing since
        con.execute(
            f"update line_capi_send_runs set started_at = started_at - interval {hours_ago} hour"
        )
        con.close()
        write_payload(db, [make_event(i) for i in range(5, 10)])
        _set_build_window(db, lookback_hours=lookback_hours)
        # LINE still down at this hour: the push warns, the alert waits for the first push back
        # (it said the gap at every hour of the outage, each with a catch-up too short to run)
        srv.inject("503", 100)
        r = invoke(["push", *FAST, "--max-retries", "1"], sender_env(db, srv.url))
        assert r.exit_code == ExitCode.PENDING_LEFT, r.stderr
        srv.clear_faults()
        assert ("may never have been sent" in r.stderr) == (catch_up is not None)
        con = duckdb.connect(str(db), read_only=True)
        assert window_gap_finding(con, endpoint=srv.url, tag_id=TAG_ID) is None
        con.close()
        r = invoke(["push", *FAST], sender_env(db, srv.url))
        assert r.exit_code == 0, r.stderr
        warnings = [line for line in r.stderr.splitlines() if "may never have been sent" in line]
        con = duckdb.connect(str(db), read_only=True)
        found = window_gap_finding(con, endpoint=srv.url, tag_id=TAG_ID)
        con.close()
        if catch_up is None:
            assert warnings == [] and found is None
            return
        (warning,) = warnings
        assert f"catch up with `sender run -- --vars '{{lookback_hours: {catch_up}}}'`" in warning
        assert found is not None and f"lookback_hours: {catch_up}" in found
        # the next hour: the push before it sent everything, so nothing is said, unless the
        # window is shorter than the export's delay: then every run misses what came late
        r = invoke(["push", *FAST], sender_env(db, srv.url))
        con = duckdb.connect(str(db), read_only=True)
        again = window_gap_finding(con, endpoint=srv.url, tag_id=TAG_ID)
        con.close()
        every_run = lookback_hours <= EXPORT_DELAY_HOURS
        assert ("may never have been sent" in r.stderr) == every_run
        assert (again is not None) == every_run


def test_a_replay_of_a_past_window_first_after_an_outage_does_not_hide_the_gap(tmp_path):
    """After an outage, the first push back sent a replay of a past window (an as_of days ago),
    or the build left from before the outage: it left nothing pending, so the gap check took it
    for a push that covered up to its own start, and the next run said nothing of the days in
    between. What a push covered ends at the window of the build it sent."""
    import datetime as dt

    db = tmp_path / "replay.duckdb"
    write_payload(db, [make_event(i) for i in range(5)])
    with mock_server() as srv:
        assert push_now(db, srv.url).exit_code == ExitCode.OK
        con = duckdb.connect(str(db))
        [(started,)] = con.execute("select started_at from line_capi_send_runs").fetchall()
        # the build that push sent (line_capi_coverage keeps each build's as_of): two days old
        con.execute("create table line_capi_coverage (built_at timestamp, as_of timestamp)")
        sent_as_of = started - dt.timedelta(hours=40)
        con.execute(
            "insert into line_capi_coverage values (?, ?)",
            [started - dt.timedelta(minutes=1), sent_as_of],
        )
        con.close()
        write_payload(db, [make_event(i) for i in range(5, 10)])
        _set_build_window(db, lookback_hours=24)
        r = invoke(["push", *FAST], sender_env(db, srv.url))
    assert r.exit_code == 0, r.stderr
    [warning] = [line for line in r.stderr.splitlines() if "may never have been sent" in line]
    ended = f"sent a build whose window ended at {sent_as_of:%Y-%m-%d %H:%M} UTC (a replay"
    assert ended in warning, warning
    assert "catch up with `sender run -- --vars '{lookback_hours: 4" in warning, warning


def test_a_push_names_the_first_twenty_rejected_events_and_counts_the_rest(tmp_path, capsys):
    """The console of a scheduled job goes to cron mail, the journal or a CI log: a model change
    LINE refuses would print every order id there. The first 20 are named, the ledger has all."""
    db = tmp_path / "many-rejected.duckdb"
    write_bulk_payload(db, 200)
    with mock_server() as srv:
        # 40 in the later batches, among accepted ones (the first batch is accepted first)
        srv.poison(*[f"bulk-{i:08d}" for i in range(100, 180, 2)])
        s = push_now(db, srv.url, batch_size=50, concurrency=2)
    assert (s.accepted, s.rejected) == (160, 40)
    assert ledger_counts(db) == {"accepted": 160, "rejected_by_api": 40}
    said = capsys.readouterr().err.splitlines()
    named = [line for line in said if "sender: warning: LINE rejected event Purchase/" in line]
    assert len(named) == 20
    [more] = [line for line in said if "sender: warning: LINE rejected more events" in line]
    assert "line_capi_send_log where status = 'rejected_by_api'" in more
