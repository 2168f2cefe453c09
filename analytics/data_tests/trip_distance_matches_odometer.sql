-- Physics: the length of a trip's GPS track agrees with its odometer within 1%.
-- Returns the trips that disagree (dbt fails the test if there are any). In a
-- routine build, of the trips just rebuilt (see tests.sql).
-- depends_on: {{ ref('stg_gps_fixes') }}
with fixes as (
    select
        trip_id,
        lat,
        lon,
        lag(lat) over (partition by trip_id order by event_at) as previous_lat,
        lag(lon) over (partition by trip_id order by event_at) as previous_lon
    from ({{ staged_events('gps_data', where=recently_stored_trips('gps_data')) }}) as gps
),

tracks as (
    select trip_id, sum({{ haversine_km('previous_lat', 'previous_lon', 'lat', 'lon') }}) as track_km
    from fixes
    where previous_lat is not null
    group by trip_id
)

select t.trip_id, t.distance_km, k.track_km
from {{ ref('trips') }} as t
inner join tracks as k on k.trip_id = t.trip_id
where t.distance_km > 0.5
    and abs(k.track_km - t.distance_km) > 0.01 * t.distance_km
