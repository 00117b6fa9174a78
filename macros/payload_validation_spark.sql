{#-
    Spark body of line_event_members (macros/payload_validation.sql). get_json_object returns a
    JSON string's text and a number's digits alike, so the type checks read the member's JSON text
    from its parent object (which Spark re-serializes compactly): `"event_timestamp":` must be
    followed by digits, not by a quote.
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
