-- Conversions as exported: contract columns renamed (var karte_column_map), rows kept by the data
-- filter (var karte_conversion_filter), text trimmed (the event name of Unicode spaces too: a name
-- typed with a no-break space is still the site's event), sync_date parsed to Unix seconds (shifted by
-- export_time_shift_seconds() for replayed exports).
with

source as (

    select
        {{ karte_export_columns('conversions') }}
    from {{ source('karte', 'conversions') }}

),

filtered as (

    -- Rule 1: rows the filter leaves out are not conversions at all: not sent, not rejected.
    select *
    from source
    {{ karte_data_filter_where('conversions') }}

),

final as (

    select
        {{ karte_missing_as_null(trim_ascii('user_id')) }} as user_id,
        transaction_id,
        {{ karte_missing_as_null(trim_ascii('pv_id')) }} as pv_id,
        {{ karte_missing_as_null(trim_ascii('session_id')) }} as session_id,
        {{ trim_unicode_space('event_name') }} as event_name,
        items,
        revenue,
        sync_date,
        {{ karte_sync_date_to_unix('sync_date') }} as synced_at_unix
    from filtered

)

select * from final
