{{ config(materialized='table') }}
-- What this build was made from, in one row. The sender compares it with line_capi_payload and
-- refuses a payload whose build did not finish, or one made from the bundled sample for anything
-- but a loopback endpoint. It refs both marts, so dbt builds it only once both (and their data
-- tests) succeeded.
{#- Built alone (`dbt run -s line_capi_build_info`), or with the payload from tables and views an
    earlier build left (`--select line_capi_payload+` leaves int_conversions_joined as it was),
    it would describe the export and vars named now, not those the payload in the file was built
    from: a sample payload could then pass for a real one, and a changed var look applied. So it
    is built only together with every model it is built from. -#}
{%- if execute and flags.WHICH in ('run', 'build') %}
    {%- set upstream = ['model.' ~ project_name ~ '.line_capi_build_info'] %}
    {%- for node_id in upstream %}
        {%- for parent in graph.nodes[node_id].depends_on.nodes
            if parent.startswith('model.') and parent not in upstream %}
            {%- do upstream.append(parent) %}
        {%- endfor %}
    {%- endfor %}
    {%- set left_out = upstream[1:] | reject('in', selected_resources) | map('replace', 'model.' ~ project_name ~ '.', '') | list %}
    {%- if not selected_resources %}
        {#- dbt retry selects from the last run's results, which this context does not see -#}
        {{ exceptions.raise_compiler_error(
            "line_capi_build_info describes the build of line_capi_payload and is built with every"
            ~ " model it is built from, which this command does not select (dbt retry?): run dbt build") }}
    {%- elif left_out %}
        {{ exceptions.raise_compiler_error(
            "line_capi_build_info describes the build of line_capi_payload and is built with every"
            ~ " model it is built from, and " ~ left_out | length ~ " of them are not selected ("
            ~ (left_out[:3] | join(', ')) ~ (', ...' if left_out | length > 3 else '')
            ~ "): the payload would keep an earlier build's rows; run dbt build,"
            ~ " select +line_capi_build_info, or leave it out (--exclude line_capi_build_info)") }}
    {%- endif %}
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
        cast({{ export_time_shift_seconds() }} as bigint) as time_shift_seconds,
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
