//! Every message once: a second run, kills and restarts of the loader, the broker and the simulator, transactions, --follow and --start-from.

use super::*;

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
fn follow_mode_picks_up_new_events_and_ctrl_c_commits_them() {
    let f = Fixture::new();
    let first = f.one_vehicle(100);
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
    let total = f.one_vehicle(150);
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
    let produced = f.one_vehicle(120);
    assert_success(&f.load(&["--start-from", "2099-01-01T00:00:00Z"]));
    assert_eq!(f.rows(), 0, "every message is older than the start time");
    // Passed over for good: the offsets moved on, so a plain run adds nothing.
    assert_success(&f.load(&[]));
    assert_eq!(f.rows(), 0);

    let fresh = f.with_db("fresh.duckdb");
    assert_success(&fresh.load(&["--start-from", "2000-01-01T00:00:00Z"]));
    assert_eq!(fresh.rows() as u64, produced);
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
