-- Page views as exported: renamed, trimmed, "no value" words (\N, NULL, nan...) as null, sync_date
-- parsed to Unix seconds.
with

source as (

    select
        {{ karte_export_columns('page_views') }}
    from {{ source('karte', 'page_views') }}

),

final as (

    select
        {{ karte_missing_as_null(trim_ascii('user_id')) }} as user_id,
        {{ karte_missing_as_null(trim_ascii('pv_id')) }} as pv_id,
        {{ karte_missing_as_null(trim_ascii('session_id')) }} as session_id,
        {{ trim_ascii('url') }} as url,
        {{ karte_missing_as_null(trim_ascii('referrer')) }} as referrer,
        {{ karte_missing_as_null('title') }} as title,
        {{ trim_ascii('ip_address') }} as ip_address,
        {{ karte_missing_as_null('user_agent') }} as user_agent,
        lt_cid,
        sync_date,
        {{ karte_sync_date_to_unix('sync_date') }} as synced_at_unix
    from source

)

select * from final
