{{ config(unique_key='trip_id') }}

-- One row per trip: the one definition of a trip, which the dashboard and `load
-- --show-trips` read. An incremental run rebuilds the trips that got new readings.
-- depends_on: {{ ref('stg_vehicle_readings') }}
with readings as (
    {{ staged_events('vehicle_data', where=changed('vehicle_data', 'trip_id')) }}
),

trips as (
    select
        trip_id,
        any_value(device_id) as device_id,
        any_value(make) as make,
        any_value(model) as model,
        any_value(fuel_type) as fuel_type,
        any_value(route_source) as route_source,
        min(event_at) as started_at,
        max(event_at) as ended_at,
        {{ dbt.datediff('min(event_at)', 'max(event_at)', 'millisecond') }} / 1000.0 as duration_s,
        max(odometer_km) - min(odometer_km) as distance_km,
        max(speed_kmh) as max_speed_kmh,
        -- The level at the first reading less the level at the last.
        min_by(fuel_level_pct, event_at) - max_by(fuel_level_pct, event_at) as fuel_used_pct,
        count(*) as readings,
        max(loaded_at) as last_loaded_at
    from readings
    group by trip_id
)

select
    trip_id,
    device_id,
    make,
    model,
    fuel_type,
    case when fuel_type = 'electric' then 'battery' else 'tank' end as energy_store,
    route_source,
    started_at,
    ended_at,
    duration_s,
    round(distance_km, 3) as distance_km,
    round(distance_km / nullif(duration_s / 3600.0, 0), 1) as avg_speed_kmh,
    max_speed_kmh,
    round(fuel_used_pct, 2) as fuel_used_pct,
    readings,
    last_loaded_at
from trips
