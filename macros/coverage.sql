{#-
    Identifier coverage (models/marts/line_capi_coverage.sql): what it counts, written once for
    the model and the data tests that check it.
-#}

{#-
    The identifiers counted among the sendable events, as (name, condition over a row of
    int_conversions_joined, whose columns line_capi_payload_fields shows): each becomes the
    column with_<name>.
-#}
{% macro coverage_identifiers() %}
    {{ return([
        ('click_id', 'click_id is not null'),
        ('browser_id', 'browser_id is not null'),
        ('email', 'email_sha256 is not null'),
        ('phone', 'phone_sha256 is not null'),
        ('line_uid', 'line_uid is not null'),
        ('ip_and_user_agent', 'web_ip_address is not null and web_user_agent is not null'),
    ]) }}
{% endmacro %}

{#- The LINE event names the build is configured for, each once, in the order of the vars. -#}
{% macro coverage_event_names() %}
    {%- set names = [] -%}
    {%- for karte_event, line_event in conversion_events() if line_event not in names -%}
        {%- do names.append(line_event) -%}
    {%- endfor -%}
    {{ return(names) }}
{% endmacro %}

{#-
    The rows of line_capi_coverage of the last finished build (the invocation
    line_capi_build_info names), as a select: the data tests read those, not older builds'.
-#}
{% macro coverage_of_the_last_build() %}
    {{- return('select coverage.*\n    from ' ~ ref('line_capi_coverage') ~ ' as coverage'
        ~ '\n    inner join ' ~ ref('line_capi_build_info') ~ ' as build'
        ~ '\n        on build.invocation_id = coverage.invocation_id') -}}
{% endmacro %}

{#- `select '<name>' as event_name union all ...`: one row per configured LINE event name. -#}
{% macro coverage_event_names_select() %}
    {%- set selects = [] -%}
    {%- for name in coverage_event_names() -%}
        {%- do selects.append('select ' ~ dbt.string_literal(name) ~ ' as event_name') -%}
    {%- endfor -%}
    {{ return(selects | join('\n    union all\n    ')) }}
{% endmacro %}

{#-
    post-hook of line_capi_coverage: delete the rows of builds that started more than var
    coverage_retention_days before this one, and, when this build read a real export, the rows
    of builds of the bundled sample (invented conversions would look like a change of coverage).
    Never this build's rows.
-#}
{% macro prune_coverage_history() %}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set cutoff = (run_started_at.timestamp() | int) - coverage_retention_days() * 86400 -%}
    {%- set old = 'built_at < ' ~ unix_seconds_to_timestamp('cast(' ~ cutoff ~ ' as bigint)') -%}
    {%- set condition = old if is_bundled_sample() else '(' ~ old ~ ' or is_sample)' -%}
    {%- do delete_rows_where(this, condition ~ ' and invocation_id <> ' ~ dbt.string_literal(invocation_id)) -%}
    {{ return('') }}
{% endmacro %}

{#-
    Whether the table `relation` has the column `column_name` (any case): a table an earlier
    version built lacks the columns added since, until this build appends them, after its query
    ran (on_schema_change). False while dbt parses.
-#}
{% macro relation_has_column(relation, column_name) %}
    {%- if not execute -%}{{ return(false) }}{%- endif -%}
    {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {{ return(column_name | lower in names) }}
{% endmacro %}
