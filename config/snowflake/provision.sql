-- Sets a Snowflake account up for iot-streaming, from code: a warehouse, a database,
-- the schemas, a loader role and user (key-pair authentication) for `load`, and a
-- reader role for dbt and the dashboard with the least they need. Idempotent: every
-- object is created only if missing and grants are repeatable, so running it twice
-- changes nothing.
--
-- Run it as a user who may create roles, users, warehouses and databases (the
-- ACCOUNTADMIN role, or SYSADMIN and SECURITYADMIN), e.g. in a Snowsight worksheet
-- or with SnowSQL: snowsql -f config/snowflake/provision.sql
-- Change the names below first; the public key is the loader's (the text between
-- the BEGIN and END lines of `openssl rsa -in rsa_key.p8 -pubout`).

SET warehouse_name = 'IOT_WH';
SET database_name = 'IOT';
-- load's --dataset (DATASET_NAME), and dbt's schema (DBT_SCHEMA), in that database.
SET dataset_schema = 'IOT_STREAM';
SET analytics_schema = 'IOT_STREAM_ANALYTICS';
SET loader_role = 'IOT_LOADER';
SET reader_role = 'IOT_READER';
SET loader_user = 'IOT_LOAD';
SET loader_public_key = 'MIIBIjANBgkqh...replace with the loader''s public key';

-- Objects: a small warehouse that suspends itself after a minute idle.
USE ROLE SYSADMIN;
CREATE WAREHOUSE IF NOT EXISTS IDENTIFIER($warehouse_name)
  WAREHOUSE_SIZE = XSMALL AUTO_SUSPEND = 60 AUTO_RESUME = TRUE INITIALLY_SUSPENDED = TRUE;
CREATE DATABASE IF NOT EXISTS IDENTIFIER($database_name);
USE DATABASE IDENTIFIER($database_name);
CREATE SCHEMA IF NOT EXISTS IDENTIFIER($dataset_schema);
CREATE SCHEMA IF NOT EXISTS IDENTIFIER($analytics_schema);

-- Roles and the loader's user, which signs in with its key pair only.
USE ROLE SECURITYADMIN;
CREATE ROLE IF NOT EXISTS IDENTIFIER($loader_role);
CREATE ROLE IF NOT EXISTS IDENTIFIER($reader_role);
GRANT ROLE IDENTIFIER($loader_role) TO ROLE SYSADMIN;
GRANT ROLE IDENTIFIER($reader_role) TO ROLE SYSADMIN;
CREATE USER IF NOT EXISTS IDENTIFIER($loader_user) TYPE = SERVICE;
ALTER USER IDENTIFIER($loader_user) SET
  RSA_PUBLIC_KEY = $loader_public_key
  DEFAULT_WAREHOUSE = $warehouse_name
  DEFAULT_ROLE = $loader_role;
GRANT ROLE IDENTIFIER($loader_role) TO USER IDENTIFIER($loader_user);

-- The loader: run the warehouse, create and write the tables and views of the
-- dataset's schema (load creates them on its first run).
GRANT USAGE ON WAREHOUSE IDENTIFIER($warehouse_name) TO ROLE IDENTIFIER($loader_role);
GRANT USAGE ON DATABASE IDENTIFIER($database_name) TO ROLE IDENTIFIER($loader_role);
GRANT USAGE, CREATE TABLE, CREATE VIEW ON SCHEMA IDENTIFIER($dataset_schema)
  TO ROLE IDENTIFIER($loader_role);

-- The reader (dbt, the dashboard): read the dataset, build only in the analytics
-- schema.
GRANT USAGE ON WAREHOUSE IDENTIFIER($warehouse_name) TO ROLE IDENTIFIER($reader_role);
GRANT USAGE ON DATABASE IDENTIFIER($database_name) TO ROLE IDENTIFIER($reader_role);
GRANT USAGE ON SCHEMA IDENTIFIER($dataset_schema) TO ROLE IDENTIFIER($reader_role);
GRANT SELECT ON ALL TABLES IN SCHEMA IDENTIFIER($dataset_schema) TO ROLE IDENTIFIER($reader_role);
GRANT SELECT ON ALL VIEWS IN SCHEMA IDENTIFIER($dataset_schema) TO ROLE IDENTIFIER($reader_role);
GRANT SELECT ON FUTURE TABLES IN SCHEMA IDENTIFIER($dataset_schema) TO ROLE IDENTIFIER($reader_role);
GRANT SELECT ON FUTURE VIEWS IN SCHEMA IDENTIFIER($dataset_schema) TO ROLE IDENTIFIER($reader_role);
GRANT USAGE, CREATE TABLE, CREATE VIEW ON SCHEMA IDENTIFIER($analytics_schema)
  TO ROLE IDENTIFIER($reader_role);
