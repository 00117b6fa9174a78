{#- Checks of the data filter vars: a condition that would not run is the var's one-line error. -#}

{#- A query that reads `condition` over a row of null texts named `columns`, as a staging model does. -#}
{% macro sql_condition_probe(condition, columns) %}
    {%- set relation = [] -%}
    {%- for column in columns -%}
        {%- do relation.append('cast(null as ' ~ dbt.type_string() ~ ') as ' ~ column) -%}
    {%- endfor -%}
    {{ return("select 1 from (select " ~ (relation | join(', ')) ~ ") as source where (\n" ~ condition ~ "\n)") }}
{% endmacro %}

{#-
    Why `condition`, a SQL boolean expression over text columns named `columns`, would not run,
    as one line; none when it would. The check parses and binds it without running it and
    without raising, so a bad filter var is reported as the var's error.
-#}
{% macro sql_condition_problem(condition, columns) %}
    {{ return(adapter.dispatch('sql_condition_problem', 'line_capi')(condition, columns)) }}
{% endmacro %}

{% macro default__sql_condition_problem(condition, columns) %}{{ not_ported('sql_condition_problem') }}{% endmacro %}

{% macro duckdb__sql_condition_problem(condition, columns) %}
    {%- set literal = "'" ~ sql_condition_probe(condition, columns) | replace("'", "''") ~ "'" -%}
    {%- set query = "select json_serialize_sql(" ~ literal ~ "), json_serialize_plan(" ~ literal ~ ")" -%}
    {%- set row = run_query(query).rows[0] -%}
    {%- set parsed, planned = fromjson(row[0]), fromjson(row[1]) -%}
    {%- if parsed.error -%}
        {%- set problem = parsed.error_message -%}
    {%- elif parsed.statements | length != 1 -%}
        {%- set problem = "one condition expected, not several statements" -%}
    {%- elif planned.error and 'Serialize not implemented' in planned.error_message -%}
        {#- DuckDB cannot describe a plan that reads a file: a subquery over an export table -#}
        {%- set problem = "it reads another table (a subquery): a data filter reads only its own table's columns" -%}
    {%- elif planned.error -%}
        {%- set problem = planned.error_message -%}
    {%- else -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(problem | replace('\n', ' ') | truncate(240, true, '...')) }}
{% endmacro %}

{#-
    EXPLAIN reports an analysis error (an unknown column or function, a type mismatch) as its
    output instead of raising. A syntax error still raises, with Spark's own message.
-#}
{% macro spark__sql_condition_problem(condition, columns) %}
    {%- set lines = run_query('explain ' ~ sql_condition_probe(condition, columns)).columns[0].values() | join('\n') -%}
    {%- if lines.startswith('Error occurred during query planning') -%}
        {{ return(lines.split('\n', 1)[-1] | replace('\n', ' ') | trim | truncate(240, true, '...')) }}
    {%- endif -%}
    {{ return(none) }}
{% endmacro %}
