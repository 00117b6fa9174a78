-- LINE logins: which LINE user id a KARTE user logged in with, and when.
with

source as (

    select
        {{ karte_export_columns('line_users') }}
    from {{ source('karte', 'line_users') }}

),

final as (

    select
        {{ karte_missing_as_null(trim_ascii('user_id')) }} as user_id,
        {{ trim_ascii('line_user_id') }} as line_user_id,
        {{ karte_sync_date_to_unix('sync_date') }} as synced_at_unix
    from source

)

select * from final
