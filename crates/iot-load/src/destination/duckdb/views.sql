-- The analytical views `load` keeps in every DuckDB dataset, documented in the
-- README. Read by the loader at build time; before running it, `load` replaces
-- {schema} with the quoted dataset name, and {trip_duration} and
-- {time_to_resolve} with INTERVAL expressions (see schema.rs: they depend on
-- whether DuckDB's ICU extension is loaded).

-- Each vehicle's fix with the latest timestamp (the later message on a tie), taken
-- with max_by rather than a window's row_number: no sort of the whole table, a
-- third of the time over millions of fixes.
CREATE OR REPLACE VIEW {schema}.latest_positions AS
SELECT device_id, latest.trip_id, latest."timestamp", latest.lat, latest.lon,
       latest.speed_kmh, latest.heading_deg
FROM (
    SELECT device_id,
           max_by(struct_pack(trip_id, "timestamp", lat, lon, speed_kmh, heading_deg),
                  ("timestamp", _kafka_offset)) AS latest
    FROM {schema}.gps_data
    GROUP BY device_id
);

CREATE OR REPLACE VIEW {schema}.trips AS
SELECT trip_id,
       any_value(device_id) AS device_id,
       any_value(make) AS make,
       any_value(model) AS model,
       any_value(route_source) AS route_source,
       min("timestamp") AS started_at,
       max("timestamp") AS ended_at,
       {trip_duration} AS duration,
       round(max(odometer_km) - min(odometer_km), 2) AS distance_km,
       round((max(odometer_km) - min(odometer_km))
             / nullif(epoch({trip_duration}) / 3600, 0), 1) AS avg_speed_kmh,
       max(speed_kmh) AS max_speed_kmh,
       count(*) AS readings
FROM {schema}.vehicle_data
GROUP BY trip_id;

CREATE OR REPLACE VIEW {schema}.incidents AS
SELECT incident_id,
       any_value(incident_type) AS incident_type,
       any_value(device_id) AS device_id,
       any_value(description) AS description,
       any_value(lat) AS lat,
       any_value(lon) AS lon,
       min("timestamp") FILTER (WHERE status = 'active') AS reported_at,
       min("timestamp") FILTER (WHERE status = 'resolved') AS resolved_at,
       {time_to_resolve} AS time_to_resolve,
       CASE WHEN bool_or(status = 'resolved') THEN 'resolved' ELSE 'active' END AS status
FROM {schema}.emergency_data
GROUP BY incident_id;
