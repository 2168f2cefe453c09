-- The analytical views `load` keeps in every Snowflake dataset, the same three as
-- in DuckDB (README, "Views"). Snowflake has no INTERVAL column type, so durations
-- are seconds here (`duration_s`, `time_to_resolve_s`). Read by the loader at build
-- time; `load` replaces {schema} with the quoted dataset name and sends one
-- statement per request.

CREATE OR REPLACE VIEW {schema}."LATEST_POSITIONS" AS
SELECT device_id, trip_id, "TIMESTAMP", lat, lon, speed_kmh, heading_deg
FROM {schema}."GPS_DATA"
QUALIFY ROW_NUMBER() OVER (PARTITION BY device_id ORDER BY "TIMESTAMP" DESC, _kafka_offset DESC) = 1;

CREATE OR REPLACE VIEW {schema}."TRIPS" AS
SELECT trip_id,
       ANY_VALUE(device_id) AS device_id,
       ANY_VALUE(make) AS make,
       ANY_VALUE(model) AS model,
       ANY_VALUE(route_source) AS route_source,
       MIN("TIMESTAMP") AS started_at,
       MAX("TIMESTAMP") AS ended_at,
       DATEDIFF('millisecond', MIN("TIMESTAMP"), MAX("TIMESTAMP")) / 1000 AS duration_s,
       ROUND(MAX(odometer_km) - MIN(odometer_km), 2) AS distance_km,
       ROUND((MAX(odometer_km) - MIN(odometer_km))
             / NULLIF(DATEDIFF('millisecond', MIN("TIMESTAMP"), MAX("TIMESTAMP")) / 3600000, 0), 1) AS avg_speed_kmh,
       MAX(speed_kmh) AS max_speed_kmh,
       COUNT(*) AS readings
FROM {schema}."VEHICLE_DATA"
GROUP BY trip_id;

CREATE OR REPLACE VIEW {schema}."INCIDENTS" AS
SELECT incident_id,
       ANY_VALUE(incident_type) AS incident_type,
       ANY_VALUE(device_id) AS device_id,
       ANY_VALUE(description) AS description,
       ANY_VALUE(lat) AS lat,
       ANY_VALUE(lon) AS lon,
       MIN(IFF(status = 'active', "TIMESTAMP", NULL)) AS reported_at,
       MIN(IFF(status = 'resolved', "TIMESTAMP", NULL)) AS resolved_at,
       DATEDIFF('millisecond', MIN(IFF(status = 'active', "TIMESTAMP", NULL)),
                MIN(IFF(status = 'resolved', "TIMESTAMP", NULL))) / 1000 AS time_to_resolve_s,
       IFF(BOOLOR_AGG(status = 'resolved'), 'resolved', 'active') AS status
FROM {schema}."EMERGENCY_DATA"
GROUP BY incident_id;
