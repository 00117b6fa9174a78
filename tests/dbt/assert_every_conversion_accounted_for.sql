-- Nothing silently lost: every conversion of the run (one per event name and valid key, one per
-- row with a missing or invalid key or an unreadable time) is in exactly one of line_capi_payload
-- and line_capi_rejected. Returns the keys or rows that are missing, or counted twice.
with

conversions as (

    select event_name || '/' || coalesce(deduplication_key, 'row:' || coalesce(transaction_id, '') || ':' || coalesce(pv_id, ''))
            as conversion,
        count(*) as expected
    from {{ ref('int_conversions_windowed') }}
    group by 1

),

sent as (

    select event_name || '/' || deduplication_key as conversion, count(*) as found
    from {{ ref('line_capi_payload') }}
    group by 1

),

rejected as (

    select event_name || '/' || coalesce(deduplication_key, 'row:' || coalesce(transaction_id, '') || ':' || coalesce(pv_id, ''))
            as conversion,
        count(*) as found
    from {{ ref('line_capi_rejected') }}
    group by 1

),

outcomes as (

    select conversion, sum(found) as found
    from (select * from sent union all select * from rejected) as both_tables
    group by conversion

)

select
    coalesce(conversions.conversion, outcomes.conversion) as conversion,
    conversions.expected,
    outcomes.found
from conversions
full outer join outcomes
    on outcomes.conversion = conversions.conversion
where coalesce(conversions.expected, 0) <> coalesce(outcomes.found, 0)
