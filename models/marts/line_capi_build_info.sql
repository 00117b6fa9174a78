{{ config(materialized='table') }}
-- What this build was made from, in one row. The sender compares it with line_capi_payload and
-- refuses a payload whose build did not finish, or one made from the bundled sample for anything
-- but a loopback endpoint. It refs both marts, so dbt builds it only once both (and their data
-- tests) succeeded.
{#- Built alone (`dbt run -s line_capi_build_info`), it would describe the export named now, not
    the one the payload in the file was built from: a sample payload could then pass for a real
    one. So it is built only together with line_capi_payload. -#}
{%- set payload_node = 'model.' ~ project_name ~ '.line_capi_payload' %}
{%- if execute and flags.WHICH in ('run', 'build') and payload_node not in selected_resources %}
    {{ exceptions.raise_compiler_error(
        "line_capi_build_info describes the build of line_capi_payload and is built with it:"
        ~ " select both (dbt build, or --select line_capi_payload+)") }}
{%- endif %}
{%- set as_of = as_of_unix() %}
{%- set window_start = as_of - lookback_hours() * 3600 %}

with

payload as (

    select
        count(*) as payload_rows,
        coalesce(sum(event_timestamp), 0) as payload_event_timestamp_sum
    from {{ ref('line_capi_payload') }}

),

rejected as (

    select count(*) as rejected_rows
    from {{ ref('line_capi_rejected') }}

),

{% for table_name in karte_export_contract() %}
    {{ table_name }}_read as (

        select count(*) as {{ table_name }}_rows
        from {{ source('karte', table_name) }}

    ),

{% endfor %}
final as (

    select
        {{ dbt.string_literal(invocation_id) }} as invocation_id,
        {{ dbt.string_literal(dbt.escape_single_quotes(karte_export_location())) }} as export_location,
        cast({{ lookback_hours() }} as bigint) as lookback_hours,
        {%- for table_name in karte_export_contract() %}
            cast({{ table_name }}_read.{{ table_name }}_rows as bigint) as {{ table_name }}_rows,
        {%- endfor %}
        cast(payload.payload_rows as bigint) as payload_rows,
        cast(payload.payload_event_timestamp_sum as bigint) as payload_event_timestamp_sum,
        cast(rejected.rejected_rows as bigint) as rejected_rows,
        {{ 'true' if is_bundled_sample() else 'false' }} as is_sample,
        {{ unix_seconds_to_timestamp('cast(' ~ (run_started_at.timestamp() | int) ~ ' as bigint)') }} as built_at,
        {{ unix_seconds_to_timestamp('cast(' ~ as_of ~ ' as bigint)') }} as as_of,
        {{ unix_seconds_to_timestamp('cast(' ~ window_start ~ ' as bigint)') }} as window_start
    from payload
    cross join rejected
    {%- for table_name in karte_export_contract() %}
        cross join {{ table_name }}_read
    {%- endfor %}

)

select * from final
