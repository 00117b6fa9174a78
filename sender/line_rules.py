"""LINE Conversion API's rules that the sender keeps, each written once here (docs/line-capi.md).

The limits of one request, the event times LINE accepts, its de-duplication window, and the few
field patterns the sender itself relies on (the dbt models check every event field). The event
ages and the key's length are also the models' (macros/line_capi_rules.sql): tests/test_macros.py
fails when the two disagree. The mock server (sender.mock_server) keeps its own copy of these
rules on purpose: it checks the sender.
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

# A test send (push --test) gives each event a key of its own: test-<key>, cut to LINE's 256
# characters. LINE's de-duplication does not say whether a test event counts; if it did, the
# real event, sent later under the same name and key, would be dropped as its duplicate.
TEST_KEY_PREFIX = "test-"
MAX_DEDUPLICATION_KEY_LENGTH = 256
# The key as the dbt model writes it: of [0-9A-Za-z_-] only (its data test checks that), so no
# escape can hide a quote in it.
DEDUPLICATION_KEY_MEMBER = '"deduplication_key":"'
