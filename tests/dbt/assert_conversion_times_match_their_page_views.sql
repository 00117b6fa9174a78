-- Stops the build when the conversions' times and those of their own page views (the pv_id the
-- conversion fired on) are a whole number of hours apart: one table writes its times without
-- their offset and the other with it (a DATETIME beside a TIMESTAMP), so one of them is read
-- hours off, and each conversion would be sent that many hours early or late.
-- assert_no_conversion_times_hours_ahead sees Japan time read as UTC only while it is still
-- ahead of the clock; a conversion more than 9 hours old reads as a past time, and only its page
-- view shows it is off.
-- A conversion fires within seconds or minutes of its page view. The verdict needs most of the
-- matched conversions (at least 3) to sit within 10 minutes of one and the same offset, a whole
-- quarter-hour (time zones are), at least an hour away from zero: conversions recorded hours after
-- their page view (a tab left open, a server-side event) spread out and never make such a group.
-- The check runs once, while the test compiles, so that its error can say what to do (as in
-- assert_no_conversion_times_hours_ahead); only when the test runs.
{%- set query %}
    with matched as (
        select
            seconds_after_page_view as seconds,
            round(seconds_after_page_view / 900.0) * 900 as offset_seconds
        from {{ ref('int_conversion_page_views') }}
        where seconds_after_page_view is not null
    )
    select
        offset_seconds,
        count(*) as conversions,
        (select count(*) from matched) as matched
    from matched
    where abs(seconds - offset_seconds) <= 600
        and abs(offset_seconds) >= 3600
    group by offset_seconds
    order by conversions desc, offset_seconds
    limit 1
{%- endset %}
{%- if execute and flags.WHICH in ('build', 'test', 'retry') %}
    {%- for row in run_query(query).rows %}
        {%- set offset_hours = (row[0] | float) / 3600.0 %}
        {%- if row[1] >= 3 and row[1] * 2 > row[2] %}
            {{ exceptions.raise_compiler_error(
                row[1] ~ " of " ~ row[2] ~ " conversions are stamped "
                ~ '%g' | format(offset_hours | abs) ~ " h " ~ ('after' if offset_hours > 0 else 'before')
                ~ " the page view they fired on (pv_id): the two tables' sync_date are in different"
                ~ " time zones, one written without its offset, which is read as UTC (Japan time"
                ~ " reads 9 h ahead). Export both tables' sync_date with its offset or as a"
                ~ " TIMESTAMP; a time without an offset is at dbt var karte_export_utc_offset"
                ~ " ('+09:00' for Japan time) in every table (docs/input-contract.md)"
            ) }}
        {%- endif %}
    {%- endfor %}
{%- endif %}

-- nothing left to find: the query above found nothing
select 1 as conversions_off_their_page_views
where 1 = 0
