{#-
    The members of a LINE event's JSON text that the generic test is_valid_line_event
    (tests/dbt/generic/) checks: a select of relation `payloads` (column payload) with, besides
    payload, one column per member. Columns: is_json, begins_with_event, has_unknown_member (a
    top-level member other than event/user/web/custom), has_null_or_empty_member (a member whose
    value is null, "", {} or []), the text of each checked member,
    is_timestamp_integer, is_value_number and is_quantity_integer (null when absent),
    custom_value and quantity as numbers, item_count and user_member_count.
-#}
{% macro line_event_members(payloads) %}
    {{ return(adapter.dispatch('line_event_members', 'line_capi')(payloads)) }}
{% endmacro %}

{% macro default__line_event_members(payloads) %}{{ not_ported('line_event_members') }}{% endmacro %}

{#-
    A member (after `{` or `,`, its name in quotes) whose value is null, "", {} or []. The quotes
    make text inside a string value never match: a quote in a JSON string is escaped, so a title
    like `Thanks:null` or a URL with `?f={"c":[]}` is not taken for a member.
-#}
{% macro null_or_empty_member_pattern() %}[{,]"[a-z0-9_]+":(?:null|""|\{\}|\[\]){% endmacro %}

{#-
    Shaped for speed (docs/bench.md): each payload is parsed twice, for the keys of the top level
    and of `user` (json_keys in try(): malformed text gives null, which is_json reports) and into
    a struct of the checked members (from_json ignores other members and gives null for absent
    ones). The members whose JSON type is checked stay JSON text, short to read again.
-#}
{% macro duckdb__line_event_members(payloads) -%}
    {%- set members -%}
        {"event": {"source_type": "VARCHAR", "event_type": "VARCHAR", "event_name": "VARCHAR",
            "deduplication_key": "VARCHAR", "event_timestamp": "JSON"},
        "user": {"click_id": "VARCHAR", "browser_id": "VARCHAR", "email": "VARCHAR", "phone": "VARCHAR",
            "line_uid": "VARCHAR"},
        "web": {"url": "VARCHAR", "referrer": "VARCHAR", "title": "VARCHAR", "ip_address": "VARCHAR"},
        "custom": {"value": "JSON", "currency": "VARCHAR", "quantity": "JSON", "item_ids": "JSON"}}
    {%- endset -%}
    select
        payload,
        keys is not null as is_json,
        starts_with(payload, '{"event":{') as begins_with_event,
        not list_has_all(['custom', 'event', 'user', 'web'], keys[1]) as has_unknown_member,
        regexp_matches(payload, '{{ null_or_empty_member_pattern() }}') as has_null_or_empty_member,
        members.event.source_type,
        members.event.event_type,
        members.event.event_name,
        members.event.deduplication_key,
        members.user.click_id,
        members.user.browser_id,
        members.user.email,
        members.user.phone,
        members.user.line_uid,
        members.web.url,
        members.web.referrer,
        members.web.title,
        members.web.ip_address,
        members.custom.currency,
        json_type(members.event.event_timestamp) in ('UBIGINT', 'BIGINT') as is_timestamp_integer,
        try_cast(json_extract_string(members.custom.value, '$') as double) as custom_value,
        json_type(members.custom.value) in ('UBIGINT', 'BIGINT', 'DOUBLE') as is_value_number,
        json_type(members.custom.quantity) in ('UBIGINT', 'BIGINT') as is_quantity_integer,
        try_cast(json_extract_string(members.custom.quantity, '$') as double) as quantity,
        json_array_length(members.custom.item_ids) as item_count,
        len(keys[2]) as user_member_count
    from (
        select
            payload,
            keys,
            case when keys is not null then from_json(payload, '{{ members }}') end as members
        from (
            -- the keys of the top level and of user, one list each
            select payload, try(json_keys(payload, ['$', '$.user'])) as keys
            from {{ payloads }}
        ) as keyed
    ) as parsed
{%- endmacro %}

{#-
    get_json_object returns a JSON string's text and a number's digits alike, so the type checks
    read the member's JSON text from its parent object (which Spark re-serializes compactly):
    `"event_timestamp":` must be followed by digits, not by a quote.
-#}
{% macro spark__line_event_members(payloads) -%}
    {%- set payload = 'payload' %}
    select
        payload,
        json_object_keys({{ payload }}) is not null as is_json,
        left({{ payload }}, 10) = '{"event":{' as begins_with_event,
        size(array_except(json_object_keys({{ payload }}), array('custom', 'event', 'user', 'web'))) > 0 as has_unknown_member,
        ({{ payload }} rlike {{ spark_java_regex(null_or_empty_member_pattern()) }}) as has_null_or_empty_member,
        get_json_object({{ payload }}, '$.event.source_type') as source_type,
        get_json_object({{ payload }}, '$.event.event_type') as event_type,
        get_json_object({{ payload }}, '$.event.event_name') as event_name,
        get_json_object({{ payload }}, '$.event.deduplication_key') as deduplication_key,
        {{ regex_full_match("get_json_object(" ~ payload ~ ", '$.event')", '"event_timestamp":-?[0-9]+[,}]') }} as is_timestamp_integer,
        get_json_object({{ payload }}, '$.user.click_id') as click_id,
        get_json_object({{ payload }}, '$.user.browser_id') as browser_id,
        get_json_object({{ payload }}, '$.user.email') as email,
        get_json_object({{ payload }}, '$.user.phone') as phone,
        get_json_object({{ payload }}, '$.user.line_uid') as line_uid,
        get_json_object({{ payload }}, '$.web.url') as url,
        get_json_object({{ payload }}, '$.web.referrer') as referrer,
        get_json_object({{ payload }}, '$.web.title') as title,
        get_json_object({{ payload }}, '$.web.ip_address') as ip_address,
        try_cast(get_json_object({{ payload }}, '$.custom.value') as double) as custom_value,
        case when get_json_object({{ payload }}, '$.custom.value') is not null
            then {{ regex_full_match("get_json_object(" ~ payload ~ ", '$.custom')", '"value":-?[0-9]') }} end as is_value_number,
        get_json_object({{ payload }}, '$.custom.currency') as currency,
        case when get_json_object({{ payload }}, '$.custom.quantity') is not null
            then {{ regex_full_match("get_json_object(" ~ payload ~ ", '$.custom')", '"quantity":-?[0-9]+[,}]') }} end as is_quantity_integer,
        try_cast(get_json_object({{ payload }}, '$.custom.quantity') as double) as quantity,
        json_array_length(get_json_object({{ payload }}, '$.custom.item_ids')) as item_count,
        size(json_object_keys(get_json_object({{ payload }}, '$.user'))) as user_member_count
    from {{ payloads }}
{%- endmacro %}
