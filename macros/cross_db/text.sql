{#-
    Text: hashing, regexes, trimming, full-width to half-width, text to number.
    Regex patterns are RE2 (DuckDB) written for literals where backslash is plain; the Spark
    bodies translate them with spark_java_regex (macros/cross_db/spark_sql.sql).
-#}

{#- Lowercase hex SHA-256 of a text (UTF-8). -#}
{% macro sha256_hex(expr) %}
    {{ return(adapter.dispatch('sha256_hex', 'line_capi')(expr)) }}
{% endmacro %}

{% macro default__sha256_hex(expr) %}{{ not_ported('sha256_hex') }}{% endmacro %}

{% macro duckdb__sha256_hex(expr) %}sha256({{ expr }}){% endmacro %}

{% macro spark__sha256_hex(expr) %}sha2(cast({{ expr }} as string), 256){% endmacro %}

{#- True when the text matches `pattern` (an anchored regex); null for null. -#}
{% macro regex_full_match(expr, pattern) %}
    {{ return(adapter.dispatch('regex_full_match', 'line_capi')(expr, pattern)) }}
{% endmacro %}

{% macro default__regex_full_match(expr, pattern) %}{{ not_ported('regex_full_match') }}{% endmacro %}

{% macro duckdb__regex_full_match(expr, pattern) %}regexp_matches({{ expr }}, '{{ pattern }}'){% endmacro %}

{#- rlike searches like DuckDB's regexp_matches; the patterns carry their own anchors. -#}
{% macro spark__regex_full_match(expr, pattern) %}({{ expr }} rlike {{ spark_java_regex(pattern) }}){% endmacro %}

{#- The first capture group of `pattern` in the text, or null when it does not match. -#}
{% macro regex_extract(expr, pattern) %}
    {{ return(adapter.dispatch('regex_extract', 'line_capi')(expr, pattern)) }}
{% endmacro %}

{% macro default__regex_extract(expr, pattern) %}{{ not_ported('regex_extract') }}{% endmacro %}

{% macro duckdb__regex_extract(expr, pattern) %}nullif(regexp_extract({{ expr }}, '{{ pattern }}', 1), ''){% endmacro %}

{% macro spark__regex_extract(expr, pattern) %}nullif(regexp_extract({{ expr }}, {{ spark_java_regex(pattern) }}, 1), ''){% endmacro %}

{#- Text with every match of `pattern` removed. -#}
{% macro regex_remove(expr, pattern) %}
    {{ return(adapter.dispatch('regex_remove', 'line_capi')(expr, pattern)) }}
{% endmacro %}

{% macro default__regex_remove(expr, pattern) %}{{ not_ported('regex_remove') }}{% endmacro %}

{% macro duckdb__regex_remove(expr, pattern) %}regexp_replace({{ expr }}, '{{ pattern }}', '', 'g'){% endmacro %}

{% macro spark__regex_remove(expr, pattern) %}regexp_replace({{ expr }}, {{ spark_java_regex(pattern) }}, ''){% endmacro %}

{#- Whitespace trim of the ASCII whitespace characters (space, tab, LF, VT, FF, CR). -#}
{% macro trim_ascii(expr) %}
    {{ return(adapter.dispatch('trim_ascii', 'line_capi')(expr)) }}
{% endmacro %}

{% macro default__trim_ascii(expr) %}{{ not_ported('trim_ascii') }}{% endmacro %}

{#-
    Shaped for speed (docs/bench.md): most values have nothing to trim, so the first and last
    characters are tested before trim() runs.
-#}
{% macro duckdb__trim_ascii(expr) -%}
    (case when ascii({{ expr }}) > 32 and ascii(({{ expr }})[-1]) > 32 then {{ expr }}
        else trim({{ expr }}, chr(32) || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) end)
{%- endmacro %}

{% macro spark__trim_ascii(expr) %}trim(both ' \u0009\u000A\u000B\u000C\u000D' from {{ expr }}){% endmacro %}

{#-
    Trim of every character JavaScript's trim() removes, as LINE's own tag does before hashing:
    ASCII whitespace, the no-break space, the other Unicode spaces, U+2028/U+2029 and the byte
    order mark.
-#}
{% macro trim_unicode_space(expr) %}
    {{ return(adapter.dispatch('trim_unicode_space', 'line_capi')(expr)) }}
{% endmacro %}

{% macro default__trim_unicode_space(expr) %}{{ not_ported('trim_unicode_space') }}{% endmacro %}

{% macro unicode_space_class() %}[\s\x{000B}\x{00A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}]{% endmacro %}

{#- Shaped for speed: only a text with a non-ASCII character goes through the regex. -#}
{% macro duckdb__trim_unicode_space(expr) -%}
    (case when strlen({{ expr }}) = length({{ expr }}) then {{ trim_ascii(expr) }}
        else {{ regex_remove(expr, '^' ~ unicode_space_class() ~ '+|' ~ unicode_space_class() ~ '+$') }} end)
{%- endmacro %}

{% macro spark__trim_unicode_space(expr) -%}
    {{ regex_remove(expr, '^' ~ unicode_space_class() ~ '+|' ~ unicode_space_class() ~ '+$') }}
{%- endmacro %}

{#-
    Lengths as LINE may count them: in UTF-16 code units, as Java and JavaScript do, where a
    character beyond U+FFFF (an emoji) counts two. A text of at most limit / 2 characters fits
    whatever it holds, so only longer ones are scanned.
-#}
{% macro astral_count(expr) -%}
    length({{ regex_remove(expr, '[^\\x{10000}-\\x{10FFFF}]') }})
{%- endmacro %}

{#- True when the text is at most `limit` UTF-16 code units long; null for null. -#}
{% macro fits_utf16(expr, limit) -%}
    (case when length({{ expr }}) <= {{ limit // 2 }} then true
        else length({{ expr }}) + {{ astral_count(expr) }} <= {{ limit }} end)
{%- endmacro %}

{#-
    The text cut to at most `limit` UTF-16 code units, never inside a character: its first
    limit - (characters beyond U+FFFF among its first `limit`) characters, and never fewer than
    limit / 2, which fit whatever they hold (a title of emoji is not cut to nothing).
-#}
{% macro left_utf16(expr, limit) -%}
    (case when length({{ expr }}) <= {{ limit // 2 }} then {{ expr }}
        else left({{ expr }}, greatest(
            {{ limit }} - {{ astral_count('left(' ~ expr ~ ', ' ~ limit ~ ')') }}, {{ limit // 2 }}
        )) end)
{%- endmacro %}

{#- Full-width ASCII (U+FF01..U+FF5E) and the ideographic space (U+3000) to their ASCII forms. -#}
{% macro halfwidth_ascii(expr) %}
    {{ return(adapter.dispatch('halfwidth_ascii', 'line_capi')(expr)) }}
{% endmacro %}

{% macro default__halfwidth_ascii(expr) %}{{ not_ported('halfwidth_ascii') }}{% endmacro %}

{#- Shaped for speed (docs/bench.md): only a text with a non-ASCII character goes through translate(). -#}
{% macro duckdb__halfwidth_ascii(expr) -%}
    (case when strlen({{ expr }}) = length({{ expr }}) then {{ expr }}
        else translate({{ expr }}, '{{ fullwidth_ascii_chars() }}', '{{ halfwidth_ascii_chars() | replace("'", "''") }}') end)
{%- endmacro %}

{#- Only a text with a non-ASCII character needs translate(). -#}
{% macro spark__halfwidth_ascii(expr) -%}
    (case when octet_length({{ expr }}) = length({{ expr }}) then {{ expr }}
        else translate({{ expr }}, {{ spark_text_literal(fullwidth_ascii_chars()) }}, {{ spark_text_literal(halfwidth_ascii_chars()) }}) end)
{%- endmacro %}

{#- U+3000 then U+FF01..U+FF5E, and the ASCII characters they stand for, position by position. -#}
{% macro fullwidth_ascii_chars() %}
    {{ return('　！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠'
        ~ 'ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀'
        ~ 'ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～') }}
{% endmacro %}

{% macro halfwidth_ascii_chars() %}
    {{ return(' !"#$%&\'()*+,-./0123456789:;<=>?@'
        ~ 'ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`'
        ~ 'abcdefghijklmnopqrstuvwxyz{|}~') }}
{% endmacro %}

{#- A text as a double, or null when it is not a number. -#}
{% macro to_number_or_null(expr) %}
    {{ return(adapter.dispatch('to_number_or_null', 'line_capi')(expr)) }}
{% endmacro %}

{% macro default__to_number_or_null(expr) %}{{ not_ported('to_number_or_null') }}{% endmacro %}

{% macro duckdb__to_number_or_null(expr) %}try_cast({{ expr }} as double){% endmacro %}

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
