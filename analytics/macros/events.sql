{#- The columns each event table's staging model keeps, beside those every event
    has (see staged_events). -#}
{% macro event_columns(table) %}
    {%- do return({
        'vehicle_data': ['lat', 'lon', 'speed_kmh', 'heading_deg', 'odometer_km',
            'fuel_level_pct', 'make', 'model', 'year as model_year', 'fuel_type',
            'route_source'],
        'gps_data': ['lat', 'lon', 'speed_kmh', 'heading_deg', 'accuracy_m'],
        'traffic_data': ['cast(camera_id as varchar) as camera_id', 'lat', 'lon',
            'measured_speed_kmh', 'speed_limit_kmh'],
        'weather_data': ['lat', 'lon', 'temperature_c', 'humidity_pct',
            'precipitation_mm_h', 'wind_speed_kmh', 'wind_direction_deg',
            'air_quality_index', 'condition'],
        'emergency_data': ['cast(incident_id as varchar) as incident_id', 'incident_type',
            'status', 'lat', 'lon', 'description'],
    }[table]) -%}
{% endmacro %}


{#- An event table as the models read it: ids as text (DuckDB keeps UUIDs,
    Snowflake text), `timestamp` as event_at, the message's place in Kafka kept
    for lineage, when the loader stored it (what incremental marts pick new rows
    by), and one row per event id: an event sent again (a simulate rerun with the
    same seed sends the same ids) is kept as first loaded; rows stored before
    `_loaded_at` existed read NULL there and count as loaded first.

    `where`, a condition on the raw table's columns, keeps only some trips (or
    vehicles, incidents) before duplicates are sought: every copy of an event
    belongs to the same trip, and an incremental mart then reads the trips it
    rebuilds, not the whole history. Duplicates are sought within a trip, so a
    condition on trip_id reaches below the window, also from a view.
    `"TIMESTAMP"` quoted in capitals names the column in both (DuckDB matches
    names regardless of case, Snowflake stores them upper-case). -#}
{% macro staged_events(table, where=none) %}
select
    cast(id as varchar) as event_id,
    cast(device_id as varchar) as device_id,
    cast(trip_id as varchar) as trip_id,
    "TIMESTAMP" as event_at,
    {% for column in event_columns(table) -%}
    {{ column }},
    {% endfor -%}
    _kafka_timestamp as kafka_at,
    _kafka_partition as kafka_partition,
    _kafka_offset as kafka_offset,
    _load_id as load_id,
    _loaded_at as loaded_at
from {{ source('iot', table) }}
{% if where -%}
where {{ where }}
{% endif -%}
qualify row_number() over (
    partition by trip_id, id order by _loaded_at nulls first, _kafka_partition, _kafka_offset
) = 1
{% endmacro %}


{#- In an incremental run, a condition keeping the rows the loader stored after
    the newest row the model was last built from, less `lookback_minutes` for
    transactions that were still committing then; in a full build, none. The
    loader's clock, not the producer's: late, out-of-order and timestamp-less
    events are picked up whenever they are stored. -#}
{% macro since_last_build(column='_loaded_at') %}
{%- if is_incremental() -%}
{{ column }} > (
    select coalesce(
        {{ dbt.dateadd('minute', -var('lookback_minutes'), 'max(last_loaded_at)') }},
        cast('1970-01-01' as timestamp)
    )
    from {{ this }}
)
{%- else -%}
1 = 1
{%- endif -%}
{% endmacro %}


{#- A condition on the raw `table` keeping the rows of the `key`s (trips,
    incidents, vehicles) that got events since the last build, all of them, so
    that an incremental run rebuilds those keys whole; in a full build, none. The
    keys are found in the raw table by when rows were stored, which a scan skips
    most of the table for. -#}
{% macro changed(table, key) %}
{%- if is_incremental() -%}
{{ key }} in (select {{ key }} from {{ source('iot', table) }} where {{ since_last_build() }})
{%- else -%}
1 = 1
{%- endif -%}
{% endmacro %}


{#- Great-circle distance in km between two points given in degrees. -#}
{% macro haversine_km(lat1, lon1, lat2, lon2) %}
2 * 6371.0088 * asin(sqrt(
    power(sin(radians({{ lat2 }} - {{ lat1 }}) / 2), 2)
    + cos(radians({{ lat1 }})) * cos(radians({{ lat2 }}))
      * power(sin(radians({{ lon2 }} - {{ lon1 }}) / 2), 2)
))
{% endmacro %}
