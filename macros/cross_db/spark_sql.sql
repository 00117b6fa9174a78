{#-
    Helpers of the `spark__` bodies (dbt-spark, Spark 3.4+ / 4.x), written so that a Spark build
    gives the same rows and the same JSON as the DuckDB build (tests/test_spark.py proves it).
    Differences from DuckDB that the bodies absorb:
    - Spark string literals treat backslash as an escape: every literal built from a pattern or a
      character list goes through spark_text_literal().
    - Java regexes are not RE2: `$` also matches before a final newline, `.` stops at \r and
      U+2028 as well as \n, and `\s` includes \v. spark_java_regex() rewrites a pattern so that
      Java matches exactly what RE2 matches (`$` -> `\z`, `\s` -> `[\t\n\f\r ]`, UNIX_LINES).
    - Spark 4 runs in ANSI mode, where a failed cast raises: every parse uses try_cast.
    - Timestamps: the session time zone must not matter; texts without an offset are UTC, or at
      var karte_export_utc_offset.
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
