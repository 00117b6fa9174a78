{{ config(materialized='table') }}
-- One LINE Conversion API event per sendable conversion (rules 12 and 13): `payload`, the
-- event's JSON text exactly as the sender posts it, and the columns the sender reads beside it.
-- Fields without a value are absent (never null or ""), and so are empty web and custom objects.
-- Rows are written in event_timestamp order: the sender streams them oldest first. The fields
-- as columns, to inspect: the view line_capi_payload_fields.
with

conversions as (

    select * from {{ ref('int_conversions_joined') }}
    where reason is null

),

objects as (

    select
        *,
        {{ json_object([
            ('source_type', "'\"web\"'"),
            ('event_type', "'\"conversion\"'"),
            ('event_name', json_plain_string('event_name')),
            ('deduplication_key', json_plain_string('deduplication_key')),
            ('event_timestamp', json_number('event_timestamp')),
        ]) }} as event_json,
        {{ json_object([
            ('click_id', json_plain_string('click_id')),
            ('browser_id', json_plain_string('browser_id')),
            ('email', json_plain_string('email_sha256')),
            ('phone', json_plain_string('phone_sha256')),
            ('line_uid', json_plain_string('line_uid')),
        ]) }} as user_json,
        {{ json_object([
            ('url', json_string('web_url')),
            ('referrer', json_string('web_referrer')),
            ('title', json_string('web_title')),
            ('ip_address', json_plain_string('web_ip_address')),
            ('user_agent', json_string('web_user_agent')),
        ]) }} as web_json,
        {{ json_object([
            ('value', json_number('custom_value')),
            ('currency', json_plain_string('custom_currency')),
            ('quantity', json_number('custom_quantity')),
            ('item_ids', 'custom_item_ids_json'),
        ]) }} as custom_json
    from conversions

),

final as (

    select
        deduplication_key,
        event_name,
        {{ json_object([
            ('event', 'event_json'),
            ('user', 'user_json'),
            ('web', 'web_json'),
            ('custom', 'custom_json'),
        ]) }} as payload,
        event_timestamp,
        line_uid is not null as has_line_uid,
        {{ unix_seconds_to_timestamp('event_timestamp') }} as converted_at
    from objects

)

select * from final
order by event_timestamp, deduplication_key, event_name
