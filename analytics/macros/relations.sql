{#- On DuckDB, names without the database part: dbt would write the file's name
    (its catalog, "iot_service") into every view, and a view must keep working
    in a file that is copied or renamed, and in whatever a client attaches it
    as. Snowflake keeps the full name. -#}
{% macro ref(model_name) %}
    {%- set relation = builtins.ref(model_name) -%}
    {%- if target.type == 'duckdb' -%}
        {%- do return(relation.include(database=false)) -%}
    {%- endif -%}
    {%- do return(relation) -%}
{% endmacro %}

{% macro source(source_name, table_name) %}
    {%- set relation = builtins.source(source_name, table_name) -%}
    {%- if target.type == 'duckdb' -%}
        {%- do return(relation.include(database=false)) -%}
    {%- endif -%}
    {%- do return(relation) -%}
{% endmacro %}
