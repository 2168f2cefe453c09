//! What the end-to-end tests share: finding the built binaries and the test broker,
//! giving each test its own topics, and reading a topic back in full.
//!
//! The tests need Apache Kafka, and the Snowflake tests an emulator.
//! `scripts/test.sh` starts both (with fakesnow as the emulator) and points
//! `IOT_TEST_BOOTSTRAP` and `IOT_TEST_SNOWFLAKE_*` at them; without them the tests fail and say so. Some
//! tests check our claims with Kafka's own tools, through `scripts/broker.sh`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use iot_kafka::KafkaSettings;
use iot_model::Topics;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// The Apache Kafka broker the tests use: `IOT_TEST_BOOTSTRAP`, else the local
/// default. Fails the test, with how to start one, if nothing answers there.
pub fn bootstrap() -> String {
    let servers = std::env::var("IOT_TEST_BOOTSTRAP")
        .unwrap_or_else(|_| iot_kafka::DEFAULT_BOOTSTRAP_SERVERS.into());
    reachable(servers, "IOT_TEST_BOOTSTRAP", "scripts/broker.sh start")
}

fn reachable(servers: String, variable: &str, start: &str) -> String {
    let settings = KafkaSettings {
        bootstrap_servers: servers.clone(),
        timeout: Duration::from_secs(5),
        ..KafkaSettings::default()
    };
    if let Err(e) = settings.check_reachable() {
        panic!(
            "these tests need a broker at {servers} (set {variable} to use another): {e}\n\
             Run the suite with `scripts/test.sh`, which starts one, or start one with \
             `{start}` and set {variable} to its address."
        );
    }
    servers
}

/// The clone the tests run in. Asked at run time (cargo sets the variable when it
/// runs a test): clones sharing one build cache can share a test binary, and the
/// path compiled into it may be another clone's, since deleted.
pub fn repo() -> PathBuf {
    let tests = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    tests
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").exists())
        .expect("the test crates sit in the repository, beside Cargo.lock")
        .to_path_buf()
}

/// Runs one of Apache Kafka's own tools (`kafka-topics`, `kafka-consumer-groups`,
/// `kafka-delete-records`, ...) against `bootstrap`, through `scripts/broker.sh`;
/// returns what it printed. Software we did not write, to check what we claim.
pub fn kafka_tool(bootstrap: &str, tool: &str, args: &[&str]) -> String {
    let script = repo().join("scripts/broker.sh");
    let output = run(
        Command::new(script)
            .arg(tool)
            .args(["--bootstrap-server", bootstrap])
            .args(args),
        Duration::from_secs(120),
    );
    assert!(
        output.status.success(),
        "{tool} {args:?} failed ({:?}); it needs Java 17+ and Apache Kafka's jars, which \
         `scripts/broker.sh install` fetches: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Deletes `topics` with `kafka-topics --delete` and waits until the broker no
/// longer lists them, so that they can be created afresh.
pub fn delete_topics(bootstrap: &str, topics: &Topics) {
    for (_, topic) in topics.iter() {
        kafka_tool(bootstrap, "kafka-topics", &["--delete", "--topic", topic]);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = kafka_tool(bootstrap, "kafka-topics", &["--list"]);
        if !topics.iter().any(|(_, t)| listed.lines().any(|l| l == t)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the topics were still listed after 60 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Deletes every message of `topic` partition `partition` below `before`, as
/// retention would, with `kafka-delete-records`.
pub fn delete_records(bootstrap: &str, topic: &str, partition: i32, before: i64) {
    let scratch = scratch_dir();
    let file = scratch.path().join("delete-records.json");
    let json = serde_json::json!({
        "version": 1,
        "partitions": [{ "topic": topic, "partition": partition, "offset": before }],
    });
    std::fs::write(&file, json.to_string()).expect("the scratch dir is writable");
    let file = file.display().to_string();
    kafka_tool(
        bootstrap,
        "kafka-delete-records",
        &["--offset-json-file", &file],
    );
}

/// Each partition's lag in consumer group `group`, as Kafka's own
/// `kafka-consumer-groups --describe` reports it: (topic, partition, lag), where a
/// lag of None is Kafka's "-" (no offset committed).
pub fn group_lag(bootstrap: &str, group: &str) -> Vec<(String, i32, Option<i64>)> {
    let described = kafka_tool(
        bootstrap,
        "kafka-consumer-groups",
        &["--describe", "--group", group],
    );
    // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
    described
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 6 && f[0] == group)
        .map(|f| {
            let partition = f[2].parse().expect("a partition number");
            (f[1].to_owned(), partition, f[5].parse().ok())
        })
        .collect()
}

/// A command for one of the workspace's binaries, built by `cargo test --workspace`
/// next to the test executables. Its environment is cleared of the variables that
/// would change its behaviour (and of `.env`, by running it in a fresh directory).
pub fn binary(name: &str) -> Command {
    let exe = std::env::current_exe().expect("the test knows its own path");
    // target/debug/deps/<test> -> target/debug/<name>
    let path: PathBuf = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(name))
        .expect("the test runs inside a target directory");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --workspace` (cargo test --workspace does)",
        path.display()
    );
    let mut command = Command::new(path);
    let scratch = process_scratch().join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir_all(&scratch).expect("temp dir is writable");
    command.current_dir(&scratch);
    for (key, _) in std::env::vars() {
        let ours = [
            "KAFKA_",
            "SOURCES__",
            "SIMULATE_",
            "ORS_",
            "OPENROUTE_",
            "RUST_LOG",
            "DESTINATION__",
            "SNOWFLAKE_",
        ]
        .iter()
        .any(|p| key.starts_with(p))
            || key.ends_with("_TOPIC");
        if ours {
            command.env_remove(key);
        }
    }
    command.env("ORS_CACHE_DIR", scratch.join("ors-cache"));
    command
}

/// Topics no other test uses.
/// Deletes `topics` from the broker at `bootstrap` when dropped: a test's topics go
/// with it, also when it fails, so a shared broker does not fill up with them.
pub struct TopicsGuard {
    bootstrap: String,
    topics: Topics,
}

/// A guard that deletes `topics` when the test ends.
pub fn remove_at_end(bootstrap: &str, topics: &Topics) -> TopicsGuard {
    TopicsGuard {
        bootstrap: bootstrap.to_owned(),
        topics: topics.clone(),
    }
}

impl Drop for TopicsGuard {
    fn drop(&mut self) {
        use rdkafka::admin::{AdminClient, AdminOptions};
        use rdkafka::client::DefaultClientContext;
        let Ok(admin) = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create::<AdminClient<DefaultClientContext>>()
        else {
            return;
        };
        let names: Vec<&str> = self.topics.iter().map(|(_, t)| t).collect();
        // Asked, not waited for: the broker deletes them in its own time. A broker
        // the test stopped does not hold the test up for long.
        let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(5)));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let _ = runtime.block_on(admin.delete_topics(&names, &options));
    }
}

pub fn unique_topics() -> Topics {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let run = &run[..12];
    Topics {
        vehicle: format!("t{run}.vehicle"),
        gps: format!("t{run}.gps"),
        traffic_camera: format!("t{run}.traffic"),
        weather: format!("t{run}.weather"),
        emergency: format!("t{run}.emergency"),
    }
}

/// The flags that point a binary at `topics`.
pub fn topic_args(topics: &Topics) -> Vec<String> {
    [
        ("--vehicle-topic", &topics.vehicle),
        ("--gps-topic", &topics.gps),
        ("--traffic-topic", &topics.traffic_camera),
        ("--weather-topic", &topics.weather),
        ("--emergency-topic", &topics.emergency),
    ]
    .into_iter()
    .flat_map(|(flag, topic)| [flag.to_owned(), topic.clone()])
    .collect()
}

/// One message as read back from Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: String,
}

/// Every message in `topic`, partition by partition in offset order.
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("iot-tests-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer config is valid");
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("topic metadata");
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0;
    let mut ends = Vec::new();
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .expect("watermarks");
        assignment
            .add_partition_offset(topic, p, Offset::Offset(low))
            .expect("partition is new to the list");
        remaining += high - low;
        ends.push((p, high));
    }
    consumer.assign(&assignment).expect("assign partitions");

    let mut records = Vec::with_capacity(remaining.max(0) as usize);
    let deadline = Instant::now() + Duration::from_secs(60);
    while records.len() < remaining as usize {
        assert!(
            Instant::now() < deadline,
            "read {} of {remaining} messages of {topic} in 60 s",
            records.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => records.push(Record {
                topic: m.topic().to_owned(),
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                payload: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            }),
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

/// The number of partitions `topic` has.
pub fn partition_count(bootstrap: &str, topic: &str) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer config is valid");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    metadata.topics()[0].partitions().len()
}

/// The names of the topics on the broker.
pub fn topic_names(bootstrap: &str) -> std::collections::BTreeSet<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer config is valid");
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("the broker's metadata");
    metadata
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .collect()
}

/// Starts a command with nothing on its input and its output piped, for [`finish`].
pub fn spawn(command: &mut Command) -> std::process::Child {
    use std::process::Stdio;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"))
}

/// Runs a command to its end, with a time limit so that a hang fails the test.
pub fn run(command: &mut Command, limit: Duration) -> Output {
    let child = spawn(command);
    wait_for(child, limit).unwrap_or_else(|| panic!("{command:?} did not finish within {limit:?}"))
}

/// Sends SIGINT (Ctrl-C) to a child.
pub fn interrupt(child: &std::process::Child) {
    let signalled = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(
        signalled.success(),
        "the child (pid {}) is gone",
        child.id()
    );
}

/// Waits for a child spawned with piped output, for at most `limit` from now, and
/// collects what it printed; kills it and fails the test if it takes longer.
pub fn finish(child: std::process::Child, limit: Duration) -> Output {
    wait_for(child, limit)
        .unwrap_or_else(|| panic!("a child process did not finish within {limit:?}"))
}

/// What a child printed, or `None`, the child killed, if it ran longer than `limit`.
fn wait_for(mut child: std::process::Child, limit: Duration) -> Option<Output> {
    let started = Instant::now();
    // Drain the pipes on threads, or a chatty child blocks on a full pipe.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Some(Output {
        status,
        stdout: stdout.map(|h| h.join().unwrap()).unwrap_or_default(),
        stderr: stderr.map(|h| h.join().unwrap()).unwrap_or_default(),
    })
}

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// The folder of this test process's programs' working folders (see [`binary`]).
static PROCESS_SCRATCH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// A folder for this test process, removed with all it holds when the process exits
/// (the test harness returns from main, whichever tests failed): for what outlives
/// a function, such as the working folder of a program a test starts.
fn process_scratch() -> &'static std::path::Path {
    extern "C" fn remove() {
        if let Some(dir) = PROCESS_SCRATCH.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    PROCESS_SCRATCH.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("iot-tests-")
            .tempdir()
            .expect("temp dir is writable")
            .keep();
        // SAFETY: `remove` is a plain function that only reads a static.
        unsafe { libc::atexit(remove) };
        dir
    })
}

/// A fresh directory for one test's files, removed with all it holds when dropped:
/// also when the test fails, as a panic unwinds through the drop.
pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("iot-tests-")
        .tempdir()
        .expect("temp dir is writable")
}

/// A valid GPS reading as JSON, its id ending in `n` (0 to 99).
pub fn gps_event(n: usize) -> String {
    format!(
        r#"{{"schema_version":1,"id":"6f1c2f9e-6a59-4f0e-9a43-2f1d1f0c9b{n:02}","device_id":"0d7c6b8a-1f2e-4d3c-8b7a-6f5e4d3c2b1a","trip_id":"1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d","timestamp":"2026-11-26T09:30:00.250Z","lat":52.39,"lon":13.06,"speed_kmh":48.2,"heading_deg":181.5,"accuracy_m":3.0}}"#
    )
}

/// A message as a test sends it: key and payload, raw bytes both, either absent.
pub type RawMessage<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Sends `messages` to partition 0 of `topic` and waits until all are stored.
pub fn produce(bootstrap: &str, topic: &str, messages: &[RawMessage]) {
    produce_to(bootstrap, topic, 0, messages);
}

/// Sends `messages` to one partition of `topic` and waits until all are stored.
pub fn produce_to(bootstrap: &str, topic: &str, partition: i32, messages: &[RawMessage]) {
    use rdkafka::producer::{BaseProducer, Producer};
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer config is valid");
    for message in messages {
        producer
            .send(record(topic, partition, message))
            .map_err(|(e, _)| e)
            .expect("the message is queued");
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("every message is delivered");
}

/// `message` as a record for one partition of `topic`.
fn record<'a>(
    topic: &'a str,
    partition: i32,
    (key, payload): &RawMessage<'a>,
) -> rdkafka::producer::BaseRecord<'a, [u8], [u8]> {
    let mut record = rdkafka::producer::BaseRecord::to(topic).partition(partition);
    if let Some(key) = key {
        record = record.key(*key);
    }
    if let Some(payload) = payload {
        record = record.payload(*payload);
    }
    record
}

/// Sends each of `transactions` (messages for partition 0 of `topic`, and whether
/// the transaction is committed or aborted) with a transactional producer, as Kafka
/// Streams, Flink or Connect with exactly-once write: every transaction ends with a
/// control record that takes an offset of its own and is never delivered to a
/// consumer, and an aborted one's messages are skipped by a read_committed consumer.
pub fn produce_transactions(bootstrap: &str, topic: &str, transactions: &[(&[RawMessage], bool)]) {
    use rdkafka::producer::{BaseProducer, Producer};
    let timeout = Duration::from_secs(30);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "transactional.id",
            format!("iot-tests-{}", uuid::Uuid::new_v4()),
        )
        .create()
        .expect("producer config is valid");
    producer
        .init_transactions(timeout)
        .expect("the broker takes transactions");
    for (messages, commit) in transactions {
        producer.begin_transaction().expect("a transaction begins");
        for message in messages.iter() {
            producer
                .send(record(topic, 0, message))
                .map_err(|(e, _)| e)
                .expect("the message is queued");
        }
        producer.flush(timeout).expect("every message is delivered");
        if *commit {
            producer
                .commit_transaction(timeout)
                .expect("the commit is taken");
        } else {
            producer
                .abort_transaction(timeout)
                .expect("the abort is taken");
        }
    }
}

/// Creates `topic` with `partitions` partitions.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let settings = KafkaSettings {
        bootstrap_servers: bootstrap.into(),
        ..KafkaSettings::default()
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime
        .block_on(settings.ensure_topics(&[topic], partitions, 1))
        .expect("the topic can be created");
}

/// Creates whichever of the five topics do not exist yet (load refuses to start on
/// a missing one), with `partitions` each.
pub fn create_topics(bootstrap: &str, topics: &Topics, partitions: i32) {
    for (_, topic) in topics.iter() {
        create_topic(bootstrap, topic, partitions);
    }
}

/// The DuckDB file, attached read-only, as the tests read it.
fn read_only(path: &std::path::Path) -> duckdb::Connection {
    let conn = duckdb::Connection::open_in_memory().expect("an in-memory database");
    conn.execute_batch(&format!(
        "ATTACH '{}' AS store (READ_ONLY); USE store;",
        path.display()
    ))
    .expect("the database file opens");
    conn
}

/// The first column of the first row of `sql`, run read-only on the DuckDB file.
pub fn query_i64(path: &std::path::Path, sql: &str) -> i64 {
    read_only(path)
        .query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Every row of a one-column text query, run read-only on the DuckDB file.
pub fn query_strings(path: &std::path::Path, sql: &str) -> Vec<String> {
    let conn = read_only(path);
    let mut statement = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    statement
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The Snowflake emulator of `scripts/test.sh`, and a second client to read it with.
pub struct SnowflakeEmulator {
    pub url: String,
    python: String,
}

/// The emulator the tests use (`IOT_TEST_SNOWFLAKE_URL`). Fails the test, with how
/// to start one, if it is not there.
pub fn snowflake() -> SnowflakeEmulator {
    let how = "Run the suite with `scripts/test.sh`, which starts one, or run \
               `scripts/snowflake-emulator.sh with cargo test --workspace` after exporting \
               IOT_TEST_SNOWFLAKE_URL=$SNOWFLAKE_EMULATOR_URL and \
               IOT_TEST_SNOWFLAKE_PYTHON=$SNOWFLAKE_EMULATOR_PYTHON.";
    let (Ok(url), Ok(python)) = (
        std::env::var("IOT_TEST_SNOWFLAKE_URL"),
        std::env::var("IOT_TEST_SNOWFLAKE_PYTHON"),
    ) else {
        panic!(
            "these tests need the Snowflake emulator: IOT_TEST_SNOWFLAKE_URL and IOT_TEST_SNOWFLAKE_PYTHON are not set. {how}"
        );
    };
    let address = url.trim_start_matches("http://").trim_end_matches('/');
    if std::net::TcpStream::connect(address).is_err() {
        panic!("nothing answers at the Snowflake emulator's address {url}. {how}");
    }
    SnowflakeEmulator { url, python }
}

impl SnowflakeEmulator {
    /// Rows of `sql`, run in `database` through the Python Snowflake connector (the
    /// client the Python pipeline used), every value as text.
    pub fn query(&self, database: &str, sql: &str) -> Vec<Vec<Option<String>>> {
        self.try_query(database, sql)
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }

    /// Rows of `sql` as [`Self::query`] gives them, or the client's error.
    pub fn try_query(&self, database: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        const CLIENT: &str = r#"
import json, sys
from urllib.parse import urlparse
import snowflake.connector
url = urlparse(sys.argv[1])
conn = snowflake.connector.connect(account="emulator", user="tests", password="tests",
    host=url.hostname, port=url.port, protocol="http", database=sys.argv[2])
rows = conn.cursor().execute(sys.argv[3]).fetchall()
def text(v):
    if v is None:
        return None
    return v.hex() if isinstance(v, (bytes, bytearray)) else str(v)
print(json.dumps([[text(v) for v in row] for row in rows]))
"#;
        let output = Command::new(&self.python)
            .args(["-c", CLIENT, &self.url, database, sql])
            .output()
            .expect("the emulator's Python runs");
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
    }

    /// Sets the emulator up for `dataset` as config/snowflake/provision.sql sets an
    /// account up (tests/python/provision.py): its schemas, and its loader,
    /// transformer and reporter roles with exactly the script's grants, which the
    /// emulator then enforces. Returns the script's names for it ("loader_role", …).
    pub fn provision(&self, dataset: &str) -> std::collections::HashMap<String, String> {
        let script = repo().join("tests/python/provision.py");
        let output = Command::new(&self.python)
            .arg(script)
            .args([&self.url, dataset])
            .output()
            .expect("the emulator's Python runs");
        assert!(
            output.status.success(),
            "provisioning {dataset}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("provision.py prints the names as JSON")
    }

    /// What the emulator has counted (GET /iot-emulator/stats): statements, bytes
    /// of SQL, uploads and their bytes, and sessions stalled at a step.
    pub fn stats(&self) -> serde_json::Value {
        use std::io::{Read, Write};
        let address = self.url.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = std::net::TcpStream::connect(address).expect("the emulator answers");
        write!(
            stream,
            "GET /iot-emulator/stats HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .expect("the request is sent");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .expect("the answer is read");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
    }

    /// The first value of `sql` as a number.
    pub fn query_i64(&self, database: &str, sql: &str) -> i64 {
        self.try_query_i64(database, sql)
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }

    /// The first value of `sql` as a number, or the client's error.
    pub fn try_query_i64(&self, database: &str, sql: &str) -> Result<i64, String> {
        let rows = self.try_query(database, sql)?;
        rows.first()
            .and_then(|row| row.first())
            .and_then(|v| v.as_deref())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no number in {rows:?}"))
    }
}

/// `simulate --speed max` into `topics` at `bootstrap`, with `args`, not started.
pub fn simulate_command(bootstrap: &str, topics: &Topics, args: &[&str]) -> Command {
    let mut command = binary("simulate");
    command
        .args(["--speed", "max", "--bootstrap-servers", bootstrap])
        .args(topic_args(topics))
        .args(args);
    command
}

/// Runs simulate at full speed into `topics`; returns the number of events sent.
pub fn simulate(bootstrap: &str, topics: &Topics, args: &[&str]) -> u64 {
    let output = run(
        &mut simulate_command(bootstrap, topics, args),
        Duration::from_secs(300),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "simulate failed: {stderr}");
    topics
        .iter()
        .map(|(_, t)| read_topic(bootstrap, t).len() as u64)
        .sum()
}

/// The standard error of a run that must have succeeded.
pub fn assert_success(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "the run failed ({:?}): {stderr}",
        output.status
    );
    stderr
}

/// How a crash loop went: runs killed, and of those, runs killed after they had
/// made progress of their own (committed a batch, delivered an event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kills {
    pub killed: usize,
    pub after_progress: usize,
}

/// Runs `command` `times` times, each killed with SIGKILL (no chance to clean up)
/// at a random point after it made progress of its own: once `progress` (read
/// from outside the process: a group's committed offsets, a topic's end) has
/// moved past where it stood when the run started, or after `patience` if it
/// never does, then a random pause of up to `spread`, so that the kill lands
/// anywhere in the batches after that (fetching, decoding, writing, committing).
/// Calls `after` once each is gone. The kill schedule's seed is printed, and
/// `IOT_KILL_SEED` replays it.
pub fn kill_at_random_points(
    mut command: impl FnMut() -> Command,
    times: usize,
    mut progress: impl FnMut() -> i64,
    spread: Duration,
    mut after: impl FnMut(),
) -> Kills {
    use std::process::Stdio;
    let patience = Duration::from_secs(60);
    let mut seed = std::env::var("IOT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos() as u64
        });
    eprintln!("kill schedule: IOT_KILL_SEED={seed} replays it");
    let mut kills = Kills {
        killed: 0,
        after_progress: 0,
    };
    for _ in 0..times {
        let before = progress();
        let started = Instant::now();
        let mut child = command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        let progressed = loop {
            if progress() > before {
                break true;
            }
            let exited = child.try_wait().expect("the child can be polled").is_some();
            if exited || started.elapsed() > patience {
                break false;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // A linear congruential step: enough randomness for when to strike.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(spread.mul_f64((seed >> 11) as f64 / (1u64 << 53) as f64));
        if child.try_wait().expect("the child can be polled").is_none() {
            child.kill().expect("the child can be killed");
            kills.killed += 1;
            kills.after_progress += usize::from(progressed);
        }
        child.wait().expect("the child is reaped");
        after();
    }
    kills
}

/// The offsets consumer group `group` has committed, summed over `topics`: how far
/// its loaders got, read without touching their destination. One consumer, asked
/// again at each call: a crash loop asks every few milliseconds.
pub fn group_progress(bootstrap: &str, group: &str, topics: &Topics) -> impl FnMut() -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer config is valid");
    let mut list = TopicPartitionList::new();
    for (_, topic) in topics.iter() {
        for partition in 0..partition_count(bootstrap, topic) as i32 {
            list.add_partition(topic, partition);
        }
    }
    move || {
        let committed = consumer
            .committed_offsets(list.clone(), Duration::from_secs(10))
            .expect("the group's offsets can be read");
        committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(offset) => offset,
                _ => 0,
            })
            .sum()
    }
}

/// Waits until `done` says so, asking every 50 ms; fails the test naming `what`
/// if that takes longer than `limit`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The messages `topics` hold, summed over their partitions' ends; a partition
/// whose leader is not known yet (a topic just created) counts as empty.
pub fn topic_ends(bootstrap: &str, topics: &Topics) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer config is valid");
    topics
        .iter()
        .map(|(_, topic)| {
            (0..partition_count(bootstrap, topic) as i32)
                .map(|partition| {
                    consumer
                        .fetch_watermarks(topic, partition, Duration::from_secs(10))
                        .map_or(0, |(_, high)| high)
                })
                .sum::<i64>()
        })
        .sum()
}

/// SQL counting the (topic, partition, offset) triples stored more than once across
/// the event tables and the dead letters of `schema`. The same text runs on DuckDB
/// and Snowflake.
pub fn duplicated_offsets_sql(schema: &str) -> String {
    let union = iot_model::EventKind::ALL
        .iter()
        .map(|k| {
            format!(
                "SELECT _kafka_topic AS t, _kafka_partition AS p, _kafka_offset AS o FROM {schema}.{}",
                k.default_topic()
            )
        })
        .chain(std::iter::once(format!(
            "SELECT topic, \"partition\", \"offset\" FROM {schema}._dead_letters"
        )))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    format!(
        "SELECT count(*) FROM (SELECT t, p, o FROM ({union}) GROUP BY t, p, o HAVING count(*) > 1)"
    )
}

/// An Apache Kafka broker of one test's own, on a free port with its data in a
/// folder of its own, that the test may kill with SIGKILL and start again on the
/// same data: a broker outage, for real. Stopped when dropped.
pub struct PrivateBroker {
    pub bootstrap: String,
    port: u16,
    dir: PathBuf,
    /// Holds `dir`; removed after the broker is stopped.
    _scratch: tempfile::TempDir,
}

impl PrivateBroker {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let scratch = scratch_dir();
        let broker = Self {
            bootstrap: format!("127.0.0.1:{port}"),
            port,
            dir: scratch.path().join("broker"),
            _scratch: scratch,
        };
        broker.start_again();
        broker
    }

    fn script(&self, command: &str) -> Output {
        let script = repo().join("scripts/broker.sh");
        run(
            Command::new(script)
                .arg(command)
                .env("BROKER", "kafka")
                .env("BROKER_PORT", self.port.to_string())
                .env("BROKER_DIR", &self.dir),
            Duration::from_secs(180),
        )
    }

    /// Starts the broker (again, on the data it had). A killed broker's connections
    /// leave its port in TIME_WAIT for up to a minute, and Kafka then refuses to
    /// bind it ("Address already in use"): that is waited out.
    pub fn start_again(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let output = self.script("start");
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.status.success() {
                return;
            }
            assert!(
                stderr.contains("Address already in use") && Instant::now() < deadline,
                "the private Apache Kafka broker did not start; it needs Java 17+ and the \
                 jars `scripts/broker.sh install` fetches: {stderr}"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// Kills the broker with SIGKILL: no shutdown, no flush.
    pub fn kill(&self) {
        let pid =
            std::fs::read_to_string(self.dir.join("kafka.pid")).expect("the broker's pid file");
        let killed = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .expect("kill runs");
        assert!(
            killed.success(),
            "the broker (pid {}) could not be killed",
            pid.trim()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.script("status").status.success() {
            assert!(Instant::now() < deadline, "the killed broker still answers");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.script("stop");
    }
}
