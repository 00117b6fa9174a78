"""Helpers for the TLS and file-mode tests: certificates made with the openssl command (on the
machine, and installed by .ci/run), a mock LINE server speaking HTTPS, and a umask for a block."""

from __future__ import annotations

import os
import ssl
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sender_fixtures import mock_server

from sender.mock_server import MockLineServer


def certificate(folder: Path, name: str, *, san: str = "IP:127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for ``san``, valid for two days."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName={san}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@contextmanager
def https_mock_server(cert: Path, key: Path, **kwargs) -> Iterator[MockLineServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with mock_server(ssl_context=context, **kwargs) as server:
        yield server


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """This process's umask (inherited by the processes it starts) for the block."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def open_to_others(paths) -> list[str]:
    """The paths among ``paths`` that group or others may read, write or enter."""
    return [f"{p} {mode(p):04o}" for p in paths if p.exists() and mode(p) & 0o077]
