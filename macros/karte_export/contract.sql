{#-
    The input contract: which KARTE export tables and columns the project reads, and how a
    staging model selects them. Column names are the defaults; var karte_column_map renames
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
    `expr` (text), or null when it is empty or a word that a warehouse or a script writes for "no
    value", in any case: \N (Snowflake's and MySQL's unloads), NULL, None and nan (pandas),
    undefined (JavaScript), or a lone - (the blank of web server logs and many reports). For the
    ids the joins match on and the texts sent as they are: read as an id, every such user would
    be one person, and strangers' click ids, emails and page views would go out in each other's
    events; a key `-` would make every order without a number one conversion. A backslash is
    chr(92): Spark's literals escape it.
-#}
{% macro karte_missing_as_null(expr) -%}
    (case when length({{ expr }}) <= 9
            and (upper({{ expr }}) in ('', '-', 'NULL', 'NONE', 'NAN', 'UNDEFINED') or {{ expr }} = chr(92) || 'N')
        then null else {{ expr }} end)
{%- endmacro %}

{#-
    Whether a file's column names are the values of a row: a file without its header row, or a
    row with more fields than the header, which DuckDB's sniffer then takes for it. A name that
    starts with a digit, a plus or a bracket (a date, an amount, a phone), holds an at sign, a colon
    or a slash (an email, a time, a URL), or is DuckDB's column0, column1, ... for a file it found
    no header in. Such names are never shown in a message: the row may be a customer's email,
    phone and address, and a message reaches the console, the run log, a cron mail and a CI log.
-#}
{% macro karte_export_names_look_like_data(names) %}
    {%- set values = namespace(seen=false) -%}
    {%- for each in names if modules.re.match('^(column[0-9]+$|[0-9０-９+＋(（]|.*[:/@＠])', each | string) -%}
        {%- set values.seen = true -%}
    {%- endfor -%}
    {{ return(values.seen) }}
{% endmacro %}

{#- What a message says of such names: how many, never what they hold. -#}
{% macro karte_export_first_row_as_data(names) %}
    {{ return("; its first row looks like data, not a header (" ~ names | length ~ " fields, not shown here:"
        ~ " they may be a customer's email, phone or address)") }}
{% endmacro %}

{#-
    The select list of a staging model: each contract column of `table_name` as text, under its
    contract name. Where the on-run-start hook made the source relation (DuckDB), it already has
    the contract names and one type, checked by the hook, so nothing is looked up (`dbt compile`
    and `dbt docs generate` run no hook); a warehouse's own tables are renamed here (var
    karte_column_map) and each column is cast to text by its type (karte_export_value_as_text).
-#}
{% macro karte_export_columns(table_name) %}
    {%- set hook_made = karte_export_views_use_contract_names() -%}
    {%- set mapping = {} if hook_made else (karte_column_map().get(table_name) or {}) -%}
    {%- set columns = {} -%}
    {%- set introspect = execute and model.resource_type != 'unit_test' and not hook_made -%}
    {%- if introspect -%}
        {%- for column in adapter.get_columns_in_relation(source('karte', table_name)) -%}
            {%- do columns.update({column.name | lower: (column.name, column.dtype)}) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(karte_contract_select_list(table_name, mapping, columns, introspect)) }}
{% endmacro %}

{#-
    What each optional column gives the events: a missing one is read as empty, and the run says
    what is lost (session_id gives nothing and is not mentioned).
-#}
{% macro karte_optional_column_purposes() %}
    {{ return({
        'conversions': {'revenue': 'custom.value', 'items': 'custom.item_ids and quantity'},
        'page_views': {
            'referrer': 'web.referrer', 'title': 'web.title', 'ip_address': 'web.ip_address',
            'user_agent': 'web.user_agent', 'lt_cid': 'user.browser_id',
        },
        'line_users': {'sync_date': 'the choice of the latest LINE login'},
        'user_master': {'email': 'user.email', 'phone': 'user.phone'},
    }) }}
{% endmacro %}

{#-
    `<text expression> as <contract name>` for each contract column of `table_name`, read from
    `columns` (lower-case export name -> (export name, data type or none)) under the export name
    `mapping` gives it. When `checked`, a missing required column fails the run, naming the table
    and every required column it misses, and a missing optional column is null, with one warning line saying what the
    events lose (one that `mapping` names fails the run: the site said the export has it);
    unchecked (unit tests), every column is taken as present.
-#}
{% macro karte_contract_select_list(table_name, mapping, columns, checked) %}
    {%- set selects = [] -%}
    {%- for name, is_required in karte_export_contract()[table_name] -%}
        {%- set export_name = (mapping.get(name) or name) | string -%}
        {%- if not checked or (export_name | lower) in columns -%}
            {%- set column = columns.get(export_name | lower, (export_name, none)) -%}
            {#- DuckDB reads a header's second `user_id` (any case) as `user_id_1`: which one holds
                the values is a guess, so none is taken unless var karte_column_map names one
                (also the way out for an export whose `email_1` is a column of its own) -#}
            {%- set guessed = checked and not mapping.get(name) -%}
            {%- set second = columns.get((export_name | lower) ~ '_1') if guessed else none -%}
            {%- if second -%}
                {{ exceptions.raise_compiler_error(
                    "KARTE export table " ~ table_name ~ " has the column " ~ column[0] ~ " twice (the"
                    ~ " second is read as " ~ second[0] ~ "): remove one from the export, or name the one"
                    ~ " that holds " ~ name ~ " in var karte_column_map ({" ~ table_name ~ ": {" ~ name
                    ~ ": " ~ column[0] ~ "}} or " ~ second[0] ~ ")"
                ) }}
            {%- endif -%}
            {#- a warehouse's ARRAY of a user's emails: as JSON text it would be hashed as one
                address, or as an id match no one; one value a row is the contract -#}
            {%- if checked and name != 'items' and karte_export_is_nested(column[1]) -%}
                {{ exceptions.raise_compiler_error(
                    "KARTE export table " ~ table_name ~ " has the column " ~ column[0] ~ " as "
                    ~ column[1] ~ ", several values in one cell: " ~ name ~ " holds one value a row;"
                    ~ " export one (text or a number: e.g. " ~ column[0] ~ "[1] in SQL), or map the"
                    ~ " column that holds it with var karte_column_map"
                ) }}
            {%- endif -%}
            {%- set value = karte_export_value_as_text(adapter.quote(column[0]), column[1]) -%}
            {%- if name == 'phone' and karte_export_is_number(column[1]) -%}
                {%- set value = karte_export_phone_from_number(value) -%}
            {%- elif name == 'user_id' and not karte_export_is_number(column[1]) -%}
                {%- set value = karte_export_user_id_from_text(value) -%}
            {%- endif -%}
            {%- do selects.append(value ~ ' as ' ~ name) -%}
        {%- elif is_required -%}
            {%- set names = columns.values() | map(attribute=0) | list -%}
            {%- set found = namespace(separator=none, name=none) -%}
            {%- for separator, label in [(';', 'semicolon'), ('\t', 'tab'), ('|', 'pipe')] -%}
                {#- one column, or (a row's commas split it) a name holding tabs -#}
                {%- for each in names if found.separator is none
                        and separator in each and (names | length == 1 or separator == '\t') -%}
                    {%- set found.separator = label -%}
                    {%- set found.name = each -%}
                {%- endfor -%}
            {%- endfor -%}
            {#- a file without its header row (BigQuery's EXPORT DATA writes none by default): its
                first row's values are taken for names, or DuckDB names the columns column0, ... -#}
            {%- set looks_like_data = karte_export_names_look_like_data(names) -%}
            {%- if found.separator -%}
                {{ exceptions.raise_compiler_error(
                    "KARTE export table " ~ table_name
                    ~ (" is " ~ found.separator ~ "-separated (its first row looks like data and is not shown here)"
                        ~ "; export it with commas"
                        if looks_like_data else
                        (" has one column" if names | length == 1 else " has a column") ~ ", named "
                        ~ found.name[:60] ~ "...: the file is " ~ found.separator ~ "-separated; export it with commas")
                ) }}
            {%- endif -%}
            {#- every required column missing, named at once: a new site maps them in one go -#}
            {%- set missing = [] -%}
            {%- for other, other_required in karte_export_contract()[table_name] if other_required -%}
                {%- set other_export = (mapping.get(other) or other) | string -%}
                {%- if (other_export | lower) not in columns -%}
                    {%- do missing.append(other_export ~ (" (mapped to " ~ other ~ ")" if other_export != other else "")) -%}
                {%- endif -%}
            {%- endfor -%}
            {%- set several = missing | length > 1 -%}
            {{ exceptions.raise_compiler_error(
                "KARTE export table " ~ table_name ~ " has no column" ~ ("s " if several else " ")
                ~ (missing | join(', '))
                ~ (karte_export_first_row_as_data(names)
                    ~ ": export the file with its header row"
                    ~ " (if it has one, a row with more fields than the header made DuckDB skip the lines"
                    ~ " above that row: fix or drop that row)"
                    if looks_like_data else
                    "; it has: " ~ (names | join(', '))
                    ~ (". Rename them in the export or map them" if several else ". Rename it in the export or map it")
                    ~ " with var karte_column_map")
            ) }}
        {%- elif mapping.get(name) -%}
            {#- an optional column the site mapped is one it said the export holds: a name
                mistyped, or renamed in the export, would send every event without it, at exit 0 -#}
            {{ exceptions.raise_compiler_error(
                "KARTE export table " ~ table_name ~ " has no column " ~ export_name
                ~ " (mapped to " ~ name ~ " by var karte_column_map); it has: "
                ~ (columns.values() | map(attribute=0) | join(', '))
                ~ ". Fix the name in karte_column_map, or remove the mapping if the export has no such column"
            ) }}
        {%- else -%}
            {%- set purpose = karte_optional_column_purposes()[table_name].get(name) -%}
            {%- if purpose -%}
                {%- set read = [] -%}
                {%- for contract_name, required in karte_export_contract()[table_name] -%}
                    {%- do read.append((mapping.get(contract_name) or contract_name) | string | lower) -%}
                {%- endfor -%}
                {%- set unread = [] -%}
                {%- for lowered, column in columns.items() if lowered not in read -%}
                    {%- do unread.append(column[0]) -%}
                {%- endfor -%}
                {%- do log("warning: KARTE export table " ~ table_name ~ " has no column " ~ export_name
                    ~ ": every event goes without " ~ purpose
                    ~ (" (not read from the export: " ~ (unread[:8] | join(', ')) ~ (', ...' if unread | length > 8 else '')
                        ~ "; if one of these holds it, map it with var karte_column_map)" if unread else '')
                    ~ "; an event LINE has accepted is not sent again once it is there", info=true) -%}
            {%- endif -%}
            {%- do selects.append('cast(null as ' ~ dbt.type_string() ~ ') as ' ~ name) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(selects | join(',\n        ')) }}
{% endmacro %}

{#-
    A KARTE sync_date (text as exported) as Unix seconds, a time without an offset being at var
    karte_export_utc_offset, shifted by export_time_shift_seconds() for replayed exports; null when
    unreadable. The staging models parse with it, and so does int_conversion_page_views after its
    join (docs/bench.md).
-#}
{% macro karte_sync_date_to_unix(column) -%}
    {{ iso8601_to_unix_seconds(trim_ascii(column), karte_export_utc_offset_seconds()) }}
        + {{ export_time_shift_seconds() }}
{%- endmacro %}

{#-
    The where clause of a staging model for the data filter var of `table_name`
    (karte_conversion_filter, karte_user_master_filter): only the rows for which it is true are
    read. Empty without a filter.
-#}
{% macro karte_data_filter_where(table_name) %}
    {%- set condition = karte_data_filter(table_name) -%}
    {%- if condition is not none -%}
        {{ return('where (\n        ' ~ condition ~ '\n    )') }}
    {%- endif -%}
    {{ return('') }}
{% endmacro %}
