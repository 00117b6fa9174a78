{#-
    The members of a LINE event's JSON text that the generic test is_valid_line_event
    (tests/dbt/generic/) checks, as one select list; one body per engine. Columns: is_json,
    begins_with_event, has_unknown_member (a top-level member other than event/user/web/custom),
    the text of each checked member, is_timestamp_integer, is_value_number and
    is_quantity_integer (null when absent), custom_value and quantity as numbers, item_count and
    user_member_count.
-#}
{% macro line_event_members(payload) %}{{ return(adapter.dispatch('line_event_members', 'line_capi')(payload)) }}{% endmacro %}

{% macro default__line_event_members(payload) -%}
        json_valid({{ payload }}) as is_json,
        starts_with({{ payload }}, '{"event":{') as begins_with_event,
        not list_has_all(['custom', 'event', 'user', 'web'], json_keys({{ payload }})) as has_unknown_member,
        json_extract_string({{ payload }}, '$.event.source_type') as source_type,
        json_extract_string({{ payload }}, '$.event.event_type') as event_type,
        json_extract_string({{ payload }}, '$.event.event_name') as event_name,
        json_extract_string({{ payload }}, '$.event.deduplication_key') as deduplication_key,
        json_type({{ payload }}, '$.event.event_timestamp') in ('UBIGINT', 'BIGINT') as is_timestamp_integer,
        json_extract_string({{ payload }}, '$.user.click_id') as click_id,
        json_extract_string({{ payload }}, '$.user.browser_id') as browser_id,
        json_extract_string({{ payload }}, '$.user.email') as email,
        json_extract_string({{ payload }}, '$.user.phone') as phone,
        json_extract_string({{ payload }}, '$.user.line_uid') as line_uid,
        json_extract_string({{ payload }}, '$.web.url') as url,
        json_extract_string({{ payload }}, '$.web.referrer') as referrer,
        json_extract_string({{ payload }}, '$.web.title') as title,
        json_extract_string({{ payload }}, '$.web.ip_address') as ip_address,
        try_cast(json_extract({{ payload }}, '$.custom.value') as double) as custom_value,
        json_type({{ payload }}, '$.custom.value') in ('UBIGINT', 'BIGINT', 'DOUBLE') as is_value_number,
        json_extract_string({{ payload }}, '$.custom.currency') as currency,
        json_type({{ payload }}, '$.custom.quantity') in ('UBIGINT', 'BIGINT') as is_quantity_integer,
        try_cast(json_extract({{ payload }}, '$.custom.quantity') as double) as quantity,
        json_array_length({{ payload }}, '$.custom.item_ids') as item_count,
        len(json_keys({{ payload }}, '$.user')) as user_member_count
{%- endmacro %}
