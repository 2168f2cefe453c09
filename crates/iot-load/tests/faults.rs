//! Request faults the real broker cannot be made to produce on cue, injected with
//! librdkafka's mock cluster: `load` must ride them out or fail loudly, and never
//! skip or double a message.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use iot_cli::Shutdown;
use iot_kafka::KafkaSettings;
use iot_load::batch::{Batch, BatchPolicy};
use iot_load::destination::DestinationError;
use iot_load::destination::duckdb::DuckDbOptions;
use iot_load::source::{KafkaSource, StartFrom};
use iot_load::{DestinationOptions, LoadError, Options, Summary};
use iot_model::{Timestamp, Topics};
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

/// A mock cluster with the five topics, and a DuckDB file to load into.
struct Mock {
    cluster: MockCluster<'static, DefaultProducerContext>,
    topics: Topics,
    dir: PathBuf,
}

impl Mock {
    fn new(partitions: i32) -> Self {
        let cluster = MockCluster::new(1).unwrap();
        let topics = Topics::default();
        for (_, topic) in topics.iter() {
            cluster.create_topic(topic, partitions, 1).unwrap();
        }
        let dir = std::env::temp_dir().join(format!("iot-load-faults-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            cluster,
            topics,
            dir,
        }
    }

    /// Sends `count` GPS readings, each with an id of its own, stamped `at`.
    fn produce(&self, count: usize, at: Timestamp) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.cluster.bootstrap_servers())
            .create()
            .unwrap();
        for i in 0..count {
            let payload = format!(
                r#"{{"schema_version":1,"id":"{}","device_id":"0d7c6b8a-1f2e-4d3c-8b7a-6f5e4d3c2b1a","trip_id":"1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d","timestamp":"2026-11-26T09:30:00.250Z","lat":52.39,"lon":13.06,"speed_kmh":48.2,"heading_deg":181.5,"accuracy_m":3.0}}"#,
                uuid::Uuid::new_v4()
            );
            let key = format!("device-{}", i % 7);
            let record = BaseRecord::to(&self.topics.gps)
                .key(&key)
                .payload(&payload)
                .timestamp(at.millis());
            producer.send(record).map_err(|(e, _)| e).unwrap();
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(10)).unwrap();
    }

    fn path(&self) -> PathBuf {
        self.dir.join("faults.duckdb")
    }

    fn options(&self) -> Options {
        Options {
            destination: DestinationOptions::DuckDb(DuckDbOptions {
                path: self.path(),
                ..DuckDbOptions::default()
            }),
            kafka: KafkaSettings {
                bootstrap_servers: self.cluster.bootstrap_servers(),
                timeout: Duration::from_secs(5),
                ..KafkaSettings::default()
            },
            batch: BatchPolicy {
                max_messages: 500,
                ..BatchPolicy::default()
            },
            progress: false,
            ..Options::default()
        }
    }

    fn load(&self, options: Options) -> Result<Summary, LoadError> {
        iot_load::run(options, &Shutdown::default())
    }

    /// GPS rows, distinct ids among them, and the sum of the stored next offsets.
    fn loaded(&self) -> (i64, i64, i64) {
        let conn = duckdb::Connection::open(self.path()).unwrap();
        conn.query_row(
            "SELECT (SELECT count(*) FROM iot_stream.gps_data), \
                    (SELECT count(DISTINCT id) FROM iot_stream.gps_data), \
                    (SELECT coalesce(sum(next_offset), 0) FROM iot_stream._kafka_offsets)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Fetch and metadata requests failing with the errors a broker gives while
/// leadership moves or a request times out: librdkafka retries them, and every
/// message is loaded once.
#[test]
fn passing_fetch_and_metadata_errors_are_ridden_out_and_each_message_loaded_once() {
    use RDKafkaRespErr::*;
    let mock = Mock::new(3);
    mock.produce(6000, Timestamp::now());
    let passing = [
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_REPLICA_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
    ];
    let errors: Vec<_> = passing.iter().copied().cycle().take(25).collect();
    mock.cluster.request_errors(RDKafkaApiKey::Fetch, &errors);
    mock.cluster
        .request_errors(RDKafkaApiKey::Metadata, &errors[..5]);

    let summary = mock
        .load(mock.options())
        .expect("passing errors are retried");
    assert_eq!(summary.load.total_rows(), 6000);
    assert_eq!(mock.loaded(), (6000, 6000, 6000));
}

/// A slow broker (every request answered 300 ms late) slows the run down and
/// changes nothing else.
#[test]
fn a_slow_broker_changes_nothing_but_the_time() {
    let mock = Mock::new(2);
    mock.produce(3000, Timestamp::now());
    mock.cluster
        .broker_round_trip_time(1, Duration::from_millis(300))
        .unwrap();
    mock.load(mock.options())
        .expect("a slow broker is still a broker");
    assert_eq!(mock.loaded(), (3000, 3000, 3000));
}

/// A fetch answered "offset out of range" (the broker deleted the messages by
/// retention, or truncated the log) must not move the reading position silently:
/// back to the earliest message would load what is already stored a second time,
/// forward would pass over messages without a record. The run stops naming the
/// partition, and the next run goes on from the stored offsets.
#[test]
fn a_fetch_out_of_range_stops_the_run_and_never_doubles_or_skips() {
    let mock = Mock::new(1);
    mock.produce(2000, Timestamp::now());
    mock.load(mock.options()).expect("the first load");
    assert_eq!(mock.loaded(), (2000, 2000, 2000));

    mock.produce(1000, Timestamp::now());
    mock.cluster.request_errors(
        RDKafkaApiKey::Fetch,
        // More than one: which partitions a fetch request carries first is librdkafka's
        // choice, and GPS must be among those the error reaches.
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE; 10],
    );
    let error = mock
        .load(mock.options())
        .expect_err("a partition whose offset is gone stops the run");
    let text = iot_cli::error_chain(&error);
    assert!(text.contains("no longer on the broker"), "{text}");
    assert_eq!(mock.loaded(), (2000, 2000, 2000), "{text}");

    mock.cluster.clear_request_errors(RDKafkaApiKey::Fetch);
    mock.load(mock.options()).expect("the run after");
    assert_eq!(mock.loaded(), (3000, 3000, 3000));
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
    let mock = Mock::new(1);
    mock.produce(20, now);
    let options = Options {
        start_from: StartFrom::Time(now.minus(Duration::from_secs(3600))),
        ..mock.options()
    };
    mock.cluster.request_errors(
        RDKafkaApiKey::ListOffsets,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 500],
    );
    let error = mock
        .load(options)
        .expect_err("a run whose offset lookups all fail cannot succeed");
    let text = iot_cli::error_chain(&error);
    assert!(text.contains("from Kafka failed"), "{text}");
    assert_eq!(error.exit_code(), iot_load::exit::FAILURE, "{text}");
    assert_eq!(mock.loaded(), (0, 0, 0), "{text}");
}

/// The destination failing while the partitions the group gives are placed (with
/// `--follow` the loader lets go of a DuckDB file between batches, and DBeaver may
/// have taken it when a rebalance comes): the run ends with the destination's own
/// error and exit status, at the first look after the rebalance, before anything is
/// read from the partitions it could not place.
#[test]
fn a_destination_failing_while_partitions_are_placed_ends_the_run_before_any_read() {
    let mock = Mock::new(1);
    mock.produce(100, Timestamp::now());
    let options = mock.options();
    let locked = || {
        Err(DestinationError::Locked {
            path: "iot_service.duckdb".into(),
            holder: " (PID 4242)".into(),
        })
    };
    let mut source = KafkaSource::open(&options, Box::new(locked), Box::new(|| ())).unwrap();
    let mut batch = Batch::default();
    let given_by = Instant::now() + Duration::from_secs(30);
    let error = loop {
        source
            .poll_into(&mut batch, &options.topics, Duration::from_millis(100))
            .unwrap();
        if let Err(error) = source.take_changes() {
            break LoadError::from(error);
        }
        assert!(
            Instant::now() < given_by,
            "the group gave no partitions in 30 s"
        );
    };
    // The loader looks at the changes after every poll, so the run ends here, before
    // a message of a partition it could not place reaches a batch.
    assert!(batch.is_empty(), "{} messages read", batch.len());
    let text = iot_cli::error_chain(&error);
    assert!(
        text.contains("in use by another program (PID 4242)"),
        "{text}"
    );
    assert_eq!(error.exit_code(), iot_load::exit::LOCKED, "{text}");
}
