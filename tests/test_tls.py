"""A certificate that does not verify is a configuration error: one line naming the endpoint and
OpenSSL's reason, exit 9, no retry, nothing recorded as sent. A CA bundle set in the environment
(the advice of that line) makes the same push succeed, a loopback endpoint included. An https
endpoint that answers in plain http is a wrong endpoint: exit 7, no retry."""

from __future__ import annotations

import json

import pytest
from schedule_fixtures import clock_export, sender_run
from security_fixtures import certificate, https_mock_server, open_to_others, umask
from sender_fixtures import (
    FAST,
    TAG_ID,
    TOKEN,
    make_event,
    mock_server,
    pending_keys,
    run_cli,
    sender_env,
    write_payload,
)

from sender.exit_codes import ExitCode
from sender.line_client import HttpOutcome, LineClient
from sender.settings import LineTarget


@pytest.fixture
def self_signed(tmp_path):
    return certificate(tmp_path / "tls", "local")


def make_db(tmp_path, n=50):
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(n)])
    return db


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line]


def last_run(db) -> tuple:
    run = json.loads(run_cli(["status", "--json"], sender_env(db)).stdout)["last_run"]
    return run["exit_code"], run["outcome"], run["accepted"]


def test_a_self_signed_certificate_stops_at_once_and_the_ca_bundle_advice_works(
    tmp_path, self_signed
):
    db = make_db(tmp_path)
    everything = {f"order-{i:07d}" for i in range(50)}
    cert, key = self_signed
    with https_mock_server(cert, key) as srv:
        # several batches and the default four workers: still only the first request is tried
        args = ["push", *FAST, "--batch-size", "10", "--max-retries", "5"]
        r = run_cli(args, sender_env(db, srv.url))
        assert r.returncode == ExitCode.TLS_CERTIFICATE, r.stderr
        [line] = error_lines(r.stderr)
        assert srv.url in line and "self-signed certificate" in line
        assert "REQUESTS_CA_BUNDLE" in line
        assert "retrying" not in r.stderr and "Traceback" not in r.stderr
        assert 1 <= srv.stats()["connections"] <= 2
        assert srv.stats()["requests"] == 0
        assert ", sent 0, accepted 0" in r.stdout  # the handshake stopped the request
        assert pending_keys(db) == everything  # nothing recorded as sent
        assert last_run(db) == (ExitCode.TLS_CERTIFICATE, "tls_certificate", 0)

        # the advice: the CA's certificate in REQUESTS_CA_BUNDLE. A proxy set in the
        # environment is still not used for a loopback endpoint (it would refuse the connection).
        env = sender_env(
            db, srv.url, REQUESTS_CA_BUNDLE=str(cert), HTTPS_PROXY="http://127.0.0.1:9"
        )
        r = run_cli([*args, "--json"], env)
        assert r.returncode == ExitCode.OK, r.stderr
        assert json.loads(r.stdout)["accepted"] == 50
        assert srv.accepted_keys() == everything
    assert pending_keys(db) == set()
    assert TOKEN not in r.stdout + r.stderr


@pytest.mark.parametrize("bundle", ["missing", "not PEM"])
def test_a_ca_bundle_that_cannot_be_used_is_the_same_error_without_a_connection(
    tmp_path, self_signed, bundle
):
    """A bundle that is not there, or is there but not PEM (the certificate's key, say): every
    request would fail alike, so none is made, rather than six retries and "unreachable"."""
    db = make_db(tmp_path, n=5)
    cert, key = self_signed
    path, says = {
        "missing": (tmp_path / "no-such-bundle.pem", "cannot be read"),
        "not PEM": (key, "holds no certificate OpenSSL can read"),
    }[bundle]
    with https_mock_server(cert, key) as srv:
        r = run_cli(["push", *FAST], sender_env(db, srv.url, REQUESTS_CA_BUNDLE=str(path)))
        assert srv.stats()["connections"] == 0
    assert r.returncode == ExitCode.TLS_CERTIFICATE, r.stderr
    [line] = error_lines(r.stderr)
    assert f"REQUESTS_CA_BUNDLE={path} {says}" in line
    assert len(pending_keys(db)) == 5
    assert "pending 5, sent 0, accepted 0" in r.stdout  # nothing left the machine


def test_an_https_endpoint_that_answers_in_plain_http_stops_at_once_as_a_wrong_endpoint(
    tmp_path,
):
    """https:// typed for sender mock-server (plain http): not a network fault to retry."""
    db = make_db(tmp_path, n=20)
    with mock_server() as srv:
        url = srv.url.replace("http://", "https://")
        r = run_cli(["push", *FAST, "--batch-size", "5", "--max-retries", "5"], sender_env(db, url))
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.UNEXPECTED_RESPONSE, r.stderr
    [line] = error_lines(r.stderr)
    assert f"{url} answered without TLS: it is not an https server" in line
    assert "check LINE_CAPI_ENDPOINT" in line
    assert "retrying" not in r.stderr and "Traceback" not in r.stderr
    assert len(pending_keys(db)) == 20
    assert last_run(db) == (ExitCode.UNEXPECTED_RESPONSE, "unexpected_response", 0)


def post_once(url: str) -> object:
    target = LineTarget.from_values(endpoint=url, tag_id=TAG_ID, token=TOKEN, channel_id=None)
    client = LineClient(target, timeout=5)
    try:
        return client.post(("[" + json.dumps(make_event(1)) + "]").encode(), has_line_uid=False)
    finally:
        client.close()


def test_each_certificate_problem_is_named(tmp_path, monkeypatch, self_signed):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    cert, key = self_signed
    other_cert, other_key = certificate(tmp_path / "tls", "other", san="DNS:other.example")
    with https_mock_server(other_cert, other_key) as srv:
        # trusted, but issued for another name
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other_cert))
        answer = post_once(srv.url)
        assert answer.outcome is HttpOutcome.TLS and "mismatch" in answer.error, answer
        # signed by a CA the bundle does not hold
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        answer = post_once(srv.url)
        assert answer.outcome is HttpOutcome.TLS, answer
        assert "self-signed certificate" in answer.error and srv.url in answer.error
        # the bundle that was used is named: one set machine-wide may hide the one meant
        assert f"(verified with REQUESTS_CA_BUNDLE={cert});" in answer.error
    with https_mock_server(cert, key) as srv:
        # OpenSSL's own variable counts too
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        answer = post_once(srv.url)
        assert answer.outcome is HttpOutcome.ACCEPTED, answer
        assert srv.stats()["accepted_events"] == 1
    assert TOKEN not in repr(answer)


def test_sender_run_returns_exit_9_as_is_and_writes_only_private_files(tmp_path, self_signed):
    """The scheduled job under the usual umask 022: its files are its owner's only."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1, "ORD-2": 2}, newest_hours=0.2)
    cert, key = self_signed
    db = tmp_path / "line_capi.duckdb"
    with https_mock_server(cert, key) as srv, umask(0o022):
        r = sender_run(tmp_path, srv.url, export=export)
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.TLS_CERTIFICATE, r.stderr
    assert "dbt build ok" in r.stderr
    assert "self-signed certificate" in error_lines(r.stderr)[-1]
    assert pending_keys(db) == {"ORD-1", "ORD-2"}
    log = tmp_path / "line_capi_run.log"
    assert "done: exit 9" in log.read_text()
    files = [db, db.with_name(db.name + ".wal"), log, db.with_name(db.name + ".lock")]
    assert all(p.exists() for p in files if not p.name.endswith(".wal"))
    dbt_files = [tmp_path / "target", tmp_path / "logs", tmp_path / "target" / "run_results.json"]
    assert open_to_others(files + dbt_files) == []
