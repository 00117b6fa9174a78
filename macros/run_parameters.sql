{#-
    Every dbt var of the project is read through one macro here, which checks it and fails the
    run with a one-line message naming the var. Defaults live in dbt_project.yml.
-#}

{#- The value is cut to 80 characters, and its line breaks shown as \n: the message is one line. -#}
{% macro _var_error(name, value, expected) %}
    {%- set shown = (value | string)[:80] | replace('\n', '\\n') | replace('\r', '\\r') -%}
    {#- a var dbt_project.yml no longer declares (its name edited by a slip) is None -#}
    {%- if value is none or value == 'None' -%}
        {%- set shown = shown ~ " (not set: is its name mistyped under vars: in dbt_project.yml?)" -%}
    {%- endif -%}
    {{ exceptions.raise_compiler_error("invalid dbt var " ~ name ~ "=" ~ shown ~ ": " ~ expected) }}
{% endmacro %}

{% macro _int_var(name, low, high) %}
    {%- set value = var(name) -%}
    {%- if value is boolean or not modules.re.fullmatch('-?[0-9]+', value | string | trim) -%}
        {{ _var_error(name, value, "expected a whole number from " ~ low ~ " to " ~ high) }}
    {%- endif -%}
    {%- set number = value | string | trim | int -%}
    {%- if number < low or number > high -%}
        {{ _var_error(name, value, "expected a whole number from " ~ low ~ " to " ~ high) }}
    {%- endif -%}
    {{ return(number) }}
{% endmacro %}

{% macro _bool_var(name) %}
    {%- set value = var(name) -%}
    {%- if value is boolean -%}{{ return(value) }}{%- endif -%}
    {%- set text = value | string | trim | lower -%}
    {%- if text in ('true', 'yes', '1') -%}{{ return(true) }}{%- endif -%}
    {%- if text in ('false', 'no', '0') -%}{{ return(false) }}{%- endif -%}
    {{ _var_error(name, value, "expected true or false") }}
{% endmacro %}

{#- An ISO 8601 text (or a YAML timestamp) as integer Unix seconds; no offset means UTC. -#}
{% macro _iso_to_unix(name, value) %}
    {%- set text = value | string | trim | replace(' ', 'T', 1) -%}
    {%- set date = '[0-9]{4}-[0-9]{2}-[0-9]{2}' -%}
    {%- set time = '(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?' -%}
    {%- set iso = date ~ time ~ '([Zz]|[+-][0-9]{2}:?[0-9]{2})?' -%}
    {%- if not modules.re.fullmatch(iso, text) -%}
        {{ _var_error(name, value, "expected an ISO 8601 timestamp such as 2026-11-30T10:00:00+09:00") }}
    {%- endif -%}
    {%- set text = text[:-1] ~ '+00:00' if text[-1] in 'Zz' else text -%}
    {%- set ymd = modules.re.fullmatch('([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]).*', text) -%}
    {%- if ymd -%}
        {#- the last day of the month: the first of the next one, minus a day -#}
        {%- set year, month = ymd.group(1) | int, ymd.group(2) | int -%}
        {%- set next_month = modules.datetime.date(year + month // 12, month % 12 + 1, 1) -%}
        {%- set last_day = (next_month - modules.datetime.timedelta(days=1)).day -%}
    {%- endif -%}
    {%- if not ymd or ymd.group(3) | int > last_day
            or not modules.re.fullmatch('[^T]*(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9].*)?.*)?', text) -%}
        {{ _var_error(name, value, "expected an ISO 8601 timestamp such as 2026-11-30T10:00:00+09:00") }}
    {%- endif -%}
    {%- set offset = modules.re.search('[+-]([0-9]{2}):?([0-9]{2})$', text) -%}
    {%- if offset and (offset.group(2) | int > 59 or (offset.group(1) ~ offset.group(2)) | int > 1400) -%}
        {{ _var_error(name, value, "expected an offset from -14:00 to +14:00, such as +09:00") }}
    {%- endif -%}
    {%- set parsed = modules.datetime.datetime.fromisoformat(text) -%}
    {%- if parsed.tzinfo is none -%}
        {%- set parsed = parsed.replace(tzinfo=modules.pytz.utc) -%}
    {%- endif -%}
    {{ return(parsed.timestamp() | int) }}
{% endmacro %}

{#- The "now" of the run as Unix seconds: var as_of, or the time the run started. Its offset is
    required: a replay or catch-up written as a clock shows it (2026-11-28 14:00 in Japan) was
    read as UTC, 9 hours off, and sent another window than the one meant, without a word. -#}
{% macro as_of_unix() %}
    {%- set value = var('as_of', none) -%}
    {%- if value is none or (value | string | trim) == '' -%}
        {{ return(run_started_at.timestamp() | int) }}
    {%- endif -%}
    {%- if not modules.re.search('([Zz]|[+-][0-9]{2}:?[0-9]{2})$', value | string | trim) -%}
        {{ _var_error('as_of', value, "give its offset from UTC, such as 2026-11-30T10:00:00+09:00"
            ~ " (Japan time) or 2026-11-30T01:00:00Z (UTC): without one it is ambiguous") }}
    {%- endif -%}
    {{ return(_iso_to_unix('as_of', value)) }}
{% endmacro %}

{#- Per table, default column name -> the export's own name: {conversions: {transaction_id: order_id}}. -#}
{% macro karte_column_map() %}
    {%- set value = var('karte_column_map') or {} -%}
    {%- set expected = "a mapping of table to {default column: export column},"
        ~ " e.g. {conversions: {transaction_id: order_id}}" -%}
    {%- if value is not mapping -%}{{ _var_error('karte_column_map', value, expected) }}{%- endif -%}
    {%- for table_name, columns in value.items() -%}
        {%- if table_name not in karte_export_contract() -%}
            {{ _var_error('karte_column_map', value, "unknown table " ~ table_name ~ "; the tables are "
                ~ (karte_export_contract().keys() | list | join(', '))) }}
        {%- endif -%}
        {%- if columns is not mapping -%}{{ _var_error('karte_column_map', value, expected) }}{%- endif -%}
        {%- set known = karte_export_contract()[table_name] | map(attribute=0) | list -%}
        {%- for column, export_name in columns.items() -%}
            {%- if column not in known -%}
                {{ _var_error('karte_column_map', value, table_name ~ " has no contract column " ~ column
                    ~ "; its columns are " ~ (known | join(', '))) }}
            {%- endif -%}
            {%- if export_name is mapping or export_name is none or (export_name | string | trim) == ''
                    or (export_name is iterable and export_name is not string) -%}
                {{ _var_error('karte_column_map', value, expected) }}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(value) }}
{% endmacro %}

{#- The project's vars, as dbt_project.yml declares them (tests/test_pipeline.py keeps both equal). -#}
{% macro project_var_names() %}
    {{ return([
        'karte_export_dir', 'karte_catalog_tables', 'karte_export_encoding', 'karte_source_schema',
        'karte_column_map', 'karte_export_time_anchor', 'karte_export_utc_offset', 'karte_sample_dir',
        'karte_sample_anchor',
        'karte_freshness_warn_hours', 'karte_freshness_error_hours', 'as_of', 'lookback_hours',
        'karte_conversion_event', 'line_event_name', 'karte_conversion_events', 'karte_conversion_filter',
        'karte_user_master_filter', 'ad_contact_days', 'pii_prehashed', 'send_line_user_id',
        'currency', 'compress_tables', 'coverage_retention_days'
    ]) }}
{% endmacro %}

{#-
    on-run-start: a var whose name is a project var's with a slip (another case, a letter missing,
    extra or wrong; two for names over 6 letters) stops the run: dbt would ignore it and run with
    the default, so a catch-up or a conversion type would silently not happen. So does a name
    holding a colon and no value ({send_line_user_id:false}: YAML reads one name). Other names
    (a user's own, as_at beside as_of) pass with a warning; a package's block of vars (a mapping
    under vars:) passes without one. The names are those of --vars, and under sender run those
    under vars: in dbt_project.yml too (env LINE_CAPI_PROJECT_VARS, a JSON object of each name and
    whether its value is a mapping: a macro cannot list them).
-#}
{% macro check_var_names() %}
    {%- set given = invocation_args_dict.get('vars') or {} -%}
    {%- set known = project_var_names() -%}
    {%- set named = [] -%}
    {%- for name in (given if given is mapping else {}) -%}
        {%- do named.append((name | string, 'in --vars', given[name] is none, false)) -%}
    {%- endfor -%}
    {#- name: whether its value is a mapping, which may be a package's block of vars -#}
    {%- set declared = fromjson(env_var('LINE_CAPI_PROJECT_VARS', '') or '{}') -%}
    {%- for name, block in (declared.items() if declared is mapping else []) -%}
        {%- do named.append((name | string, 'under vars: in dbt_project.yml', false, block)) -%}
    {%- endfor -%}
    {#- a colon in a name with a value is a package's var (dbt_date:time_zone): not a slip -#}
    {%- for name, place, without_value, block in named if name not in known -%}
        {%- if ':' in name and without_value -%}
            {{ exceptions.raise_compiler_error(
                "unknown dbt var " ~ name ~ " " ~ place ~ ": write a space after the colon ({"
                ~ name.split(':')[0] ~ ": " ~ name.split(':', 1)[1] ~ "}); without it YAML reads one name and no value") }}
        {%- endif -%}
        {%- set closest = namespace(name=none, distance=3) -%}
        {%- for candidate in known if (name | length) >= 4 -%}
            {%- set distance = _edit_distance(name | lower, candidate) -%}
            {%- if distance < closest.distance and distance <= (2 if candidate | length > 6 else 1) -%}
                {%- set closest.name, closest.distance = candidate, distance -%}
            {%- endif -%}
        {%- endfor -%}
        {#- the same first word, of 5 letters or more, as one var alone (lookback_days,
            coverage_retention_hours): another unit or a guess at its name. karte_ begins
            several vars, line_ and as_ are too short: a name of one's own (as_at) passes -#}
        {%- set first_word = (name | lower).split('_')[0] -%}
        {%- set same_word = [] -%}
        {%- for candidate in known if candidate.startswith(first_word ~ '_') -%}
            {%- do same_word.append(candidate) -%}
        {%- endfor -%}
        {%- if closest.name is none and first_word | length >= 5 and same_word | length == 1 -%}
            {%- set closest.name = same_word[0] -%}
        {%- endif -%}
        {%- if closest.name is not none -%}
            {{ exceptions.raise_compiler_error(
                "unknown dbt var " ~ name ~ " " ~ place ~ ": did you mean " ~ closest.name
                ~ "? (docs/configuration.md lists the vars)") }}
        {%- endif -%}
        {%- if not block -%}
            {%- do log("warning: dbt var " ~ name ~ " " ~ place ~ " is not one of this project's, and it reads"
                ~ " none of that name (docs/configuration.md lists the vars)", info=True) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return('') }}
{% endmacro %}

{#- Levenshtein distance: the fewest one-character insertions, deletions and substitutions from a to b. -#}
{% macro _edit_distance(a, b) %}
    {%- set ns = namespace(previous=range(b | length + 1) | list, current=[]) -%}
    {%- for i in range(1, a | length + 1) -%}
        {%- set ns.current = [i] -%}
        {%- for j in range(1, b | length + 1) -%}
            {%- set substitution = ns.previous[j - 1] + (0 if a[i - 1] == b[j - 1] else 1) -%}
            {%- do ns.current.append([ns.previous[j] + 1, ns.current[j - 1] + 1, substitution] | min) -%}
        {%- endfor -%}
        {%- set ns.previous = ns.current -%}
    {%- endfor -%}
    {{ return(ns.previous[b | length]) }}
{% endmacro %}

{% macro lookback_hours() %}{{ return(_int_var('lookback_hours', 1, 8760)) }}{% endmacro %}

{% macro ad_contact_days() %}{{ return(_int_var('ad_contact_days', 0, 90)) }}{% endmacro %}

{#- How long line_capi_coverage keeps the rows of a build, in days after the build started. -#}
{% macro coverage_retention_days() %}{{ return(_int_var('coverage_retention_days', 1, 3650)) }}{% endmacro %}

{#- The one-pair shorthand: var karte_conversion_event (default buy) and line_event_name (default Conversion). -#}
{% macro karte_conversion_event() %}
    {%- set value = var('karte_conversion_event', none) -%}
    {%- set value = 'buy' if value is none else value | string -%}
    {%- if value | trim == '' -%}
        {{ _var_error('karte_conversion_event', value, "expected a KARTE event name such as buy") }}
    {%- endif -%}
    {{ return(value) }}
{% endmacro %}

{% macro line_event_name() %}
    {%- set value = var('line_event_name', none) -%}
    {{ return(_line_event_name('line_event_name', 'Conversion' if value is none else value)) }}
{% endmacro %}

{#- `name` is the var; `key`, the KARTE event name whose LINE event name this is, if any. -#}
{% macro _line_event_name(name, value, key=none) %}
    {%- if value is not string or not modules.re.fullmatch(line_event_name_pattern(), value) -%}
        {%- set expected = "LINE event names are 1 to 20 of A-Z a-z 0-9 _ - (e.g. Conversion, Purchase)" -%}
        {%- if value is number and value is not boolean -%}
            {%- set expected = expected ~ "; YAML read " ~ value ~ " as a number: quote it, '" ~ value ~ "'" -%}
        {%- endif -%}
        {{ _var_error(name, value, ("the LINE event name of " ~ key ~ ": " if key is not none else "") ~ expected) }}
    {%- endif -%}
    {#- a standard name written otherwise (purchase, add_to_cart, InitiateCheckout) is not it:
        LINE would refuse every event as an unknown custom conversion -#}
    {%- set folded = value | lower | replace('_', '') | replace('-', '') -%}
    {%- for standard in line_standard_event_names() -%}
        {%- if value != standard and folded == standard | lower -%}
            {{ _var_error(name, value, ("the LINE event name of " ~ key ~ ": " if key is not none else "")
                ~ "LINE's standard event name is spelt " ~ standard
                ~ " (LINE matches event names exactly; any other name is a custom conversion set up in LINE Ads Manager)") }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(value) }}
{% endmacro %}

{#-
    Rule 1 over a KARTE `event_name` column, written once for int_conversions_windowed and the
    coverage of late rows: whether the row is of a configured conversion event (a SQL
    condition), and the LINE event name it is sent under (a SQL expression).
-#}
{% macro is_conversion_event_sql(column) -%}
    {%- set names = [] -%}
    {%- for karte_event, _ in conversion_events() -%}
        {%- do names.append(dbt.string_literal(dbt.escape_single_quotes(karte_event))) -%}
    {%- endfor -%}
    {{ column }} in ({{ names | join(', ') }})
{%- endmacro %}

{% macro line_event_name_sql(column) -%}
    case {{ column }}
        {%- for karte_event, line_event in conversion_events() %}
        when {{ dbt.string_literal(dbt.escape_single_quotes(karte_event)) }} then {{ dbt.string_literal(line_event) }}
        {%- endfor %}
    end
{%- endmacro %}

{#-
    The conversion types of the run, as a list of (KARTE event name, LINE event name): var
    karte_conversion_events ({buy: Purchase, member_register: CompleteRegistration}) when set,
    else the one pair karte_conversion_event / line_event_name. Setting both is an error.
-#}
{% macro conversion_events() %}
    {%- set value = var('karte_conversion_events', none) -%}
    {%- if value is none or value == {} or (value is string and value | trim == '') -%}
        {{ return([(karte_conversion_event(), line_event_name())]) }}
    {%- endif -%}
    {%- if value is not mapping -%}
        {{ _var_error('karte_conversion_events', value,
            "expected a mapping of KARTE event name to LINE event name, e.g. {buy: Purchase, member_register: CompleteRegistration}") }}
    {%- endif -%}
    {%- if var('karte_conversion_event', none) is not none or var('line_event_name', none) is not none -%}
        {{ _var_error('karte_conversion_events', value,
            "set either karte_conversion_events or the pair karte_conversion_event / line_event_name, not both") }}
    {%- endif -%}
    {%- set pairs = [] -%}
    {%- for karte_event, line_event in value.items() -%}
        {%- if karte_event is none or karte_event | string | trim == '' -%}
            {{ _var_error('karte_conversion_events', value, "a KARTE event name is empty") }}
        {%- endif -%}
        {%- set line_name = _line_event_name('karte_conversion_events', line_event, karte_event) -%}
        {%- do pairs.append((karte_event | string, line_name)) -%}
    {%- endfor -%}
    {{ return(pairs) }}
{% endmacro %}

{#-
    The connector's data filter: var karte_conversion_filter (table conversions) or
    karte_user_master_filter (user_master), a SQL condition over the table's contract columns
    (text, after column mapping), or none. One that would not run fails with the var's name.
-#}
{% macro karte_data_filter(table_name) %}
    {%- set name = {'conversions': 'karte_conversion_filter', 'user_master': 'karte_user_master_filter'}[table_name] -%}
    {%- set value = var(name, none) -%}
    {%- if value is none or (value is string and value | trim == '') -%}{{ return(none) }}{%- endif -%}
    {%- set columns = karte_export_contract()[table_name] | map(attribute=0) | list -%}
    {%- set expected = "a SQL condition over the columns " ~ (columns | join(', ')) -%}
    {%- if value is not string -%}{{ _var_error(name, value, expected) }}{%- endif -%}
    {%- if execute -%}
        {%- set problem = sql_condition_problem(value, columns) -%}
        {%- if problem -%}{{ _var_error(name, value, problem ~ "; expected " ~ expected) }}{%- endif -%}
    {%- endif -%}
    {{ return(value | trim) }}
{% endmacro %}

{% macro currency() %}
    {%- set value = var('currency') | string -%}
    {%- if not modules.re.fullmatch(currency_code_pattern(), value) -%}
        {{ _var_error('currency', value, "expected an ISO 4217 code of three capital letters such as JPY") }}
    {%- endif -%}
    {#- names in use that are not ISO 4217 codes: LINE takes any three capitals, and a wrong one is
        never sent again once the events are recorded as accepted -#}
    {%- set meant = {'YEN': 'JPY', 'RMB': 'CNY', 'NTD': 'TWD', 'WON': 'KRW', 'UKP': 'GBP', 'STG': 'GBP'} -%}
    {%- if value in meant -%}
        {{ _var_error('currency', value, "not an ISO 4217 code: " ~ meant[value] ~ " is") }}
    {%- endif -%}
    {{ return(value) }}
{% endmacro %}

{% macro pii_prehashed() %}{{ return(_bool_var('pii_prehashed')) }}{% endmacro %}

{% macro send_line_user_id() %}{{ return(_bool_var('send_line_user_id')) }}{% endmacro %}

{% macro compress_tables() %}{{ return(_bool_var('compress_tables')) }}{% endmacro %}

{#-
    The folder of the export files, absolute: var karte_export_dir, else env KARTE_EXPORT_DIR. There
    is no default, so that a scheduled job never reads the bundled sample by mistake: a run that
    names neither fails, and so does one whose dbt_project.yml names another folder than its env
    (a var given with --vars is this run's choice). '' when var karte_catalog_tables reads tables
    instead of files.
-#}
{% macro karte_export_dir() %}
    {%- set named = (var('karte_export_dir', none) or '') | string | trim -%}
    {%- if _bool_var('karte_catalog_tables') -%}
        {%- if named != '' or target.type == 'duckdb' -%}
            {{ _var_error('karte_catalog_tables', 'true',
                "it reads the tables of var karte_source_schema on a warehouse engine"
                ~ " (Spark); leave var karte_export_dir unset with it, and on DuckDB name the export folder instead") }}
        {%- endif -%}
        {{ return('') }}
    {%- endif -%}
    {%- set from_env = env_var('KARTE_EXPORT_DIR', '') | trim -%}
    {#- a unit test's overrides, or a var given with --vars: this run's choice -#}
    {%- set given_for_run = 'karte_export_dir' in (invocation_args_dict.get('vars') or {})
        or (model is defined and model is mapping and model.get('resource_type') == 'unit_test') -%}
    {%- if named != '' and from_env != '' and not given_for_run
            and _absolute_path(named) != _absolute_path(from_env) -%}
        {#- dbt_project.yml's var, read by every site of the checkout, over a site's env -#}
        {{ _var_error('karte_export_dir', named,
            "dbt_project.yml names this export and env KARTE_EXPORT_DIR names another, "
            ~ _absolute_path(from_env) ~ ", and dbt would read the var's: take the var out of"
            ~ " dbt_project.yml and name each site's export in its KARTE_EXPORT_DIR, or pass"
            ~ " the var with --vars to read it in this run") }}
    {%- endif -%}
    {%- set value = named if named != '' else from_env -%}
    {%- if value == '' -%}
        {#- `dbt docs generate` reads no export: it documents what the last build wrote -#}
        {%- if not execute or flags.WHICH == 'generate' -%}{{ return('') }}{%- endif -%}
        {{ exceptions.raise_compiler_error(
            "no KARTE export named: set env KARTE_EXPORT_DIR or --vars '{karte_export_dir: /path/to/export}'"
            ~ " (the demo names the bundled sample, sample/karte_export)") }}
    {%- endif -%}
    {{ return(_absolute_path(value)) }}
{% endmacro %}

{#-
    Whether the export is the bundled sample: the folder of var karte_sample_dir, or a folder
    holding the sample's marker file LINE_CAPI_SAMPLE (a copy of the sample, or a link to it).
-#}
{% macro is_bundled_sample() %}
    {%- set directory = karte_export_dir() -%}
    {%- if directory == '' -%}{{ return(false) }}{%- endif -%}
    {{ return(directory == _absolute_path(var('karte_sample_dir'))
        or folder_has_file(directory, 'LINE_CAPI_SAMPLE')) }}
{% endmacro %}

{#- Where this build read the export: the absolute folder, or catalog:<schema> for catalog tables. -#}
{% macro karte_export_location() %}
    {%- set directory = karte_export_dir() -%}
    {{ return(directory if directory != '' else 'catalog:' ~ karte_source_schema()) }}
{% endmacro %}

{#-
    The schema of the source relations: a plain identifier, as it goes unquoted into DDL (the
    sources' YAML reads the var itself; the on-run-start hook checks it before anything reads it).
-#}
{% macro karte_source_schema() %}
    {%- set value = var('karte_source_schema') -%}
    {%- if not modules.re.fullmatch('[A-Za-z_][A-Za-z0-9_]{0,62}', value | string) -%}
        {{ _var_error('karte_source_schema', value,
            "expected a schema name: a letter or _, then letters, digits or _ (at most 63)") }}
    {%- endif -%}
    {{ return(value | string) }}
{% endmacro %}

{#-
    `path` made absolute against the directory dbt was started in (env PWD) and normalized (no ./,
    ../, // or trailing /), so that one folder has one name. URLs (s3://, dbfs:/) are kept as given.
-#}
{% macro _absolute_path(path) %}
    {%- set text = path | string | trim -%}
    {%- if modules.re.match('[A-Za-z][A-Za-z0-9+.-]+:', text) -%}{{ return(text.rstrip('/')) }}{%- endif -%}
    {%- set base = env_var('PWD', '') -%}
    {%- if not text.startswith('/') and base.startswith('/') -%}{%- set text = base ~ '/' ~ text -%}{%- endif -%}
    {%- set parts = [] -%}
    {%- for part in text.split('/') -%}
        {%- if part == '..' and parts and parts[-1] != '..' -%}{%- do parts.pop() -%}
        {%- elif part not in ('', '.') -%}{%- do parts.append(part) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(('/' if text.startswith('/') else '') ~ (parts | join('/'))) }}
{% endmacro %}

{#-
    The source freshness thresholds in hours, (warn, error): vars karte_freshness_warn_hours and
    karte_freshness_error_hours (the YAML of the sources reads them; this checks them).
-#}
{% macro karte_freshness_hours() %}
    {%- set warn = _int_var('karte_freshness_warn_hours', 1, 2160) -%}
    {%- set error = _int_var('karte_freshness_error_hours', 1, 2160) -%}
    {%- if warn > error -%}
        {{ _var_error('karte_freshness_warn_hours', warn,
            "expected at most karte_freshness_error_hours (" ~ error ~ ")") }}
    {%- endif -%}
    {{ return((warn, error)) }}
{% endmacro %}

{#-
    The offset from UTC, in seconds, of the export's times written without one (var
    karte_export_utc_offset: null, 'Z' or 'UTC' for UTC; '+09:00' for Japan time, as a BigQuery
    DATETIME of JST holds it). Times with an offset, epoch digits and typed instants keep their own.
    Only fixed offsets: the zones of LINE Ads' markets keep no summer time.
-#}
{% macro karte_export_utc_offset_seconds() %}
    {%- set name = 'karte_export_utc_offset' -%}
    {%- set value = var(name, none) -%}
    {%- set expected = "expected the offset from UTC of export times written without one, in quotes:"
        ~ " '+09:00' for Japan time, 'Z' for UTC (a zone name is not read)" -%}
    {%- if value is none -%}{{ return(0) }}{%- endif -%}
    {%- if value is not string -%}
        {#- YAML reads an unquoted +9:00 as the number 540 -#}
        {{ _var_error(name, value, expected) }}
    {%- endif -%}
    {%- set text = value | trim -%}
    {%- if text in ('', 'Z', 'z', 'UTC') -%}{{ return(0) }}{%- endif -%}
    {%- set match = modules.re.fullmatch('([+-])([0-9]{2})(?::?([0-9]{2}))?', text) -%}
    {%- if not match -%}{{ _var_error(name, value, expected) }}{%- endif -%}
    {%- set hours, minutes = match.group(2) | int, (match.group(3) or '0') | int -%}
    {%- if hours > 14 or minutes > 59 or (hours == 14 and minutes > 0) -%}
        {{ _var_error(name, value, "expected an offset from -14:00 to +14:00") }}
    {%- endif -%}
    {{ return((1 if match.group(1) == '+' else -1) * (hours * 3600 + minutes * 60)) }}
{% endmacro %}

{#-
    Seconds to add to every export timestamp. The bundled sample was recorded as though "now"
    were its anchor; shifting it by (as_of - anchor) makes the demo work on any date. Set var
    karte_export_time_anchor to replay any other export the same way.
-#}
{% macro export_time_shift_seconds() %}
    {%- set name = 'karte_export_time_anchor' -%}
    {%- set anchor = var(name, none) -%}
    {%- if (anchor is none or (anchor | string | trim) == '') and is_bundled_sample() -%}
        {%- set name = 'karte_sample_anchor' -%}
        {%- set anchor = var(name) -%}
    {%- endif -%}
    {%- if anchor is none or (anchor | string | trim) == '' -%}{{ return(0) }}{%- endif -%}
    {{ return(as_of_unix() - _iso_to_unix(name, anchor)) }}
{% endmacro %}
