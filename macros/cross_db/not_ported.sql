{#-
    The `default__` body of every dispatched macro of this project: an engine without its own
    body stops the run here, at compile time, instead of running another engine's SQL.
    docs/spark.md says which files to add bodies to.
-#}
{% macro not_ported(macro_name) %}
    {{ exceptions.raise_compiler_error(
        macro_name ~ " is not ported to " ~ adapter.type() ~ ": see docs/spark.md") }}
{% endmacro %}
