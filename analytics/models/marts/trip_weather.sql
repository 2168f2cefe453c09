{{ config(unique_key='trip_id') }}

-- The weather each trip met: temperatures, the worst rain and wind, and the
-- condition seen most. An incremental run rebuilds the trips with new readings.
-- depends_on: {{ ref('stg_weather_readings') }}
with readings as (
    {{ staged_events('weather_data', where=changed('weather_data', 'trip_id')) }}
)

select
    trip_id,
    any_value(device_id) as device_id,
    min(event_at) as first_reading_at,
    max(event_at) as last_reading_at,
    count(*) as readings,
    round(min(temperature_c), 1) as min_temperature_c,
    round(avg(temperature_c), 1) as avg_temperature_c,
    round(max(temperature_c), 1) as max_temperature_c,
    round(max(precipitation_mm_h), 2) as max_precipitation_mm_h,
    sum(case when precipitation_mm_h > 0 then 1 else 0 end) as wet_readings,
    round(max(wind_speed_kmh), 1) as max_wind_speed_kmh,
    max(air_quality_index) as worst_air_quality_index,
    mode(condition) as usual_condition,
    max(loaded_at) as last_loaded_at
from readings
group by trip_id
