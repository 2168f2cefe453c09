//! `load` end to end: the real binaries, a real broker and a real DuckDB file. One
//! module per feature; the fixture they share is here.

mod dead_letters;
mod exactly_once;
mod file;
mod kafka;
mod offsets;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use iot_model::{EventKind, Topics};
use iot_tests::{
    PrivateBroker, RawMessage, TopicsGuard, assert_success, binary, bootstrap, create_topic,
    create_topics, delete_records, delete_topics, duplicated_offsets_sql, finish, group_lag,
    group_progress, kill_at_random_points, produce, produce_to, produce_transactions, query_i64,
    query_strings, read_topic, remove_at_end, run, scratch_dir, simulate, simulate_command, spawn,
    topic_args, topic_ends, unique_topics, wait_until,
};

const LIMIT: Duration = Duration::from_secs(300);

/// A broker, a set of topics, a consumer group and a database file of one test's own.
struct Fixture {
    bootstrap: String,
    topics: Topics,
    group: String,
    db: PathBuf,
    /// Holds `db`'s folder while the fixture lives.
    scratch: tempfile::TempDir,
    _topics: TopicsGuard,
}

impl Fixture {
    fn new() -> Self {
        Self::on(bootstrap())
    }

    fn on(bootstrap: String) -> Self {
        let topics = unique_topics();
        Self {
            _topics: remove_at_end(&bootstrap, &topics),
            bootstrap,
            topics,
            group: format!("iot-load-{}", uuid::Uuid::new_v4()),
            db: PathBuf::new(),
            scratch: scratch_dir(),
        }
        .with_db("iot_service.duckdb")
    }

    /// The same fixture, with a database file of that name in its folder.
    fn with_db(self, name: &str) -> Self {
        let db = self.scratch.path().join(name);
        Self { db, ..self }
    }

    /// Runs simulate into this fixture's topics; returns the events sent.
    fn simulate(&self, args: &[&str]) -> u64 {
        simulate(&self.bootstrap, &self.topics, args)
    }

    /// The first `events` events of one vehicle from Potsdam to Berlin.
    fn one_vehicle(&self, events: u32) -> u64 {
        let events = events.to_string();
        self.simulate(&[
            "--from",
            "Potsdam",
            "--to",
            "Berlin",
            "--vehicles",
            "1",
            "--max-events",
            &events,
        ])
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
