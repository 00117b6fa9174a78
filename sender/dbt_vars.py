"""Several ``--vars`` after ``sender run --`` become one, as the user means them.

dbt reads one ``--vars``: given twice, the last replaces the first whole. A job that passes its
site's settings with ``--vars`` and a catch-up that adds ``--vars '{lookback_hours: 168}'`` after
them would then build without the site's event mapping or column map, and send the same orders
again under the default event name. So ``sender run`` merges them: each var keeps the value of
the last ``--vars`` that names it (a var's own mapping, such as ``karte_column_map``, is
replaced whole, as dbt replaces a var of ``dbt_project.yml``).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from sender.settings import ConfigError

_OPTION = "--vars"
# The names under vars: in dbt_project.yml, as a JSON object (name: whether its value is a
# mapping), for the macro check_var_names.
PROJECT_VARS_ENV = "LINE_CAPI_PROJECT_VARS"
_PROJECT_NAME = "line_capi"
_EXPORT_VAR = "karte_export_dir"


def _vars_values(args: tuple[str, ...]) -> list[tuple[int, int, str]]:
    """Each ``--vars`` among ``args``: its first index, how many args it takes, its text."""
    found = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == _OPTION and i + 1 < len(args):
            found.append((i, 2, args[i + 1]))
            i += 2
            continue
        if arg.startswith(_OPTION + "="):
            found.append((i, 1, arg.split("=", 1)[1]))
        i += 1
    return found


def _loaded(text: str, where: str = "--vars") -> object:
    """``text`` as YAML (yaml.YAMLError when it is not). An unquoted date that is no date
    (``2026-13-01``, ``2026-02-30``) fails while YAML reads it, with a ValueError that dbt shows
    as a traceback: one line instead, as for any bad var."""
    try:
        return yaml.safe_load(text)
    except ValueError as exc:  # PyYAML's date and time constructors (YAMLError is no ValueError)
        raise ConfigError(
            f"{where} holds an impossible date or time ({exc}): fix it, or quote it to give it as"
            " text ('2026-12-01T10:00:00+09:00')"
        ) from None


def _dumped(value: dict) -> str:
    """Vars as the text of one ``--vars``: YAML again, not JSON, so that dates and times load
    back as the same values dbt would have read."""
    return yaml.safe_dump(
        value, default_flow_style=True, sort_keys=False, width=2**31, allow_unicode=True
    ).strip()


def merge_vars(args: tuple[str, ...]) -> tuple[str, ...]:
    """``args`` with several ``--vars`` merged into one, in place of the first; unchanged with one
    or none, or when one of them is not a YAML mapping (dbt then says so, as it would)."""
    found = _vars_values(args)
    if len(found) < 2:
        return args
    merged: dict = {}
    for _, _, text in found:
        try:
            value = _loaded(text)
        except yaml.YAMLError:
            return args
        if value is None:  # an empty --vars '' sets nothing
            continue
        if not isinstance(value, dict):
            return args
        merged.update(value)
    text = _dumped(merged)
    first = found[0][0]
    skip = {i + n for i, count, _ in found for n in range(count)}
    rest = [arg for i, arg in enumerate(args) if i not in skip]
    return (*rest[:first], _OPTION, text, *rest[first:])


def take_export_dir(args: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """The var ``karte_export_dir`` of the one ``--vars`` in ``args`` (after merge_vars), and
    ``args`` without it; ``(None, args)`` when it is not there or not a plain text.

    The var wins over env KARTE_EXPORT_DIR in dbt. ``sender run`` checks the export's folder,
    the age of its files and the sample marker before dbt starts, and names the export in its
    log: it takes the var out and gives dbt the folder it checked (with_export_dir), so that all
    of this and dbt read the one folder (a ``current`` link followed once).
    """
    found = _vars_values(args)
    if len(found) != 1:
        return None, args
    index, count, text = found[0]
    try:
        value = _loaded(text)
    except yaml.YAMLError:
        return None, args
    if not isinstance(value, dict):
        return None, args
    folder = value.get(_EXPORT_VAR)
    if not isinstance(folder, str) or not folder.strip():
        return None, args
    del value[_EXPORT_VAR]
    rest = args[:index] + args[index + count :]
    if not value:
        return folder, rest
    return folder, (*rest[:index], _OPTION, _dumped(value), *rest[index:])


def with_export_dir(args: tuple[str, ...], folder: str) -> tuple[str, ...]:
    """``args`` (after take_export_dir) with the var ``karte_export_dir`` set to ``folder``, in
    their one ``--vars`` or a new one at the end; unchanged when a ``--vars`` is not a YAML
    mapping (dbt then says so, as it would)."""
    found = _vars_values(args)
    if not found:
        return (*args, _OPTION, _dumped({_EXPORT_VAR: folder}))
    index, count, text = found[0]
    try:
        value = _loaded(text) or {}
    except yaml.YAMLError:
        return args
    if len(found) > 1 or not isinstance(value, dict):
        return args
    rest = args[:index] + args[index + count :]
    return (*rest[:index], _OPTION, _dumped({**value, _EXPORT_VAR: folder}), *rest[index:])


def project_export_dir(project_file: Path) -> str | None:
    """The var ``karte_export_dir`` as ``dbt_project.yml`` sets it, the project's own block
    (``vars: {line_capi: {…}}``) before the global one, as dbt reads them; None when unset, not a
    plain text, a Jinja expression only dbt can render, or the file cannot be read (dbt says why).

    A site may name its export there, as it does its other vars. dbt then reads that folder
    over env KARTE_EXPORT_DIR, so ``sender run`` checks that folder, and refuses a run whose
    option or environment names another (two sites of one checkout).
    """
    declared = _declared_vars(project_file)
    own = declared.get(_PROJECT_NAME)
    if isinstance(own, dict) and _EXPORT_VAR in own:
        folder = own[_EXPORT_VAR]
    else:
        folder = declared.get(_EXPORT_VAR)
    if not isinstance(folder, str) or not folder.strip() or "{{" in folder:
        return None
    return folder


def _declared_vars(project_file: Path) -> dict:
    """The ``vars:`` block of ``dbt_project.yml``; empty when the file cannot be read (dbt says
    why) or holds none."""
    try:
        loaded = _loaded(project_file.read_text(encoding="utf-8"), project_file.name)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    declared = loaded.get("vars") if isinstance(loaded, dict) else None
    return declared if isinstance(declared, dict) else {}


def declared_var_names(project_file: Path) -> dict[str, bool]:
    """The names set under ``vars:`` in ``dbt_project.yml``, the project's own block
    (``vars: {line_capi: {…}}``) included, each with whether its value is a mapping (it may be a
    package's block of vars, as dbt scopes them: vars: {dbt_date: {…}}): ``sender run`` hands
    them to the build's name check (macro check_var_names), which can list only the names of
    ``--vars`` itself."""
    declared = _declared_vars(project_file)
    own = declared.get(_PROJECT_NAME)
    names = {str(name): isinstance(value, dict) for name, value in declared.items()}
    names.pop(_PROJECT_NAME, None)
    if isinstance(own, dict):
        names.update({str(name): False for name in own})  # no package's block in there
    return names
