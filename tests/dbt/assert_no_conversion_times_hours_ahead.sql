-- Fails the build for conversions stamped more than an hour after both the clock and as_of: times
-- written without their offset are read as UTC (karte_export_utc_offset unset), so Japan time (a
-- BigQuery DATETIME) reads 9 hours ahead, and each conversion would be sent 9 hours late, once
-- the window reaches it, or never. Returns the rows and how many hours ahead each is. Set var
-- karte_export_utc_offset: '+09:00', or export sync_date with its offset. `sender run` stops
-- earlier, on the freshness check (exit 11), with the same advice.
{%- set clock = [run_started_at.timestamp() | int, as_of_unix()] | max %}
with

conversions as (

    select
        event_name,
        transaction_id,
        sync_date,
        synced_at_unix
    from {{ ref('stg_karte__conversions') }}

),

final as (

    select
        event_name,
        transaction_id,
        sync_date,
        (synced_at_unix - {{ clock }}) / 3600.0 as hours_ahead
    from conversions
    where synced_at_unix > {{ clock + 3600 }}

)

select * from final
