"""``sender mock-server``: the LINE-compatible server (sender.mock_server) on the command line."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

from sender.cli.common import app, die, exits_on_error, secret_option, sigterm_as_interrupt
from sender.exit_codes import ExitCode
from sender.mock_server import MockLineServer
from sender.settings import ConfigError, is_loopback_host, validate_tag_id


@app.command("mock-server")
def mock_server_command(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port).")] = 8787,
    host: Annotated[str, typer.Option(help="Loopback address to bind.")] = "127.0.0.1",
    access_token: Annotated[
        str | None,
        typer.Option(
            "--access-token",
            envvar="LINE_ACCESS_TOKEN",
            show_default=False,
            help="Token the server expects (401 otherwise); also from LINE_ACCESS_TOKEN_FILE."
            " Default: 'mock-token'.",
        ),
    ] = None,
    tag_id: Annotated[
        str | None,
        typer.Option(
            "--tag-id", envvar="LINE_TAG_ID", help="Only this tag id (default: any UUID)."
        ),
    ] = None,
    delay: Annotated[float, typer.Option(min=0.0, help="Seconds added to every answer.")] = 0.0,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            help="Inject faults, in order: KIND[:COUNT], KIND one of 429, 500 (after keeping half "
            "the batch), 503, slow, drop, 401. Repeatable.",
        ),
    ] = None,
    chaos: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Share of requests answered by a random 429/500/503/drop."
        ),
    ] = 0.0,
    retry_after: Annotated[
        float, typer.Option(min=0.0, help="Retry-After seconds sent with injected 429/503.")
    ] = 1.0,
    poison: Annotated[
        list[str] | None,
        typer.Option(help="A deduplication_key whose requests always get 400. Repeatable."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per request.")] = False,
) -> None:
    """Run a local LINE-compatible Conversion API server to rehearse a run end to end.

    It checks what LINE checks and answers 202/400/401 like LINE; faults can be injected.
    Counters: GET /_mock/stats. Stop with Ctrl-C.

    Example:

        sender mock-server --port 8787 &
        LINE_CAPI_ENDPOINT=http://127.0.0.1:8787 \\
        LINE_TAG_ID=00000000-0000-4000-8000-000000000000 \\
        LINE_ACCESS_TOKEN=mock-token LINE_CHANNEL_ID=1234567890 \\
        sender push && sender status
    """
    with exits_on_error():
        if not is_loopback_host(host):
            raise ConfigError(
                f"--host {host} is not a loopback address; the mock server stays local"
            )
        expected = secret_option(ctx, "access_token", "LINE_ACCESS_TOKEN", access_token)
        if tag_id:  # a typo here would refuse every push of the rehearsal
            tag_id = validate_tag_id(tag_id)
    token = expected.reveal() if expected else "mock-token"
    del access_token, expected

    def log(message: str) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
        typer.echo(f"{stamp} mock-server: {message}", err=True)

    try:
        server = MockLineServer(
            host=host,
            port=port,
            token=token,
            tag_id=tag_id,
            delay=delay,
            chaos=chaos,
            log=None if quiet else log,
        )
    except OSError as exc:
        raise die(f"cannot listen on {host}:{port}: {exc.strerror}", ExitCode.USAGE) from None
    try:
        with exits_on_error():
            for spec in fault or []:
                server.inject_spec(spec, retry_after=retry_after)
    except typer.Exit:
        server.httpd.server_close()
        raise
    if poison:
        server.poison(*poison)
    tag_note = tag_id or "any UUID"
    log(f"listening on {server.url} (tag id: {tag_note}); stats at {server.url}/_mock/stats")
    try:
        with sigterm_as_interrupt():
            server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        log(f"stopped: {json.dumps(server.stats())}")
