-- Rule 5: user.browser_id. The user's latest lt_cid (the LINE Tag cookie) at or before the
-- conversion that, trimmed and lowercased, is a UUID. Invalid values are dropped before choosing,
-- so an older valid id beats a newer invalid one. Ties go to the largest pv_id.
with

conversions as (

    select deduplication_key, user_id, event_timestamp
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
        pv_id,
        synced_at_unix,
        lower({{ trim_ascii('lt_cid') }}) as browser_id
    from page_views
    where lt_cid is not null
        and user_id in (select user_id from conversions)

),

valid_cookies as (

    select *
    from cookies
    where {{ regex_full_match('browser_id', uuid_pattern()) }}

),

ranked as (

    select
        conversions.deduplication_key,
        valid_cookies.browser_id,
        row_number() over (
            partition by conversions.deduplication_key
            order by valid_cookies.synced_at_unix desc, valid_cookies.pv_id desc
        ) as recency_rank
    from conversions
    inner join valid_cookies
        on valid_cookies.user_id = conversions.user_id
        and valid_cookies.synced_at_unix <= conversions.event_timestamp

),

final as (

    select
        deduplication_key,
        browser_id
    from ranked
    where recency_rank = 1

)

select * from final
