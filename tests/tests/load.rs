//! `load` end to end: the real binaries, a real broker and a real DuckDB file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use iot_model::{EventKind, Topics};
use iot_tests::{
    PrivateBroker, RawMessage, assert_success, binary, bootstrap, create_topic, create_topics,
    delete_records, delete_topics, duplicated_offsets_sql, finish, group_lag, group_progress,
    kill_at_random_points, produce, produce_to, produce_transactions, query_i64, query_strings,
    read_topic, run, scratch_dir, simulate, simulate_command, spawn, topic_args, topic_ends,
    unique_topics, wait_until,
};

const LIMIT: Duration = Duration::from_secs(300);

/// A broker, a set of topics, a consumer group and a database file of one test's own.
struct Fixture {
    bootstrap: String,
    topics: Topics,
    group: String,
    db: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        Self::on(bootstrap())
    }

    fn on(bootstrap: String) -> Self {
        Self {
            bootstrap,
            topics: unique_topics(),
            group: format!("iot-load-{}", uuid::Uuid::new_v4()),
            db: scratch_dir().join("iot_service.duckdb"),
        }
    }

    /// Runs simulate into this fixture's topics; returns the events sent.
    fn simulate(&self, args: &[&str]) -> u64 {
        simulate(&self.bootstrap, &self.topics, args)
    }

    fn load_command(&self, args: &[&str]) -> std::process::Command {
        let mut command = binary("load");
        command
            .args(["--dest", "duckdb", "--bootstrap-servers", &self.bootstrap])
            .args(["--group-id", &self.group])
            .arg("--duckdb-file")
            .arg(&self.db)
            .args(topic_args(&self.topics))
            .args(args);
        command
    }

    fn load(&self, args: &[&str]) -> Output {
        run(&mut self.load_command(args), LIMIT)
    }

    /// The partitions of this fixture's topics that hold messages.
    fn partitions_with_messages(&self) -> BTreeSet<(String, i32)> {
        self.topics
            .iter()
            .flat_map(|(_, topic)| read_topic(&self.bootstrap, topic))
            .map(|r| (r.topic, r.partition))
            .collect()
    }

    fn count(&self, table: &str) -> i64 {
        self.aggregate(table, "count(*)")
    }

    /// One aggregate over a table.
    fn aggregate(&self, table: &str, aggregate: &str) -> i64 {
        query_i64(
            &self.db,
            &format!("SELECT {aggregate} FROM iot_stream.{table}"),
        )
    }

    /// Distinct event ids over the five tables.
    fn distinct_ids(&self) -> i64 {
        EventKind::ALL
            .iter()
            .map(|k| self.aggregate(k.default_topic(), "count(DISTINCT id)"))
            .sum()
    }

    fn rows(&self) -> i64 {
        EventKind::ALL
            .iter()
            .map(|k| self.count(k.default_topic()))
            .sum()
    }
}

/// Each (topic, partition, offset) once across tables and dead letters.
fn assert_each_offset_once(db: &Path) {
    let duplicates = query_i64(db, &duplicated_offsets_sql("iot_stream"));
    assert_eq!(duplicates, 0, "some messages were loaded twice");
}

/// The trips are dbt's model: on a file dbt has not built, `--show-trips` says
/// how to build it, loads nothing, and exits 4. (The report itself is tested
/// where dbt runs: analytics/tests/test_pipeline.py.)
#[test]
fn show_trips_on_a_file_dbt_has_not_built_says_how_to_build_it() {
    let f = Fixture::new();
    f.simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Leipzig",
        "--vehicles",
        "1",
        "--max-events",
        "50",
    ]);
    assert_success(&f.load(&[]));
    let before = f.rows();
    let output = f.load(&["--show-trips"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("has no table iot_stream_analytics.trips")
            && stderr.contains("scripts/dbt.sh build"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(f.rows(), before);
}

#[test]
fn loads_everything_once_and_a_second_run_adds_nothing() {
    let f = Fixture::new();
    let produced = f.simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Leipzig",
        "--vehicles",
        "3",
        "--duration",
        "15m",
        "--seed",
        "3",
    ]);

    let stderr = assert_success(&f.load(&[]));
    assert!(stderr.contains(&format!("{produced} rows")), "{stderr}");
    for (kind, topic) in f.topics.iter() {
        let in_topic = read_topic(&f.bootstrap, topic).len() as i64;
        assert_eq!(f.count(kind.default_topic()), in_topic, "{topic}");
    }
    assert_eq!(f.rows() as u64, produced);
    assert_each_offset_once(&f.db);

    // Kafka's own tool agrees: the group has read every partition to its end.
    let lag = group_lag(&f.bootstrap, &f.group);
    let with_messages = f.partitions_with_messages();
    let caught_up: BTreeSet<(String, i32)> = lag
        .iter()
        .filter(|(_, _, lag)| *lag == Some(0))
        .map(|(t, p, _)| (t.clone(), *p))
        .collect();
    assert_eq!(caught_up, with_messages, "kafka-consumer-groups: {lag:?}");

    let again = assert_success(&f.load(&[]));
    assert!(
        again.contains("Done load") && again.contains(": 0 rows"),
        "{again}"
    );
    assert_eq!(f.rows() as u64, produced);
    assert_eq!(
        query_i64(
            &f.db,
            "SELECT count(*) FROM iot_stream._loads WHERE status = 'completed'"
        ),
        2
    );
    assert_eq!(
        query_i64(&f.db, "SELECT sum(rows_loaded) FROM iot_stream._loads") as u64,
        produced
    );

    // Trips, incidents and latest positions are dbt's models, not views of load's.
    assert_eq!(
        query_i64(
            &f.db,
            "SELECT count(*) FROM duckdb_views() WHERE schema_name = 'iot_stream'"
        ),
        0
    );
}

#[test]
fn malformed_messages_land_in_dead_letters_and_the_rest_loads() {
    let f = Fixture::new();
    create_topics(&f.bootstrap, &f.topics, 1);
    let good = r#"{"schema_version":1,"id":"6f1c2f9e-6a59-4f0e-9a43-2f1d1f0c9b11","device_id":"0d7c6b8a-1f2e-4d3c-8b7a-6f5e4d3c2b1a","trip_id":"1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d","timestamp":"2026-11-26T09:30:00.250Z","lat":52.39,"lon":13.06,"speed_kmh":48.2,"heading_deg":181.5,"accuracy_m":3.0}"#;
    let extended = good.replacen('{', r#"{"satellites":9,"#, 1);
    let impossible = good.replace("52.39", "123.0");
    let missing = good.replace(r#""lon":13.06,"#, "");
    let mistyped = good.replace("48.2", r#""fast""#);
    // Keys are bytes: the simulator's are text, another producer's may not be.
    let binary_key: &[u8] = b"\x00\xff device";
    let messages: Vec<RawMessage> = vec![
        (Some(b"k"), Some(good.as_bytes())),             // 0
        (Some(binary_key), Some(b"\xff\xfe not utf-8")), // 1
        (Some(b"k"), Some(b"{\"not\": json")),           // 2
        (Some(b"k"), Some(impossible.as_bytes())),       // 3
        (Some(b"k"), Some(extended.as_bytes())),         // 4
        (Some(b"k"), Some(missing.as_bytes())),          // 5
        (Some(b"k"), Some(mistyped.as_bytes())),         // 6
        (None, None),                                    // 7
        (Some(binary_key), Some(good.as_bytes())),       // 8
    ];
    produce(&f.bootstrap, &f.topics.gps, &messages);

    let stderr = assert_success(&f.load(&[]));
    let summary_line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("dead letters"))
        .unwrap_or_default();
    assert_eq!(
        summary_line.split_whitespace().last(),
        Some("6"),
        "{stderr}"
    );
    assert_eq!(f.count("gps_data"), 3);
    let dead = query_strings(
        &f.db,
        "SELECT \"offset\"::VARCHAR || ' ' || error FROM iot_stream._dead_letters ORDER BY \"offset\"",
    );
    let offsets: Vec<&str> = dead.iter().map(|d| d.split(' ').next().unwrap()).collect();
    assert_eq!(offsets, ["1", "2", "3", "5", "6", "7"], "{dead:#?}");
    assert!(dead[0].contains("not UTF-8"));
    assert!(dead[2].contains("`lat` is 123"));
    assert!(dead[3].contains("missing field `lon`"));
    assert!(dead[4].contains("invalid type"));
    assert!(dead[5].contains("no payload"));
    assert_eq!(
        query_i64(
            &f.db,
            "SELECT count(*) FROM iot_stream._dead_letters WHERE \"offset\" = 1 AND payload = '\\xFF\\xFE not utf-8'::BLOB"
        ),
        1,
        "the raw payload is kept"
    );
    for (table, key, bytes) in [
        ("gps_data", "_kafka_key", "_kafka_key_bytes"),
        ("_dead_letters", "\"key\"", "key_bytes"),
    ] {
        assert_eq!(
            query_strings(
                &f.db,
                &format!(
                    "SELECT coalesce({key}, '-') || ' ' || coalesce(hex({bytes}), '-') \
                     FROM iot_stream.{table} WHERE {key} IS NOT NULL OR {bytes} IS NOT NULL \
                     ORDER BY 1"
                ),
            )
            .into_iter()
            .collect::<BTreeSet<_>>(),
            BTreeSet::from(["- 00FF20646576696365".to_owned(), "k -".to_owned()]),
            "{table}: a text key as text, any other byte for byte"
        );
    }
    let extra = query_strings(
        &f.db,
        "SELECT _extra FROM iot_stream.gps_data WHERE _extra IS NOT NULL",
    );
    assert_eq!(extra, [r#"{"satellites":9}"#]);
    assert_eq!(
        query_i64(
            &f.db,
            "SELECT (_extra->>'satellites')::BIGINT FROM iot_stream.gps_data WHERE _extra IS NOT NULL"
        ),
        9,
        "_extra is DuckDB JSON"
    );
    assert_each_offset_once(&f.db);

    // The next run starts after them: nothing is loaded twice, nothing stuck.
    assert_success(&f.load(&[]));
    assert_eq!(
        query_i64(&f.db, "SELECT count(*) FROM iot_stream._dead_letters"),
        6
    );
    assert_eq!(f.count("gps_data"), 3);
}

/// The crash loop: `load` killed with SIGKILL at random points (while fetching,
/// decoding, appending or committing) again and again over a backlog of some
/// 150,000 messages, checked after every kill, then run to the end: every message
/// once. `IOT_CRASH_KILLS` sets how many runs are started.
#[test]
fn killed_loads_resume_exactly() {
    let runs = crash_runs();
    let vehicles = (runs * 2).max(40).to_string();
    let f = Fixture::new();
    let produced = f.simulate(&[
        "--from",
        "Berlin",
        "--to",
        "Hamburg",
        "--vehicles",
        &vehicles,
        "--stagger",
        "5s",
        "--duration",
        "30m",
        "--seed",
        "5",
    ]);
    assert!(
        produced > 100_000,
        "{produced} messages is too small a backlog"
    );

    let kills = kill_at_random_points(
        // A fixed member id, as a cron job would use: each run takes the killed
        // run's partitions back at once instead of waiting for its session to end.
        || f.load_command(&["--batch-size", "1000", "--instance-id", "crash-loop"]),
        runs,
        group_progress(&f.bootstrap, &f.group, &f.topics),
        Duration::from_millis(50),
        || {
            if f.db.exists() {
                assert_each_offset_once(&f.db);
            }
        },
    );
    assert!(
        kills.killed >= runs * 3 / 4 && kills.after_progress == kills.killed,
        "{kills:?} of {runs} loads: each killed one should have committed a batch first"
    );

    assert_success(&f.load(&["--instance-id", "crash-loop"]));
    assert_each_offset_once(&f.db);
    assert_eq!(f.rows() as u64, produced, "messages are missing");
    assert_eq!(
        query_i64(&f.db, "SELECT count(*) FROM iot_stream._dead_letters"),
        0
    );
}

#[test]
fn a_locked_file_exits_75_and_nothing_is_lost() {
    let f = Fixture::new();
    let first = f.simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Berlin",
        "--vehicles",
        "1",
        "--max-events",
        "200",
    ]);
    assert_success(&f.load(&[]));
    let second = f.simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Berlin",
        "--vehicles",
        "1",
        "--max-events",
        "300",
    ]);

    // Another process holds the file, as DBeaver does while connected: writing, or
    // only reading (a read-only open shares the file with readers, not a writer).
    for mode in [duckdb::AccessMode::ReadWrite, duckdb::AccessMode::ReadOnly] {
        let config = duckdb::Config::default().access_mode(mode).unwrap();
        let holder = duckdb::Connection::open_with_flags(&f.db, config).unwrap();
        let started = Instant::now();
        let output = f.load(&["--lock-timeout", "2s"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(75), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(60));
        assert!(
            stderr.contains("in use by another program") && stderr.contains("PID"),
            "{stderr}"
        );
        drop(holder);
    }

    assert_success(&f.load(&[]));
    assert_eq!(f.rows() as u64, second);
    assert!(second > first);
    assert_each_offset_once(&f.db);
}

#[test]
fn a_recreated_topic_is_refused_until_reset() {
    let f = Fixture::new();
    f.simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Berlin",
        "--vehicles",
        "1",
        "--max-events",
        "400",
    ]);
    assert_success(&f.load(&[]));

    // The topics are deleted and created anew: every partition now ends below the
    // offsets the file stored.
    delete_topics(&f.bootstrap, &f.topics);
    let recreated = f.simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Berlin",
        "--vehicles",
        "1",
        "--max-events",
        "10",
    ]);
    assert_eq!(recreated, 10);

    let before = f.rows();
    let output = f.load(&[]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("beyond the end") && stderr.contains("--reset-offsets"),
        "{stderr}"
    );
    assert_eq!(
        f.rows(),
        before,
        "nothing is written when the offsets do not fit"
    );

    // --reset-offsets reads the new topics from their earliest message: exactly
    // their messages, each offset once.
    assert_success(&f.load(&["--reset-offsets"]));
    assert_eq!(f.rows(), before + 10);
    let reset_run = "(SELECT load_id FROM iot_stream._loads ORDER BY started_at DESC LIMIT 1)";
    let loaded: BTreeSet<String> = EventKind::ALL
        .iter()
        .flat_map(|k| {
            query_strings(
                &f.db,
                &format!(
                    "SELECT _kafka_topic || ':' || _kafka_partition || ':' || _kafka_offset \
                     FROM iot_stream.{} WHERE _load_id = {reset_run}",
                    k.default_topic()
                ),
            )
        })
        .collect();
    let in_topics: BTreeSet<String> = f
        .topics
        .iter()
        .flat_map(|(_, topic)| read_topic(&f.bootstrap, topic))
        .map(|r| format!("{}:{}:{}", r.topic, r.partition, r.offset))
        .collect();
    assert_eq!(loaded, in_topics);
}

/// The offsets of `partition` of the gps topic that reached the dead-letter table.
fn dead_letter_offsets(f: &Fixture, partition: i32) -> Vec<i64> {
    query_strings(
        &f.db,
        &format!(
            "SELECT \"offset\"::VARCHAR FROM iot_stream._dead_letters WHERE topic = '{}' \
             AND \"partition\" = {partition} ORDER BY \"offset\"",
            f.topics.gps
        ),
    )
    .iter()
    .map(|o| o.parse().expect("an offset"))
    .collect()
}

#[test]
fn a_reset_moves_empty_partitions_too_so_nothing_is_skipped_later() {
    let f = Fixture::new();
    let gps = f.topics.gps.clone();
    let junk: Vec<RawMessage> = vec![(None, Some(b"not an event".as_slice())); 30];
    create_topics(&f.bootstrap, &f.topics, 3);
    for partition in 0..3 {
        produce_to(&f.bootstrap, &gps, partition, &junk);
    }
    assert_success(&f.load(&[]));
    assert_eq!(f.count("_dead_letters"), 90);

    // Recreated, with messages in one partition of three: partitions 1 and 2 are
    // empty while --reset-offsets runs, their stored offsets (30) beyond their end (0).
    delete_topics(&f.bootstrap, &f.topics);
    create_topics(&f.bootstrap, &f.topics, 3);
    produce_to(&f.bootstrap, &gps, 0, &junk[..5]);
    assert_eq!(f.load(&[]).status.code(), Some(3));
    let stderr = assert_success(&f.load(&["--reset-offsets"]));
    assert!(
        stderr.contains(&format!("reset: {gps} partition 2")),
        "{stderr}"
    );
    let resets = query_strings(
        &f.db,
        "SELECT resets::VARCHAR FROM iot_stream._loads ORDER BY started_at DESC LIMIT 1",
    );
    for partition in 0..3 {
        let reset = format!(r#""partition":{partition},"from":30,"to":0"#);
        assert!(resets[0].contains(&reset), "{resets:?}");
    }
    let stored = query_strings(
        &f.db,
        &format!(
            "SELECT \"partition\" || ':' || next_offset FROM iot_stream._kafka_offsets \
             WHERE topic = '{gps}' ORDER BY \"partition\""
        ),
    );
    assert_eq!(
        stored,
        ["0:5", "1:0", "2:0"],
        "the empty partitions moved too"
    );

    // Partition 2 refilled past the old offset: read from 0, nothing passed over.
    produce_to(
        &f.bootstrap,
        &gps,
        2,
        &[junk.as_slice(), &junk[..10]].concat(),
    );
    assert_success(&f.load(&[]));
    let mut expected: Vec<i64> = (0..30).chain(0..40).collect();
    expected.sort();
    assert_eq!(dead_letter_offsets(&f, 2), expected);
    // One message in partition 1: loaded, not refused with exit 3.
    produce_to(&f.bootstrap, &gps, 1, &junk[..1]);
    assert_success(&f.load(&[]));
    assert_eq!(dead_letter_offsets(&f, 1).len(), 31);
    assert_eq!(f.count("_dead_letters"), 90 + 5 + 40 + 1);
}

#[test]
fn a_topic_written_in_transactions_loads_each_committed_message_once() {
    let f = Fixture::new();
    create_topics(&f.bootstrap, &f.topics, 1);
    let junk = |text: &'static str| -> Vec<RawMessage<'static>> {
        vec![(None, Some(text.as_bytes())); 10]
    };
    let (first, aborted, last) = (junk("committed 1"), junk("aborted"), junk("committed 2"));
    produce_transactions(
        &f.bootstrap,
        &f.topics.gps,
        &[(&first, true), (&aborted, false), (&last, true)],
    );
    // 10 + marker, 10 aborted + marker, 10 + marker: the partition ends at 33, and
    // its last offset is a control record no consumer receives.
    let started = Instant::now();
    let stderr = assert_success(&f.load(&[]));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the run waited for offsets that never come: {stderr}"
    );
    let payloads = query_strings(
        &f.db,
        "SELECT payload_text FROM iot_stream._dead_letters ORDER BY \"offset\"",
    );
    let mut expected = vec!["committed 1"; 10];
    expected.extend(["committed 2"; 10]);
    assert_eq!(
        payloads, expected,
        "each committed message once, no aborted one"
    );
    let stored = query_strings(
        &f.db,
        &format!(
            "SELECT next_offset::VARCHAR FROM iot_stream._kafka_offsets WHERE topic = '{}'",
            f.topics.gps
        ),
    );
    assert_eq!(stored, ["33"], "the partition is stored as read to its end");
    assert!(stderr.contains("lag left: 0 messages"), "{stderr}");

    // Nothing new: the next run finds nothing to do, and a transaction more is
    // read from where the last one ended.
    assert_success(&f.load(&[]));
    produce_transactions(&f.bootstrap, &f.topics.gps, &[(&first, true)]);
    assert_success(&f.load(&[]));
    assert_eq!(f.count("_dead_letters"), 30);
}

#[test]
fn rows_the_file_refuses_become_dead_letters_and_the_rest_loads() {
    let f = Fixture::new();
    create_topics(&f.bootstrap, &f.topics, 1);
    assert_success(&f.load(&[]));
    // An analyst's constraint: every GPS row must have a key.
    duckdb::Connection::open(&f.db)
        .unwrap()
        .execute_batch("ALTER TABLE iot_stream.gps_data ALTER COLUMN _kafka_key SET NOT NULL")
        .unwrap();
    let events: Vec<String> = (0..100).map(iot_tests::gps_event).collect();
    let messages: Vec<RawMessage> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let key = (![17, 60].contains(&i)).then_some(b"k".as_slice());
            (key, Some(e.as_bytes()))
        })
        .collect();
    produce(&f.bootstrap, &f.topics.gps, &messages);

    let stderr = assert_success(&f.load(&[]));
    assert_eq!(f.count("gps_data"), 98, "{stderr}");
    let dead = query_strings(
        &f.db,
        "SELECT \"offset\"::VARCHAR || ' ' || error FROM iot_stream._dead_letters ORDER BY \"offset\"",
    );
    assert_eq!(dead.len(), 2, "{dead:?}");
    for (letter, offset) in dead.iter().zip(["17", "60"]) {
        assert!(
            letter.starts_with(&format!("{offset} refused by the destination")),
            "{letter}"
        );
        assert!(letter.contains("NOT NULL"), "{letter}");
    }
    let payload = query_strings(
        &f.db,
        "SELECT payload_text FROM iot_stream._dead_letters WHERE \"offset\" = 17",
    );
    assert!(
        payload[0].contains("2f1d1f0c9b17"),
        "the event, encoded again: {payload:?}"
    );
    let summary = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("dead letters"))
        .unwrap_or_default();
    assert_eq!(summary.split_whitespace().last(), Some("2"), "{stderr}");
    assert_each_offset_once(&f.db);
    // The offsets moved past them: the next run has nothing to do.
    assert_success(&f.load(&[]));
    assert_eq!(f.count("gps_data") + f.count("_dead_letters"), 100);
}

#[test]
fn messages_deleted_before_loading_are_recorded_as_gaps() {
    let f = Fixture::new();
    // One partition per topic: the second trip's messages land behind what the
    // first load stored, whatever partitions its vehicles' keys would pick.
    let trip = [
        "--from",
        "Potsdam",
        "--to",
        "Berlin",
        "--vehicles",
        "2",
        "--max-events",
        "300",
        "--partitions",
        "1",
    ];
    f.simulate(&trip);
    assert_success(&f.load(&[]));
    f.simulate(&trip);

    // Retention strikes before the next load: the first half of what each GPS
    // partition gained since is deleted, as an expired segment would be.
    let stored: BTreeMap<i32, i64> = query_strings(
        &f.db,
        &format!(
            "SELECT \"partition\" || ' ' || next_offset FROM iot_stream._kafka_offsets \
             WHERE topic = '{}' ORDER BY \"partition\"",
            f.topics.gps
        ),
    )
    .iter()
    .map(|line| {
        let (p, o) = line.split_once(' ').unwrap();
        (p.parse().unwrap(), o.parse().unwrap())
    })
    .collect();
    let mut expected = Vec::new();
    for (&partition, &next) in &stored {
        let high = read_topic(&f.bootstrap, &f.topics.gps)
            .iter()
            .filter(|r| r.partition == partition)
            .map(|r| r.offset + 1)
            .max()
            .unwrap_or(0);
        let before = next + (high - next) / 2;
        if before > next {
            delete_records(&f.bootstrap, &f.topics.gps, partition, before);
            expected.push(serde_json::json!({
                "topic": f.topics.gps, "partition": partition, "from": next, "to": before,
            }));
        }
    }
    assert!(
        !expected.is_empty(),
        "the second trip reached the GPS topic"
    );
    let stored_next = stored;

    let stderr = assert_success(&f.load(&[]));
    assert!(stderr.contains("deleted by retention"), "{stderr}");
    let gaps = query_strings(
        &f.db,
        "SELECT gaps::VARCHAR FROM iot_stream._loads ORDER BY started_at DESC LIMIT 1",
    );
    let gaps: serde_json::Value = serde_json::from_str(&gaps[0]).unwrap();
    assert_eq!(gaps, serde_json::Value::Array(expected));
    // Every message still in the topic is loaded, once; the others were loaded by
    // the first run, before retention took them.
    assert_each_offset_once(&f.db);
    let loaded: BTreeSet<(i32, i64)> = query_strings(
        &f.db,
        "SELECT _kafka_partition || ' ' || _kafka_offset FROM iot_stream.gps_data",
    )
    .iter()
    .map(|line| {
        let (p, o) = line.split_once(' ').unwrap();
        (p.parse().unwrap(), o.parse().unwrap())
    })
    .collect();
    let in_topic: BTreeSet<(i32, i64)> = read_topic(&f.bootstrap, &f.topics.gps)
        .iter()
        .map(|r| (r.partition, r.offset))
        .collect();
    assert!(in_topic.is_subset(&loaded));
    for (partition, offset) in loaded.difference(&in_topic) {
        let first_run_next = stored_next[partition];
        assert!(
            *offset < first_run_next,
            "partition {partition} offset {offset} was loaded from inside a gap"
        );
    }
}

#[test]
fn the_file_opens_in_duckdb_1_4() {
    let f = Fixture::new();
    f.simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Berlin",
        "--vehicles",
        "2",
        "--max-events",
        "500",
    ]);
    assert_success(&f.load(&[]));
    let rows = f.rows();

    assert_eq!(read_with_duckdb_1_4(&f.db), (rows, 2));
}

/// (event rows, trips) of a file, as DuckDB 1.4's Python package reads them: the
/// DuckDB generation in current DBeaver drivers.
fn read_with_duckdb_1_4(db: &Path) -> (i64, i64) {
    let script = "import sys, duckdb\n\
                  assert duckdb.__version__.startswith('1.4'), duckdb.__version__\n\
                  c = duckdb.connect(sys.argv[1], read_only=True)\n\
                  n = sum(c.sql(f'SELECT count(*) FROM iot_stream.{t}').fetchone()[0] for t in sys.argv[2:])\n\
                  trips = c.sql('SELECT count(DISTINCT trip_id) FROM iot_stream.vehicle_data').fetchone()[0]\n\
                  print(n, trips)\n";
    let tables: Vec<&str> = EventKind::ALL.iter().map(|k| k.default_topic()).collect();
    let python = std::env::var("IOT_TEST_DUCKDB_PYTHON").unwrap_or_else(|_| {
        panic!(
            "this test needs a Python with duckdb==1.4.4: run the suite with scripts/test.sh, \
             which makes one, or set IOT_TEST_DUCKDB_PYTHON to its interpreter"
        )
    });
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(db)
        .args(&tables)
        .output()
        .unwrap_or_else(|e| panic!("{python} does not run: {e}"));
    assert!(
        output.status.success(),
        "DuckDB 1.4 could not read the file: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    let (rows, trips) = printed.trim().split_once(' ').expect("two numbers");
    (rows.parse().unwrap(), trips.parse().unwrap())
}

/// Files written before the move to DuckDB 1.4 LTS (DuckDB 2.0, storage v1.4.0,
/// `_extra` as VARCHAR; see tests/fixtures/duckdb-2.0-loader.py) load on: their rows
/// stay, `_extra` becomes JSON with its text intact, new messages append once, and
/// DuckDB 1.4 reads the result.
#[test]
fn a_file_written_by_the_duckdb_2_0_loader_loads_on() {
    let f = Fixture::new();
    let fixture = iot_tests::repo().join("tests/fixtures/duckdb-2.0-loader.duckdb");
    std::fs::copy(&fixture, &f.db).expect("the fixture is readable");
    let extra_type = "SELECT data_type FROM information_schema.columns \
                      WHERE table_name = 'gps_data' AND column_name = '_extra'";
    assert_eq!(query_strings(&f.db, extra_type), ["VARCHAR"]);
    let old_rows = f.rows();
    assert_eq!(old_rows, 1500);

    let produced = f.simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Berlin",
        "--vehicles",
        "1",
        "--max-events",
        "200",
    ]);
    assert_success(&f.load(&[]));

    assert_eq!(query_strings(&f.db, extra_type), ["JSON"]);
    assert_eq!(f.rows() as u64, old_rows as u64 + produced);
    assert_each_offset_once(&f.db);
    assert_eq!(
        query_i64(
            &f.db,
            "SELECT count(*) FROM iot_stream.gps_data \
             WHERE _extra->>'note' = 'written by the DuckDB 2.0 loader'"
        ),
        74
    );
    assert_eq!(
        query_i64(&f.db, "SELECT count(*) FROM iot_stream._dead_letters"),
        1
    );
    assert_eq!(
        query_i64(
            &f.db,
            "SELECT count(*) FROM duckdb_views() WHERE schema_name = 'iot_stream'"
        ),
        0,
        "the old loader's views are dropped: dbt's models define trips and incidents"
    );
    assert_eq!(
        query_i64(&f.db, "SELECT count(*) FROM iot_stream._loads"),
        2,
        "the old run's record stays beside the new one"
    );
    assert_eq!(read_with_duckdb_1_4(&f.db).0, f.rows());
}

#[test]
fn a_column_the_model_gained_is_added_and_old_rows_read_null() {
    let f = Fixture::new();
    f.simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Berlin",
        "--vehicles",
        "1",
        "--max-events",
        "100",
    ]);
    assert_success(&f.load(&[]));
    // Make the table look as an older loader left it, without accuracy_m.
    {
        let conn = duckdb::Connection::open(&f.db).unwrap();
        conn.execute_batch("ALTER TABLE iot_stream.gps_data DROP COLUMN accuracy_m")
            .unwrap();
    }
    let old_rows = f.count("gps_data");
    f.simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Berlin",
        "--vehicles",
        "1",
        "--max-events",
        "100",
    ]);
    assert_success(&f.load(&[]));
    assert_eq!(
        query_i64(
            &f.db,
            "SELECT count(*) FROM iot_stream.gps_data WHERE accuracy_m IS NULL"
        ),
        old_rows
    );
    assert!(
        query_i64(
            &f.db,
            "SELECT count(*) FROM iot_stream.gps_data WHERE accuracy_m IS NOT NULL"
        ) > 0
    );
}

/// SASL credentials stay secret at every log level: with trace logging on and a
/// SASL login the broker cannot take, neither the output nor the error names the
/// password.
#[test]
fn the_sasl_password_never_appears_even_at_trace_level() {
    const SECRET: &str = "hunter2-sasl-secret";
    let f = Fixture::new();
    let output = run(
        f.load_command(&[
            "--security-protocol",
            "SASL_PLAINTEXT",
            "--sasl-mechanisms",
            "PLAIN",
            "--sasl-username",
            "fleet",
            "--kafka-timeout",
            "3s",
        ])
        .env("RUST_LOG", "trace")
        .env("KAFKA_SASL_PASSWORD", SECRET),
        LIMIT,
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("cannot reach the Kafka broker"), "{stderr}");
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "the SASL password appeared in the output: {stderr}"
    );
}

/// A topic that does not exist (a typo, or simulate never ran) stops a cron run at
/// once with exit 5, naming the topic, before anything is loaded.
#[test]
fn a_missing_topic_is_exit_5_and_named() {
    let f = Fixture::new();
    create_topic(&f.bootstrap, &f.topics.gps, 1);
    let output = f.load(&[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!("topic {} does not exist", f.topics.vehicle)),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_broker_is_exit_5() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let db = scratch_dir().join("x.duckdb");
    let output = run(
        binary("load")
            .args([
                "--bootstrap-servers",
                &format!("127.0.0.1:{port}"),
                "--kafka-timeout",
                "3s",
                "--duckdb-file",
            ])
            .arg(&db),
        LIMIT,
    );
    assert_eq!(
        output.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains(&format!("127.0.0.1:{port}")));
}

#[test]
fn librdkafkas_trace_is_printed_when_its_debug_setting_asks() {
    let f = Fixture::new();
    f.simulate(&["--from", "Potsdam", "--to", "Berlin", "--max-events", "20"]);
    let traced = f.load(&["--kafka-setting", "debug=cgrp"]);
    let stderr = String::from_utf8_lossy(&traced.stderr);
    assert!(traced.status.success(), "{stderr}");
    // The group coordinator's part of librdkafka, as it joins the group.
    assert!(
        stderr.contains("librdkafka: ") && stderr.contains(&f.group),
        "{stderr}"
    );
    let quiet = f.load(&[]);
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(quiet.status.success(), "{stderr}");
    assert!(!stderr.contains(&f.group), "{stderr}");
}

#[test]
fn follow_mode_picks_up_new_events_and_ctrl_c_commits_them() {
    let f = Fixture::new();
    let first = f.simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Berlin",
        "--vehicles",
        "1",
        "--max-events",
        "100",
    ]);
    let mut child = f
        .load_command(&["--follow", "--batch-timeout", "500ms"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The follower has loaded what was there and waits for more.
    let mut progress = group_progress(&f.bootstrap, &f.group, &f.topics);
    wait_until(LIMIT, "the follower loads the first events", || {
        progress() == first as i64
    });
    let total = f.simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Berlin",
        "--vehicles",
        "1",
        "--max-events",
        "150",
    ]);
    assert!(total > first);
    // Caught up and waiting, the follower shows the group no lag.
    let with_messages = f.partitions_with_messages();
    let started = Instant::now();
    loop {
        let lag = group_lag(&f.bootstrap, &f.group);
        let caught_up: BTreeSet<(String, i32)> = lag
            .iter()
            .filter(|(_, _, lag)| *lag == Some(0))
            .map(|(t, p, _)| (t.clone(), *p))
            .collect();
        if caught_up == with_messages {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the group still shows lag while load follows: {lag:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let signalled = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "load --follow did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Interrupted load"), "{stderr}");
    assert_eq!(f.rows() as u64, total);
    assert_eq!(
        query_i64(
            &f.db,
            "SELECT count(*) FROM iot_stream._loads WHERE status = 'interrupted'"
        ),
        1
    );
    assert_each_offset_once(&f.db);
}

#[test]
fn start_from_skips_what_came_before_that_time() {
    let f = Fixture::new();
    let produced = f.simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Berlin",
        "--vehicles",
        "1",
        "--max-events",
        "120",
    ]);
    assert_success(&f.load(&["--start-from", "2099-01-01T00:00:00Z"]));
    assert_eq!(f.rows(), 0, "every message is older than the start time");
    // Passed over for good: the offsets moved on, so a plain run adds nothing.
    assert_success(&f.load(&[]));
    assert_eq!(f.rows(), 0);

    let fresh = Fixture {
        db: scratch_dir().join("fresh.duckdb"),
        ..f
    };
    assert_success(&fresh.load(&["--start-from", "2000-01-01T00:00:00Z"]));
    assert_eq!(fresh.rows() as u64, produced);
}

#[test]
fn a_database_file_that_cannot_be_created_is_exit_4() {
    let db = scratch_dir()
        .join("no-such-directory")
        .join("iot_service.duckdb");
    let output = run(binary("load").arg("--duckdb-file").arg(&db), LIMIT);
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot open the database file") && stderr.contains("no-such-directory"),
        "{stderr}"
    );
}

/// A broker outage: Apache Kafka killed with SIGKILL while `load` runs. The run
/// ends within a bounded time with a clear error and a documented status, its
/// `_loads` row says it failed; once the broker is back on the same data, the next
/// run loads the rest, every message once.
#[test]
fn a_broker_killed_mid_load_loses_nothing() {
    let broker = PrivateBroker::start();
    let f = Fixture::on(broker.bootstrap.clone());
    let produced = f.simulate(&[
        "--from",
        "Berlin",
        "--to",
        "Hamburg",
        "--vehicles",
        "40",
        "--stagger",
        "5s",
        "--duration",
        "30m",
        "--seed",
        "9",
    ]);
    let mut load = spawn(&mut f.load_command(&["--batch-size", "500", "--kafka-timeout", "5s"]));
    // The outage strikes a run that has committed part of its work.
    let mut progress = group_progress(&f.bootstrap, &f.group, &f.topics);
    wait_until(LIMIT, "load commits a first batch", || progress() > 0);
    assert!(
        load.try_wait().unwrap().is_none(),
        "the run ended before the outage"
    );
    drop(progress);
    broker.kill();
    let killed_at = Instant::now();
    let outcome = finish(load, Duration::from_secs(120));
    let waited = killed_at.elapsed();
    let stderr = String::from_utf8_lossy(&outcome.stderr);
    eprintln!(
        "load during the outage ended with {:?} after {waited:?}: {stderr}",
        outcome.status
    );
    assert_eq!(outcome.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("error: reading messages from Kafka failed"),
        "{stderr}"
    );
    assert!(
        waited < Duration::from_secs(60),
        "the run took {waited:?} to give up"
    );
    let (status, error) = (
        query_strings(&f.db, "SELECT status FROM iot_stream._loads"),
        query_strings(&f.db, "SELECT coalesce(error, '') FROM iot_stream._loads"),
    );
    assert_eq!(status, ["failed"], "{error:?}");
    assert!(f.rows() > 0 && (f.rows() as u64) < produced);

    broker.start_again();
    assert_success(&f.load(&[]));
    assert_each_offset_once(&f.db);
    assert_eq!(f.rows() as u64, produced, "messages are missing");
}

/// A broker outage during a simulation: Apache Kafka killed with SIGKILL while
/// `simulate` sends, started again on the same data seconds later. The idempotent
/// producer rides it out: every event is delivered once (none lost, none written
/// twice by a retry), as `load` and the events' own ids show.
#[test]
fn a_broker_killed_mid_simulation_is_ridden_out_and_nothing_is_doubled() {
    let broker = PrivateBroker::start();
    let f = Fixture::on(broker.bootstrap.clone());
    let mut simulate = spawn(&mut simulate_command(
        &f.bootstrap,
        &f.topics,
        &[
            "--from",
            "Berlin",
            "--to",
            "Hamburg",
            "--vehicles",
            "60",
            "--stagger",
            "5s",
            "--duration",
            "20m",
            "--seed",
            "11",
        ],
    ));
    // The outage strikes a run that has delivered part of its events.
    wait_until(LIMIT, "simulate delivers its first events", || {
        topic_ends(&f.bootstrap, &f.topics) > 0
    });
    let before_outage = topic_ends(&f.bootstrap, &f.topics);
    assert!(
        simulate.try_wait().unwrap().is_none(),
        "the run ended before the outage"
    );
    broker.kill();
    // Five seconds without a broker: librdkafka keeps the events and retries.
    std::thread::sleep(Duration::from_secs(5));
    broker.start_again();
    let output = finish(simulate, Duration::from_secs(300));
    let stderr = assert_success(&output);
    let delivered: u64 = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("delivered "))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no delivery count in: {stderr}"));
    assert!(stderr.contains("failed 0"), "{stderr}");
    assert!(
        delivered as i64 > before_outage,
        "nothing was delivered after the outage began ({before_outage} before it)"
    );

    assert_success(&f.load(&[]));
    assert_each_offset_once(&f.db);
    assert_eq!(f.rows() as u64, delivered, "{stderr}");
    let distinct = f.distinct_ids();
    assert_eq!(distinct, f.rows(), "an event was written twice");
}

/// Hostile input through the real broker: 10,000 malformed messages (garbage bytes,
/// cut and bent events, no payload) mixed into a stream of some 100,000 valid
/// ones. Every valid event becomes a row, every malformed message a dead letter,
/// each offset once.
#[test]
fn ten_thousand_malformed_messages_among_a_hundred_thousand_valid_ones() {
    let f = Fixture::new();
    create_topics(&f.bootstrap, &f.topics, 1);
    let valid = f.simulate(&[
        "--from",
        "Berlin",
        "--to",
        "Hamburg",
        "--vehicles",
        "50",
        "--stagger",
        "5s",
        "--duration",
        "20m",
        "--seed",
        "13",
    ]);
    assert!(valid > 90_000, "{valid} valid messages");

    let good = read_topic(&f.bootstrap, &f.topics.gps)
        .into_iter()
        .next()
        .expect("a GPS event")
        .payload
        .into_bytes();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let malformed: Vec<Option<Vec<u8>>> = (0..10_000)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % good.len().max(1);
            match i % 5 {
                0 => Some(seed.to_le_bytes().repeat(1 + i % 7)),
                1 => Some(good[..at].to_vec()),
                2 => {
                    let mut bent = good.clone();
                    bent[at] ^= 0x80;
                    Some(bent)
                }
                3 => Some(b"{\"schema_version\":1}".to_vec()),
                _ => None,
            }
        })
        .collect();
    let messages: Vec<RawMessage> = malformed
        .iter()
        .map(|m| (Some(&b"hostile"[..]), m.as_deref()))
        .collect();
    produce(&f.bootstrap, &f.topics.gps, &messages);

    assert_success(&f.load(&[]));
    assert_each_offset_once(&f.db);
    let dead = query_i64(&f.db, "SELECT count(*) FROM iot_stream._dead_letters");
    assert_eq!(f.rows() + dead, valid as i64 + 10_000);
    // A bent byte can leave valid JSON (a digit for another); such a message is a
    // valid event and loads. Everything else is a dead letter.
    assert!(dead > 9_000, "{dead} dead letters");
    assert!(f.rows() >= valid as i64, "valid events are missing");
}

/// The crash loop of `simulate`: started again and again with the same seed and
/// killed with SIGKILL at random points while sending, then run to its end. A killed
/// run leaves what it had delivered; each rerun sends every event again, as new
/// messages. `load` stores each message once (no offset twice): the events the
/// killed runs had sent are there again under the same ids, and the ids are exactly
/// those of one full run. `IOT_CRASH_KILLS` sets how many runs are killed.
#[test]
fn killed_simulations_rerun_with_their_seed_resend_and_nothing_else_doubles() {
    let f = Fixture::new();
    let args = [
        "--from",
        "Potsdam",
        "--to",
        "Leipzig",
        "--vehicles",
        "30",
        "--stagger",
        "5s",
        "--duration",
        "15m",
        "--seed",
        "21",
    ];
    for (_, topic) in f.topics.iter() {
        create_topic(&f.bootstrap, topic, 3);
    }
    let runs = crash_runs();
    let kills = kill_at_random_points(
        || simulate_command(&f.bootstrap, &f.topics, &args),
        runs,
        || topic_ends(&f.bootstrap, &f.topics),
        Duration::from_millis(300),
        || {},
    );
    assert!(
        kills.killed >= runs * 3 / 4 && kills.after_progress == kills.killed,
        "{kills:?} of {runs} runs: each killed one should have delivered events first"
    );
    let left: u64 = f
        .topics
        .iter()
        .map(|(_, t)| read_topic(&f.bootstrap, t).len() as u64)
        .sum();

    let total = f.simulate(&args);
    let full = total - left;
    assert!(
        left > 0 && left < full * runs as u64,
        "the killed runs left {left} events, a full run has {full}"
    );

    assert_success(&f.load(&[]));
    assert_each_offset_once(&f.db);
    assert_eq!(f.rows() as u64, total);
    assert_eq!(
        f.distinct_ids() as u64,
        full,
        "the re-sent events are the full run's, by id"
    );
}

/// Runs of a crash loop: `IOT_CRASH_KILLS`, 20 by default (`scripts/faults.sh`
/// runs 200).
fn crash_runs() -> usize {
    std::env::var("IOT_CRASH_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20)
}
