{#-
    File discovery: how the export files become the relations the sources read, one on-run-start
    hook per engine, and the file layouts it accepts.
-#}

{#-
    Whether the sources are relations made by the on-run-start hook, with the contract's column
    names and every column as text. On DuckDB they are; on Spark the sources are the export's own
    tables (or files registered as they are), renamed and cast by the staging models.
-#}
{% macro karte_export_views_use_contract_names() %}
    {{ return(adapter.dispatch('karte_export_views_use_contract_names', 'line_capi')()) }}
{% endmacro %}

{% macro default__karte_export_views_use_contract_names() %}
    {{- not_ported('karte_export_views_use_contract_names') -}}
{% endmacro %}

{% macro duckdb__karte_export_views_use_contract_names() %}{{ return(true) }}{% endmacro %}

{% macro spark__karte_export_views_use_contract_names() %}{{ return(false) }}{% endmacro %}

{#-
    on-run-start: expose each export table as a relation in schema var karte_source_schema,
    which the sources point at.
-#}
{% macro create_karte_export_views() %}
    {{ return(adapter.dispatch('create_karte_export_views', 'line_capi')()) }}
{% endmacro %}

{% macro default__create_karte_export_views() %}{{ not_ported('create_karte_export_views') }}{% endmacro %}

{#-
    DuckDB: a view per table holding exactly the contract columns, under their contract names (var
    karte_column_map applied), each as text whatever the file stores (karte_export_value_as_text):
    the staging models and the unit tests' fixtures see the same columns and types for every
    export. Columns outside the contract are never read.
-#}
{% macro duckdb__create_karte_export_views() %}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set directory = karte_export_dir() -%}
    {#- none named in `dbt docs generate`: the views of the last build stay -#}
    {%- if directory == '' -%}{{ return('') }}{%- endif -%}
    {%- set schema = karte_source_schema() -%}
    {%- set encoding = (var('karte_export_encoding') | string | trim | lower).replace('_', '-') -%}
    {#- DuckDB's CSV reader knows utf-8, utf-16 and latin-1 by these names only -#}
    {%- set encoding = {'utf8': 'utf-8', 'utf16': 'utf-16', 'latin1': 'latin-1'}.get(encoding, encoding) -%}
    {%- if encoding not in ('utf-8', 'utf-16', 'latin-1') -%}
        {#- a Japanese encoding gets the usual conversion; any other, its own name in the command -#}
        {%- set japanese = modules.re.search('jis|932|euc-?jp|2022-?jp', encoding) -%}
        {%- set source = 'CP932' if japanese else encoding -%}
        {{ exceptions.raise_compiler_error(
            "invalid dbt var karte_export_encoding=" ~ (encoding or "''") ~ ": DuckDB reads utf-8, utf-16 and latin-1 offline;"
            ~ " convert " ~ ("a Shift_JIS/CP932 CSV" if japanese else "the CSV files") ~ " to UTF-8 first, e.g. iconv -f "
            ~ (source or "<its encoding>") ~ " -t UTF-8 in.csv > out.csv") }}
    {%- endif -%}
    {%- do run_query('create schema if not exists ' ~ schema) -%}
    {%- for table_name in karte_export_contract() -%}
        {%- set read = duckdb_karte_export_reader(directory, table_name, encoding) -%}
        {%- set columns = {} -%}
        {%- for row in run_query('describe select * from ' ~ read.sql) -%}
            {%- do columns.update({row[0] | lower: (row[0], row[1])}) -%}
        {%- endfor -%}
        {%- set mapping = karte_column_map().get(table_name) or {} -%}
        {%- set selects = karte_contract_select_list(table_name, mapping, columns, true) -%}
        {%- set source = duckdb_parts_numbers_as_text(read, table_name, mapping, columns, encoding) -%}
        {%- set view = schema ~ '.' ~ table_name -%}
        {%- do run_query('create or replace view ' ~ view ~ ' as select ' ~ selects ~ ' from ' ~ source) -%}
    {%- endfor -%}
    {{ return('') }}
{% endmacro %}

{#-
    Spark: register each export file `<karte_export_dir>/<table>.parquet`, `.csv` or `.csv.gz` as
    an external (unmanaged) table in schema var karte_source_schema. Dropping such a table never
    deletes the file.
    - CSV is read as text with a header row, RFC 4180 quotes ("" inside quotes), quoted line breaks,
      var karte_export_encoding (any Java charset, e.g. Shift_JIS or windows-31j: Spark 4 takes
      names beyond its standard few with spark.sql.legacy.javaCharsets, which the hook sets for
      such a var, catalog tables included). An empty cell, quoted or not, is null, as DuckDB reads
      it. A row with more or fewer fields than the header (an unquoted comma in a value) stops the
      build that reads it (mode FAILFAST: `[MALFORMED_CSV_RECORD]`), as it stops DuckDB's: Spark's
      default keeps the header's number of fields, dropping the rest or padding with nulls,
      which shifts the values of such a row into other columns without a word.
    - With var karte_catalog_tables nothing is registered: the sources read the tables
      conversions, page_views, line_users and user_master already in schema karte_source_schema
      (a Spark/Hive catalog database, or a Unity catalog schema).
    - A table of that schema that this hook did not create is never replaced: the run fails.
-#}
{% macro spark__create_karte_export_views() %}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {#- Spark 4 reads a CSV in a charset beyond its standard few (Shift_JIS, windows-31j) only with
        this set, in the session that reads it (catalog tables registered so included). Set only
        then: a Databricks SQL warehouse refuses a SET of a setting it does not list. -#}
    {%- if spark_charset(var('karte_export_encoding')) not in spark_standard_charsets() -%}
        {%- do run_query('set spark.sql.legacy.javaCharsets = true') -%}
    {%- endif -%}
    {%- set directory = karte_export_dir() -%}
    {%- if directory == '' -%}{{ return('') }}{%- endif -%}
    {%- set directory = directory.rstrip('/') -%}
    {%- set schema = karte_source_schema() -%}
    {%- set encoding = spark_charset(var('karte_export_encoding')) -%}
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
                ~ "quote '\"', escape '\"', encoding " ~ spark_text_literal(encoding) ~ ", mode 'FAILFAST', "
                ~ "inferSchema 'false', nullValue '')" -%}
        {%- endif -%}
        {%- do run_query('create table ' ~ relation ~ ' using ' ~ using
            ~ ' tblproperties (' ~ spark_text_literal(marker) ~ ' = ' ~ spark_text_literal(path) ~ ')') -%}
    {%- endfor -%}
    {{ return('') }}
{% endmacro %}

{#- The Java charset name of var karte_export_encoding: utf8, UTF_8, latin-1 as Spark knows them. -#}
{% macro spark_charset(name) -%}
    {%- set lowered = (name | string | trim | lower).replace('_', '-') -%}
    {%- set known = {'utf8': 'utf-8', 'utf16': 'utf-16', 'latin1': 'iso-8859-1', 'latin-1': 'iso-8859-1'} -%}
    {%- if lowered in known or lowered in spark_standard_charsets() -%}
        {{ return(known.get(lowered, lowered)) }}
    {%- endif -%}
    {{ return(name | string | trim) }}
{%- endmacro %}

{#- The charsets Spark 4's CSV reader takes without spark.sql.legacy.javaCharsets. -#}
{% macro spark_standard_charsets() -%}
    {{ return(['utf-8', 'utf-16', 'utf-16be', 'utf-16le', 'utf-32', 'iso-8859-1', 'us-ascii']) }}
{%- endmacro %}

{#-
    DuckDB: {sql, format, paths}: the table function reading every non-empty file of `table_name`
    (karte_export_layout), its format and those files,
    CSV as text with a header row, Parquet as stored; parts are matched by column name. Zero-byte
    parts (and gzips of nothing) are skipped; a table whose files are all empty stops the run, and so do a CSV file that
    is not UTF-8 or is gzip-compressed under a .csv name (check_csv_export_file) and a part
    without a required column (check_karte_export_part_columns). A folder without the table
    whose current/ holds it is the export sync's DEST, named instead of DEST/current: the error
    says so.
-#}
{% macro duckdb_karte_export_reader(directory, table_name, encoding) %}
    {%- set pattern = duckdb_glob_literal(directory) | replace("'", "''") ~ '/' ~ table_name -%}
    {%- set found = [] -%}
    {%- for row in run_query(
        "select 'file', file from glob('" ~ pattern ~ ".*')"
        ~ " union all select 'parts', file from glob('" ~ pattern ~ "-*')"
        ~ " union all select 'folder', file from glob('" ~ pattern ~ "/**')"
        ~ " union all select 'near', file from glob('" ~ pattern ~ "*')"
        ~ " where substr(parse_filename(file), " ~ (table_name | length + 1) ~ ", 1) not in ('.', '-')") -%}
        {%- do found.append((row[0], row[1])) -%}
    {%- endfor -%}
    {%- if found | rejectattr(0, 'equalto', 'near') | list | length == 0 -%}
        {#- the export sync's DEST named instead of its current link: say which folder to name -#}
        {%- set below = run_query("select count(*) from glob('"
            ~ duckdb_glob_literal(directory ~ '/current') | replace("'", "''") ~ '/' ~ table_name ~ "*')") -%}
        {%- if below.rows[0][0] > 0 -%}
            {{ exceptions.raise_compiler_error(
                "KARTE export file missing: " ~ directory ~ "/" ~ table_name ~ ".csv, but " ~ directory
                ~ "/current holds it: " ~ directory ~ " is the export sync's folder; set var karte_export_dir to "
                ~ directory ~ "/current") }}
        {%- endif -%}
        {#- a mistyped folder: DuckDB's glob cannot tell a missing folder from an empty one -#}
        {%- set anything = run_query("select count(*) from glob('"
            ~ duckdb_glob_literal(directory) | replace("'", "''") ~ "/**')") -%}
        {%- if anything.rows[0][0] == 0 -%}
            {{ exceptions.raise_compiler_error(
                "KARTE export folder " ~ directory ~ " does not exist or is empty: set env KARTE_EXPORT_DIR"
                ~ " (or var karte_export_dir) to the folder holding conversions, page_views, line_users and user_master") }}
        {%- endif -%}
    {%- endif -%}
    {%- set layout = karte_export_layout(directory, table_name, found) -%}
    {%- set listed = duckdb_path_list(layout.paths) -%}
    {%- set sizes = {} -%}
    {%- for row in run_query('select filename, size from read_blob(' ~ listed ~ ')') -%}
        {%- do sizes.update({row[0]: row[1]}) -%}
    {%- endfor -%}
    {#- a gzip of nothing (a compressed 0-byte part) is about 20 bytes: its last 4 give the size
        uncompressed, 0, so it counts as the empty file it holds -#}
    {%- set small_gzips = [] -%}
    {%- for path, size in sizes.items() if path.endswith('.gz') and size < 1024 -%}
        {%- do small_gzips.append(path) -%}
    {%- endfor -%}
    {%- if small_gzips -%}
        {%- for row in run_query("select filename from read_blob(" ~ duckdb_path_list(small_gzips)
            ~ ") where content[-4:] = '\\x00\\x00\\x00\\x00'::blob") -%}
            {%- do sizes.update({row[0]: 0}) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set paths = [] -%}
    {%- for path in layout.paths -%}
        {%- if sizes.get(path, 1) > 0 -%}{%- do paths.append(path) -%}{%- endif -%}
    {%- endfor -%}
    {%- if not paths -%}
        {%- set header = karte_export_contract()[table_name] | map(attribute=0) | join(',') -%}
        {%- if layout.paths | length == 1 -%}
            {{ exceptions.raise_compiler_error(
                "KARTE export file " ~ layout.paths[0] ~ " is empty: it needs at least the header row (" ~ header ~ ")") }}
        {%- endif -%}
        {{ exceptions.raise_compiler_error(
            "KARTE export table " ~ table_name ~ " has only empty parts in " ~ directory ~ " (" ~ (layout.paths | length)
            ~ " files of 0 bytes): one needs at least the header row (" ~ header ~ ")") }}
    {%- endif -%}
    {%- if layout.format == 'csv' -%}
        {%- for path in paths -%}
            {{ check_csv_export_file(path, sizes.get(path, 0), encoding) }}
        {%- endfor -%}
    {%- endif -%}
    {{ check_karte_export_folder_keys(table_name, layout.format, paths, encoding) }}
    {%- if paths | length > 1 -%}
        {{ check_karte_export_part_columns(table_name, layout.format, paths, encoding) }}
    {%- endif -%}
    {{ return({'sql': duckdb_karte_export_table_function(layout.format, paths, encoding, none),
        'format': layout.format, 'paths': paths}) }}
{% endmacro %}

{#-
    DuckDB: the source of a table's view, `read.sql`, with the columns that some Parquet parts
    store as numbers and others as text (pandas writes a chunk of digit-only phones as INT64, and
    ids with a gap as DOUBLE) read from each part as a part storing numbers only would be read
    (karte_export_value_as_text): DuckDB reads such a column as text, the DOUBLE part's `1001.0`,
    which no longer joins `1001`, and the integer part's phone without the leading 0 it lost
    (karte_export_phone_from_number gives it back).
-#}
{% macro duckdb_parts_numbers_as_text(read, table_name, mapping, columns, encoding) %}
    {%- if read.format != 'parquet' or read.paths | length < 2 -%}{{ return(read.sql) }}{%- endif -%}
    {%- set text_columns = {} -%}
    {%- for name, is_required in karte_export_contract()[table_name] -%}
        {%- set column = columns.get((mapping.get(name) or name) | string | lower) -%}
        {%- if column and (column[1] or '') | upper == 'VARCHAR' -%}
            {%- do text_columns.update({column[0] | lower: (column[0], name)}) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not text_columns -%}{{ return(read.sql) }}{%- endif -%}
    {%- set fraction = "(type in ('FLOAT', 'DOUBLE') or converted_type = 'DECIMAL')" -%}
    {%- set whole = "(type in ('INT32', 'INT64') and coalesce(converted_type, '') not in ('DATE', 'TIME_MILLIS',"
        ~ " 'TIME_MICROS', 'TIMESTAMP_MILLIS', 'TIMESTAMP_MICROS') and coalesce(logical_type, '') not like 'Time%')" -%}
    {%- set parts = {} -%}
    {%- for row in run_query(
        "select lower(name), file_name, " ~ fraction ~ " from parquet_schema(" ~ duckdb_path_list(read.paths) ~ ")"
        ~ " where num_children is null and lower(name) in ('"
        ~ (text_columns.keys() | map('replace', "'", "''") | join("', '")) ~ "')"
        ~ " and (" ~ fraction ~ " or " ~ whole ~ ") order by 1, 2") -%}
        {%- set kinds = parts.setdefault(row[0], {'whole': [], 'fraction': []}) -%}
        {%- do kinds['fraction' if row[2] else 'whole'].append(row[1]) -%}
    {%- endfor -%}
    {%- if not parts -%}{{ return(read.sql) }}{%- endif -%}
    {%- set replaced = [] -%}
    {%- for lowered, kinds in parts.items() -%}
        {%- set export_name, name = text_columns[lowered] -%}
        {%- set quoted = adapter.quote(export_name) -%}
        {%- set as_number = karte_export_value_as_text('try_cast(' ~ quoted ~ ' as double)', 'DOUBLE') -%}
        {%- set whens = [] -%}
        {%- for kind, value in [('fraction', as_number), ('whole', quoted)] if kinds[kind] -%}
            {%- set value = karte_export_phone_from_number(value) if name == 'phone' else value -%}
            {%- do whens.append("when karte__part in ('" ~ (kinds[kind] | map('replace', "'", "''") | join("', '"))
                ~ "') then " ~ value) -%}
        {%- endfor -%}
        {%- do replaced.append('case ' ~ (whens | join(' ')) ~ ' else ' ~ quoted ~ ' end as ' ~ quoted) -%}
    {%- endfor -%}
    {{ return('(select * replace (' ~ (replaced | join(', ')) ~ ') from '
        ~ duckdb_karte_export_table_function(read.format, read.paths, encoding, 'karte__part') ~ ')') }}
{% endmacro %}

{#-
    DuckDB: `path` as a glob pattern that matches only itself. DuckDB's file functions glob every
    path they are given: an export in `/srv/karte/site[1]` would read `/srv/karte/site1`, another
    folder, without a word. Each of `[`, `*`, `?` becomes a class of that one character.
-#}
{% macro duckdb_glob_literal(path) %}
    {{- return(modules.re.sub('([\\[*?])', '[\\1]', path | string)) -}}
{% endmacro %}

{#- DuckDB: a list literal of file paths (each matching only itself), for the table functions. -#}
{% macro duckdb_path_list(paths) %}
    {%- set literal = [] -%}
    {%- for path in paths -%}{%- do literal.append(duckdb_glob_literal(path) | replace("'", "''")) -%}{%- endfor -%}
    {{- return("['" ~ (literal | join("', '")) ~ "']") -}}
{% endmacro %}

{#-
    DuckDB: read_parquet or read_csv (text, a header row) of `paths`, matched by column name when
    there are several; a Parquet read with `part_column` names each row's file in that column.
-#}
{% macro duckdb_karte_export_table_function(format, paths, encoding, part_column) %}
    {%- set listed = duckdb_path_list(paths) -%}
    {%- set by_name = ', union_by_name = true' if paths | length > 1 else '' -%}
    {%- if format == 'parquet' -%}
        {%- set named = ", filename = '" ~ part_column ~ "'" if part_column else '' -%}
        {{ return("read_parquet(" ~ listed ~ by_name ~ named ~ ")") }}
    {%- endif -%}
    {{ return("read_csv(" ~ listed ~ ", header = true, all_varchar = true, delim = ',', quote = '\"', escape = '\"', "
        ~ "encoding = '" ~ encoding ~ "'" ~ by_name ~ ")") }}
{% endmacro %}

{#-
    The files of one export table, among `found`, a list of (layout, path) of existing files
    ('near': a file whose name starts with the table's and goes on with another character than
    . or -, named in the message when none is read):
      file    <table>.csv, <table>.csv.gz or <table>.parquet: one file;
      parts   <table>-*.csv(.gz) or <table>-*.parquet: BigQuery's wildcard export names, e.g.
              conversions-000000000000.csv;
      folder  <table>/ holding part files at any depth (names starting with _ or ., such as
              _SUCCESS, are skipped).
    Other files are ignored. Returns {'format': 'csv' or 'parquet', 'paths': [...]}. No file, two
    layouts, two single files or parts in two formats stop the run with one line naming the table.
-#}
{% macro karte_export_layout(directory, table_name, found) %}
    {%- set by_layout = {'file': [], 'parts': [], 'folder': []} -%}
    {%- set unread = [] -%}
    {%- for layout, path in found | rejectattr(0, 'equalto', 'near') | sort(attribute=1) -%}
        {%- set name = path.split('/')[-1] -%}
        {%- set format = 'parquet' if name.endswith('.parquet')
            else 'csv' if name.endswith('.csv') or name.endswith('.csv.gz') else none -%}
        {%- set below = path.split('/' ~ table_name ~ '/')[-1].split('/') if layout == 'folder' else [name] -%}
        {%- set hidden = namespace(found=false) -%}
        {%- for part in below -%}
            {%- if part[:1] in ('_', '.') -%}{%- set hidden.found = true -%}{%- endif -%}
        {%- endfor -%}
        {%- set single_file_names = (table_name ~ '.csv', table_name ~ '.csv.gz', table_name ~ '.parquet') -%}
        {%- if format and (layout != 'file' or name in single_file_names) and not hidden.found -%}
            {%- do by_layout[layout].append((path, format)) -%}
        {%- elif not format and not hidden.found -%}
            {%- do unread.append(path) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set used = [] -%}
    {%- for layout in ('file', 'parts', 'folder') -%}
        {%- if by_layout[layout] -%}{%- do used.append(layout) -%}{%- endif -%}
    {%- endfor -%}
    {%- if not used and unread -%}
        {#- an extension in capitals (a Windows tool's conversions.CSV): read in lower case only -#}
        {%- for path in unread if (path | lower).endswith(('.csv', '.csv.gz', '.parquet')) -%}
            {%- set lowered = path | lower -%}
            {%- set suffix = '.csv.gz' if lowered.endswith('.csv.gz') else '.' ~ lowered.split('.')[-1] -%}
            {{ exceptions.raise_compiler_error(
                "KARTE export file " ~ path ~ " has its extension in capitals: rename it to "
                ~ path[:(path | length) - (suffix | length)] ~ suffix ~ " (extensions are read in lower case)") }}
        {%- endfor -%}
        {#- an export in JSON, Avro or another format: say so, not "missing" -#}
        {{ exceptions.raise_compiler_error(
            "KARTE export table " ~ table_name ~ " is in a format that is not read: " ~ (unread[:3] | join(', '))
            ~ (', ...' if unread | length > 3 else '') ~ "; export it as CSV (.csv or .csv.gz) or Parquet (.parquet)") }}
    {%- endif -%}
    {%- if not used -%}
        {#- a file named after the table another way (conversions_20261201.csv): name it -#}
        {%- set near = [] -%}
        {%- for layout, path in found | sort(attribute=1) -%}
            {%- set name = path.split('/')[-1] -%}
            {%- if layout == 'near' and name != table_name -%}
                {%- do near.append(name) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set hint = "; found " ~ (near[:3] | join(', ')) ~ (', ...' if near | length > 3 else '')
            ~ ", which is not one of these names: rename it, or export to " ~ table_name ~ "-*.csv" if near else '' -%}
        {{ exceptions.raise_compiler_error(
            "KARTE export file missing: " ~ directory ~ "/" ~ table_name ~ ".csv (or .csv.gz, .parquet, parts "
            ~ table_name ~ "-*.csv, or a folder " ~ table_name ~ "/ of parts)" ~ hint ~ "; set env KARTE_EXPORT_DIR"
            ~ " (or var karte_export_dir) to the folder holding conversions, page_views, line_users and user_master") }}
    {%- endif -%}
    {%- set listed = [] -%}
    {%- for layout in used -%}{%- do listed.extend(by_layout[layout] | map(attribute=0)) -%}{%- endfor -%}
    {%- set shown = (listed[:4] | join(', ')) ~ (', ...' if listed | length > 4 else '') -%}
    {%- if used | length > 1 -%}
        {{ exceptions.raise_compiler_error(
            "KARTE export table " ~ table_name ~ " has files in more than one layout in " ~ directory ~ ": "
            ~ shown ~ "; keep one: " ~ table_name ~ ".csv, parts " ~ table_name ~ "-*, or a folder " ~ table_name ~ "/") }}
    {%- endif -%}
    {%- set chosen = by_layout[used[0]] -%}
    {%- if used[0] == 'file' and chosen | length > 1 -%}
        {{ exceptions.raise_compiler_error(
            "KARTE export table " ~ table_name ~ " has several files in " ~ directory ~ ": " ~ shown ~ "; keep one") }}
    {%- endif -%}
    {%- set formats = chosen | map(attribute=1) | unique | list -%}
    {%- if formats | length > 1 -%}
        {{ exceptions.raise_compiler_error(
            "KARTE export table " ~ table_name ~ " has parts in two formats (" ~ (formats | sort | join(' and '))
            ~ ") in " ~ directory ~ ": " ~ shown ~ "; export every part in one format") }}
    {%- endif -%}
    {{ return({'format': formats[0], 'paths': chosen | map(attribute=0) | list}) }}
{% endmacro %}

{#- The one file of `table_name` among `found` (the Spark hook); none or several stop the run with one line. -#}
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
