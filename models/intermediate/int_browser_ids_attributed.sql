-- Rule 5: user.browser_id. The user's latest lt_cid (the LINE Tag cookie) at or before the
-- conversion that, trimmed and lowercased, is a UUID. Invalid values are dropped before choosing,
-- so an older valid id beats a newer invalid one. Ties go to the largest pv_id.
with

conversions as (

    select
        event_name,
        deduplication_key,
        user_id,
        event_timestamp
    from {{ ref('int_conversions_windowed') }}
    where deduplication_key is not null
        and user_id is not null

),

page_views as (

    select * from {{ ref('stg_karte__page_views') }}

),

cookies as (

    select
        user_id,
        coalesce(pv_id, '') as pv_id,  -- a null pv_id loses a tie
        synced_at_unix,
        lower({{ trim_ascii('lt_cid') }}) as browser_id
    from page_views
    where lt_cid is not null
        and user_id in (select conversions.user_id from conversions)

),

valid_cookies as (

    select *
    from cookies
    where {{ regex_full_match('browser_id', uuid_pattern()) }}

),

final as (

    {# The user's latest valid cookie at or before the conversion. #}
    {{ latest_at_or_before(
        events='conversions', event_id=['event_name', 'deduplication_key'], event_time='event_timestamp',
        candidates='valid_cookies', candidate_time='synced_at_unix', tie_break='pv_id', partition_by='user_id',
        event_columns=['event_name', 'deduplication_key'], candidate_columns=['browser_id']
    ) }}

)

select * from final
