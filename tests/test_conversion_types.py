"""The connector's settings as a user changes them: another KARTE event, window and currency,
pre-hashed personal data, no LINE user ids; data filters on the conversions and the user master;
several conversion types in one build. Each setting is built by a real `dbt build` with the unit
tests, as a user who changed it would run it; the per-type builds that the two-type build is
compared with are the hourly job's (models and data tests)."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from pipeline_fixtures import HOURLY_BUILD, ROOT, SAMPLE_DIR, run_dbt, write_export
from test_pipeline import AS_OF, DAY, HOUR, LINE_UID, UUID1, T, export_tables, iso, sha

FILTERS = {
    "karte_conversion_filter": (
        "coalesce(transaction_id, '') not like 'TEST-%' and coalesce(user_id, '') <> 'staff'"
    ),
    "karte_user_master_filter": "coalesce(email, '') not like '%@example.co.jp'",
}
PAIRS = {"buy": "Purchase", "member_register": "CompleteRegistration"}


def conversion(event, key, user, at, pv, **kw):
    return {
        "event_name": event,
        "user_id": user,
        "transaction_id": key,
        "sync_date": iso(at),
        "pv_id": pv,
        **kw,
    }


def build(tmp, export, vars_, unit_tests=True):
    command = ("build",) if unit_tests else HOURLY_BUILD
    result = run_dbt(tmp, *command, export_dir=export, vars={"as_of": AS_OF, **vars_})
    assert result.returncode == 0, result.output
    return result


# --- a user's own settings -------------------------------------------------------------------


def settings_tables() -> dict[str, list[dict]]:
    """The fixture export with KARTE event `purchase`, hashed personal data, an old conversion
    inside 48 hours, and a landing page 10 days before a conversion."""
    tables = export_tables()
    for row in tables["conversions"]:
        if row["event_name"] == "buy":
            row["event_name"] = "purchase"
        if row["transaction_id"] == "ORD-OLD":
            row["revenue"] = "2000"  # sent as a Purchase, which LINE refuses without a value
    tables["conversions"].append(conversion("buy", "BUY-1", "u1", T - HOUR, "pv-9"))
    tables["page_views"].append(
        {
            "user_id": "u3",
            "sync_date": iso(T - 10 * DAY),
            "pv_id": "pv-old-land",
            "url": "https://shop.example.jp/lp?ldtag_cl=TenDaysAgo",
        }
    )
    tables["user_master"][0].update(email=" Taro@Example.COM ", phone=sha("+819012345678").upper())
    return tables


@pytest.fixture(scope="module")
def settings_build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("settings")
    export = write_export(tmp / "export", settings_tables(), "csv")
    return build(
        tmp,
        export,
        {
            "karte_conversion_event": "purchase",
            "line_event_name": "Purchase",
            "lookback_hours": 48,
            "ad_contact_days": 7,
            "currency": "USD",
            "pii_prehashed": True,
            "send_line_user_id": False,
        },
    )


def test_a_users_settings_build_with_every_unit_test(settings_build):
    unit_tests = re.findall(r"(\d+) unit tests", settings_build.output)[-1]
    defined = sum(
        len((yaml.safe_load(path.read_text()) or {}).get("unit_tests") or [])
        for path in ROOT.glob("models/**/*.yml")
    )
    assert int(unit_tests) == defined >= 20
    payloads = settings_build.payloads()
    # purchase rows within 48 hours; the buy row is not a conversion any more
    assert set(payloads) == {"ORD-1", "ORD-4", "ORD-OLD"}
    assert {p["event"]["event_name"] for p in payloads.values()} == {"Purchase"}
    assert payloads["ORD-OLD"]["event"]["event_timestamp"] == T - 30 * HOUR
    # pre-hashed: the hash is kept (lowercased), the plaintext address is left out
    assert payloads["ORD-1"]["user"] == {
        "click_id": "Click_1-abc",
        "browser_id": UUID1,
        "phone": sha("+819012345678"),
    }
    assert payloads["ORD-1"]["custom"]["currency"] == "USD"
    # u2 has only a LINE user id, u3 only a click 10 days old: neither is sent
    assert settings_build.rejected() == {
        "ORD-2": "no_user_identifier",
        "ORD-3": "no_user_identifier",
        "pv:pv-5": "missing_deduplication_key",
        "undefined": "invalid_deduplication_key",
    }
    assert LINE_UID not in json.dumps(payloads)


# --- data filters and several conversion types -----------------------------------------------


def typed_tables() -> dict[str, list[dict]]:
    """Purchases and registrations, test orders, a staff member, an internal address."""
    tables = export_tables()
    tables["conversions"] += [
        conversion("buy", "TEST-1", "u1", T - HOUR, "pv-t1"),
        conversion("buy", "ORD-9", "staff", T - HOUR, "pv-s1"),
        # ORD-1 is also the id of a registration: one key, two conversion types
        conversion("member_register", "ORD-1", "u1", T - 2 * HOUR + 5, "pv-r1"),
        conversion("member_register", "REG-3", "u3", T - 3 * HOUR, "pv-r3"),
        conversion("member_register", "", "u1", T - HOUR, "pv-r4"),
        conversion("member_register", "REG-OLD", "u1", T - 30 * HOUR, "pv-r5"),
    ]
    tables["user_master"].append(
        {"user_id": "u3", "email": "jiro@example.co.jp", "phone": "080-1111-2222"}
    )
    return tables


@pytest.fixture(scope="module")
def typed_export(tmp_path_factory):
    return write_export(tmp_path_factory.mktemp("typed") / "export", typed_tables(), "csv")


@pytest.fixture(scope="module")
def two_types_build(tmp_path_factory, typed_export):
    return build(
        tmp_path_factory.mktemp("two-types"),
        typed_export,
        {**FILTERS, "karte_conversion_events": PAIRS},
    )


@pytest.fixture(scope="module")
def one_type_builds(tmp_path_factory, typed_export):
    return [
        build(
            tmp_path_factory.mktemp(karte_event),
            typed_export,
            {**FILTERS, "karte_conversion_event": karte_event, "line_event_name": line_event},
            unit_tests=False,
        )
        for karte_event, line_event in PAIRS.items()
    ]


PAYLOAD_ROWS = "select * exclude (converted_at) from line_capi_payload"
REJECTED_ROWS = "select * exclude (converted_at) from line_capi_rejected"


def test_one_build_of_two_types_is_the_union_of_one_build_per_type(
    two_types_build, one_type_builds
):
    for query in (PAYLOAD_ROWS, REJECTED_ROWS):
        union = [row for result in one_type_builds for row in result.rows(query)]
        assert sorted(two_types_build.rows(query), key=repr) == sorted(union, key=repr)
    assert len(two_types_build.rows(PAYLOAD_ROWS)) == 3


def test_each_type_is_sent_under_its_line_event_name(two_types_build):
    sent = {
        (name, key): json.loads(payload)
        for name, key, payload in two_types_build.rows(
            "select event_name, deduplication_key, payload from line_capi_payload"
        )
    }
    assert set(sent) == {
        ("Purchase", "ORD-1"),
        ("Purchase", "ORD-4"),
        ("CompleteRegistration", "ORD-1"),  # no revenue either: only a Purchase needs one
    }
    registration = sent[("CompleteRegistration", "ORD-1")]
    assert registration["event"]["event_name"] == "CompleteRegistration"
    assert registration["event"]["event_timestamp"] == T - 2 * HOUR + 5
    assert "web" not in registration  # its own page view has no row
    assert "web" in sent[("Purchase", "ORD-1")]
    assert sent[("Purchase", "ORD-1")]["event"]["event_timestamp"] == T - 2 * HOUR
    rejected = two_types_build.rows(
        "select event_name, transaction_id, pv_id, reason from line_capi_rejected"
    )
    assert sorted(rejected, key=repr) == sorted(
        [
            ("Purchase", "ORD-3", "pv-3", "no_user_identifier"),
            # u2 has a LINE user id, but the purchase has no revenue: LINE would refuse it
            ("Purchase", "ORD-2", "pv-2", "missing_purchase_value"),
            ("Purchase", None, "pv-5", "missing_deduplication_key"),
            ("Purchase", "undefined", "pv-6", "invalid_deduplication_key"),
            ("CompleteRegistration", None, "pv-r4", "missing_deduplication_key"),
            # u3's only personal data has an internal address: the user master filter drops it
            ("CompleteRegistration", "REG-3", "pv-r3", "no_user_identifier"),
        ],
        key=repr,
    )


def test_a_configured_type_without_conversions_warns_and_blocks_nothing(tmp_path, typed_export):
    # the KARTE event name misspelt (and with a quote, as a user's may have): no row is that event
    typo = {"buy": "Purchase", "member's_regster": "CompleteRegistration"}
    result = build(tmp_path, typed_export, {**FILTERS, "karte_conversion_events": typo})
    warned = re.findall(r"WARN (\d+) assert_each_configured_event_has_conversions", result.output)
    assert warned and set(warned) == {"1"}, result.output
    sent = {name for (name,) in result.rows("select distinct event_name from line_capi_payload")}
    assert sent == {"Purchase"}  # the other type is built and sent as usual


def test_a_build_whose_types_all_have_conversions_does_not_warn(two_types_build):
    assert "PASS assert_each_configured_event_has_conversions" in two_types_build.output
    assert " WARN=0 " in two_types_build.output


def test_filtered_rows_are_neither_sent_nor_rejected(two_types_build):
    keys = {k for (k,) in two_types_build.rows("select deduplication_key from line_capi_payload")}
    keys |= {k for (k,) in two_types_build.rows("select transaction_id from line_capi_rejected")}
    assert not keys & {"TEST-1", "ORD-9"}
    assert two_types_build.rows("select count(*) from int_users_hashed where user_id = 'u3'") == [
        (0,)
    ]


@pytest.mark.parametrize(
    ("vars_", "message"),
    [
        (
            {"karte_conversion_filter": "transaction_id like"},
            "invalid dbt var karte_conversion_filter=transaction_id like: syntax error",
        ),
        (
            {"karte_conversion_filter": "order_id <> 'x'"},
            "invalid dbt var karte_conversion_filter=order_id <> 'x': Referenced column",
        ),
        (
            {"karte_user_master_filter": "not is_staff"},
            "invalid dbt var karte_user_master_filter=not is_staff: Referenced column",
        ),
        (
            {
                "karte_conversion_filter": "coalesce(user_id, '') not in (select user_id from"
                " karte_export.user_master where email like '%@example.com')"
            },
            "it reads another table (a subquery): a data filter reads only its own table's",
        ),
        (
            {"karte_conversion_events": PAIRS, "line_event_name": "Purchase"},
            "set either karte_conversion_events or the pair karte_conversion_event / "
            "line_event_name, not both",
        ),
        (
            {"karte_conversion_events": {"buy": "Purchase!"}},
            "karte_conversion_events=Purchase!: the LINE event name of buy: LINE event names",
        ),
        (
            {"karte_conversion_events": "buy"},
            "invalid dbt var karte_conversion_events=buy: expected a mapping",
        ),
        (
            {"karte_conversion_events": {"buy": "Purchase", "cart": "add_to_cart"}},
            "karte_conversion_events=add_to_cart: the LINE event name of cart: LINE's standard"
            " event name is spelt AddToCart",
        ),
    ],
    ids=[
        "filter-syntax",
        "filter-column",
        "user-master-filter-column",
        "filter-subquery",
        "both-event-vars",
        "bad-line-name",
        "not-a-mapping",
        "standard-name-misspelt",
    ],
)
def test_bad_settings_are_one_line_errors_naming_the_var(tmp_path, vars_, message):
    result = run_dbt(
        tmp_path,
        "run",
        "--select",
        "stg_karte__conversions",
        "stg_karte__user_master",
        export_dir=SAMPLE_DIR,
        vars=vars_,
    )
    assert result.returncode != 0
    assert len([line for line in result.output.splitlines() if message in line]) == 1, result.output
    assert "Traceback" not in result.output
