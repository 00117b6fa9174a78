-- Rule 4: user.click_id. The ldtag_cl parameter (first one of the query string, URL-decoded) of
-- the user's latest page view with conversion time - ad_contact_days <= sync_date <= conversion
-- time. Only values matching LINE's click id pattern count, so an older valid click beats a newer
-- invalid one. Ties go to the largest pv_id. Only the users who converted are scanned.
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

landings as (

    select
        user_id,
        pv_id,
        synced_at_unix,
        {{ url_decode(url_query_parameter('url', 'ldtag_cl')) }} as click_id
    from page_views
    where url like '%ldtag_cl=%'
        and user_id in (select user_id from conversions)

),

valid_clicks as (

    select *
    from landings
    where {{ regex_full_match('click_id', line_click_id_pattern()) }}

),

ranked as (

    select
        conversions.deduplication_key,
        valid_clicks.click_id,
        row_number() over (
            partition by conversions.deduplication_key
            order by valid_clicks.synced_at_unix desc, valid_clicks.pv_id desc
        ) as recency_rank
    from conversions
    inner join valid_clicks
        on valid_clicks.user_id = conversions.user_id
        and valid_clicks.synced_at_unix <= conversions.event_timestamp
        and valid_clicks.synced_at_unix >= conversions.event_timestamp - {{ ad_contact_days() * 86400 }}

),

final as (

    select
        deduplication_key,
        click_id
    from ranked
    where recency_rank = 1

)

select * from final
