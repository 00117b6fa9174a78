{{ config(materialized='table') }}
-- The conversions of the run that cannot be sent, one row each, with the reason
-- (see seeds/line_capi_reject_reasons.csv). With line_capi_payload it accounts for every
-- conversion in the window: tests/dbt/assert_every_conversion_accounted_for.sql.
with

conversions as (

    select * from {{ ref('int_conversions_joined') }}
    where reason is not null

),

final as (

    select
        transaction_id,
        deduplication_key,
        event_name,
        user_id,
        pv_id,
        reason,
        sync_date,
        event_timestamp,
        {{ unix_seconds_to_timestamp('event_timestamp') }} as converted_at
    from conversions

)

select * from final
