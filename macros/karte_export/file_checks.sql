{#-
    DuckDB: the checks of the export files before the on-run-start hook reads them
    (duckdb_karte_export_reader): each a one-line error that names the file and says what to do.
-#}

{#-
    Refuse, with a message that says what to do, a CSV file that is not UTF-8 when it should be
    (a spreadsheet's Shift_JIS/CP932), or that is gzip-compressed under a .csv name (BigQuery's
    EXPORT DATA with compression GZIP and a .csv URI). Compressed files and files over 512 MB are
    not checked here; DuckDB's reader still refuses bad bytes, with its own message, when the
    models run.
-#}
{% macro check_csv_export_file(path, size, encoding) %}
    {%- if encoding in ('utf-8', 'utf8') and size <= 536870912 and not path.endswith('.gz') -%}
        {#- the header line's separator: a tab-, semicolon- or pipe-separated file whose fields
            hold commas (a user agent, items JSON) is otherwise DuckDB's many-line sniff error -#}
        {%- set header = "split_part(try(decode(content[1:65536])), chr(10), 1)" -%}
        {%- set checked = run_query(
            "select try(decode(content)) is not null, content[1:2] = '\\x1F\\x8B'::blob, "
            ~ "case when position(',' in " ~ header ~ ") = 0 then "
            ~ "case when position(chr(9) in " ~ header ~ ") > 0 then 'tab' "
            ~ "when position(';' in " ~ header ~ ") > 0 then 'semicolon' "
            ~ "when position('|' in " ~ header ~ ") > 0 then 'pipe' end end, "
            ~ "content[1:2] in ('\\xFF\\xFE'::blob, '\\xFE\\xFF'::blob)"
            ~ " from read_blob('" ~ duckdb_glob_literal(path) | replace("'", "''") ~ "')").rows[0] -%}
        {%- set is_utf8 = checked[0] -%}
        {%- if checked[2] -%}
            {{ exceptions.raise_compiler_error(
                "KARTE export file " ~ path ~ " is " ~ checked[2] ~ "-separated (its header row has no comma):"
                ~ " export it with commas") }}
        {%- endif -%}
        {%- if checked[1] -%}
            {{ exceptions.raise_compiler_error(
                "KARTE export file " ~ path ~ " is gzip-compressed but named .csv: rename it to " ~ path ~ ".gz") }}
        {%- endif -%}
        {%- if not is_utf8 and checked[3] -%}
            {#- UTF-16's byte order mark, as Excel's "Unicode text" begins -#}
            {{ exceptions.raise_compiler_error(
                "KARTE export file " ~ path ~ " is UTF-16 (it begins with UTF-16's byte order mark):"
                ~ " convert it to UTF-8, e.g. iconv -f UTF-16 -t UTF-8 (or, when every CSV file of the"
                ~ " export is UTF-16, set var karte_export_encoding: utf-16)") }}
        {%- endif -%}
        {%- if not is_utf8 -%}
            {{ exceptions.raise_compiler_error(
                "KARTE export file " ~ path ~ " is not UTF-8 (a spreadsheet may have saved it as Shift_JIS/CP932):"
                ~ " convert it to UTF-8, e.g. iconv -f CP932 -t UTF-8 (for a UTF-16 file: var karte_export_encoding utf-16)") }}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}

{#-
    DuckDB: every part of a table read from several files must hold each required contract column
    (under its var karte_column_map name), as a single file must: read by column name, a part
    without one would add rows with that column null, or, without its header row, rows under the
    wrong names. Optional columns may be missing from a part, as from a single file (null there).
    Parquet schemas are read in one query, and so are the CSV parts' headers (one sniff each).
-#}
{% macro check_karte_export_part_columns(table_name, format, paths, encoding) %}
    {%- set names = {} -%}
    {%- if format == 'parquet' -%}
        {%- set listed = duckdb_path_list(paths) -%}
        {%- set remaining = [] -%}
        {#- rows in schema order: the root, then each column before its nested fields; the root's own
            children, counted with a stack of fields left per level, are the file's columns -#}
        {%- for row in run_query("select file_name, column_id, name, coalesce(num_children, 0) from parquet_schema("
            ~ listed ~ ") order by file_name, column_id") -%}
            {%- if row[1] == 0 -%}
                {%- do names.update({row[0]: []}) -%}
                {%- for _ in range(remaining | length) -%}{%- do remaining.pop() -%}{%- endfor -%}
                {%- do remaining.append(row[3]) -%}
            {%- else -%}
                {%- if remaining | length == 1 -%}{%- do names[row[0]].append(row[2]) -%}{%- endif -%}
                {%- do remaining.append(remaining.pop() - 1) -%}
                {%- if row[3] > 0 -%}{%- do remaining.append(row[3]) -%}{%- endif -%}
                {%- for _ in range(remaining | length) -%}
                    {%- if remaining | length > 1 and remaining[-1] == 0 -%}{%- do remaining.pop() -%}{%- endif -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endfor -%}
        {#- a folder named key=value (Spark's partitionBy) is a column when DuckDB reads the parts
            (hive partitioning, detected), not in the file's own schema -#}
        {%- for path in names -%}
            {%- for key in modules.re.findall('/([^/=]+)=[^/]*(?=/)', path) if key not in names[path] -%}
                {%- do names[path].append(key) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- else -%}
        {#- one sniff per part, all in one query: dbt's round trip per query costs more than a sniff -#}
        {%- set sniffs = [] -%}
        {%- for path in paths -%}
            {%- do sniffs.append('select ' ~ loop.index0 ~ ', to_json(list(column_name)) from (describe select * from '
                ~ duckdb_karte_export_table_function('csv', [path], encoding, none) ~ ')') -%}
        {%- endfor -%}
        {%- for row in run_query(sniffs | join(' union all ')) -%}
            {%- do names.update({paths[row[0]]: fromjson(row[1])}) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set mapping = karte_column_map().get(table_name) or {} -%}
    {%- set contract = [] -%}
    {%- for name, is_required in karte_export_contract()[table_name] -%}
        {%- do contract.append((name, (mapping.get(name) or name) | string, is_required)) -%}
    {%- endfor -%}
    {#- an optional column some parts have and others lack: a query changed between parts (a column
        renamed, or added later), and the rows of the parts without it go without what it carries -#}
    {%- for name, export_name, is_required in contract if not is_required and paths | length > 1 -%}
        {%- set lacking = [] -%}
        {%- for path in paths if (export_name | lower) not in (names.get(path, []) | map('lower') | list) -%}
            {%- do lacking.append(path) -%}
        {%- endfor -%}
        {%- if lacking and lacking | length < paths | length -%}
            {%- set purpose = karte_optional_column_purposes()[table_name].get(name) -%}
            {%- do log("warning: KARTE export table " ~ table_name ~ ": part " ~ lacking[0]
                ~ (" and " ~ (lacking | length - 1) ~ " more" if lacking | length > 1 else "")
                ~ " ha" ~ ("ve" if lacking | length > 1 else "s") ~ " no column " ~ export_name
                ~ ", which the other " ~ (paths | length - lacking | length) ~ " of its parts have: "
                ~ (("their rows go without " ~ purpose) if purpose else "their rows have it empty")
                ~ "; export it in every part (was the query changed, a column renamed?)", info=true) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for path in paths -%}
        {%- set has = names.get(path, []) | map('lower') | list -%}
        {%- set missing = [] -%}
        {%- set known = [] -%}
        {%- for name, export_name, is_required in contract -%}
            {%- if (export_name | lower) not in has -%}
                {%- if is_required -%}
                    {%- do missing.append(export_name ~ (" (mapped to " ~ name ~ ")" if export_name != name else "")) -%}
                {%- endif -%}
            {%- else -%}
                {%- do known.append(name) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if missing -%}
            {#- a CSV part without its header row reads its first row as the column names -#}
            {%- set advice = "A part may lack its header row: export every part with its header"
                if format == 'csv' and not known
                else "Every part needs the table's required columns: export them in every part, or map them with var karte_column_map" -%}
            {%- set found = names.get(path, []) -%}
            {{ exceptions.raise_compiler_error(
                "KARTE export table " ~ table_name ~ ": part " ~ path ~ " has no column"
                ~ ("s " if missing | length > 1 else " ") ~ (missing | join(', '))
                ~ (karte_export_first_row_as_data(found) if karte_export_names_look_like_data(found)
                    else "; it has: " ~ (found | join(', '))) ~ ". " ~ advice) }}
        {%- endif -%}
    {%- endfor -%}
{% endmacro %}

{#-
    DuckDB: a folder named key=value gives each row of the files under it the column key (hive
    partitioning, detected, when every file lies under the same keys). When a file holds that
    column itself, the folder's value replaces the file's in every row, without a word:
    `conversions/sync_date=2026-12-07/` would date each conversion at that day's midnight,
    `event_name=purchase/` make every row a purchase. Refused, naming the folder and the column.
    Only the parts under such a folder are read again (their own columns, without the folder's),
    so an export without one costs nothing here.
-#}
{% macro check_karte_export_folder_keys(table_name, format, paths, encoding) %}
    {%- set keyed = [] -%}
    {%- set key_sets = [] -%}
    {%- for path in paths -%}
        {%- set keys = modules.re.findall('/([^/=]+)=[^/]*(?=/)', path) -%}
        {%- if keys -%}{%- do keyed.append((path, keys)) -%}{%- endif -%}
        {%- do key_sets.append(keys | map('lower') | sort | join('/')) -%}
    {%- endfor -%}
    {#- DuckDB takes the folders' keys as columns only when every file lies under the same keys -#}
    {%- if not keyed or key_sets | unique | list | length > 1 -%}{{ return('') }}{%- endif -%}
    {%- set reads = [] -%}
    {%- for path, _ in keyed -%}
        {%- set read = duckdb_karte_export_table_function(format, [path], encoding, none) -%}
        {%- do reads.append('select ' ~ loop.index0 ~ ', to_json(list(lower(column_name)))'
            ~ ' from (describe select * from ' ~ read[:-1] ~ ', hive_partitioning = false))') -%}
    {%- endfor -%}
    {%- for row in run_query(reads | join(' union all ')) -%}
        {%- set path, keys = keyed[row[0]] -%}
        {%- set own = fromjson(row[1]) -%}
        {%- for key in keys if key | lower in own -%}
            {%- set folder = modules.re.search('/(' ~ modules.re.escape(key) ~ '=[^/]*)/', path).group(1) -%}
            {%- set renamed = folder | replace(key ~ '=', 'export_' ~ key ~ '=', 1) -%}
            {{ exceptions.raise_compiler_error(
                "KARTE export table " ~ table_name ~ ": the folder " ~ folder ~ " of " ~ path ~ " names the column "
                ~ key ~ ", which the file holds too, and DuckDB would give every row the folder's value instead of"
                ~ " its own: rename the folder (" ~ renamed ~ ") or leave the column out of the files") }}
        {%- endfor -%}
    {%- endfor -%}
    {{ return('') }}
{% endmacro %}
