"""The LINE-compatible mock server checks what LINE checks, and injects faults on demand."""

from __future__ import annotations

import http.client
import json
import time

import pytest
import requests
from sender_fixtures import CHANNEL_ID, TAG_ID, TOKEN, make_event, mock_server

from sender.mock_server import Invalid, validate_event

NOW = time.time()


def post(
    server, events, *, token=TOKEN, tag=TAG_ID, channel=None, raw: bytes | None = None, timeout=5
):
    headers = {"Content-Type": "application/json", "X-Line-TagAccessToken": token}
    if channel:
        headers["X-Line-ChannelID"] = channel
    body = raw if raw is not None else json.dumps(events).encode()
    return requests.post(
        f"{server.url}/v1/{tag}/events", data=body, headers=headers, timeout=timeout
    )


@pytest.fixture(scope="module")
def server():
    with mock_server() as srv:
        yield srv


def test_valid_batch_is_202_with_empty_body_and_recorded(server):
    resp = post(server, [make_event(1, key="mock-ok-1"), make_event(2, key="mock-ok-2")])
    assert resp.status_code == 202
    assert resp.content == b""
    assert {"mock-ok-1", "mock-ok-2"} <= server.accepted_keys()


def test_wrong_token_is_401(server):
    assert post(server, [make_event(1)], token="nope").status_code == 401  # noqa: S106


def test_malformed_tag_id_is_404(server):
    assert post(server, [make_event(1)], tag="not-a-uuid").status_code == 404


def test_the_request_must_be_as_the_spec_writes_it(server):
    """Stricter than a lenient parser: what LINE's spec gives, and nothing the sender never sends
    passes here unnoticed (a path with a slash or a query, a tag id in capitals, another media
    type, a body in UTF-16 or with a byte order mark)."""
    event = [make_event(5, key="mock-strict")]
    headers = {"Content-Type": "application/json", "X-Line-TagAccessToken": TOKEN}
    url = f"{server.url}/v1/{TAG_ID}/events"
    for path in (f"{url}/", f"{url}?x=1", url.replace(TAG_ID, TAG_ID.upper())):
        assert requests.post(path, json=event, headers=headers, timeout=5).status_code == 404
    for media_type in ("application/jsonx", "text/plain"):
        typed = {**headers, "Content-Type": media_type}
        assert requests.post(url, json=event, headers=typed, timeout=5).status_code == 400
    text = json.dumps(event)
    for body in (text.encode("utf-16"), b"\xef\xbb\xbf" + text.encode()):
        answer = requests.post(url, data=body, headers=headers, timeout=5)
        assert answer.status_code == 400
        assert answer.headers["X-Mock-Reason"] == "body is not JSON in UTF-8"
    assert "mock-strict" not in server.accepted_keys()
    # a charset parameter is allowed, and the same request as written is accepted
    typed = {**headers, "Content-Type": "application/json; charset=utf-8"}
    assert requests.post(url, data=text.encode(), headers=typed, timeout=5).status_code == 202


def test_another_tags_id_is_401_as_at_line(server):
    """LINE answers 401 when the token belongs to another tag: a token is issued per tag."""
    other = "11111111-2222-4333-8444-555555555555"
    assert post(server, [make_event(1)], tag=other).status_code == 401


def test_line_uid_needs_a_digit_channel_id(server):
    ev = make_event(3, line_uid=True, key="mock-uid")
    assert post(server, [ev]).status_code == 400
    assert post(server, [ev], channel="abc").status_code == 400
    assert post(server, [ev], channel=CHANNEL_ID).status_code == 202


def test_body_must_be_a_bare_array(server):
    assert post(server, None, raw=json.dumps(make_event(4)).encode()).status_code == 400
    assert post(server, None, raw=b"[]").status_code == 400
    assert post(server, None, raw=b"not json").status_code == 400


def test_chunked_encoding_is_400(server):
    host, port = server.httpd.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.putrequest("POST", f"/v1/{TAG_ID}/events")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("X-Line-TagAccessToken", TOKEN)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    data = json.dumps([make_event(5)]).encode()
    conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
    assert conn.getresponse().status == 400
    conn.close()


def test_missing_content_length_is_400(server):
    host, port = server.httpd.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.putrequest("POST", f"/v1/{TAG_ID}/events")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("X-Line-TagAccessToken", TOKEN)
    conn.endheaders()
    assert conn.getresponse().status == 400
    conn.close()


def test_first_bad_event_discards_the_whole_request(server):
    good = make_event(6, key="mock-discarded-good")
    bad = make_event(7, key="undefined")
    assert post(server, [good, bad]).status_code == 400
    assert "mock-discarded-good" not in server.accepted_keys()


def _with(path: str, value):
    ev = make_event(8)
    obj = ev
    *parents, last = path.split(".")
    for p in parents:
        obj = obj.setdefault(p, {})
    if value is _DELETE:
        obj.pop(last, None)
    else:
        obj[last] = value
    return ev


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("event.source_type", "app"),
        ("event.event_type", "click"),
        ("event.event_name", "Purchase!"),
        ("event.event_name", "x" * 21),
        ("event.deduplication_key", "has space"),
        ("event.deduplication_key", "undefined"),
        ("event.deduplication_key", _DELETE),
        ("event.event_timestamp", int(NOW * 1000)),  # milliseconds
        ("event.event_timestamp", int(NOW) - 91 * 86400),
        ("event.event_timestamp", int(NOW) + 2 * 86400),
        ("event.event_timestamp", 1.5),
        ("event.event_timestamp", "1700000000"),
        ("event.test_flag", "true"),
        ("event.event_name", None),
        ("user.email", "A" * 64),
        ("user.email", "abc"),
        ("user.phone", "+819012345678"),
        ("user.line_uid", "U123"),
        ("user.browser_id", "not-a-uuid"),
        ("user.click_id", "a b"),
        ("user.external_id", "x" * 513),
        ("user.ifa", "zzz"),
        ("custom", _DELETE),  # a Purchase (make_event's) without custom.value
        ("custom.value", -1),
        ("custom.value", 2_147_483_648),
        ("custom.currency", "jpy"),
        ("custom.quantity", -1),
        ("custom.item_ids", [str(i) for i in range(101)]),
        ("custom.keywords", [str(i) for i in range(11)]),
        ("custom.category", "c" * 301),
        ("web.url", "ftp://example.com"),
        ("web.title", "t" * 1025),
        ("web.ip_address", "999.1.1.1"),
        ("web.referrer", "r" * 2049),
        # a pattern's end is the value's end, not a line break before it
        ("event.event_name", "Conversion\n"),
        ("event.deduplication_key", "k1\n"),
        ("user.email", "0" * 64 + "\n"),
        ("user.line_uid", "U" + "0" * 32 + "\n"),
        ("custom.currency", "JPY\n"),
        ("web.ip_address", "fe80::1%eth0"),  # a zone id is local to the machine
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) <= 30 else type(v).__name__,
)
def test_each_field_rule_is_enforced(path, value):
    with pytest.raises(Invalid):
        validate_event(_with(path, value), NOW)


def test_user_needs_an_identifier():
    ev = make_event(9)
    ev["user"] = {}
    with pytest.raises(Invalid):
        validate_event(ev, NOW)


def test_valid_optional_fields_pass():
    ev = make_event(10, line_uid=True)
    ev["user"].update(
        browser_id="0f8fad5b-d9cb-469f-a165-70867728950e",
        click_id="abc_DEF-1",
        phone="b" * 64,
        external_id="crm-42",
        ifa="1f8fad5b-d9cb-469f-a165-70867728950e",
    )
    ev["custom"].update(quantity=2, item_ids=["a"], keywords=["k"], category="shoes")
    ev["web"].update(referrer="https://a", title="t", user_agent="ua", ip_address="2001:db8::1")
    ev["event"]["test_flag"] = True
    validate_event(ev, NOW)


def test_injected_faults_in_order_then_normal():
    with mock_server() as srv:
        srv.inject("429", retry_after=7)
        srv.inject("503")
        srv.inject("401")
        srv.inject("500", accept_fraction=0.5)
        srv.inject("drop")
        events = [make_event(i, key=f"fault-{i}") for i in range(4)]
        r = post(srv, events)
        assert (r.status_code, r.headers["Retry-After"]) == (429, "7")
        assert post(srv, events).status_code == 503
        assert post(srv, events).status_code == 401
        assert post(srv, events).status_code == 500
        assert srv.accepted_keys() == {"fault-0", "fault-1"}  # half kept before the 500
        with pytest.raises(requests.ConnectionError):
            post(srv, events)
        assert post(srv, events).status_code == 202
        assert srv.stats()["by_status"] == {
            "0": 1,
            "202": 1,
            "401": 1,
            "429": 1,
            "500": 1,
            "503": 1,
        }


def test_slow_answer_times_out_the_client_but_is_processed():
    with mock_server() as srv:
        srv.inject("slow", delay=0.6)
        with pytest.raises(requests.Timeout):
            post(srv, [make_event(1, key="slow-1")], timeout=0.2)
        deadline = time.time() + 3
        while "slow-1" not in srv.accepted_keys() and time.time() < deadline:
            time.sleep(0.05)
        assert "slow-1" in srv.accepted_keys()


def test_poisoned_key_always_400():
    with mock_server() as srv:
        srv.poison("bad-one")
        for _ in range(2):
            assert (
                post(srv, [make_event(1, key="ok"), make_event(2, key="bad-one")]).status_code
                == 400
            )
        assert post(srv, [make_event(1, key="ok")]).status_code == 202


def test_stats_endpoint_and_keep_alive():
    with mock_server() as srv, requests.Session() as s:
        headers = {"Content-Type": "application/json", "X-Line-TagAccessToken": TOKEN}
        for i in range(3):
            r = s.post(
                f"{srv.url}/v1/{TAG_ID}/events",
                headers=headers,
                data=json.dumps([make_event(i, key=f"ka-{i}")]),
            )
            assert r.status_code == 202
        stats = s.get(f"{srv.url}/_mock/stats").json()
        assert stats["accepted_unique"] == 3 and stats["requests"] == 3
        # one kept-alive connection served all of them
        assert len(s.get_adapter(srv.url).poolmanager.pools) == 1
