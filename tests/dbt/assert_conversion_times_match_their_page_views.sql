-- Stops the build when the conversions' times and those of their own page views (the pv_id the
-- conversion fired on) are whole hours apart: one table writes its times without their offset
-- and the other with it (a DATETIME beside a TIMESTAMP), so one of them is read hours off, and
-- each conversion would be sent that many hours early or late.
-- assert_no_conversion_times_hours_ahead sees Japan time read as UTC only while it is still
-- ahead of the clock; a conversion more than 9 hours old reads as a past time, and only its page
-- view shows it is off.
-- A conversion fires after its page view, within the hour (the bundled Datahub query takes a page
-- view up to an hour before it), most of them within minutes. So each conversion's gap, less up
-- to 2 minutes of clock difference, is counted in whole hours, rounded down: the hour of its
-- page view's time zone offset. The verdict needs most matched conversions (at least 3) in one
-- such hour 2 or more hours away from zero: a conversion hours after its page view (a tab left
-- open) is a stray, and an hour's difference is a slow checkout as often as a zone. Zones an
-- hour from UTC (Western and Central Europe) are therefore not told apart; Japan's 9 hours is.
-- Reads int_conversions_joined, a table: the rule model is a view, which a query would rebuild.
-- The check runs once, while the test compiles, so that its error can say what to do (as in
-- assert_no_conversion_times_hours_ahead); only when the test runs.
{%- set query %}
    with matched as (
        select floor((seconds_after_page_view + 120) / 3600.0) as offset_hours
        from {{ ref('int_conversions_joined') }}
        where seconds_after_page_view is not null
    )
    select
        offset_hours,
        count(*) as conversions,
        (select count(*) from matched) as matched
    from matched
    where abs(offset_hours) >= 2
    group by offset_hours
    order by conversions desc, offset_hours
    limit 1
{%- endset %}
{%- if execute and flags.WHICH in ('build', 'test', 'retry') %}
    {%- for row in run_query(query).rows %}
        {%- set offset_hours = row[0] | int %}
        {%- if row[1] >= 3 and row[1] * 2 > row[2] %}
            {{ exceptions.raise_compiler_error(
                row[1] ~ " of " ~ row[2] ~ " conversions are stamped " ~ (offset_hours | abs)
                ~ " h " ~ ('after' if offset_hours > 0 else 'before')
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
