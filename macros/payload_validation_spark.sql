{#-
    Spark body of the generic test is_valid_line_event (tests/dbt/generic/), the same checks as
    default__test_is_valid_line_event in macros/payload_validation.sql.
    get_json_object returns a JSON string's text and a number's digits alike, so the type checks
    read the member's JSON text from its parent object (which Spark re-serializes compactly):
    `"event_timestamp":` must be followed by digits, not by a quote.
-#}
{% macro spark__test_is_valid_line_event(model, column_name) %}
with

payloads as (

    select {{ column_name }} as payload
    from {{ model }}

),

parsed as (

    select
        payload,
        json_object_keys(payload) is not null as is_json,
        get_json_object(payload, '$.event.source_type') as source_type,
        get_json_object(payload, '$.event.event_type') as event_type,
        get_json_object(payload, '$.event.event_name') as event_name,
        get_json_object(payload, '$.event.deduplication_key') as deduplication_key,
        get_json_object(payload, '$.event') as event_json,
        get_json_object(payload, '$.user.click_id') as click_id,
        get_json_object(payload, '$.user.browser_id') as browser_id,
        get_json_object(payload, '$.user.email') as email,
        get_json_object(payload, '$.user.phone') as phone,
        get_json_object(payload, '$.user.line_uid') as line_uid,
        get_json_object(payload, '$.web.url') as url,
        get_json_object(payload, '$.web.referrer') as referrer,
        get_json_object(payload, '$.web.title') as title,
        get_json_object(payload, '$.web.ip_address') as ip_address,
        get_json_object(payload, '$.custom') as custom_json,
        try_cast(get_json_object(payload, '$.custom.value') as double) as custom_value,
        get_json_object(payload, '$.custom.value') as custom_value_text,
        get_json_object(payload, '$.custom.currency') as currency,
        get_json_object(payload, '$.custom.quantity') as quantity_text,
        try_cast(get_json_object(payload, '$.custom.quantity') as double) as quantity,
        json_array_length(get_json_object(payload, '$.custom.item_ids')) as item_count,
        json_object_keys(payload) as top_keys,
        json_object_keys(get_json_object(payload, '$.user')) as user_keys
    from payloads

),

failures as (

    select payload, 'not json' as problem from parsed where not is_json
    union all
    select payload, 'does not begin with {"event":{' from parsed where left(payload, 10) <> '{"event":{'
    union all
    select payload, 'unknown top-level member' from parsed
    where is_json and size(array_except(top_keys, array('custom', 'event', 'user', 'web'))) > 0
    union all
    select payload, 'null or empty member' from parsed
    where is_json and (payload like '%:null%' or payload like '%:""%' or payload like '%:{}%' or payload like '%:[]%')
    union all
    select payload, 'bad event' from parsed
    where is_json and (
        source_type is distinct from 'web'
        or event_type not in ('conversion', 'page_view') or event_type is null
        or not coalesce({{ regex_full_match('event_name', line_event_name_pattern()) }}, false)
        or not coalesce({{ regex_full_match('deduplication_key', line_deduplication_key_pattern()) }}, false)
        or lower(deduplication_key) in ('undefined', 'null')
        or not coalesce({{ regex_full_match('event_json', '"event_timestamp":-?[0-9]+[,}]') }}, false)
    )
    union all
    select payload, 'no user identifier' from parsed
    where is_json and (user_keys is null or size(user_keys) = 0)
    union all
    select payload, 'bad user field' from parsed
    where is_json and (
        not coalesce({{ regex_full_match('click_id', line_click_id_pattern()) }}, true)
        or not coalesce({{ regex_full_match('browser_id', uuid_pattern()) }}, true)
        or not coalesce({{ regex_full_match('email', sha256_hex_pattern()) }}, true)
        or not coalesce({{ regex_full_match('phone', sha256_hex_pattern()) }}, true)
        or not coalesce({{ regex_full_match('line_uid', line_uid_pattern()) }}, true)
    )
    union all
    select payload, 'bad web field' from parsed
    where is_json and (
        not coalesce({{ regex_full_match('url', web_url_pattern()) }}, true)
        or length(url) > {{ line_max_url_length() }}
        or length(referrer) > {{ line_max_url_length() }}
        or length(title) > {{ line_max_title_length() }}
        or not coalesce(
            {{ regex_full_match('ip_address', '^' ~ ipv4_pattern() ~ '$') }}
            or {{ regex_full_match('ip_address', '^' ~ ipv6_pattern() ~ '$') }}, true)
    )
    union all
    select payload, 'bad custom field' from parsed
    where is_json and (
        (custom_value_text is not null
            and not coalesce({{ regex_full_match('custom_json', '"value":-?[0-9]') }}, false))
        or custom_value < 0 or custom_value > {{ line_max_value() }}
        or not coalesce({{ regex_full_match('currency', '^[A-Z]{3}$') }}, true)
        or (quantity_text is not null
            and not coalesce({{ regex_full_match('custom_json', '"quantity":-?[0-9]+[,}]') }}, false))
        or quantity < 0
        or item_count > {{ line_max_item_ids() }}
    )

)

select * from failures
{% endmacro %}
