"""Fixtures shared by the test files (helpers that are not fixtures live in *_fixtures.py)."""

from __future__ import annotations

import pytest
from sender_fixtures import make_event, write_payload

DEFAULT_PAYLOAD_EVENTS = 250

# The files that take longest, first. `make test` hands each of its two workers one file at a
# time in collection order (`--dist loadfile --no-loadscope-reorder`): a long file handed out
# last kept one worker busy for a minute or more after the other had finished. The order of
# `pytest --durations 0`, summed per file; the other files follow in name order.
SLOWEST_FILES_FIRST = (
    "test_scheduling.py",
    "test_spark.py",
    "test_alerts.py",
    "test_export_files.py",
    "test_bad_input.py",
    "test_pipeline.py",
    "test_year_boundary.py",  # its dbt runs as a plain subprocess (its docstring says why)
    "test_recipes.py",  # and so do the recipes' dbt and sender, as cron and systemd start them
    "test_conversion_types.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: name order after


@pytest.fixture
def db(request, tmp_path):
    """A DuckDB file whose line_capi_payload holds ``make_event(0)``, ``make_event(1)``, ...:
    250 rows, or as many as the module's ``pytest.mark.payload(events=N)`` says."""
    marker = request.node.get_closest_marker("payload")
    events = marker.kwargs["events"] if marker else DEFAULT_PAYLOAD_EVENTS
    path = tmp_path / "line_capi.duckdb"
    write_payload(path, [make_event(i) for i in range(events)])
    return path
