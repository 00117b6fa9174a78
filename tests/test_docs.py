"""The docs hold together: every link resolves, every docs/ page the code names exists, and
nothing points outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {
    ".git",
    ".venv",
    "target",
    "logs",
    "data",
    "dbt_packages",
    "node_modules",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
}
CODE_SUFFIXES = {".py", ".sql", ".yml", ".yaml", ".toml", ".sh", ".cfg", ".txt", ".service"}
CODE_NAMES = {"Makefile", "Dockerfile", "run"}

# [text](target) — not images' remote sources, not code spans (removed before matching)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
DOC_NAME = re.compile(r"\bdocs/[A-Za-z0-9_.-]+\.md\b")


def project_files() -> list[Path]:
    """The repository's files: what git tracks or would add (not what .gitignore leaves out, such
    as .pytest_cache/README.md, which a test run writes). Without git, a walk that skips the
    ignored folders."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        listed = None
    if listed is not None:
        return [
            ROOT / name
            for name in sorted(set(listed.decode().split("\0")))
            if name and (ROOT / name).is_file()
        ]
    found = []
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if any(part in SKIP_DIRS for part in relative.parts) or relative.parts[:2] == (
            "bench",
            "out",
        ):
            continue
        if path.is_file():
            found.append(path)
    return found


# the folders of the project's own models; a site adds its own in models/site/
PROJECT_MODEL_FOLDERS = ("staging", "intermediate", "marts")


def project_sql() -> list[Path]:
    """The SQL of the project's macros and models, not of a site's own models."""
    return [
        p
        for p in project_files()
        if p.suffix == ".sql"
        and (
            p.is_relative_to(ROOT / "macros")
            or any(p.is_relative_to(ROOT / "models" / f) for f in PROJECT_MODEL_FOLDERS)
        )
    ]


def markdown_files() -> list[Path]:
    return [p for p in project_files() if p.suffix == ".md"]


def code_files() -> list[Path]:
    return [p for p in project_files() if p.suffix in CODE_SUFFIXES or p.name in CODE_NAMES]


def without_code_blocks(text: str) -> str:
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors: lowercase, punctuation dropped, spaces to hyphens, repeats numbered."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def relative_links(path: Path) -> list[str]:
    links = LINK.findall(without_code_blocks(path.read_text()))
    return [link for link in links if not re.match(r"^[a-z][a-z0-9+.-]*:", link)]


@pytest.mark.parametrize("doc", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(doc):
    problems = []
    for link in relative_links(doc):
        target, _, anchor = link.partition("#")
        resolved = (doc.parent / target).resolve() if target else doc
        if ROOT not in resolved.parents and resolved != ROOT:
            problems.append(f"{link}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{link}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(resolved):
            problems.append(f"{link}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert not problems, f"{doc.relative_to(ROOT)}: " + "; ".join(problems)


def test_every_docs_page_named_in_code_or_docs_exists():
    missing = set()
    for path in code_files() + markdown_files():
        for name in DOC_NAME.findall(path.read_text(errors="replace")):
            if not (ROOT / name).exists():
                missing.add(f"{path.relative_to(ROOT)} names {name}")
    assert not missing, sorted(missing)


def test_nothing_points_outside_the_repository():
    outside = re.compile(r"\.\./shared|/work/|\.\./\.\./")
    offenders = [
        str(path.relative_to(ROOT))
        for path in code_files() + markdown_files()
        if path != Path(__file__) and outside.search(path.read_text(errors="replace"))
    ]
    assert not offenders, offenders


# `docs/<page>.md, "Section"`, `[<page>.md](<page>.md), "Section"`, and a page's own
# `see "Section"`, `below, "Section"`: the start of a heading of that page, or of a bold label
# (**Section.**)
SECTION_REF = re.compile(r'(?:docs/)?([A-Za-z0-9_-]+\.md)(?:\]\([^)]*\))?,? \\?"([^"\\]+)\\?"')
OWN_SECTION_REF = re.compile(r'\b(?:see|below,|above,) "([^"]+)"')


def names_a_section(page: Path, section: str) -> bool:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    headings = re.findall(r"^#{1,6}\s+(.*?)\s*#*\s*$", text, flags=re.MULTILINE)
    return any(h.startswith(section) for h in headings) or f"**{section}" in text


def section_problems(path: Path) -> list[str]:
    text = path.read_text(errors="replace")
    problems = []
    for name, section in SECTION_REF.findall(text):
        page = next(
            (p for p in (ROOT / "docs" / name, ROOT / name, path.parent / name) if p.exists()), None
        )
        if page is not None and not names_a_section(page, section):
            problems.append(f'{name}, "{section}": no such heading or label')
    if path.suffix == ".md":
        for section in OWN_SECTION_REF.findall(without_code_blocks(text)):
            if not names_a_section(path, section):
                problems.append(f'"{section}": no such heading or label on this page')
    return problems


def test_every_section_a_page_or_the_code_names_exists():
    """A reference by section name (`docs/operations.md, "Upgrading"`) leads to a heading or a
    bold label of that page."""
    problems = [
        f"{path.relative_to(ROOT)}: {problem}"
        for path in code_files() + markdown_files()
        if path != Path(__file__)
        for problem in section_problems(path)
    ]
    assert not problems, problems


def test_the_section_check_would_catch_a_missing_section(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        '# Title\n\n**Label.** Text; see "Title", see "Nowhere", below, "Label".\n'
        'Also page.md, "Title: more" and [page.md](page.md), "Label".\n'
    )
    assert section_problems(page) == [
        'page.md, "Title: more": no such heading or label',
        '"Nowhere": no such heading or label on this page',
    ]


def test_the_checks_would_catch_a_broken_link(tmp_path):
    """The link check itself: a missing file, a missing anchor and an outside path are found."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[a](missing.md) [b](#nowhere) [c](#title) `[d](ignored.md)`\n")
    assert relative_links(page) == ["missing.md", "#nowhere", "#title"]
    assert heading_anchors(page) == {"title"}


def test_the_readmes_lineage_names_every_model_and_only_models():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    diagram = re.search(r"```mermaid\n(.*?)```", readme, re.S)
    assert diagram, "the README has no Mermaid lineage"
    named = set(re.findall(r"\b(?:stg_karte__|int_|line_capi_)[a-z_]+\b", diagram.group(1)))
    # the project's models: a site's own (models/site/, docs/development.md) are not in it
    models = {p.stem for p in project_sql() if p.parts[len(ROOT.parts)] == "models"}
    assert named == models, (sorted(models - named), sorted(named - models))


def test_every_dbt_var_is_declared_and_documented():
    """A var the SQL reads is declared in dbt_project.yml (its default) and described in
    docs/configuration.md; a declared var is one the SQL reads."""
    import yaml

    declared = set(yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"])
    sql = "\n".join(path.read_text() for path in project_sql())
    read = set(re.findall(r"\bvar\(\s*['\"]([a-z0-9_]+)['\"]", sql))
    assert sorted(read - declared) == []
    # macros/run_parameters.sql reads most of them by name, in lists it checks
    assert sorted(name for name in declared if f"'{name}'" not in sql) == []
    guide = (ROOT / "docs/configuration.md").read_text()
    assert sorted(name for name in declared if f"`{name}`" not in guide) == []


def test_every_rejection_reason_is_in_the_output_docs():
    """docs/outputs.md describes each reason of the seed (a row of its table of reasons) and
    lists its column of line_capi_coverage, and no reason the seed does not have."""
    import csv

    with (ROOT / "seeds/line_capi_reject_reasons.csv").open(newline="", encoding="utf-8") as f:
        reasons = {row["reason"] for row in csv.DictReader(f)}
    outputs = (ROOT / "docs/outputs.md").read_text()
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", outputs, flags=re.M))
    assert sorted(reasons - rows) == []
    columns = re.search(r"^\| ((?:`rejected_[a-z_]+`(?:, )?)+) \|", outputs, flags=re.M)
    assert columns, "the coverage columns of the reasons"
    assert set(re.findall(r"`rejected_([a-z_]+)`", columns.group(1))) == reasons


def test_the_layout_names_every_module_of_the_code():
    """docs/development.md's layout names every module of sender/ and every macro file, so that a
    newcomer finds each one from there (a file added or renamed without its row fails)."""
    layout = (ROOT / "docs/development.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:sender|macros)/[A-Za-z0-9_/]+\.(?:py|sql))`", layout))
    folders = set(re.findall(r"`((?:sender|macros)/[A-Za-z0-9_/]+/)`", layout))
    entry_points = {"__init__.py", "__main__.py"}
    files = [
        *(p for p in (ROOT / "sender").glob("*.py") if p.name not in entry_points),
        *(ROOT / "macros").glob("*.sql"),
    ]
    missing = sorted(
        rel
        for rel in (p.relative_to(ROOT).as_posix() for p in files)
        if rel not in named and not any(rel.startswith(folder) for folder in folders)
    )
    assert missing == []
    gone = sorted(name for name in named if not (ROOT / name).exists())
    assert gone == []


def test_every_outcome_a_push_records_is_in_the_outcomes_table_with_its_exit_code():
    """docs/sender.md's table of a run's outcomes lists each outcome `decide_exit` can give, with
    the exit code it comes with (an outage's outcome with a row held back is exit 2, its table
    cell says so), and no outcome the code never gives."""
    from sender.exit_codes import ExitCode
    from sender.push_summary import STOP_REASONS, Summary, decide_exit

    given: dict[str, set[int]] = {}
    summaries = [
        Summary("r"),
        Summary("r", rejected=1),
        Summary("r", left_pending=1),
        Summary("r", left_pending=1, held=1),
        Summary("r", left_pending=1, held_renamed=1),
    ]
    for s in summaries:
        for stop in (None, *STOP_REASONS):
            code, outcome = decide_exit(s, stop)
            given.setdefault(outcome, set()).add(int(code))
    text = (ROOT / "docs/sender.md").read_text()
    table = text[text.index("**Outcomes of a run**") :]
    table = table[: table.index("\n\n", table.index("| outcome |"))]
    documented: dict[str, set[int]] = {}
    for cells in re.findall(r"^\| (`[^|]+) \| ([^|]*) \|", table, flags=re.M):
        codes = {int(n) for n in re.findall(r"\b\d+\b", cells[1])}
        for outcome in re.findall(r"`([a-z_]+)`", cells[0]):
            documented[outcome] = codes
    documented.pop("dry_run")  # push --json's only, never decide_exit's
    assert given == documented
    assert given["unavailable"] == {ExitCode.PENDING_LEFT, ExitCode.USAGE}


def test_every_key_of_push_json_is_named_in_its_paragraph():
    """docs/sender.md names each key `push --json` can print (the fields of the summary)."""
    from dataclasses import fields

    from sender.push_summary import Summary

    text = (ROOT / "docs/sender.md").read_text()
    start = text.index("`--json` prints the same as one object")
    paragraph = text[start : text.index("\n\n", start)]
    named = set(re.findall(r"`([a-z_]+)`", paragraph))
    assert sorted({f.name for f in fields(Summary)} - named) == []
