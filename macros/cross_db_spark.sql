{#-
    Apache Spark (dbt-spark, Spark 3.4+ / 4.x) bodies of the cross-database macros of
    macros/cross_db.sql, one `spark__` body per dispatched macro, written so that a Spark build
    gives the same rows and the same JSON as the DuckDB build (tests/test_spark.py proves it).

    Differences from DuckDB that these bodies absorb:
    - Spark string literals treat backslash as an escape: every literal built from a pattern or a
      character list goes through spark_text_literal().
    - Java regexes are not RE2: `$` also matches before a final newline, `.` stops at \r and
      U+2028 as well as \n, and `\s` includes \v. spark_java_regex() rewrites a pattern so that
      Java matches exactly what RE2 matches (`$` -> `\z`, `\s` -> `[\t\n\f\r ]`, UNIX_LINES).
    - Spark 4 runs in ANSI mode, where a failed cast raises: every parse uses try_cast.
    - Timestamps: the session time zone must not matter; texts without an offset are UTC.

    The end of the file holds two dbt-spark workarounds (seeds, string escaping in fixtures) and
    the not-null constraint fix; docs/spark.md explains them.
-#}

{#- A Spark SQL string literal of `text`: backslash and quote escaped. -#}
{% macro spark_text_literal(text) -%}
    '{{ text | string | replace("\\", "\\\\") | replace("'", "\\'") }}'
{%- endmacro %}

{#-
    An RE2 pattern rewritten for java.util.regex with RE2's meaning, as a Spark string literal:
    `(?d)` (only \n ends a line, as in RE2), a `$` outside a character class becomes `\z` (RE2's `$`
    without (?m) is the end of the text; Java's also matches before a final line break), and `\s`
    becomes RE2's [\t\n\f\r ] (Java's \s also has \v).
-#}
{% macro spark_java_regex(pattern) -%}
    {%- set state = namespace(out='(?d)', escaped=false, in_class=false) -%}
    {%- for c in pattern | string -%}
        {%- if state.escaped -%}
            {%- if c == 's' -%}
                {%- set state.out = state.out ~ ('\\t\\n\\f\\r ' if state.in_class else '[\\t\\n\\f\\r ]') -%}
            {%- else -%}
                {%- set state.out = state.out ~ '\\' ~ c -%}
            {%- endif -%}
            {%- set state.escaped = false -%}
        {%- elif c == '\\' -%}
            {%- set state.escaped = true -%}
        {%- elif c == '[' and not state.in_class -%}
            {%- set state.in_class = true -%}
            {%- set state.out = state.out ~ c -%}
        {%- elif c == ']' and state.in_class -%}
            {%- set state.in_class = false -%}
            {%- set state.out = state.out ~ c -%}
        {%- elif c == '$' and not state.in_class -%}
            {%- set state.out = state.out ~ '\\z' -%}
        {%- else -%}
            {%- set state.out = state.out ~ c -%}
        {%- endif -%}
    {%- endfor -%}
    {{ spark_text_literal(state.out) }}
{%- endmacro %}

{#-
    `body` with `name` bound to the value of `expr`, which is evaluated once: Catalyst copies a
    long expression into every filter and projection it is pushed through, and planning the
    copies costs more than running them on small data.
-#}
{% macro spark_let(expr, name, body) -%}
    element_at(transform(array({{ expr }}), {{ name }} -> {{ body }}), 1)
{%- endmacro %}

{% macro spark__sha256_hex(expr) %}sha2(cast({{ expr }} as string), 256){% endmacro %}

{#- rlike searches like DuckDB's regexp_matches; the patterns carry their own anchors. -#}
{% macro spark__regex_full_match(expr, pattern) %}({{ expr }} rlike {{ spark_java_regex(pattern) }}){% endmacro %}

{% macro spark__regex_extract(expr, pattern) %}nullif(regexp_extract({{ expr }}, {{ spark_java_regex(pattern) }}, 1), ''){% endmacro %}

{% macro spark__regex_remove(expr, pattern) %}regexp_replace({{ expr }}, {{ spark_java_regex(pattern) }}, ''){% endmacro %}

{#-
    DuckDB's url_decode: `+` stays `+`, a `%` not followed by two hex digits stays as it is, and a
    text whose escapes do not form UTF-8 is null. Spark's url_decode (java.net.URLDecoder) turns
    `+` into a space, raises on a malformed `%`, and puts U+FFFD for bytes that are not UTF-8; so
    `+` and lone `%` are escaped first, and a result with more U+FFFD than the text itself meant
    (literal U+FFFD or %EF%BF%BD) is null.
-#}
{% macro spark__url_decode(expr) -%}
    {%- set escaped = "regexp_replace(replace(url_text, '+', '%2B'), '%(?![0-9A-Fa-f]{2})', '%25')" -%}
    {{ spark_let(expr, 'url_text', "
        case
            when length(url_decode(" ~ escaped ~ ")) - length(replace(url_decode(" ~ escaped ~ "), '\\uFFFD', ''))
                > length(url_text) - length(replace(url_text, '\\uFFFD', ''))
                    + regexp_count(" ~ escaped ~ ", '(?i)%EF%BF%BD')
                then null
            else url_decode(" ~ escaped ~ ")
        end") }}
{%- endmacro %}

{% macro spark__url_query_parameter(url, name) -%}
    {{ return(default__url_query_parameter(url, name)) }}
{%- endmacro %}

{% macro spark__trim_ascii(expr) %}trim(both ' \u0009\u000A\u000B\u000C\u000D' from {{ expr }}){% endmacro %}

{#- Only a text with a non-ASCII character needs translate(). -#}
{% macro spark__halfwidth_ascii(expr) -%}
    (case when octet_length({{ expr }}) = length({{ expr }}) then {{ expr }}
        else translate({{ expr }}, {{ spark_text_literal(fullwidth_ascii_chars()) }}, {{ spark_text_literal(halfwidth_ascii_chars()) }}) end)
{%- endmacro %}

{#-
    What DuckDB's try_cast(text as timestamptz / timestamp) reads, normalized for Spark's cast:
    `yyyy-m-d`, then optionally `[T ]h:m`, `:s`, `.fraction` (any length, truncated to
    microseconds), then optionally `Z`, `+hh`, `+hhmm` or `+hh:mm`. Without an offset the text is
    UTC (it gets `Z`), whatever spark.sql.session.timeZone is. Anything else is null, as are
    impossible dates. Plain digits are epoch seconds (9-10) or milliseconds (12-13).
    Known differences from DuckDB (texts KARTE does not write): DuckDB also reads `24:00:00`
    (next day), 5-digit years, and ignores a trailing zone name such as ` Asia/Tokyo`.
-#}
{% macro spark__iso8601_to_unix_seconds(expr) -%}
    {%- set iso = '^([0-9]{4}-[0-9]{1,2}-[0-9]{1,2})(?:[T ]([0-9]{1,2}:[0-9]{1,2})(?::([0-9]{1,2})(\\.[0-9]*)?)?)?(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?$' -%}
    {#- date T hh:mm : ss .fraction | offset; then the missing parts get their defaults -#}
    {%- set parts = "regexp_replace(iso_text, " ~ spark_java_regex(iso) ~ ", '$1T$2:$3$4|$5')" -%}
    {%- set defaults = "replace(replace(" ~ parts ~ ", 'T:|', 'T00:00:00|'), ':|', ':00|')" -%}
    {%- set normalized = "replace(regexp_replace(" ~ defaults ~ ", '[|]$', '|Z'), '|', '')" -%}
    {{ spark_let(expr, 'iso_text', "
        case
            when " ~ spark__regex_full_match('iso_text', '^[0-9]{9,10}$') ~ " then try_cast(iso_text as bigint)
            when " ~ spark__regex_full_match('iso_text', '^[0-9]{12,13}$') ~ " then try_cast(iso_text as bigint) div 1000
            when " ~ spark__regex_full_match('iso_text', iso) ~ "
                then unix_micros(try_cast(" ~ normalized ~ " as timestamp)) div 1000000
        end") }}
{%- endmacro %}

{#-
    DuckDB's try_cast(text as double): optional sign, digits with an optional fraction or a
    fraction alone, an optional exponent, surrounding whitespace, or inf/infinity/nan. Spark's
    cast would also take Java forms such as `12d` or `1.5f`; they are null here.
-#}
{% macro spark__to_number_or_null(expr) -%}
    (case
        when {{ spark__regex_full_match(expr, '^\\s*[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?\\s*$') }}
            or lower(trim({{ expr }})) in ('inf', '+inf', '-inf', 'infinity', '+infinity', '-infinity', 'nan')
            then try_cast({{ expr }} as double)
    end)
{%- endmacro %}

{#- A UTC timestamp without time zone, whatever the session time zone. -#}
{% macro spark__unix_seconds_to_timestamp(expr) -%}
    timestampadd(SECOND, {{ expr }}, timestamp_ntz'1970-01-01 00:00:00')
{%- endmacro %}

{#- to_json of a one-field struct, without `{"v":` and `}`; null stays null. -#}
{% macro spark__json_string(expr) -%}
    (case when ({{ expr }}) is not null then
        substring(to_json(named_struct('v', cast({{ expr }} as string))), 6,
            length(to_json(named_struct('v', cast({{ expr }} as string)))) - 6)
    end)
{%- endmacro %}

{#- Spark renders a double as Java does (19.5, 1.0E-4): JSON numbers, parsed as DuckDB's are. -#}
{% macro spark__json_number(expr) -%}
    case when ({{ expr }}) = floor({{ expr }}) and abs({{ expr }}) < 1e15
        then cast(cast({{ expr }} as bigint) as string)
        else cast(cast({{ expr }} as double) as string) end
{%- endmacro %}

{#- Spark's concat_ws skips nulls and `||` with a null is null, as DuckDB's. -#}
{% macro spark__json_object(pairs) -%}
    {{ return(default__json_object(pairs)) }}
{%- endmacro %}

{#-
    Only a JSON array: Spark's from_json would read a lone object as an array of one.
    Known differences from DuckDB on malformed items (not seen in KARTE exports): an array of
    non-objects (`[1, 2]`) is null here and two empty items on DuckDB; a duplicated key keeps
    its last value here and its first on DuckDB; trailing text after the array is ignored here.
-#}
{% macro spark__parse_items(expr) -%}
    (case when {{ expr }} rlike '^[ \t\n\r]*\\[' then
        from_json({{ expr }}, 'array<struct<item_id:string,quantity:string>>')
    end)
{%- endmacro %}

{#- array_distinct keeps the first occurrence, in order. -#}
{% macro spark__items_distinct_ids(items, limit) -%}
    slice(array_distinct(filter(transform({{ items }}, item -> trim(item.item_id)), id -> id <> '')), 1, {{ limit }})
{%- endmacro %}

{#- size(null) is -1 with spark.sql.legacy.sizeOfNull (ANSI off), null otherwise: neither is 0. -#}
{% macro spark__array_length(expr) %}(case when {{ expr }} is null then 0 else size({{ expr }}) end){% endmacro %}

{% macro spark__json_string_array(expr) %}to_json({{ expr }}){% endmacro %}

{% macro spark__items_total_quantity(items) -%}
    aggregate({{ items }}, cast(0 as double),
        (total, item) -> total + coalesce({{ spark__to_number_or_null('item.quantity') }}, cast(1 as double)))
{%- endmacro %}


{#-
    on-run-start on Spark: register each export file `<karte_export_dir>/<table>.parquet`, `.csv` or
    `.csv.gz` as an external (unmanaged) table in schema var karte_source_schema, which the
    sources point at. Dropping such a table never deletes the file.
    - CSV is read as text with a header row, RFC 4180 quotes ("" inside quotes), quoted line breaks,
      var karte_export_encoding (any Java charset, e.g. Shift_JIS), and a short row padded with
      nulls. An empty cell, quoted or not, is null, as DuckDB reads it.
    - With var karte_catalog_tables nothing is registered: the sources read the tables
      conversions, page_views, line_users and user_master already in schema karte_source_schema
      (a Spark/Hive catalog database, or a Unity catalog schema).
    - A table of that schema that this hook did not create is never replaced: the run fails.
-#}
{% macro spark__create_karte_export_views() %}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set directory = karte_export_dir() -%}
    {%- if directory == '' -%}{{ return('') }}{%- endif -%}
    {%- set directory = directory.rstrip('/') -%}
    {%- set schema = var('karte_source_schema') -%}
    {%- set encoding = var('karte_export_encoding') | string -%}
    {%- set marker = 'line_capi.karte_export_file' -%}
    {%- do run_query('create schema if not exists ' ~ schema) -%}
    {%- set files = run_query("select path from binaryFile.`" ~ directory ~ "`").columns[0].values() -%}
    {%- set existing = [] -%}
    {%- for row in run_query('show tables in ' ~ schema) -%}
        {%- if not row[2] -%}{%- do existing.append(row[1] | lower) -%}{%- endif -%}
    {%- endfor -%}
    {%- for table_name in karte_export_contract() -%}
        {%- set found = [] -%}
        {%- for path in files | sort -%}
            {%- set file_name = path.split('/')[-1] -%}
            {%- if file_name in (table_name ~ '.parquet', table_name ~ '.csv', table_name ~ '.csv.gz') -%}
                {%- do found.append(path) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set path = the_one_export_file(directory, table_name, found) -%}
        {%- set relation = schema ~ '.' ~ table_name -%}
        {%- if table_name in existing -%}
            {%- set properties = run_query('show tblproperties ' ~ relation) -%}
            {%- set ns = namespace(ours=false) -%}
            {%- for row in properties -%}
                {%- if row[0] == marker -%}{%- set ns.ours = true -%}{%- endif -%}
            {%- endfor -%}
            {%- if not ns.ours -%}
                {{ exceptions.raise_compiler_error(
                    "table " ~ relation ~ " exists and was not made from an export file by this project;"
                    ~ " to read it, set var karte_catalog_tables (see docs/spark.md), or choose another"
                    ~ " var karte_source_schema for export files") }}
            {%- endif -%}
            {%- do run_query('drop table ' ~ relation) -%}
        {%- endif -%}
        {%- if path.endswith('.parquet') -%}
            {%- set using = "parquet options (path " ~ spark_text_literal(path) ~ ")" -%}
        {%- else -%}
            {%- set using = "csv options (path " ~ spark_text_literal(path) ~ ", header 'true', multiLine 'true', "
                ~ "quote '\"', escape '\"', encoding " ~ spark_text_literal(encoding) ~ ", mode 'PERMISSIVE', "
                ~ "inferSchema 'false', nullValue '')" -%}
        {%- endif -%}
        {%- do run_query('create table ' ~ relation ~ ' using ' ~ using
            ~ ' tblproperties (' ~ spark_text_literal(marker) ~ ' = ' ~ spark_text_literal(path) ~ ')') -%}
    {%- endfor -%}
    {{ return('') }}
{% endmacro %}


{#- ---------------------------------------------------------------------------------------- -#}
{#- dbt-spark workarounds (docs/spark.md). Root-project macros win dbt's dispatch for `dbt`.  -#}
{#- ---------------------------------------------------------------------------------------- -#}

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


{#- ---------------------------------------------------------------------------------------- -#}
{#- Reading export files (macros/karte_export.sql)                                            -#}
{#- ---------------------------------------------------------------------------------------- -#}

{#-
    The Spark sources are the files as registered (or the catalog's own tables): the staging
    models cast each column to text as Spark renders it, data_type unused (docs/spark.md, typed
    columns).
-#}
{% macro spark__karte_export_value_as_text(expr, data_type) %}cast({{ expr }} as string){% endmacro %}

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
