//! Request faults the real broker cannot be made to produce on cue, injected with
//! librdkafka's mock cluster: `load` must ride them out or fail loudly, and never
//! skip or double a message.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use iot_kafka::KafkaSettings;
use iot_load::DestinationError;
use iot_load::StartFrom;
use iot_load::batch::{Batch, BatchPolicy};
use iot_load::destination::duckdb::DuckDbOptions;
use iot_load::source::KafkaSource;
use iot_load::{DestinationOptions, LoadError, Options, Summary};
use iot_model::{Timestamp, Topics};
use iot_runtime::Shutdown;
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

impl Mock {
    /// The offset `group` committed for GPS partition 0, if any.
    fn group_offset(&self, group: &str) -> Option<i64> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::{Offset, TopicPartitionList};
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.cluster.bootstrap_servers())
            .set("group.id", group)
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.topics.gps, 0);
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(5))
            .ok()?;
        match committed.elements().first()?.offset() {
            Offset::Offset(offset) => Some(offset),
            _ => None,
        }
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
/// changes nothing else. The same messages are loaded first at full speed, into
/// a file of their own, to show that the delay struck.
#[test]
fn a_slow_broker_changes_nothing_but_the_time() {
    let mock = Mock::new(2);
    mock.produce(3000, Timestamp::now());
    let fast = Options {
        destination: DestinationOptions::DuckDb(DuckDbOptions {
            path: mock.dir.join("fast.duckdb"),
            ..DuckDbOptions::default()
        }),
        group_id: "fast".into(),
        ..mock.options()
    };
    let started = Instant::now();
    let summary = mock.load(fast).expect("a broker at full speed");
    let at_full_speed = started.elapsed();
    assert_eq!(summary.load.total_rows(), 3000);

    mock.cluster
        .broker_round_trip_time(1, Duration::from_millis(300))
        .unwrap();
    let started = Instant::now();
    mock.load(mock.options())
        .expect("a slow broker is still a broker");
    let slowed = started.elapsed();
    assert_eq!(mock.loaded(), (3000, 3000, 3000));
    assert!(
        slowed > at_full_speed + Duration::from_secs(1),
        "the delay did not strike: {slowed:?} slowed, {at_full_speed:?} at full speed"
    );
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
    let text = iot_runtime::error_chain(&error);
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
    let text = iot_runtime::error_chain(&error);
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
    let mut source = KafkaSource::open(&options, Box::new(locked), Box::new(|| true)).unwrap();
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
    let text = iot_runtime::error_chain(&error);
    assert!(
        text.contains("in use by another program (PID 4242)"),
        "{text}"
    );
    assert_eq!(error.exit_code(), iot_load::exit::LOCKED, "{text}");
}

/// A `--follow` loader that the group gives nothing for longer than a cron run
/// would wait (here the coordinator refuses every join, as when other members keep
/// the group rebalancing) is a standby: it stays in the group, and loads once it
/// is given a share.
#[test]
fn a_follower_the_group_keeps_waiting_stays_as_a_standby() {
    let mock = Mock::new(1);
    mock.produce(100, Timestamp::now());
    let refused = vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS; 100_000];
    mock.cluster
        .request_errors(RDKafkaApiKey::JoinGroup, &refused);
    let options = Options {
        follow: true,
        ..mock.options()
    };
    let group = options.group_id.clone();
    // How long a cron run waits for its first partitions before it gives up.
    let cron_gives_up = Duration::from_secs(30) + iot_load::source::SESSION_TIMEOUT;
    let shutdown = Shutdown::default();
    std::thread::scope(|scope| {
        let loader = scope.spawn(|| iot_load::run(options, &shutdown));
        let started = Instant::now();
        while started.elapsed() < cron_gives_up + Duration::from_secs(5) {
            assert!(
                !loader.is_finished(),
                "the follower gave up after {:?}",
                started.elapsed()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // The loader's own file is not opened while it runs: the group's offsets
        // say how far it got.
        assert_eq!(
            mock.group_offset(&group),
            None,
            "the joins were refused throughout"
        );

        mock.cluster.clear_request_errors(RDKafkaApiKey::JoinGroup);
        let given_by = Instant::now() + Duration::from_secs(60);
        while mock.group_offset(&group) != Some(100) {
            assert!(
                Instant::now() < given_by,
                "nothing loaded 60 s after the joins passed"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        shutdown.request();
        let summary = loader.join().unwrap().expect("the follower ends cleanly");
        assert_eq!(summary.load.total_rows(), 100);
    });
    assert_eq!(mock.loaded(), (100, 100, 100));
}
