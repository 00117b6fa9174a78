"""Fixtures shared by the test files (helpers that are not fixtures live in *_fixtures.py)."""

from __future__ import annotations

import pytest
from sender_fixtures import make_event, write_payload

DEFAULT_PAYLOAD_EVENTS = 250


@pytest.fixture
def db(request, tmp_path):
    """A DuckDB file whose line_capi_payload holds ``make_event(0)``, ``make_event(1)``, ...:
    250 rows, or as many as the module's ``pytest.mark.payload(events=N)`` says."""
    marker = request.node.get_closest_marker("payload")
    events = marker.kwargs["events"] if marker else DEFAULT_PAYLOAD_EVENTS
    path = tmp_path / "line_capi.duckdb"
    write_payload(path, [make_event(i) for i in range(events)])
    return path
