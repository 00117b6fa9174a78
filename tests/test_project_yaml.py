"""The project's YAML is written for people: block style, no anchors or aliases, no flow-style
maps (a unit test's rows excepted: one short row a line reads like a table), no line over 200
characters."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MAX_LINE = 200


def project_yaml() -> list[Path]:
    files = [*ROOT.glob("models/**/*.yml"), *ROOT.glob("seeds/*.yml"), ROOT / "macros/_macros.yml"]
    return sorted([*files, ROOT / "dbt_project.yml"])


def problems(text: str) -> list[str]:
    found = [
        f"line {number}: {len(line)} characters"
        for number, line in enumerate(text.splitlines(), 1)
        if len(line) > MAX_LINE
    ]
    for token in yaml.scan(text):
        if isinstance(token, yaml.AnchorToken | yaml.AliasToken):
            kind = "anchor" if isinstance(token, yaml.AnchorToken) else "alias"
            found.append(f"line {token.start_mark.line + 1}: {kind} {token.value}")

    def walk(node: yaml.Node, key: str | None) -> None:
        if isinstance(node, yaml.MappingNode):
            if node.flow_style and node.value and key != "rows":  # {} is how YAML writes empty
                found.append(f"line {node.start_mark.line + 1}: flow-style map under {key}")
            for name, value in node.value:
                walk(value, name.value if isinstance(name, yaml.ScalarNode) else None)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item, key)

    walk(yaml.compose(text), None)
    return found


@pytest.mark.parametrize("path", project_yaml(), ids=lambda p: str(p.relative_to(ROOT)))
def test_project_yaml_is_written_for_people(path):
    assert not problems(path.read_text()), f"{path.relative_to(ROOT)}: {problems(path.read_text())}"


def test_the_check_finds_anchors_flow_columns_and_long_lines():
    bad = (
        "models:\n"
        "  - name: m\n"
        "    columns:\n"
        "      - {name: a, description: x}\n"
        "      - name: b\n"
        "        constraints: &not_null\n"
        "          - type: not_null\n"
        "      - name: c\n"
        "        constraints: *not_null\n"
        f"        description: {'x' * MAX_LINE}\n"
        "unit_tests:\n"
        "  - name: t\n"
        "    given:\n"
        "      - input: ref('m')\n"
        "        rows:\n"
        "          - {a: 1}\n"
    )
    assert problems(bad) == [
        f"line 10: {len('        description: ') + MAX_LINE} characters",
        "line 6: anchor not_null",
        "line 9: alias not_null",
        "line 4: flow-style map under columns",
    ]


def test_unit_tests_that_name_an_export_folder_leave_catalog_mode_off():
    """A unit test that names its own export folder must also pin var karte_catalog_tables off:
    with the run's `karte_catalog_tables: true` (Spark reading catalog tables) the pair is refused,
    and every build in that mode stopped at the unit tests."""
    named_folder = {}
    for path in project_yaml():
        for test in (yaml.safe_load(path.read_text()) or {}).get("unit_tests") or []:
            pinned = (test.get("overrides") or {}).get("vars") or {}
            if "karte_export_dir" in pinned:
                named_folder[test["name"]] = pinned.get("karte_catalog_tables", "not pinned")
    assert named_folder  # the rule is about these
    assert {name: v for name, v in named_folder.items() if v is not False} == {}
