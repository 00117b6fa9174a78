-- Rule 4: user.click_id. The ldtag_cl parameter (first one of the query string, URL-decoded) of
-- the user's latest page view with conversion time - ad_contact_days <= sync_date <= conversion
-- time. Only values matching LINE's click id pattern count, so an older valid click beats a newer
-- invalid one. Ties go to the largest pv_id. Only the users who converted are scanned.
{#- The parameter's name, in its one place: the cheap pre-filter of landings reads it too. -#}
{%- set click_parameter = 'ldtag_cl' %}
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

landings as (

    select
        user_id,
        coalesce(pv_id, '') as pv_id,  -- a null pv_id loses a tie
        synced_at_unix,
        {{ url_decode(url_query_parameter('url', click_parameter)) }} as click_id
    from page_views
    where url like {{ dbt.string_literal('%' ~ click_parameter ~ '=%') }}
        and user_id in (select conversions.user_id from conversions)

),

valid_clicks as (

    select *
    from landings
    where {{ regex_full_match('click_id', line_click_id_pattern()) }}

),

latest_before as (

    {# The user's latest valid click at or before the conversion. #}
    {{ latest_at_or_before(
        events='conversions', event_id=['event_name', 'deduplication_key'], event_time='event_timestamp',
        candidates='valid_clicks', candidate_time='synced_at_unix', tie_break='pv_id', partition_by='user_id',
        event_columns=['event_name', 'deduplication_key', 'event_timestamp'], candidate_columns=['click_id', 'synced_at_unix']
    ) }}

),

final as (

    -- Older than the ad-contact window is no click: the latest valid click before the
    -- conversion is too old only when every earlier one is too.
    select
        event_name,
        deduplication_key,
        click_id
    from latest_before
    where synced_at_unix >= event_timestamp - {{ ad_contact_days() * 86400 }}

)

select * from final
