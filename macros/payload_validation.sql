{#- The body of the generic test is_valid_line_event (tests/dbt/generic/), one per engine. -#}
{% macro default__test_is_valid_line_event(model, column_name) %}
with

payloads as (

    select {{ column_name }} as payload
    from {{ model }}

),

parsed as (

    select
        payload,
        json_valid(payload) as is_json,
        json_extract_string(payload, '$.event.source_type') as source_type,
        json_extract_string(payload, '$.event.event_type') as event_type,
        json_extract_string(payload, '$.event.event_name') as event_name,
        json_extract_string(payload, '$.event.deduplication_key') as deduplication_key,
        json_type(payload, '$.event.event_timestamp') as timestamp_type,
        json_extract_string(payload, '$.user.click_id') as click_id,
        json_extract_string(payload, '$.user.browser_id') as browser_id,
        json_extract_string(payload, '$.user.email') as email,
        json_extract_string(payload, '$.user.phone') as phone,
        json_extract_string(payload, '$.user.line_uid') as line_uid,
        json_extract_string(payload, '$.web.url') as url,
        json_extract_string(payload, '$.web.referrer') as referrer,
        json_extract_string(payload, '$.web.title') as title,
        json_extract_string(payload, '$.web.ip_address') as ip_address,
        try_cast(json_extract(payload, '$.custom.value') as double) as custom_value,
        json_type(payload, '$.custom.value') as value_type,
        json_extract_string(payload, '$.custom.currency') as currency,
        json_type(payload, '$.custom.quantity') as quantity_type,
        try_cast(json_extract(payload, '$.custom.quantity') as double) as quantity,
        json_array_length(payload, '$.custom.item_ids') as item_count,
        list_sort(json_keys(payload)) as top_keys,
        json_keys(payload, '$.user') as user_keys
    from payloads

),

failures as (

    select payload, 'not json' as problem from parsed where not is_json
    union all
    select payload, 'does not begin with {"event":{' from parsed where not starts_with(payload, '{"event":{')
    union all
    select payload, 'unknown top-level member' from parsed
    where is_json and not list_has_all(['custom', 'event', 'user', 'web'], top_keys)
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
        or timestamp_type not in ('UBIGINT', 'BIGINT')
    )
    union all
    select payload, 'no user identifier' from parsed
    where is_json and (user_keys is null or len(user_keys) = 0)
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
        (value_type is not null and value_type not in ('UBIGINT', 'BIGINT', 'DOUBLE'))
        or custom_value < 0 or custom_value > {{ line_max_value() }}
        or not coalesce({{ regex_full_match('currency', '^[A-Z]{3}$') }}, true)
        or (quantity_type is not null and quantity_type not in ('UBIGINT', 'BIGINT'))
        or quantity < 0
        or item_count > {{ line_max_item_ids() }}
    )

)

select * from failures
{% endmacro %}
