"""A secret from an environment variable, or from the file its ``_FILE`` twin names.

Docker secrets, systemd credentials (``LoadCredential=``) and Kubernetes hand secrets over as
files: ``LINE_ACCESS_TOKEN_FILE=/run/secrets/line_access_token`` reads the token from there. Every
error is one line naming the variable and the file, never the content. Each value read is
remembered so that :func:`scrub` can take it out of a crash report.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

from sender.settings import ConfigError, Secret

FILE_SUFFIX = "_FILE"
# A secret is a line of text; a larger file is a wrong path (a log, a device), not read whole.
MAX_SECRET_BYTES = 64 * 1024
# Shorter values are not scrubbed from text: replacing them would garble the rest.
_MIN_SCRUB_LENGTH = 4

_seen: set[str] = set()
# the token files read for scrub, by name: each is read at most once
_token_files: dict[str, str] = {}


def read_secret(
    name: str,
    *,
    option: str | None = None,
    option_name: str | None = None,
    environ: Mapping[str, str] | None = None,
    notice: Callable[[str], None] | None = None,
) -> Secret | None:
    """The secret for env ``name``: ``option`` (a command-line value, typed as ``option_name``)
    when given, else env ``name``, else the content of the file env ``name_FILE`` names without
    its trailing newline; None when none is set. Env ``name`` and ``name_FILE`` both set is an
    error (which one wins would be a guess). Raises :class:`ConfigError` with one line, never
    the secret. The Secret's ``source`` says which of the three it came from. ``notice`` gets a
    warning about a file other users can read (:func:`loose_file_problem`)."""
    env = os.environ if environ is None else environ
    file_var = name + FILE_SUFFIX
    if option is not None:
        return _remember(option, option_name or name)
    value = env.get(name) or None
    file_name = (env.get(file_var) or "").strip()
    if value is not None and file_name:
        raise ConfigError(f"{name} and {file_var} are both set: keep one")
    if value is not None:
        return _remember(value, name)
    if not file_name:
        return None
    secret = _remember(_read_file(file_var, Path(file_name)), f"{file_var} {file_name}")
    problem = loose_file_problem(Path(file_name))
    if problem and notice is not None:
        notice(f"{file_var} {problem}")
    return secret


def loose_file_problem(path: Path) -> str | None:
    """Why ``path`` shows its secret to other accounts ("... is readable by other users ..."), or
    None. Only a regular file of this user counts: the secret mounts of Docker (a file of
    root's, 0444) and Kubernetes (a link into its ``..data`` folder, 0644) are readable by design
    inside their container, and a warning there every hour would teach people to ignore it."""
    try:
        info = path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        return None
    if not info.st_mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    mode = stat.S_IMODE(info.st_mode)
    return f"{path} is readable by other users (mode {mode:04o}): chmod 600 {path}"


def _read_file(file_var: str, path: Path) -> str:
    where = f"{file_var} {path}"
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise ConfigError(f"{where} is larger than {MAX_SECRET_BYTES // 1024} KiB: not a secret")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text") from None
    # a BOM (a Windows editor's UTF-8) and line ends are never part of a secret
    text = text.removeprefix("\ufeff").removesuffix("\n").removesuffix("\r")
    if not text.strip():
        raise ConfigError(f"{where} is empty")
    return text


def _remember(value: str, source: str) -> Secret:
    for form in (value, value.strip()):
        if len(form) >= _MIN_SCRUB_LENGTH:
            _seen.add(form)
    return Secret(value, source)


def scrub(text: str) -> str:
    """``text`` without any secret read so far, nor the token of env LINE_ACCESS_TOKEN or of the
    file LINE_ACCESS_TOKEN_FILE names (an error may come before the token is read)."""
    known = set(_seen)
    for token in (os.environ.get("LINE_ACCESS_TOKEN", ""), _unread_token_file()):
        if len(token.strip()) >= _MIN_SCRUB_LENGTH:
            known.update((token, token.strip()))
    for secret in sorted(known, key=len, reverse=True):
        # any case: a token pasted into the endpoint's host comes back lowercased
        text = re.sub(re.escape(secret), "********", text, flags=re.IGNORECASE)
    return text


def _unread_token_file() -> str:
    """The content of the file env LINE_ACCESS_TOKEN_FILE names, or "" (unset, unreadable); each
    file is read at most once per process."""
    file_name = os.environ.get("LINE_ACCESS_TOKEN" + FILE_SUFFIX, "").strip()
    if not file_name:
        return ""
    if file_name not in _token_files:
        try:
            content = _read_file("LINE_ACCESS_TOKEN" + FILE_SUFFIX, Path(file_name))
        except ConfigError:
            content = ""
        _token_files[file_name] = content
    return _token_files[file_name]
