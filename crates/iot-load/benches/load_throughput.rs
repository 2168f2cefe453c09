//! Throughput of `load`, printed as figures: `cargo bench -p iot-load`, or
//! `scripts/bench.sh`, which also starts a local broker.
//!
//! 1. decode, then append: JSON payloads decoded and validated into batches, then
//!    the batches appended to a DuckDB file, one transaction each, each half timed
//!    on its own; no broker involved;
//! 2. end to end: a backlog produced to the broker at `IOT_BENCH_BOOTSTRAP`, then
//!    loaded by a child process, whose peak RSS is reported too; then the ceiling:
//!    the rows load wrote, every column of them, written to NDJSON files and
//!    ingested by DuckDB's own JSON reader into a copy of the same tables, on the
//!    same machine with the same broker running, and load's rate as a share of it.
//!    Skipped when unset.
//!    `IOT_BENCH_BACKLOG` sets the sizes, comma-separated (default 1,000,000 and
//!    5,000,000), `IOT_BENCH_REPEAT` how many times each is loaded (default 3: the
//!    median ratio is reported). `IOT_BENCH_KAFKA_SETTINGS` (`key=value,…`) passes
//!    librdkafka settings to the loader, to try them.

use std::sync::Arc;
use std::time::Instant;

use iot_kafka::KafkaSettings;
use iot_load::batch::{Batch, BatchPolicy};
use iot_load::destination::Destination;
use iot_load::destination::duckdb::{DuckDb, DuckDbOptions};
use iot_load::{DestinationOptions, Options};
use iot_load::{LoadRecord, StoredOffsets};
use iot_model::{EventKind, Timestamp, Topics};
use iot_runtime::Shutdown;
use iot_simulate::fleet::VehicleSpec;
use iot_simulate::geo::GeoPoint;
use iot_simulate::sink::{KafkaSink, Sink};
use iot_simulate::{Simulation, SimulationOptions, Trip, offline};
use rand::SeedableRng;

/// `n` encoded events as (kind, key, payload), from a fleet of 500.
fn payloads(n: usize) -> Vec<(EventKind, String, Vec<u8>)> {
    let route = offline::route(
        GeoPoint {
            lat: 52.3906,
            lon: 13.0645,
        },
        GeoPoint {
            lat: 51.3397,
            lon: 12.3731,
        },
    )
    .expect("two distinct places");
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let trip = Trip {
        route: Arc::new(route),
        vehicles: (0..500).map(|_| VehicleSpec::random(&mut rng)).collect(),
    };
    let options = SimulationOptions {
        stagger: std::time::Duration::from_secs(1),
        seed: 1,
        ..SimulationOptions::default()
    };
    let mut simulation = Simulation::new(&[trip], options);
    let mut events = Vec::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n && simulation.step(&mut events) {
        for e in events.drain(..) {
            let mut payload = Vec::with_capacity(400);
            e.encode(&mut payload);
            out.push((e.kind(), e.device_id().to_string(), payload));
        }
    }
    out.truncate(n);
    out
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// CPU time (user + system) this process has used, from /proc on Linux.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // Linux reports in USER_HZ, which is 100 on every mainstream configuration.
    Some(ticks / 100.0)
}

fn main() {
    if let Ok(bootstrap) = std::env::var("IOT_BENCH_CHILD_LOAD") {
        let file = std::env::var_os("IOT_BENCH_CHILD_FILE").expect("the file to load into");
        return load_child(&bootstrap, file.as_ref());
    }
    let full = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    decode_and_append(if full { 1_000_000 } else { 20_000 });
    match std::env::var("IOT_BENCH_BOOTSTRAP") {
        Ok(bootstrap) => {
            let sizes: Vec<usize> = match std::env::var("IOT_BENCH_BACKLOG") {
                Ok(text) => text
                    .split(',')
                    .map(|size| {
                        size.trim()
                            .parse()
                            .expect("IOT_BENCH_BACKLOG: sizes, comma-separated")
                    })
                    .collect(),
                Err(_) if full => vec![1_000_000, 5_000_000],
                Err(_) => vec![10_000],
            };
            for backlog in sizes {
                runtime.block_on(end_to_end(&bootstrap, backlog, full));
            }
        }
        Err(_) => println!(
            "end to end             skipped: set IOT_BENCH_BOOTSTRAP to a broker (scripts/bench.sh does)"
        ),
    }
}

/// The loader's two halves apart, each on one core: decoding messages into
/// batches, then writing those batches to a DuckDB file, each batch a transaction.
/// With the writer thread, end to end can reach the slower of the two at best.
fn decode_and_append(n: usize) {
    let input = payloads(n);
    let dir = std::env::temp_dir().join(format!("load-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let topics = Topics::default();
    let policy = BatchPolicy::default();

    let started = Instant::now();
    let mut batches = vec![Batch::default()];
    for (offset, (kind, key, payload)) in input.iter().enumerate() {
        let meta = iot_load::rows::KafkaMeta {
            partition: 0,
            offset: offset as i64,
            timestamp: None,
            key: Some(iot_load::rows::Key::Text(key.clone())),
        };
        let batch = batches.last_mut().expect("one batch at least");
        batch.add(&topics, topics.name(*kind), meta, Some(payload));
        if batch.len() >= policy.max_messages {
            batches.push(Batch::default());
        }
    }
    let decoding = started.elapsed().as_secs_f64();
    drop(input);

    let mut duck = DuckDb::new(
        DuckDbOptions {
            path: dir.join("bench.duckdb"),
            ..DuckDbOptions::default()
        },
        topics.clone(),
    );
    let mut load = LoadRecord::new("bench".into(), Timestamp::now());
    let mut expected = StoredOffsets::new();
    let started = Instant::now();
    for batch in &batches {
        load.add(batch);
        duck.commit(batch, &expected, &load)
            .expect("the bench file is writable");
        expected.extend(batch.ranges().iter().map(|(k, r)| (k.clone(), r.next)));
    }
    // Closing checkpoints what the last batches left in the write-ahead log: part
    // of the work, so part of the time.
    duck.release();
    let writing = started.elapsed().as_secs_f64();
    println!(
        "decode                 {:>10.0} rows/s   ({n} messages decoded and validated in {decoding:.2} s)",
        n as f64 / decoding,
    );
    println!(
        "append to DuckDB       {:>10.0} rows/s   ({} rows in {writing:.2} s, batches of {}; decode + append one after the other: {:.0} rows/s)",
        n as f64 / writing,
        load.total_rows(),
        policy.max_messages,
        n as f64 / (decoding + writing)
    );
    let _ = std::fs::remove_dir_all(dir);
}

async fn end_to_end(bootstrap: &str, backlog: usize, full: bool) {
    let settings = KafkaSettings {
        bootstrap_servers: bootstrap.into(),
        ..KafkaSettings::default()
    };
    let topics = bench_topics();
    let names: Vec<&str> = topics.iter().map(|(_, t)| t).collect();
    settings
        .ensure_topics(&names, 3, 1)
        .await
        .expect("topics can be created");
    let events = payloads(backlog);
    let mut sink = Sink::Kafka(KafkaSink::new(&settings).expect("producer settings"));
    for (kind, key, payload) in &events {
        sink.send(topics.name(*kind), key.as_bytes(), payload)
            .await
            .expect("Kafka sends do not fail with I/O errors");
    }
    let report = sink
        .finish()
        .await
        .expect("finishing a Kafka sink cannot fail");
    assert_eq!(
        report.failed, 0,
        "the backlog was not fully produced: {:?}",
        report.first_error
    );

    drop(events);
    wait_for_group_coordinator(bootstrap, &topics.vehicle);

    // This machine's speed varies by up to a third from one minute to the next:
    // each run is paired with a ceiling measured right after it, and the ratio
    // reported is the median of the runs'.
    let repeat = repeats(full);
    let mut ours = Vec::new();
    let mut ratios = Vec::new();
    for run in 1..=repeat {
        let (rate, ceiling) = load_and_ceiling(bootstrap, &topics, backlog, run);
        ours.push(rate);
        ratios.push(rate / ceiling);
    }
    let ours = median(&mut ours);
    if repeat > 1 {
        println!(
            "median of {repeat}           {ours:>10.0} rows/s   (load reaches {:.2}x of DuckDB's own reader, the median of the runs' ratios)",
            median(&mut ratios)
        );
    }

    // The ceiling: the same messages read by a consumer that does nothing but count.
    match count_messages(bootstrap, &topics) {
        Ok((counted, secs)) => {
            let plain = counted as f64 / secs;
            println!(
                "plain consumer         {plain:>10.0} msgs/s   ({counted} messages counted in {secs:.2} s; load reaches {:.0}% of it)",
                ours / plain * 100.0
            );
        }
        Err(stalled) => println!("plain consumer         stalled: {stalled}"),
    }
}

/// How many times the backlog is loaded: `IOT_BENCH_REPEAT`, default 3 (once when
/// not run as a bench).
fn repeats(full: bool) -> usize {
    std::env::var("IOT_BENCH_REPEAT").map_or(if full { 3 } else { 1 }, |text| {
        text.trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .expect("IOT_BENCH_REPEAT: a count of runs, 1 or more")
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Loads the backlog of `topics` into a fresh file with a child `load`, from the
/// earliest message (a file that never loaded starts there), then measures DuckDB's
/// own reader on the rows it wrote; prints both. Returns load's rate and the ceiling.
fn load_and_ceiling(bootstrap: &str, topics: &Topics, backlog: usize, run: usize) -> (f64, f64) {
    // Load in a child process, so that its peak memory is the loader's alone.
    let dir = std::env::temp_dir().join(format!("load-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bench.duckdb");
    let started = Instant::now();
    let output = std::process::Command::new(std::env::current_exe().expect("own path"))
        .env("IOT_BENCH_CHILD_LOAD", bootstrap)
        .env("IOT_BENCH_CHILD_FILE", &file)
        .env(
            "IOT_BENCH_TOPIC_PREFIX",
            &topics.vehicle[..topics.vehicle.len() - "vehicle".len()],
        )
        .output()
        .expect("the bench can run itself");
    let secs = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the bench's load failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ours = backlog as f64 / secs;
    println!(
        "end to end, run {run}       {ours:>10.0} rows/s   ({backlog} messages from broker {bootstrap} in {secs:.2} s; {})",
        text.trim()
    );

    let (rows, secs, cpu) = duckdb_reader(&file, &dir);
    let _ = std::fs::remove_dir_all(dir);
    let ceiling = rows as f64 / secs;
    println!(
        "DuckDB's own reader    {ceiling:>10.0} rows/s   ({rows} rows from NDJSON files in {secs:.2} s, {cpu:.1} s of CPU; load reaches {:.2}x of it)",
        ours / ceiling
    );
    (ours, ceiling)
}

/// The ceiling load is measured against: the rows load wrote to `file`, every
/// column (the Kafka metadata and load id too, which DuckDB would otherwise leave
/// NULL and so store for nothing), written to one NDJSON file per table (not timed),
/// then ingested by DuckDB's own JSON reader, on all its threads and with its
/// default settings, into a fresh file in `dir` holding the same tables: one
/// transaction per table, then a checkpoint, as a load ends. Returns the rows
/// ingested, the seconds taken and the CPU seconds used (the bench does nothing
/// else meanwhile).
fn duckdb_reader(file: &std::path::Path, dir: &std::path::Path) -> (u64, f64, f64) {
    let schema = "iot_stream";
    let tables = EventKind::ALL.map(|kind| iot_load::tables::events(kind).name);
    let ndjson = |table: &str| dir.join(format!("{table}.ndjson"));
    let written = duckdb::Connection::open(file).expect("load's file");
    for table in tables {
        let sql = format!(
            "COPY (SELECT * FROM {schema}.{table}) TO '{}' (FORMAT json)",
            ndjson(table).display()
        );
        written.execute_batch(&sql).expect("load's rows as NDJSON");
    }
    drop(written);

    let conn = duckdb::Connection::open(dir.join("reader.duckdb")).expect("a DuckDB file");
    iot_load::destination::duckdb::schema::prepare(&conn, schema).expect("the tables");
    let started = Instant::now();
    let cpu_before = cpu_seconds().unwrap_or(f64::NAN);
    for table in tables {
        let sql = format!(
            "BEGIN; INSERT INTO {schema}.{table} BY NAME SELECT * FROM read_json('{}', format = 'newline_delimited'); COMMIT;",
            ndjson(table).display()
        );
        conn.execute_batch(&sql).expect("DuckDB reads its NDJSON");
    }
    conn.execute_batch("CHECKPOINT").expect("a checkpoint");
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds().unwrap_or(f64::NAN) - cpu_before;
    let rows = tables
        .iter()
        .map(|table| {
            conn.query_row(&format!("SELECT count(*) FROM {schema}.{table}"), [], |r| {
                r.get::<_, u64>(0)
            })
            .expect("a count")
        })
        .sum();
    (rows, secs, cpu)
}

/// Asks a group's committed offsets, which waits until the broker has a group
/// coordinator. A fresh broker creates its offsets topic on the first such question,
/// which takes it about 3 s: once in a cluster's life, so not part of the figure.
fn wait_for_group_coordinator(bootstrap: &str, topic: &str) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "load-bench-warm-up")
        .create()
        .expect("consumer settings are valid");
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, 0);
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    // Answered "coordinator not available" until the offsets topic is ready.
    while let Err(e) = consumer.committed_offsets(list.clone(), std::time::Duration::from_secs(5)) {
        assert!(
            Instant::now() < deadline,
            "no group coordinator within 30 s: {e}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Reads every partition of `topics` from the start to its end with a bare
/// rdkafka consumer, counting messages and nothing more; says so if the broker
/// stops delivering for 10 s.
fn count_messages(bootstrap: &str, topics: &Topics) -> Result<(usize, f64), String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("plain-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer settings are valid");
    let timeout = std::time::Duration::from_secs(10);
    let started = Instant::now();
    let mut assignment = TopicPartitionList::new();
    let mut total = 0;
    for (_, topic) in topics.iter() {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .expect("topic metadata");
        for p in metadata.topics()[0].partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), timeout)
                .expect("watermarks");
            total += (high - low) as usize;
            // From the beginning by name, whatever the low watermark said.
            assignment
                .add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("a new partition");
        }
    }
    consumer.assign(&assignment).expect("assignment");
    let mut counted = 0;
    while counted < total {
        match consumer.poll(std::time::Duration::from_secs(10)) {
            Some(Ok(_)) => counted += 1,
            Some(Err(e)) => panic!("the plain consumer failed: {e}"),
            None => return Err(format!("nothing for 10 s with {counted} of {total} read")),
        }
    }
    Ok((counted, started.elapsed().as_secs_f64()))
}

fn bench_topics() -> Topics {
    let prefix = std::env::var("IOT_BENCH_TOPIC_PREFIX").unwrap_or_else(|_| {
        format!(
            "loadbench-{}-",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    });
    Topics {
        vehicle: format!("{prefix}vehicle"),
        gps: format!("{prefix}gps"),
        traffic_camera: format!("{prefix}traffic"),
        weather: format!("{prefix}weather"),
        emergency: format!("{prefix}emergency"),
    }
}

fn load_child(bootstrap: &str, file: &std::path::Path) {
    // Its log (RUST_LOG, as load's) goes to the parent, which shows it only on failure.
    iot_runtime::init_logging();
    let options = Options {
        destination: DestinationOptions::DuckDb(DuckDbOptions {
            path: file.to_path_buf(),
            ..DuckDbOptions::default()
        }),
        kafka: KafkaSettings {
            bootstrap_servers: bootstrap.into(),
            // librdkafka settings to try, as `key=value,key=value`.
            extra: std::env::var("IOT_BENCH_KAFKA_SETTINGS")
                .ok()
                .filter(|text| !text.is_empty())
                .map(|text| iot_kafka::parse_settings(&text).expect("IOT_BENCH_KAFKA_SETTINGS"))
                .map_or_else(Vec::new, |list| list.0),
            ..KafkaSettings::default()
        },
        topics: bench_topics(),
        ..Options::default()
    };
    let summary = iot_load::run(options, &Shutdown::default()).expect("the bench load succeeds");
    println!(
        "{} rows loaded, peak RSS {:.0} MB, {:.1} s of CPU",
        summary.load.total_rows(),
        peak_rss_mb().unwrap_or(f64::NAN),
        cpu_seconds().unwrap_or(f64::NAN)
    );
}
