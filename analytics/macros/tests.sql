{#- The event table each staging model reads. -#}
{% macro staged_table(model_name) %}
    {%- do return({
        'stg_vehicle_readings': 'vehicle_data',
        'stg_gps_fixes': 'gps_data',
        'stg_camera_passes': 'traffic_data',
        'stg_weather_readings': 'weather_data',
        'stg_emergency_reports': 'emergency_data',
    }.get(model_name)) -%}
{% endmacro %}


{#- A condition on an event table's raw rows keeping the trips that got rows in
    the last `lookback_minutes` before its newest stored row: what an incremental
    build has just rebuilt. In a full refresh, or with the var test_all, every
    trip. -#}
{% macro recently_stored_trips(table) %}
{%- if flags.FULL_REFRESH or var('test_all', false) -%}
1 = 1
{%- else -%}
trip_id in (
    select trip_id from {{ source('iot', table) }}
    where _loaded_at >= (
        select {{ dbt.dateadd('minute', -var('lookback_minutes'), 'max(_loaded_at)') }}
        from {{ source('iot', table) }}
    )
)
{%- endif -%}
{% endmacro %}


{#- What a test of a staging model reads: in a routine build, the events of the
    trips just rebuilt, deduplicated within them (staged_events), rather than the
    whole history through the view; in a full refresh or with test_all, the view.
    A build then holds the DuckDB file for the new rows' sake only (see
    scripts/bench-dbt.sh). Any other relation is tested as dbt does, `where`
    config included. -#}
{% macro get_where_subquery(relation) -%}
    {%- set table = staged_table(relation.identifier | lower) -%}
    {%- if table and not (flags.FULL_REFRESH or var('test_all', false)) -%}
        {%- set recent -%}
            ({{ staged_events(table, where=recently_stored_trips(table)) }}) dbt_subquery
        {%- endset -%}
        {%- do return(recent) -%}
    {%- endif -%}
    {%- do return(dbt.default__get_where_subquery(relation)) -%}
{%- endmacro %}
