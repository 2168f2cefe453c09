-- Sets a Snowflake account up for iot-streaming, from code: a warehouse with a
-- resource monitor, a database, the two schemas, and one role and service user for
-- each program, holding the least it needs:
--
--   IOT_LOADER       load --dest snowflake: writes the dataset's schema (creates its
--                    tables, views and stage on the first run, then owns them)
--   IOT_TRANSFORMER  dbt: reads the dataset, builds the analytics schema
--   IOT_REPORTER     the dashboard: reads both schemas, changes nothing
--
-- Idempotent: every object is created only if missing and grants are repeatable,
-- so running it twice changes nothing. None of the programs needs more than this:
-- they look up what exists before creating anything (Snowflake checks the CREATE
-- privilege even for CREATE ... IF NOT EXISTS of an object that is there), and a
-- role missing a grant gets a message naming the GRANT to run.
--
-- Run it as a user who may create roles, users, warehouses, databases and resource
-- monitors (ACCOUNTADMIN), e.g. in a Snowsight worksheet or with SnowSQL:
--   snowsql -f config/snowflake/provision.sql
-- Change the names below first; each public key is the text between the BEGIN and
-- END lines of `openssl rsa -in rsa_key.p8 -pubout` for that user's key pair.

SET warehouse_name = 'IOT_WH';
SET database_name = 'IOT';
-- load's --dataset (DATASET_NAME), and dbt's schema (DBT_SCHEMA), in that database.
SET dataset_schema = 'IOT_STREAM';
SET analytics_schema = 'IOT_STREAM_ANALYTICS';
SET loader_role = 'IOT_LOADER';
SET transformer_role = 'IOT_TRANSFORMER';
SET reporter_role = 'IOT_REPORTER';
SET loader_user = 'IOT_LOAD';
SET transformer_user = 'IOT_DBT';
SET reporter_user = 'IOT_DASHBOARD';
SET loader_public_key = 'MIIBIjANBgkqh...replace with the loader''s public key';
SET transformer_public_key = 'MIIBIjANBgkqh...replace with dbt''s public key';
SET reporter_public_key = 'MIIBIjANBgkqh...replace with the dashboard''s public key';

-- Objects: a small warehouse that suspends itself after a minute idle.
USE ROLE SYSADMIN;
CREATE WAREHOUSE IF NOT EXISTS IDENTIFIER($warehouse_name)
  WAREHOUSE_SIZE = XSMALL AUTO_SUSPEND = 60 AUTO_RESUME = TRUE INITIALLY_SUSPENDED = TRUE;
CREATE DATABASE IF NOT EXISTS IDENTIFIER($database_name);
USE DATABASE IDENTIFIER($database_name);
CREATE SCHEMA IF NOT EXISTS IDENTIFIER($dataset_schema);
CREATE SCHEMA IF NOT EXISTS IDENTIFIER($analytics_schema);

-- A ceiling on what the warehouse can spend: 30 credits a month (an XSMALL
-- warehouse uses 1 an hour it runs), administrators notified at 80%, the warehouse
-- suspended at 100%. Only account administrators may create resource monitors.
USE ROLE ACCOUNTADMIN;
CREATE RESOURCE MONITOR IF NOT EXISTS IOT_MONITOR
  WITH CREDIT_QUOTA = 30 FREQUENCY = MONTHLY START_TIMESTAMP = IMMEDIATELY
  TRIGGERS ON 80 PERCENT DO NOTIFY ON 100 PERCENT DO SUSPEND;
ALTER WAREHOUSE IDENTIFIER($warehouse_name) SET RESOURCE_MONITOR = IOT_MONITOR;

-- Roles, and a service user for each, which signs in with its key pair only.
USE ROLE SECURITYADMIN;
CREATE ROLE IF NOT EXISTS IDENTIFIER($loader_role);
CREATE ROLE IF NOT EXISTS IDENTIFIER($transformer_role);
CREATE ROLE IF NOT EXISTS IDENTIFIER($reporter_role);
GRANT ROLE IDENTIFIER($loader_role) TO ROLE SYSADMIN;
GRANT ROLE IDENTIFIER($transformer_role) TO ROLE SYSADMIN;
GRANT ROLE IDENTIFIER($reporter_role) TO ROLE SYSADMIN;
CREATE USER IF NOT EXISTS IDENTIFIER($loader_user) TYPE = SERVICE;
ALTER USER IDENTIFIER($loader_user) SET
  RSA_PUBLIC_KEY = $loader_public_key
  DEFAULT_WAREHOUSE = $warehouse_name
  DEFAULT_ROLE = $loader_role;
GRANT ROLE IDENTIFIER($loader_role) TO USER IDENTIFIER($loader_user);
CREATE USER IF NOT EXISTS IDENTIFIER($transformer_user) TYPE = SERVICE;
ALTER USER IDENTIFIER($transformer_user) SET
  RSA_PUBLIC_KEY = $transformer_public_key
  DEFAULT_WAREHOUSE = $warehouse_name
  DEFAULT_ROLE = $transformer_role;
GRANT ROLE IDENTIFIER($transformer_role) TO USER IDENTIFIER($transformer_user);
CREATE USER IF NOT EXISTS IDENTIFIER($reporter_user) TYPE = SERVICE;
ALTER USER IDENTIFIER($reporter_user) SET
  RSA_PUBLIC_KEY = $reporter_public_key
  DEFAULT_WAREHOUSE = $warehouse_name
  DEFAULT_ROLE = $reporter_role;
GRANT ROLE IDENTIFIER($reporter_role) TO USER IDENTIFIER($reporter_user);

-- The loader: run the warehouse, create and write the tables and stage (the files
-- of batches being loaded) of the dataset's schema. It owns what it creates, so it
-- needs no grant on its tables. It creates no views: trips and the rest are dbt's.
GRANT USAGE ON WAREHOUSE IDENTIFIER($warehouse_name) TO ROLE IDENTIFIER($loader_role);
GRANT USAGE ON DATABASE IDENTIFIER($database_name) TO ROLE IDENTIFIER($loader_role);
GRANT USAGE, CREATE TABLE, CREATE STAGE ON SCHEMA IDENTIFIER($dataset_schema)
  TO ROLE IDENTIFIER($loader_role);

-- The transformer (dbt): read the dataset, build in the analytics schema only.
GRANT USAGE ON WAREHOUSE IDENTIFIER($warehouse_name) TO ROLE IDENTIFIER($transformer_role);
GRANT USAGE ON DATABASE IDENTIFIER($database_name) TO ROLE IDENTIFIER($transformer_role);
GRANT USAGE ON SCHEMA IDENTIFIER($dataset_schema) TO ROLE IDENTIFIER($transformer_role);
GRANT SELECT ON ALL TABLES IN SCHEMA IDENTIFIER($dataset_schema) TO ROLE IDENTIFIER($transformer_role);
GRANT SELECT ON ALL VIEWS IN SCHEMA IDENTIFIER($dataset_schema) TO ROLE IDENTIFIER($transformer_role);
GRANT SELECT ON FUTURE TABLES IN SCHEMA IDENTIFIER($dataset_schema) TO ROLE IDENTIFIER($transformer_role);
GRANT SELECT ON FUTURE VIEWS IN SCHEMA IDENTIFIER($dataset_schema) TO ROLE IDENTIFIER($transformer_role);
GRANT USAGE, CREATE TABLE, CREATE VIEW ON SCHEMA IDENTIFIER($analytics_schema)
  TO ROLE IDENTIFIER($transformer_role);

-- The reporter (the dashboard): read both schemas, nothing else.
GRANT USAGE ON WAREHOUSE IDENTIFIER($warehouse_name) TO ROLE IDENTIFIER($reporter_role);
GRANT USAGE ON DATABASE IDENTIFIER($database_name) TO ROLE IDENTIFIER($reporter_role);
GRANT USAGE ON SCHEMA IDENTIFIER($dataset_schema) TO ROLE IDENTIFIER($reporter_role);
GRANT SELECT ON ALL TABLES IN SCHEMA IDENTIFIER($dataset_schema) TO ROLE IDENTIFIER($reporter_role);
GRANT SELECT ON ALL VIEWS IN SCHEMA IDENTIFIER($dataset_schema) TO ROLE IDENTIFIER($reporter_role);
GRANT SELECT ON FUTURE TABLES IN SCHEMA IDENTIFIER($dataset_schema) TO ROLE IDENTIFIER($reporter_role);
GRANT SELECT ON FUTURE VIEWS IN SCHEMA IDENTIFIER($dataset_schema) TO ROLE IDENTIFIER($reporter_role);
GRANT USAGE ON SCHEMA IDENTIFIER($analytics_schema) TO ROLE IDENTIFIER($reporter_role);
GRANT SELECT ON ALL TABLES IN SCHEMA IDENTIFIER($analytics_schema) TO ROLE IDENTIFIER($reporter_role);
GRANT SELECT ON ALL VIEWS IN SCHEMA IDENTIFIER($analytics_schema) TO ROLE IDENTIFIER($reporter_role);
GRANT SELECT ON FUTURE TABLES IN SCHEMA IDENTIFIER($analytics_schema) TO ROLE IDENTIFIER($reporter_role);
GRANT SELECT ON FUTURE VIEWS IN SCHEMA IDENTIFIER($analytics_schema) TO ROLE IDENTIFIER($reporter_role);
