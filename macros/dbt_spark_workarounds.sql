{#-
    Workarounds for dbt-spark (docs/spark.md): these override dbt-spark's own macros of the same
    name, since a root project's macros win dbt's dispatch for the `dbt` namespace.
-#}

{#-
    dbt-spark escapes only quotes (they're -> they\'re), so a backslash in a unit-test fixture or
    a seed reaches Spark as an escape and is lost. Escape both.
-#}
{% macro spark__escape_single_quotes(expression) -%}
{{ expression | replace("\\", "\\\\") | replace("'", "\\'") }}
{%- endmacro %}

{#-
    dbt-spark's session connection binds seed values as '{value}', so an empty CSV cell (None)
    becomes the string 'None' and a quote or backslash breaks the statement. Render each value as
    a literal instead: null for an empty cell, as DuckDB's seeds do.
-#}
{% macro spark__load_csv_rows(model, agate_table) %}
    {%- set batch_size = get_batch_size() -%}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set types = [] -%}
    {%- for col_name in agate_table.column_names -%}
        {%- do types.append(column_override.get(col_name, adapter.convert_type(agate_table, loop.index0))) -%}
    {%- endfor -%}
    {%- set statements = [] -%}
    {%- for chunk in agate_table.rows | batch(batch_size) -%}
        {%- set sql -%}
            insert into {{ this.render() }} values
            {% for row in chunk -%}
                ({%- for value in row -%}
                    {%- if value is none -%}cast(null as {{ types[loop.index0] }})
                    {%- elif value is boolean -%}{{ 'true' if value else 'false' }}
                    {%- else -%}cast({{ spark_text_literal(value) }} as {{ types[loop.index0] }})
                    {%- endif -%}
                    {%- if not loop.last %}, {% endif -%}
                {%- endfor -%})
                {%- if not loop.last %},{% endif %}
            {% endfor %}
        {%- endset -%}
        {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
        {%- if loop.index0 == 0 -%}{%- do statements.append(sql) -%}{%- endif -%}
    {%- endfor -%}
    {{ return(statements[0] if statements else '') }}
{% endmacro %}

{#-
    dbt-spark adds the contract's not-null constraints with ALTER TABLE ... SET NOT NULL whenever
    file_format is unset (it assumes Delta), which Parquet tables refuse. Only Delta tables get
    them here; on Parquet the data tests check the keys instead.
-#}
{% macro spark__persist_constraints(relation, model) %}
    {%- set contract_config = config.get('contract') -%}
    {%- if contract_config.enforced and config.get('file_format') == 'delta' -%}
        {%- do alter_table_add_constraints(relation, model.constraints) -%}
        {%- do alter_column_set_constraints(relation, model.columns) -%}
    {%- endif -%}
{% endmacro %}
