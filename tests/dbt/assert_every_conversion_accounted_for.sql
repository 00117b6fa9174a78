-- Nothing silently lost: every conversion of the run (one per event name and valid key, one per
-- row with a missing or invalid key or an unreadable time) is in exactly one of line_capi_payload
-- and line_capi_rejected. Returns the keys or rows that are missing, or counted twice.
with

conversions as (

    select
        event_name
        || '/'
        || coalesce(deduplication_key, 'row:' || coalesce(transaction_id, '') || ':' || coalesce(pv_id, ''))
            as conversion_id,
        count(*) as expected
    from {{ ref('int_conversions_windowed') }}
    group by conversion_id

),

sent as (

    select
        event_name || '/' || deduplication_key as conversion_id,
        count(*) as found
    from {{ ref('line_capi_payload') }}
    group by conversion_id

),

rejected as (

    select
        event_name
        || '/'
        || coalesce(deduplication_key, 'row:' || coalesce(transaction_id, '') || ':' || coalesce(pv_id, ''))
            as conversion_id,
        count(*) as found
    from {{ ref('line_capi_rejected') }}
    group by conversion_id

),

outcomes as (

    select
        conversion_id,
        sum(found) as found
    from (
        select * from sent
        union all
        select * from rejected
    ) as both_tables
    group by conversion_id

)

select
    conversions.expected,
    outcomes.found,
    coalesce(conversions.conversion_id, outcomes.conversion_id) as conversion_id
from conversions
full outer join outcomes
    on outcomes.conversion_id = conversions.conversion_id
where coalesce(conversions.expected, 0) <> coalesce(outcomes.found, 0)
