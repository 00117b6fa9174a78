-- The user master, reduced to the two personal fields LINE uses, and to the rows kept by the data
-- filter (var karte_user_master_filter). This is a view: the plaintext is read from the export
-- file and hashed in int_users_hashed, never stored.
with

source as (

    select
        {{ karte_export_columns('user_master') }}
    from {{ source('karte', 'user_master') }}

),

filtered as (

    select *
    from source
    {{ karte_data_filter_where('user_master') }}

),

final as (

    select
        {{ karte_missing_as_null(trim_ascii('user_id')) }} as user_id,
        email,
        phone
    from filtered

)

select * from final
