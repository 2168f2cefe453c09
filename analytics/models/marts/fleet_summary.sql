{{ config(materialized='view') }}

-- One row: how many vehicles and GPS fixes the fleet has sent, each event counted
-- once however often it was sent (as stg_gps_fixes holds them: one row per id),
-- and the newest fix. A view over the loader's table, live between dbt runs, and
-- cheap on a large one: it counts distinct ids rather than deduplicating rows.
-- depends_on: {{ ref('stg_gps_fixes') }}
select
    count(distinct device_id) as vehicles,
    count(distinct id) as gps_fixes,
    max("TIMESTAMP") as latest_fix
from {{ source('iot', 'gps_data') }}
