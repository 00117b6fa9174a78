-- Page views as exported: renamed, trimmed, sync_date parsed to Unix seconds.
with

source as (

    select
        {{ karte_export_columns('page_views') }}
    from {{ source('karte', 'page_views') }}

),

final as (

    select
        nullif({{ trim_ascii('user_id') }}, '') as user_id,
        nullif({{ trim_ascii('pv_id') }}, '') as pv_id,
        nullif({{ trim_ascii('session_id') }}, '') as session_id,
        {{ trim_ascii('url') }} as url,
        {{ trim_ascii('referrer') }} as referrer,
        title,
        {{ trim_ascii('ip_address') }} as ip_address,
        user_agent,
        lt_cid,
        sync_date,
        {{ karte_sync_date_to_unix('sync_date') }} as synced_at_unix
    from source

)

select * from final
