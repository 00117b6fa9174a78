"""The access token never appears in output, logs, exceptions, help or the ledger."""

from __future__ import annotations

import pickle

import pytest
from sender_fixtures import (
    FAST,
    TAG_ID,
    TOKEN,
    db_text,
    make_event,
    mock_server,
    run_cli,
    sender_env,
    write_payload,
)

from sender.line_client import LineClient
from sender.settings import ConfigError, LineTarget, Secret


def test_secret_and_config_reprs_hide_the_token():
    target = LineTarget.from_values(
        endpoint="http://127.0.0.1:1", tag_id=TAG_ID, token=TOKEN, channel_id=None
    )
    for text in (
        repr(target),
        str(target),
        repr(target.token),
        str(target.token),
        f"{target}",
        repr(LineClient(target, timeout=1)),
    ):
        assert TOKEN not in text
    assert target.token.reveal() == TOKEN
    with pytest.raises(TypeError):
        pickle.dumps(target.token)
    assert repr(Secret("x")) == "Secret('********')"


def test_config_errors_name_the_tag_not_the_token():
    with pytest.raises(ConfigError) as err:
        LineTarget.from_values(endpoint=None, tag_id=TAG_ID, token=TOKEN + " x", channel_id=None)
    assert TOKEN not in str(err.value) and TAG_ID in str(err.value)


def test_token_never_in_any_output_or_the_ledger(tmp_path):
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(40)] + [make_event(99, line_uid=True)])
    outputs: list[str] = []

    def run(args, env):
        r = run_cli(args, env)
        outputs.extend([r.stdout, r.stderr])
        return r

    channel = {"LINE_CHANNEL_ID": "1234"}
    with mock_server() as srv:
        srv.poison("order-0000003")
        srv.inject("500")
        srv.inject("drop")
        assert (
            run(
                ["push", *FAST, "--batch-size", "10"], sender_env(db, srv.url, **channel)
            ).returncode
            == 4
        )
        run(["push", *FAST], sender_env(db, srv.url))  # missing channel id
        run(["push", *FAST, "--resend", "--json"], sender_env(db, srv.url, **channel))
        run(
            ["push", *FAST, "--test", "--resend", "--limit", "2"],
            sender_env(db, srv.url, **channel),
        )
    with mock_server(token="the-right-one") as srv:  # noqa: S106
        assert run(["push", *FAST, "--resend"], sender_env(db, srv.url, **channel)).returncode == 3
    run(
        ["push", *FAST, "--resend", "--max-retries", "1"],
        sender_env(db, "http://127.0.0.1:9", **channel),
    )  # connection refused
    run(["push"], sender_env(db, "http://example.com"))  # refused endpoint
    run(["push"], sender_env(db, LINE_TAG_ID="nope"))
    run(["push", "--access-token", TOKEN + "\n"], sender_env(db, LINE_ACCESS_TOKEN=""))
    run(["push", "--dry-run", "--show", "3"], sender_env(db))
    run(["status"], sender_env(db))
    run(["report", "-o", str(tmp_path / "report.html")], sender_env(db))
    outputs.append((tmp_path / "report.html").read_text())
    run(["preview"], sender_env(db))
    run(["push", "--help"], sender_env(db))
    run(["push"], sender_env(tmp_path / "missing.duckdb"))
    everything = "\n".join(outputs)
    assert "401" in everything or "access token" in everything  # the failure paths did run
    assert TOKEN not in everything
    assert TOKEN not in db_text(db)
