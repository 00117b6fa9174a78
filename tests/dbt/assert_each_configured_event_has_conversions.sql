-- Warns (it never fails the build, nor skips what follows it) for each configured conversion type
-- of which this build's window holds no conversion at all, sent or rejected: most often a KARTE
-- event name that the export spells differently (var karte_conversion_event or
-- karte_conversion_events), or a conversion that the site stopped recording. Returns the KARTE
-- event name with the LINE event name it is sent as. The hourly job also alerts when this lasts
-- several builds (LINE_CAPI_ALERT_EMPTY_BUILDS, docs/monitoring.md).
{{ config(severity='warn') }}
{%- set selects = [] %}
{%- for karte_event, line_event in conversion_events() %}
    {%- do selects.append('select ' ~ dbt.string_literal(dbt.escape_single_quotes(karte_event))
        ~ ' as karte_event_name, ' ~ dbt.string_literal(line_event) ~ ' as line_event_name') %}
{%- endfor %}
with

coverage as (

    {{ coverage_of_the_last_build() }}

),

configured as (

    {{ selects | join('\n    union all\n    ') }}

)

select
    configured.karte_event_name,
    configured.line_event_name
from configured
left join coverage
    on coverage.event_name = configured.line_event_name
where coalesce(coverage.conversions_in_window, 0) = 0
