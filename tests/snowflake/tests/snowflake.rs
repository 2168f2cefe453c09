//! `load --dest snowflake` end to end: the real binaries, a real broker and the
//! Snowflake emulator (fakesnow), read back through the Python Snowflake connector.
//! The emulator (one Python process on DuckDB) loads a few thousand rows/s, so the
//! volumes here are small.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use iot_model::{EventKind, Topics};
use iot_tests::{
    RawMessage, SnowflakeEmulator, TopicsGuard, assert_success, binary, bootstrap, create_topics,
    duplicated_offsets_sql, group_lag, group_progress, interrupt, kill_at_random_points, produce,
    read_topic, remove_at_end, run, scratch_dir, simulate, snowflake, spawn, topic_args,
    unique_topics,
};

const LIMIT: Duration = Duration::from_secs(300);
const DATABASE: &str = "IOT";
const PASSWORD: &str = "correct-horse-battery-staple";

/// A broker, topics and a Snowflake schema of one test's own.
struct Fixture {
    bootstrap: String,
    topics: Topics,
    snowflake: SnowflakeEmulator,
    schema: String,
    group: String,
    _topics: TopicsGuard,
}

impl Fixture {
    fn new() -> Self {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let (bootstrap, topics) = (bootstrap(), unique_topics());
        Self {
            _topics: remove_at_end(&bootstrap, &topics),
            bootstrap,
            topics,
            snowflake: snowflake(),
            schema: format!("t{}", &run[..12]),
            group: format!("iot-load-{run}"),
        }
    }

    /// `max_events` events of a fleet of `vehicles` (their ids key the messages, so
    /// more vehicles reach more partitions).
    fn simulate_vehicles(&self, vehicles: u32, max_events: u32) -> u64 {
        let vehicles = vehicles.to_string();
        self.simulate_fleet(&["--vehicles", &vehicles, "--stagger", "2s"], max_events)
    }

    /// A small fleet's events: a few thousand.
    fn simulate(&self, max_events: u32) -> u64 {
        self.simulate_fleet(&["--vehicles", "4", "--seed", "11"], max_events)
    }

    /// Potsdam to Leipzig with `fleet`'s flags, stopped after `max_events`; returns
    /// what the topics hold.
    fn simulate_fleet(&self, fleet: &[&str], max_events: u32) -> u64 {
        let max_events = max_events.to_string();
        let mut args = vec![
            "--from",
            "Potsdam",
            "--to",
            "Leipzig",
            "--max-events",
            &max_events,
        ];
        args.extend_from_slice(fleet);
        simulate(&self.bootstrap, &self.topics, &args)
    }

    fn load_command(&self, args: &[&str]) -> Command {
        self.load_command_to(&self.snowflake.url, args)
    }

    /// `load --dest snowflake` with its requests going to `url`.
    fn load_command_to(&self, url: &str, args: &[&str]) -> Command {
        self.load_command_in(&self.group, url, args)
    }

    /// `load --dest snowflake` as a member of consumer group `group`.
    fn load_command_in(&self, group: &str, url: &str, args: &[&str]) -> Command {
        let mut command = binary("load");
        command
            .args([
                "--dest",
                "snowflake",
                "--bootstrap-servers",
                &self.bootstrap,
            ])
            .args(["--dataset", &self.schema])
            .args(["--group-id", group])
            .args(["--snowflake-url", url])
            .args(topic_args(&self.topics))
            .args(args)
            .env("DESTINATION__SNOWFLAKE__CREDENTIALS__HOST", "emulator")
            .env("DESTINATION__SNOWFLAKE__CREDENTIALS__USERNAME", "loader")
            .env("DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE", DATABASE)
            .env("DESTINATION__SNOWFLAKE__CREDENTIALS__PASSWORD", PASSWORD);
        command
    }

    fn load(&self, args: &[&str]) -> Output {
        run(&mut self.load_command(args), LIMIT)
    }

    fn count(&self, table: &str) -> i64 {
        self.try_count(table)
            .unwrap_or_else(|error| panic!("counting {table}: {error}"))
    }

    fn try_count(&self, table: &str) -> Result<i64, String> {
        self.snowflake.try_query_i64(
            DATABASE,
            &format!("SELECT count(*) FROM {}.{table}", self.schema),
        )
    }

    fn rows(&self) -> i64 {
        EventKind::ALL
            .iter()
            .map(|k| self.count(k.default_topic()))
            .sum()
    }

    /// The rows in the tables, or None while one of them does not exist yet.
    fn rows_if_created(&self) -> Option<u64> {
        let mut rows = 0;
        for kind in EventKind::ALL {
            let table = kind.default_topic();
            match self.try_count(table) {
                Ok(count) => rows += count as u64,
                Err(error) if error.contains("does not exist") => return None,
                Err(error) => panic!("counting {table}: {error}"),
            }
        }
        Some(rows)
    }

    /// Each (topic, partition, offset) once across tables and dead letters.
    fn assert_each_offset_once(&self) {
        let duplicates = self
            .snowflake
            .query_i64(DATABASE, &duplicated_offsets_sql(&self.schema));
        assert_eq!(duplicates, 0, "some messages were loaded twice");
    }
}

/// Trips, incidents and latest positions are dbt's models: the views earlier
/// loaders kept under those names (their comment says whose they are) are dropped,
/// and a view of the user's own stays.
#[test]
fn the_views_of_earlier_loaders_are_dropped_and_the_users_own_stay() {
    let f = Fixture::new();
    f.simulate(200);
    assert_success(&f.load(&[]));
    let s = &f.schema;
    for statement in [
        format!("CREATE VIEW {s}.TRIPS COMMENT = 'iot-streaming load view 00ff' AS SELECT 1 AS X"),
        format!("CREATE VIEW {s}.MINE AS SELECT 1 AS X"),
    ] {
        f.snowflake
            .try_query(DATABASE, &statement)
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    f.simulate(100);
    assert_success(&f.load(&[]));
    let views = |name: &str| {
        f.snowflake.query_i64(
            DATABASE,
            &format!(
                "SELECT count(*) FROM INFORMATION_SCHEMA.VIEWS \
                 WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = '{name}'",
                s.to_uppercase()
            ),
        )
    };
    assert_eq!(views("TRIPS"), 0, "the earlier loader's view is dropped");
    assert_eq!(views("MINE"), 1, "the user's view stays");
}

/// Under the loader role config/snowflake/provision.sql creates, with exactly its
/// grants (the emulator checks every statement as Snowflake does), load runs
/// twice and stores every message once. A role short of a privilege gets exit 7
/// and the GRANT to run: a dataset whose schema nobody created (CREATE SCHEMA on
/// the database, which the loader is not given), and one whose CREATE TABLE was
/// revoked.
#[test]
fn the_provisioned_loader_role_loads_with_exactly_its_grants() {
    let f = Fixture::new();
    let names = f.snowflake.provision(&f.schema);
    let role = &names["loader_role"];
    let produced = f.simulate(1500);
    for run in 0..2 {
        let stderr = assert_success(&f.load(&["--snowflake-role", role]));
        let expected = if run == 0 { produced } else { 0 };
        assert!(stderr.contains(&format!(": {expected} rows")), "{stderr}");
    }
    assert_eq!(f.rows() as u64, produced);
    f.assert_each_offset_once();

    let refused = |role: &str, dataset: &str, grant: &str| {
        let into = Fixture {
            topics: f.topics.clone(),
            schema: dataset.to_owned(),
            ..Fixture::new()
        };
        let output = into.load(&["--snowflake-role", role]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(7), "{stderr}");
        assert!(stderr.contains(grant), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    let unprovisioned = format!("{}_new", f.schema);
    refused(
        role,
        &unprovisioned,
        &format!("GRANT CREATE SCHEMA ON DATABASE \"IOT\" TO ROLE \"{role}\""),
    );
    let other = format!("{}_other", f.schema);
    let other_names = f.snowflake.provision(&other);
    let other_role = &other_names["loader_role"];
    let schema = other.to_uppercase();
    f.snowflake.query(
        DATABASE,
        &format!("REVOKE CREATE TABLE ON SCHEMA {schema} FROM ROLE {other_role}"),
    );
    refused(
        other_role,
        &other,
        &format!("GRANT CREATE TABLE ON SCHEMA \"IOT\".\"{schema}\" TO ROLE \"{other_role}\""),
    );
}

#[test]
fn loads_everything_once_and_a_second_run_adds_nothing() {
    let f = Fixture::new();
    let produced = f.simulate(1500);

    let stderr = assert_success(&f.load(&[]));
    assert!(stderr.contains(&format!("{produced} rows")), "{stderr}");
    for (kind, topic) in f.topics.iter() {
        let in_topic = read_topic(&f.bootstrap, topic).len() as i64;
        assert_eq!(f.count(kind.default_topic()), in_topic, "{topic}");
    }
    f.assert_each_offset_once();

    let again = assert_success(&f.load(&[]));
    assert!(again.contains(": 0 rows"), "{again}");
    assert_eq!(f.rows() as u64, produced);
    let loads = f.snowflake.query(
        DATABASE,
        &format!(
            "SELECT status, rows_loaded::VARCHAR FROM {}._loads ORDER BY started_at",
            f.schema
        ),
    );
    let produced_text = produced.to_string();
    assert_eq!(
        loads,
        [
            [Some("completed"), Some(produced_text.as_str())],
            [Some("completed"), Some("0")]
        ]
        .map(|row| row.map(|v| v.map(str::to_owned)).to_vec())
        .to_vec()
    );
}

#[test]
fn malformed_messages_land_in_dead_letters_with_the_rest_loaded() {
    let f = Fixture::new();
    create_topics(&f.bootstrap, &f.topics, 1);
    let good = r#"{"schema_version":1,"id":"6f1c2f9e-6a59-4f0e-9a43-2f1d1f0c9b11","device_id":"0d7c6b8a-1f2e-4d3c-8b7a-6f5e4d3c2b1a","trip_id":"1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d","timestamp":"2026-11-26T09:30:00.250Z","lat":52.39,"lon":13.06,"speed_kmh":48.2,"heading_deg":181.5,"accuracy_m":3.0}"#;
    // Quotes and backslashes must survive Snowflake's string literals.
    let extended = good.replacen('{', r#"{"note":"it's \"late\" \\ again","#, 1);
    let impossible = good.replace("52.39", "123.0");
    let messages: Vec<RawMessage> = vec![
        (Some(b"k"), Some(good.as_bytes())),       // 0
        (Some(b"k"), Some(b"\xff\xfe not utf-8")), // 1
        (Some(b"k"), Some(b"{\"not\": json")),     // 2
        (Some(b"k"), Some(impossible.as_bytes())), // 3
        (Some(b"k"), Some(extended.as_bytes())),   // 4
        (None, None),                              // 5
    ];
    produce(&f.bootstrap, &f.topics.gps, &messages);

    assert_success(&f.load(&[]));
    assert_eq!(f.count("gps_data"), 2);
    let dead = f.snowflake.query(
        DATABASE,
        &format!(
            "SELECT \"OFFSET\"::VARCHAR, error, payload FROM {}._dead_letters ORDER BY \"OFFSET\"",
            f.schema
        ),
    );
    let offsets: Vec<_> = dead.iter().map(|row| row[0].clone().unwrap()).collect();
    assert_eq!(offsets, ["1", "2", "3", "5"], "{dead:#?}");
    let error = |i: usize| dead[i][1].clone().unwrap_or_default();
    assert!(error(0).contains("not UTF-8"), "{}", error(0));
    assert!(error(2).contains("`lat` is 123"), "{}", error(2));
    assert!(error(3).contains("no payload"), "{}", error(3));
    assert_eq!(
        dead[0][2].as_deref(),
        Some("fffe206e6f74207574662d38"),
        "the raw payload is kept"
    );
    let note = f.snowflake.query(
        DATABASE,
        &format!(
            "SELECT _extra:note::VARCHAR FROM {}.gps_data WHERE _extra IS NOT NULL",
            f.schema
        ),
    );
    assert_eq!(note, [[Some(r#"it's "late" \ again"#.to_owned())]]);
    f.assert_each_offset_once();
}

#[test]
fn rows_snowflake_refuses_become_dead_letters_and_the_rest_loads() {
    let f = Fixture::new();
    create_topics(&f.bootstrap, &f.topics, 1);
    assert_success(&f.load(&[]));
    // Snowflake enforces NOT NULL (and only that): a column an analyst made required.
    f.snowflake.query(
        DATABASE,
        &format!(
            "ALTER TABLE {}.gps_data ALTER COLUMN _kafka_key SET NOT NULL",
            f.schema
        ),
    );
    let events: Vec<String> = (0..20).map(iot_tests::gps_event).collect();
    let messages: Vec<RawMessage> = events
        .iter()
        .enumerate()
        .map(|(i, e)| ((i != 13).then_some(b"k".as_slice()), Some(e.as_bytes())))
        .collect();
    produce(&f.bootstrap, &f.topics.gps, &messages);

    let stderr = assert_success(&f.load(&[]));
    assert_eq!(f.count("gps_data"), 19, "{stderr}");
    let dead = f.snowflake.query(
        DATABASE,
        &format!(
            "SELECT \"OFFSET\"::VARCHAR, error FROM {}._dead_letters",
            f.schema
        ),
    );
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0][0].as_deref(), Some("13"));
    let error = dead[0][1].clone().unwrap_or_default();
    assert!(error.starts_with("refused by the destination"), "{error}");
    f.assert_each_offset_once();
}

/// A loader killed at each step of a commit (its files uploaded but not yet
/// copied, a COPY done inside the open transaction, waiting for its COMMIT)
/// leaves nothing doubled or lost: the transaction dies with it, and the next run
/// loads every message once. The files of the killed attempts stay in the stage
/// (to be removed by a run an hour later); the run that commits leaves none.
#[test]
fn a_loader_killed_at_each_step_of_a_commit_leaves_nothing_doubled_or_lost() {
    let f = Fixture::new();
    let produced = f.simulate(1500);
    for step in ["copy", "copied", "commit"] {
        let stalled = f.snowflake.stats()["stalled"].as_i64().unwrap();
        let mut child = spawn(f.load_command(&[]).env(
            "DESTINATION__SNOWFLAKE__CREDENTIALS__USERNAME",
            format!("stall-{step}"),
        ));
        let started = Instant::now();
        while f.snowflake.stats()["stalled"].as_i64().unwrap() == stalled {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the loader ended before it reached {step}"
            );
            assert!(started.elapsed() < LIMIT, "the loader never reached {step}");
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            f.rows_if_created().unwrap_or(0),
            0,
            "killed at {step}, nothing is committed"
        );
    }
    let before = stage_folders(&f);
    assert!(!before.is_empty(), "the killed attempts left their files");
    let stderr = assert_success(&f.load(&[]));
    assert_eq!(f.rows() as u64, produced, "{stderr}");
    f.assert_each_offset_once();
    assert_eq!(
        stage_folders(&f),
        before,
        "the committed files were removed"
    );
}

/// The attempt folders with files in the fixture's stage.
fn stage_folders(f: &Fixture) -> Vec<String> {
    let mut folders: Vec<String> = f
        .snowflake
        .query(DATABASE, &format!("LIST @{}._load_stage", f.schema))
        .into_iter()
        .filter_map(|row| row[0].clone())
        .filter_map(|name| name.split('/').nth(1).map(str::to_owned))
        .collect();
    folders.sort();
    folders.dedup();
    folders
}

#[test]
fn a_killed_load_resumes_exactly() {
    // This test needs the emulator's one added behaviour: a load killed inside its
    // transaction leaves it open, and the emulator ends it 10 s after its last
    // request (tests/snowflake/emulator.py), where Snowflake would take hours. Until
    // then the next load's batches collide with it and are retried.
    // Small batches, and a kill at most half a second after a run's first commit:
    // each run is still loading when it is killed (a batch takes a dozen requests).
    let f = Fixture::new();
    let produced = f.simulate(6000);
    let kills = kill_at_random_points(
        || f.load_command(&["--batch-size", "50"]),
        5,
        group_progress(&f.bootstrap, &f.group, &f.topics),
        Duration::from_millis(500),
        || {},
    );
    assert!(
        kills.killed >= 4 && kills.after_progress == kills.killed,
        "{kills:?} of 5 loads: each killed one should have committed a batch first"
    );

    assert_success(&f.load(&[]));
    f.assert_each_offset_once();
    assert_eq!(f.rows() as u64, produced, "messages are missing");
}

#[test]
fn two_loaders_racing_over_the_same_partitions_store_each_message_once() {
    let f = Fixture::new();
    let produced = f.simulate(2000);
    // Two groups, so that both read every partition: only the offsets'
    // compare-and-set keeps them from storing a message twice (in one group they
    // would share the partitions instead: see the scale-out tests).
    let spawn = |group: &str| {
        f.load_command_in(group, &f.snowflake.url, &["--batch-size", "200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn("racer-a"), spawn("racer-b"));
    let stderr: Vec<String> = [first, second]
        .into_iter()
        .map(|child| assert_success(&child.wait_with_output().unwrap()))
        .collect();
    assert!(
        stderr
            .iter()
            .any(|s| s.contains("another loader committed")),
        "the loaders never collided, so the test proved nothing: {stderr:#?}"
    );
    f.assert_each_offset_once();
    assert_eq!(f.rows() as u64, produced, "messages are missing");
}

#[test]
fn missing_credentials_are_exit_2_and_name_the_variable() {
    let f = Fixture::new();
    let output = run(
        f.load_command(&[])
            .env_remove("DESTINATION__SNOWFLAKE__CREDENTIALS__PASSWORD"),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("DESTINATION__SNOWFLAKE__CREDENTIALS__PASSWORD"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_endpoint_is_exit_4_and_the_password_stays_secret() {
    let f = Fixture::new();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let output = run(
        f.load_command_to(
            &format!("http://127.0.0.1:{closed}"),
            &["--retry-for", "2s"],
        )
        .env("RUST_LOG", "trace"),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{closed}")), "{stderr}");
    assert!(
        !stderr.contains(PASSWORD) && !stdout.contains(PASSWORD),
        "the password appeared in the output"
    );
}

// Scale-out: loaders in one consumer group share the topics' partitions.

/// A loader of the fixture's group, its log going to a file.
struct Loader {
    child: Child,
    log: std::path::PathBuf,
    /// Holds `log`'s folder while the loader lives.
    _scratch: tempfile::TempDir,
}

impl Loader {
    fn start(f: &Fixture, args: &[&str]) -> Self {
        Self::start_as(f, "loader", args)
    }

    /// A loader logged in as `user` (the emulator answers every COMMIT of a user
    /// whose name starts with "slow" 3 s late).
    fn start_as(f: &Fixture, user: &str, args: &[&str]) -> Self {
        let scratch = scratch_dir();
        let log = scratch.path().join("load.log");
        let child = f
            .load_command(args)
            .env("DESTINATION__SNOWFLAKE__CREDENTIALS__USERNAME", user)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("load starts");
        Self {
            child,
            log,
            _scratch: scratch,
        }
    }

    /// Waits for the loader to end; its exit code and log.
    fn finish(mut self) -> (Option<i32>, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(started.elapsed() < LIMIT, "a loader did not finish");
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        (status.code(), log)
    }
}

/// The rows a run's summary says it loaded: "Done load …: 1234 rows in …".
fn rows_loaded(log: &str) -> u64 {
    log.lines()
        .find_map(|l| {
            l.split_once(": ")?
                .1
                .split_once(" rows in ")?
                .0
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no summary in: {log}"))
}

/// Every partition of the group has its committed offset at the end of the
/// partition, as Kafka's own `kafka-consumer-groups` reports it.
fn assert_no_lag(f: &Fixture) {
    let lags = group_lag(&f.bootstrap, &f.group);
    assert!(!lags.is_empty(), "the group {} has no offsets", f.group);
    for (topic, partition, lag) in lags {
        let end = f.partition_end(&topic, partition);
        assert!(
            lag == Some(0) || (lag.is_none() && end == 0),
            "{topic} {partition}: lag {lag:?} (end {end})"
        );
    }
}

impl Fixture {
    /// The high watermark of a partition.
    fn partition_end(&self, topic: &str, partition: i32) -> i64 {
        read_topic(&self.bootstrap, topic)
            .iter()
            .filter(|m| m.partition == partition)
            .count() as i64
    }

    /// Waits until the tables hold `rows` rows, or fails after `limit`. Until the
    /// loaders have made the schema and its tables (their DDL can collide and be
    /// retried), nothing is loaded yet.
    fn wait_for_rows(&self, rows: u64, limit: Duration) {
        let started = Instant::now();
        loop {
            let loaded = self.rows_if_created().unwrap_or(0);
            if loaded >= rows {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "only {loaded} of {rows} rows loaded after {limit:?}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Three loaders of one group over six partitions per topic, following: one is
/// killed with SIGKILL half way, another starts late. The group moves the killed
/// loader's partitions to the others (after its 10 s session), each carries on
/// from the stored offsets, and every message is loaded exactly once, by loaders
/// that each loaded some; the group's committed offsets end with no lag. (The
/// killed loader's open Snowflake transaction is ended by the emulator 10 s after
/// its last request, as Snowflake would end it, later.)
#[test]
fn loaders_in_one_group_share_the_partitions_and_survive_a_killed_one() {
    let f = Fixture::new();
    create_topics(&f.bootstrap, &f.topics, 6);
    let follow = ["--follow", "--batch-size", "150"];
    let first = f.simulate_vehicles(24, 1200);
    let killed = Loader::start(&f, &follow);
    let survivor = Loader::start(&f, &follow);
    f.wait_for_rows(first / 3, LIMIT);
    let mut killed = killed;
    killed.child.kill().expect("the loader can be killed");
    killed.child.wait().expect("the killed loader is reaped");

    let late = Loader::start(&f, &follow);
    // Returns what the topics hold: both runs' events.
    let total = f.simulate_vehicles(24, 1200);
    f.wait_for_rows(total, LIMIT);
    // No wait for the group's offsets: a loader stopped by Ctrl-C commits those of
    // its partitions before it exits, and assert_no_lag checks them.
    interrupt(&survivor.child);
    interrupt(&late.child);
    let (survivor_exit, survivor_log) = survivor.finish();
    let (late_exit, late_log) = late.finish();
    assert_eq!(survivor_exit, Some(0), "{survivor_log}");
    assert_eq!(late_exit, Some(0), "{late_log}");
    assert!(rows_loaded(&survivor_log) > 0, "{survivor_log}");
    assert!(
        rows_loaded(&late_log) > 0,
        "the late loader got no share: {late_log}"
    );
    assert!(
        late_log.contains("partitions given by the group"),
        "{late_log}"
    );

    f.assert_each_offset_once();
    assert_eq!(f.rows() as u64, total);
    assert_no_lag(&f);
}

/// Loaders of one group whose every commit stalls (the emulator answers each
/// COMMIT of a "slow" user 3 s late) and collides with the others' (concurrent
/// transactions conflict in the emulator, as in DuckDB), while simulate sends, one
/// of them is killed and one joins late (so that the others must give partitions
/// up while their commits stall): the group settles, no loader gives up, and every
/// message lands once within the time limit.
#[test]
fn loaders_whose_commits_stall_and_collide_load_every_message_once() {
    let f = Fixture::new();
    create_topics(&f.bootstrap, &f.topics, 6);
    let follow = ["--follow", "--batch-size", "150"];
    let slow = || Loader::start_as(&f, "slow_loader", &follow);
    let mut loaders: Vec<Loader> = (0..3).map(|_| slow()).collect();
    let first = f.simulate_vehicles(24, 1200);
    f.wait_for_rows(first / 3, LIMIT);
    let mut killed = loaders.remove(0);
    killed.child.kill().expect("the loader can be killed");
    killed.child.wait().expect("the killed loader is reaped");
    loaders.push(slow());

    let total = f.simulate_vehicles(24, 1200);
    f.wait_for_rows(total, LIMIT);
    for loader in &loaders {
        interrupt(&loader.child);
    }
    for loader in loaders {
        let (exit, log) = loader.finish();
        assert_eq!(exit, Some(0), "{log}");
    }
    f.assert_each_offset_once();
    assert_eq!(f.rows() as u64, total);
    assert_no_lag(&f);
}

/// Cron mode: three loaders of one group started together on a backlog each load
/// a share, all exit 0, and together they load every message once. Their commits
/// stall 1 s each (a "slow1" user), so the backlog outlasts a loader whose start
/// is held up (its tables' DDL collides with the others' in the emulator and is
/// tried again): at full speed the first two could finish the backlog before the
/// third joins, which is correct but shows no sharing.
#[test]
fn cron_loaders_started_together_each_load_a_share() {
    let f = Fixture::new();
    create_topics(&f.bootstrap, &f.topics, 6);
    let produced = f.simulate_vehicles(24, 2400);
    let loaders: Vec<Loader> = (0..3)
        .map(|_| Loader::start_as(&f, "slow1_loader", &["--batch-size", "150"]))
        .collect();
    let mut loaded = 0;
    for loader in loaders {
        let (exit, log) = loader.finish();
        assert_eq!(exit, Some(0), "{log}");
        let rows = rows_loaded(&log);
        assert!(rows > 0, "a loader got no share: {log}");
        loaded += rows;
    }
    assert_eq!(loaded, produced);
    f.assert_each_offset_once();
    assert_eq!(f.rows() as u64, produced);
    // The group's offsets are a figure for lag dashboards, committed best effort: a
    // loader's last commit can meet the rebalance of another one leaving, and is
    // refused. The next cron run, alone in the group, finds nothing new and
    // commits every partition's stored offset.
    let again = assert_success(&f.load(&[]));
    assert!(again.contains(": 0 rows"), "{again}");
    assert_no_lag(&f);
}
