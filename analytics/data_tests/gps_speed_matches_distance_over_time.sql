-- Physics: each GPS fix's speed is the distance from the fix before over the time
-- since it, within 2% or 1 km/h (coordinates carry 6 decimals). Returns the fixes
-- that disagree. In a routine build, of the trips just rebuilt (see tests.sql).
-- depends_on: {{ ref('stg_gps_fixes') }}
with fixes as (
    select
        event_id,
        trip_id,
        event_at,
        lat,
        lon,
        speed_kmh,
        lag(lat) over (partition by trip_id order by event_at) as previous_lat,
        lag(lon) over (partition by trip_id order by event_at) as previous_lon,
        lag(event_at) over (partition by trip_id order by event_at) as previous_at
    from ({{ staged_events('gps_data', where=recently_stored_trips('gps_data')) }}) as gps
),

steps as (
    select
        event_id,
        trip_id,
        speed_kmh,
        {{ haversine_km('previous_lat', 'previous_lon', 'lat', 'lon') }} as km,
        {{ dbt.datediff('previous_at', 'event_at', 'millisecond') }} / 3600000.0 as hours
    from fixes
    where previous_at is not null
)

select event_id, trip_id, speed_kmh, km / hours as track_speed_kmh
from steps
where hours > 0
    and abs(km / hours - speed_kmh) > greatest(1.0, 0.02 * speed_kmh)
