//! How rows reach Snowflake: as files. Each table's rows of a batch become one
//! Snappy-compressed Parquet file, uploaded to the dataset's internal stage
//! (`_LOAD_STAGE`) and loaded with `COPY INTO` the table, naming every column
//! (metadata columns included) and casting each from the file, in the transaction
//! that moves the offsets.
//!
//! Why Parquet: Snowflake loads it column by column without parsing text rows,
//! numbers and doubles travel in binary, JSON columns as text that `PARSE_JSON`
//! reads once, and the same Arrow batches the DuckDB destination appends are
//! written out as they are (ids, timestamps and bytes as text: see
//! `destination::arrow`).
//!
//! Every attempt at a batch uploads under a folder of its own
//! (`<run>/<attempt>/<table>/`), so a retried batch never meets files or load
//! history of an attempt that was rolled back. `COPY … PURGE = TRUE` removes the
//! files it loaded; a run that dies between `PUT` and `COPY` leaves its folder
//! behind, and later runs remove such folders once they are an hour old.

use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::sql::{SnowflakeSql, literal, table};
use crate::destination::arrow::{self, Flavor};
use crate::destination::ddl::Dialect;
use crate::tables::{ColumnType, Context, Table};

/// The stage `load` keeps in each dataset's schema.
pub const STAGE: &str = "_load_stage";

/// Files older than this in the stage belong to attempts that died before loading
/// them: no batch takes an hour between its `PUT` and its `COPY`.
pub const ABANDONED_AFTER_SECONDS: u64 = 3600;

/// The seconds since the Unix epoch, as attempt folders are named.
pub fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A new attempt's folder: its start (seconds since the epoch, which the sweep
/// reads) and a random id, `1796520000-6f1c…`.
pub fn attempt_folder() -> String {
    format!("{}-{}", now_seconds(), uuid::Uuid::new_v4().simple())
}

/// The attempt folders among the stage's `files` (as LIST names them: the stage
/// in lower case, then the folder) older than [`ABANDONED_AFTER_SECONDS`] at `now`.
pub fn abandoned(files: &[Option<String>], now: u64) -> Vec<String> {
    let mut folders: Vec<String> = files
        .iter()
        .flatten()
        .filter_map(|name| name.split('/').nth(1))
        .filter(|folder| {
            folder
                .split('-')
                .next()
                .and_then(|seconds| seconds.parse::<u64>().ok())
                .is_some_and(|started| started + ABANDONED_AFTER_SECONDS < now)
        })
        .map(str::to_owned)
        .collect();
    folders.sort();
    folders.dedup();
    folders
}

/// The stage, if it exists.
pub fn stage_query(database: &str, schema: &str) -> String {
    format!(
        "SHOW STAGES LIKE {} IN SCHEMA {}.{}",
        literal(&STAGE.to_uppercase()),
        SnowflakeSql::ident(database),
        SnowflakeSql::ident(schema)
    )
}

/// Creates the stage: internal, server-side encryption only, so that clients
/// upload files as they are (see `upload.rs`).
pub fn create_stage(schema: &str) -> String {
    format!(
        "CREATE STAGE IF NOT EXISTS {} ENCRYPTION = (TYPE = 'SNOWFLAKE_SSE') \
         COMMENT = 'iot-streaming load: files of batches being loaded'",
        table(schema, STAGE)
    )
}

/// `@"SCHEMA"."_LOAD_STAGE"/folder/`.
pub fn location(schema: &str, folder: &str) -> String {
    format!("@{}/{}", table(schema, STAGE), folder)
}

/// The files of the stage, with when each was last changed.
pub fn list(schema: &str) -> String {
    format!("LIST @{}", table(schema, STAGE))
}

/// Removes a folder of the stage.
pub fn remove(schema: &str, folder: &str) -> String {
    format!("REMOVE {}", location(schema, folder))
}

/// How a column's value in the file becomes the column's type. The file's column
/// is named as declared (lower case), so its key is quoted as it is.
fn cast(name: &str, ty: ColumnType) -> String {
    let value = format!("$1:\"{}\"", name.replace('"', "\"\""));
    match ty {
        ColumnType::Json => format!("PARSE_JSON({value})"),
        ColumnType::Bytes => format!("TO_BINARY({value}::VARCHAR, 'HEX')"),
        ty => format!("{value}::{}", SnowflakeSql::sql_type(ty)),
    }
}

/// Loads the files of `folder` into `table`: every column named, each cast from
/// the file's column of the same name; the files are removed once loaded.
pub fn copy_into<R>(schema: &str, table: &Table<R>, folder: &str) -> String {
    let layout = table.layout();
    let casts: Vec<String> = layout
        .columns
        .iter()
        .map(|(name, ty)| cast(name, *ty))
        .collect();
    format!(
        "COPY INTO {} ({}) FROM (SELECT {} FROM {}) FILE_FORMAT = (TYPE = PARQUET) PURGE = TRUE",
        SnowflakeSql::table(schema, table.name),
        SnowflakeSql::column_list(&layout),
        casts.join(", "),
        location(schema, folder)
    )
}

/// `records` of `table` as a Parquet file.
pub fn parquet<R>(
    table: &Table<R>,
    records: &[R],
    context: &Context,
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let batch = arrow::record_batch(table, records, context, Flavor::Text)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut file = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut file, batch.schema(), Some(properties))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Batch;
    use crate::rows::KafkaMeta;
    use crate::tables::tests::one_of_each;
    use crate::tables::{self, DEAD_LETTERS};
    use iot_model::{EventKind, Topics};

    #[test]
    fn a_copy_names_every_column_and_casts_each_from_the_file() {
        let gps = tables::events(EventKind::Gps);
        let copy = copy_into("iot_stream", gps, "run/attempt/gps_data/");
        assert!(
            copy.starts_with("COPY INTO \"IOT_STREAM\".\"GPS_DATA\" (\"SCHEMA_VERSION\", \"ID\""),
            "{copy}"
        );
        assert_eq!(
            copy.matches("$1:").count(),
            gps.columns.len(),
            "every column: {copy}"
        );
        assert!(copy.contains("$1:\"timestamp\"::TIMESTAMP_TZ"), "{copy}");
        assert!(
            copy.contains("$1:\"_kafka_offset\"::NUMBER(38,0)"),
            "{copy}"
        );
        assert!(
            copy.contains("FROM @\"IOT_STREAM\".\"_LOAD_STAGE\"/run/attempt/gps_data/)"),
            "{copy}"
        );
        assert!(copy.ends_with("PURGE = TRUE"), "{copy}");
        let dead = copy_into("s", &DEAD_LETTERS, "f/");
        assert!(
            dead.contains("TO_BINARY($1:\"payload\"::VARCHAR, 'HEX')"),
            "{dead}"
        );
    }

    #[test]
    fn only_attempts_older_than_an_hour_are_abandoned() {
        let now = 1_800_000_000;
        let files = [
            Some(format!(
                "_load_stage/{}-aa/gps_data/gps_data.parquet",
                now - 7200
            )),
            Some(format!(
                "_load_stage/{}-aa/vehicle_data/vehicle_data.parquet",
                now - 7200
            )),
            Some(format!(
                "_load_stage/{}-bb/gps_data/gps_data.parquet",
                now - 60
            )),
            Some("_load_stage/not-ours/file".to_owned()),
            None,
        ];
        assert_eq!(abandoned(&files, now), [format!("{}-aa", now - 7200)]);
        let folder = attempt_folder();
        assert!(abandoned(&[Some(format!("s/{folder}/t/f"))], now_seconds()).is_empty());
    }

    #[test]
    fn a_tables_rows_make_one_parquet_file_with_every_column() {
        let topics = Topics::default();
        let mut batch = Batch::default();
        for (offset, event) in one_of_each().into_iter().enumerate() {
            let mut json = Vec::new();
            event.encode(&mut json);
            let kafka = KafkaMeta {
                partition: 0,
                offset: offset as i64,
                timestamp: None,
                key: None,
            };
            batch.add(&topics, topics.name(event.kind()), kafka, Some(&json));
        }
        let context = Context::new("load").on("gps");
        let gps = tables::events(EventKind::Gps);
        let file = parquet(gps, batch.rows(EventKind::Gps), &context).unwrap();
        assert_eq!(&file[..4], b"PAR1");
        let reader = parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(file))
            .expect("a Parquet file");
        use parquet::file::reader::FileReader;
        let metadata = reader.metadata();
        assert_eq!(metadata.file_metadata().num_rows(), 1);
        let names: Vec<&str> = metadata
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name())
            .collect();
        let declared: Vec<&str> = gps.columns.iter().map(|c| c.name).collect();
        assert_eq!(names, declared);
    }
}
