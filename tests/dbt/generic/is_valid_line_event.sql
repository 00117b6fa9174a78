{#-
    Fails on each payload that LINE's validation would refuse (docs/line-capi.md):
    not JSON, not starting with {"event":{, unknown or null members, a bad event field, no user
    identifier, or a user, web or custom field outside its pattern or limit. The checks are the
    same on every engine; reading the JSON members is the engine's (macro line_event_members).
-#}
{% test is_valid_line_event(model, column_name) %}
with

payloads as (

    select {{ column_name }} as payload
    from {{ model }}

),

parsed as (

    {{ line_event_members('payloads') }}

),

checked as (

    -- One pass; a payload is reported with the first problem found.
    select
        payload,
        case
            when not is_json then 'not json'
            when not begins_with_event then 'does not begin with {"event":{'
            when has_unknown_member then 'unknown top-level member'
            when has_null_or_empty_member then 'null or empty member'
            when source_type is distinct from 'web'
                or event_type not in ('conversion', 'page_view') or event_type is null
                or not coalesce({{ regex_full_match('event_name', line_event_name_pattern()) }}, false)
                or not coalesce({{ is_line_deduplication_key_sql('deduplication_key') }}, false)
                or not coalesce(is_timestamp_integer, false)
                then 'bad event'
            when coalesce(user_member_count, 0) = 0 then 'no user identifier'
            when not coalesce({{ regex_full_match('click_id', line_click_id_pattern()) }}, true)
                or not coalesce({{ regex_full_match('browser_id', uuid_pattern()) }}, true)
                or not coalesce({{ regex_full_match('email', sha256_hex_pattern()) }}, true)
                or not coalesce({{ regex_full_match('phone', sha256_hex_pattern()) }}, true)
                or not coalesce({{ regex_full_match('line_uid', line_uid_pattern()) }}, true)
                then 'bad user field'
            when not coalesce({{ regex_full_match('url', web_url_pattern()) }}, true)
                or not {{ fits_utf16('url', line_max_url_length()) }}
                or not {{ fits_utf16('referrer', line_max_url_length()) }}
                or not {{ fits_utf16('title', line_max_title_length()) }}
                or not coalesce({{ is_ip_address_sql('ip_address') }}, true)
                then 'bad web field'
            when not coalesce(is_value_number, true)
                or custom_value < 0 or custom_value > {{ line_max_value() }}
                or not coalesce({{ regex_full_match('currency', currency_code_pattern()) }}, true)
                or not coalesce(is_quantity_integer, true)
                or quantity < 0
                or item_count > {{ line_max_item_ids() }}
                then 'bad custom field'
        end as problem
    from parsed

)

select payload, problem
from checked
where problem is not null
{% endtest %}
