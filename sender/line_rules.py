"""LINE Conversion API's rules that the sender keeps, each written once (docs/line-capi.md).

The limits of one request, the event times LINE accepts, its de-duplication window, and the few
field patterns the sender itself relies on (the dbt models check every event field). The mock
server (sender.mock_server) keeps its own copy of these rules on purpose: it checks the sender.
"""

from __future__ import annotations

import re

DAY_SECONDS = 86_400

# One request: a bare JSON array of at most 100,000 events and 300 MB.
MAX_EVENTS_PER_REQUEST = 100_000
MAX_REQUEST_BYTES = 300_000_000
# The sender stays well below LINE's byte limit (brackets and commas included).
MAX_BODY_BYTES = 250_000_000

# LINE accepts events from 90 days before to 24 hours after arrival. The sender keeps a margin,
# so that an event does not cross a limit while its batch is in flight or being retried.
MAX_AGE_SECONDS = 90 * DAY_SECONDS
MAX_AHEAD_SECONDS = DAY_SECONDS
EXPIRY_MARGIN_SECONDS = 600

# LINE treats two events with the same name and key within 30 days as one.
DEDUPLICATION_WINDOW_SECONDS = 30 * DAY_SECONDS
DEDUPLICATION_COLUMNS = ("event_name", "deduplication_key")

# X-Line-ChannelID: the LINE Login channel id, digits.
CHANNEL_ID = re.compile(r"^[0-9]{1,32}$")

# Every event object starts with its "event" member (the contract with the dbt model), so the
# test flag is spliced in right after this prefix without parsing the JSON.
EVENT_PREFIX = '{"event":{'
TEST_FLAG_MEMBER = '"test_flag":true,'
