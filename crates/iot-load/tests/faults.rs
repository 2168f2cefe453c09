//! Request faults the real broker cannot be made to produce on cue, injected with
//! librdkafka's mock cluster: `load` must fail loudly or get it right, never skip.

use std::time::Duration;

use iot_cli::Shutdown;
use iot_kafka::KafkaSettings;
use iot_load::destination::duckdb::DuckDbOptions;
use iot_load::source::StartFrom;
use iot_load::{DestinationOptions, Options};
use iot_model::{Timestamp, Topics};
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

const GPS: &str = r#"{"schema_version":1,"id":"6f1c2f9e-6a59-4f0e-9a43-2f1d1f0c9b11","device_id":"0d7c6b8a-1f2e-4d3c-8b7a-6f5e4d3c2b1a","trip_id":"1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d","timestamp":"2026-11-26T09:30:00.250Z","lat":52.39,"lon":13.06,"speed_kmh":48.2,"heading_deg":181.5,"accuracy_m":3.0}"#;

fn gps_rows(path: &std::path::Path) -> i64 {
    let conn = duckdb::Connection::open(path).unwrap();
    conn.query_row("SELECT count(*) FROM iot_stream.gps_data", [], |r| r.get(0))
        .unwrap()
}

fn stored_offsets(path: &std::path::Path) -> i64 {
    let conn = duckdb::Connection::open(path).unwrap();
    conn.query_row("SELECT count(*) FROM iot_stream._kafka_offsets", [], |r| {
        r.get(0)
    })
    .unwrap()
}

/// `--start-from` asks the broker (ListOffsets) where each partition reaches that
/// time. When those requests keep failing, the run must stop with an error that
/// names Kafka, having stored no rows and no offsets: never start a partition
/// somewhere else and pass over what it did not read. (The mock cluster answers a
/// lookup by time with "no such message" even when there is one, so the path where
/// the lookup succeeds is tested against Apache Kafka, in
/// `tests/tests/load.rs::start_from_skips_what_came_before_that_time`.)
#[test]
fn start_from_fails_loudly_when_list_offsets_keeps_failing() {
    let now = Timestamp::now();
    let mock = MockCluster::new(1).unwrap();
    let topics = Topics::default();
    for (_, topic) in topics.iter() {
        mock.create_topic(topic, 1, 1).unwrap();
    }
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .unwrap();
    for _ in 0..20 {
        let record: BaseRecord<'_, [u8], str> = BaseRecord::to(&topics.gps)
            .payload(GPS)
            .timestamp(now.millis());
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    let dir = std::env::temp_dir().join(format!("iot-load-faults-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("faults.duckdb");
    let options = Options {
        destination: DestinationOptions::DuckDb(DuckDbOptions {
            path: path.clone(),
            ..DuckDbOptions::default()
        }),
        kafka: KafkaSettings {
            bootstrap_servers: mock.bootstrap_servers(),
            timeout: Duration::from_secs(3),
            ..KafkaSettings::default()
        },
        start_from: StartFrom::Time(now.minus(Duration::from_secs(3600))),
        ..Options::default()
    };
    mock.request_errors(
        RDKafkaApiKey::ListOffsets,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 500],
    );
    let error = iot_load::run(options, &Shutdown::default())
        .expect_err("a run whose offset lookups all fail cannot succeed");
    let text = iot_cli::error_chain(&error);
    assert!(text.contains("from Kafka failed"), "{text}");
    assert_eq!(error.exit_code(), iot_load::exit::FAILURE, "{text}");
    assert_eq!((gps_rows(&path), stored_offsets(&path)), (0, 0), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}
