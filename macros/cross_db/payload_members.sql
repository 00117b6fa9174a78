{#-
    The members of a LINE event's JSON text that the generic test is_valid_line_event
    (tests/dbt/generic/) checks: a select of relation `payloads` (column payload) with, besides
    payload, one column per member. Columns: is_json, begins_with_event, has_unknown_member (a
    top-level member other than event/user/web/custom), the text of each checked member,
    is_timestamp_integer, is_value_number and is_quantity_integer (null when absent),
    custom_value and quantity as numbers, item_count and user_member_count.
-#}
{% macro line_event_members(payloads) %}
    {{ return(adapter.dispatch('line_event_members', 'line_capi')(payloads)) }}
{% endmacro %}

{% macro default__line_event_members(payloads) %}{{ not_ported('line_event_members') }}{% endmacro %}

{#-
    Shaped for speed (docs/bench.md): every json_* call parses its text again, so each payload is
    read by one call per kind over a list of paths (texts, types, sub-objects, top-level keys),
    and only when it is valid JSON: json_extract on malformed text is an error, not a null.
-#}
{% macro duckdb__line_event_members(payloads) -%}
    {%- set texts = [
        'event.source_type', 'event.event_type', 'event.event_name', 'event.deduplication_key',
        'user.click_id', 'user.browser_id', 'user.email', 'user.phone', 'user.line_uid',
        'web.url', 'web.referrer', 'web.title', 'web.ip_address',
        'custom.value', 'custom.currency', 'custom.quantity',
    ] -%}
    {%- set types = ['event.event_timestamp', 'custom.value', 'custom.quantity'] -%}
    {%- set objects = ['user', 'custom.item_ids'] -%}
    select
        payload,
        is_json,
        starts_with(payload, '{"event":{') as begins_with_event,
        not list_has_all(['custom', 'event', 'user', 'web'], top_level_keys) as has_unknown_member,
        {%- for path in texts if path not in ('custom.value', 'custom.quantity') %}
        texts[{{ texts.index(path) + 1 }}] as {{ path.split('.')[1] }},
        {%- endfor %}
        types[1] in ('UBIGINT', 'BIGINT') as is_timestamp_integer,
        try_cast(texts[{{ texts.index('custom.value') + 1 }}] as double) as custom_value,
        types[2] in ('UBIGINT', 'BIGINT', 'DOUBLE') as is_value_number,
        types[3] in ('UBIGINT', 'BIGINT') as is_quantity_integer,
        try_cast(texts[{{ texts.index('custom.quantity') + 1 }}] as double) as quantity,
        json_array_length(objects[2]) as item_count,
        len(json_keys(objects[1])) as user_member_count
    from (
        select
            payload,
            json is not null as is_json,
            json_keys(json) as top_level_keys,
            json_extract_string(json, ['$.{{ texts | join("', '$.") }}']) as texts,
            json_type(json, ['$.{{ types | join("', '$.") }}']) as types,
            json_extract(json, ['$.{{ objects | join("', '$.") }}']) as objects
        from (
            select payload, case when json_valid(payload) then payload end as json
            from {{ payloads }}
        ) as checked
    ) as read
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
