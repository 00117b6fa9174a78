{{ config(materialized='view') }}
-- The fields of each line_capi_payload event as columns, to inspect and to query: one row per
-- sendable conversion, with the values its payload's JSON was built from. A view over
-- int_conversions_joined, so the build writes these values once (docs/outputs.md).
with

conversions as (

    select * from {{ ref('int_conversions_joined') }}
    where reason is null

),

final as (

    select
        deduplication_key,
        event_name,
        user_id,
        click_id,
        browser_id,
        email_sha256,
        phone_sha256,
        line_uid,
        web_url,
        web_referrer,
        web_title,
        web_ip_address,
        web_user_agent,
        custom_currency,
        custom_item_ids_json,
        custom_value,
        custom_quantity,
        event_timestamp,
        line_uid is not null as has_line_uid,
        {{ unix_seconds_to_timestamp('event_timestamp') }} as converted_at
    from conversions

)

select * from final
