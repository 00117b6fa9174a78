-- Rule 6: the web object, from the page view with the conversion's pv_id.
-- url: only http(s):// (case-sensitive, as LINE checks) and at most 2048 characters;
-- referrer: at most 2048 characters; title: cut to 1024 characters. Characters are counted as
-- UTF-16 units, as Java and JavaScript count them (an emoji is two): the limits hold however
-- LINE counts;
-- ip_address: the first of a list, without brackets or a port, then only valid IPv4 or IPv6
-- (IPv4-mapped IPv6 included); user_agent as is.
-- seconds_after_page_view: the conversion's time less its page view's, which the data test
-- assert_conversion_times_match_their_page_views reads from int_conversions_joined (a table:
-- this model is a view) to find an offset missing in one table only.
with

conversions as (

    select
        event_name,
        deduplication_key,
        pv_id,
        event_timestamp
    from {{ ref('int_conversions_windowed') }}
    where deduplication_key is not null
        and pv_id is not null

),

page_views as (

    select * from {{ ref('stg_karte__page_views') }}

),

conversion_page_views as (

    select
        conversions.event_name,
        conversions.deduplication_key,
        page_views.url,
        page_views.referrer,
        page_views.title,
        {{ ip_address_candidate_sql('page_views.ip_address') }} as ip_address,
        page_views.user_agent,
        conversions.event_timestamp,
        -- parsed here, after the join, so that only the matched page views are parsed, not all
        {{ karte_sync_date_to_unix('page_views.sync_date') }} as page_view_synced_at_unix
    from conversions
    inner join page_views
        on page_views.pv_id = conversions.pv_id

),

ranked as (

    select
        *,
        event_timestamp - page_view_synced_at_unix as seconds_after_page_view,
        -- A pv_id exported twice: the latest sync_date wins.
        row_number() over (
            partition by event_name, deduplication_key
            order by page_view_synced_at_unix desc nulls last
        ) as duplicate_rank
    from conversion_page_views

),

final as (

    select
        event_name,
        deduplication_key,
        case
            when {{ regex_full_match('url', web_url_pattern()) }}
                and {{ fits_utf16('url', line_max_url_length()) }}
                then url
        end as web_url,
        case
            when {{ fits_utf16('referrer', line_max_url_length()) }} then nullif(referrer, '')
        end as web_referrer,
        nullif({{ left_utf16('title', line_max_title_length()) }}, '') as web_title,
        case
            when {{ is_ip_address_sql('ip_address') }} then ip_address
        end as web_ip_address,
        nullif(user_agent, '') as web_user_agent,
        seconds_after_page_view
    from ranked
    where duplicate_rank = 1

)

select * from final
