{#-
    The input contract: which KARTE export tables and columns the project reads, and how the
    export files become relations. Column names are the defaults; var karte_column_map renames
    them per table, e.g. {conversions: {transaction_id: order_id}}.
-#}

{#- table -> [(column, is_required)]. Columns not listed (names, addresses...) are never read. -#}
{% macro karte_export_contract() %}
    {{ return({
        'conversions': [
            ('event_name', true), ('user_id', true), ('transaction_id', true), ('sync_date', true),
            ('revenue', false), ('items', false), ('session_id', false), ('pv_id', true),
        ],
        'page_views': [
            ('user_id', true), ('sync_date', true), ('session_id', false), ('pv_id', true),
            ('url', true), ('referrer', false), ('title', false), ('ip_address', false),
            ('user_agent', false), ('lt_cid', false),
        ],
        'line_users': [('user_id', true), ('line_user_id', true), ('sync_date', false)],
        'user_master': [('user_id', true), ('email', false), ('phone', false)],
    }) }}
{% endmacro %}

{#-
    A KARTE sync_date (text as exported) as Unix seconds, shifted by export_time_shift_seconds()
    for replayed exports; null when unreadable. The staging models parse with it, and so does
    int_conversion_page_views after its join (parsing there reads 1 page view in 10).
-#}
{% macro karte_sync_date_to_unix(column) -%}
    {{ iso8601_to_unix_seconds(trim_ascii(column)) }} + {{ export_time_shift_seconds() }}
{%- endmacro %}

{#-
    The select list of a staging model: each contract column of `table_name`, renamed from the
    export's own name, as text. A missing required column fails the run, naming table and column;
    a missing optional column is null.
-#}
{% macro karte_export_columns(table_name) %}
    {%- set mapping = karte_column_map().get(table_name) or {} -%}
    {%- set relation = source('karte', table_name) -%}
    {%- set present = {} -%}
    {%- set introspect = execute and model.resource_type != 'unit_test' -%}
    {%- if introspect -%}
        {%- for column in adapter.get_columns_in_relation(relation) -%}
            {%- do present.update({column.name | lower: column.name}) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set selects = [] -%}
    {%- for name, is_required in karte_export_contract()[table_name] -%}
        {%- set export_name = (mapping.get(name) or name) | string -%}
        {%- if not introspect or (export_name | lower) in present -%}
            {%- set quoted = adapter.quote(present.get(export_name | lower, export_name)) -%}
            {%- do selects.append('cast(' ~ quoted ~ ' as ' ~ dbt.type_string() ~ ') as ' ~ name) -%}
        {%- elif is_required -%}
            {{ exceptions.raise_compiler_error(
                "KARTE export table " ~ table_name ~ " has no column " ~ export_name
                ~ (" (mapped to " ~ name ~ ")" if export_name != name else "")
                ~ "; it has: " ~ (present.values() | list | join(', '))
                ~ ". Rename it in the export or map it with var karte_column_map"
            ) }}
        {%- else -%}
            {%- do selects.append('cast(null as ' ~ dbt.type_string() ~ ') as ' ~ name) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(selects | join(',\n        ')) }}
{% endmacro %}


{#-
    on-run-start: expose each export file as a view in schema var karte_source_schema, which the
    sources point at. DuckDB reads `<karte_export_dir>/<table>.parquet`, `.csv` or `.csv.gz`.
    On a warehouse engine the sources are its own tables and this does nothing.
-#}
{% macro create_karte_export_views() %}{{ return(adapter.dispatch('create_karte_export_views', 'line_capi')()) }}{% endmacro %}

{% macro default__create_karte_export_views() %}{{ return('') }}{% endmacro %}

{% macro duckdb__create_karte_export_views() %}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set directory = karte_export_dir() -%}
    {%- set schema = var('karte_source_schema') -%}
    {%- set encoding = (var('karte_export_encoding') | string | lower).replace('_', '-') -%}
    {%- if encoding not in ('utf-8', 'utf8', 'utf-16', 'latin-1') -%}
        {{ exceptions.raise_compiler_error(
            "invalid dbt var karte_export_encoding=" ~ encoding ~ ": DuckDB reads utf-8, utf-16 and latin-1 offline;"
            ~ " convert a Shift_JIS/CP932 CSV first, e.g. iconv -f CP932 -t UTF-8 in.csv > out.csv") }}
    {%- endif -%}
    {%- do run_query('create schema if not exists ' ~ schema) -%}
    {%- for table_name in karte_export_contract() -%}
        {%- set found = run_query(
            "select file from glob('" ~ directory ~ "/" ~ table_name ~ ".*') "
            ~ "where file like '%.parquet' or file like '%.csv' or file like '%.csv.gz' order by file"
        ).columns[0].values() -%}
        {%- set path = the_one_export_file(directory, table_name, found) | replace("'", "''") -%}
        {%- if path.endswith('.parquet') -%}
            {%- set reader = "read_parquet('" ~ path ~ "')" -%}
        {%- else -%}
            {{ check_csv_export_file(table_name, path, encoding) }}
            {%- set reader = "read_csv('" ~ path ~ "', header = true, all_varchar = true, delim = ',', "
                ~ "quote = '\"', escape = '\"', encoding = '" ~ encoding ~ "')" -%}
        {%- endif -%}
        {%- do run_query('create or replace view ' ~ schema ~ '.' ~ table_name ~ ' as select * from ' ~ reader) -%}
    {%- endfor -%}
    {{ return('') }}
{% endmacro %}


{#-
    Refuse, with a message that says what to do, a CSV file that is empty (no header row) or,
    for UTF-8, not UTF-8 (a spreadsheet's Shift_JIS/CP932). Files over 512 MB are not checked
    here; DuckDB's reader still refuses bad bytes, with its own message, when the models run.
-#}
{% macro check_csv_export_file(table_name, path, encoding) %}
    {%- set size = run_query("select size from read_blob('" ~ path ~ "')").columns[0].values()[0] -%}
    {%- if size == 0 -%}
        {{ exceptions.raise_compiler_error(
            "KARTE export file " ~ path ~ " is empty: it needs at least the header row ("
            ~ (karte_export_contract()[table_name] | map(attribute=0) | join(',')) ~ ")") }}
    {%- endif -%}
    {%- if encoding in ('utf-8', 'utf8') and size <= 536870912 and not path.endswith('.gz') -%}
        {%- set is_utf8 = run_query(
            "select try(decode(content)) is not null from read_blob('" ~ path ~ "')").columns[0].values()[0] -%}
        {%- if not is_utf8 -%}
            {{ exceptions.raise_compiler_error(
                "KARTE export file " ~ path ~ " is not UTF-8 (a spreadsheet may have saved it as Shift_JIS/CP932):"
                ~ " convert it, e.g. iconv -f CP932 -t UTF-8, or set var karte_export_encoding (utf-8, utf-16, latin-1)") }}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}


{#- The one file of `table_name` among `found`; none or several stop the run with one line. -#}
{% macro the_one_export_file(directory, table_name, found) %}
    {%- if found | length == 0 -%}
        {{ exceptions.raise_compiler_error(
            "KARTE export file missing: " ~ directory ~ "/" ~ table_name ~ ".csv (or .parquet, .csv.gz);"
            ~ " set var karte_export_dir to the folder holding conversions, page_views, line_users and user_master") }}
    {%- elif found | length > 1 -%}
        {{ exceptions.raise_compiler_error(
            "KARTE export table " ~ table_name ~ " has several files in " ~ directory ~ ": "
            ~ (found | join(', ')) ~ "; keep one") }}
    {%- endif -%}
    {{ return(found[0]) }}
{% endmacro %}
