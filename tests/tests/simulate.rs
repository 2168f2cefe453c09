//! `simulate` end to end: the real binary, offline routes, and a real broker.

use std::collections::{BTreeMap, HashMap};
use std::process::Output;
use std::time::{Duration, Instant};

use iot_model::{EventKind, Topics};
use iot_tests::{
    binary, bootstrap, create_topics, partition_count, read_topic, remove_at_end, run, topic_args,
    topic_ends, topic_names, unique_topics, wait_until,
};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

/// One NDJSON line of `--sink stdout`.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    topic: String,
    key: String,
    value: Value,
}

fn simulate(args: &[&str]) -> Output {
    run(binary("simulate").args(args), LIMIT)
}

fn lines(output: &Output) -> Vec<Line> {
    assert!(
        output.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .expect("NDJSON is UTF-8")
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("each line is JSON");
            Line {
                topic: v["topic"].as_str().unwrap().to_owned(),
                key: v["key"].as_str().unwrap().to_owned(),
                value: v["value"].take(),
            }
        })
        .collect()
}

fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let a = ((p2 - p1) / 2.0).sin().powi(2)
        + p1.cos() * p2.cos() * ((lon2 - lon1).to_radians() / 2.0).sin().powi(2);
    2.0 * 6371.0 * a.sqrt().asin()
}

#[test]
fn potsdam_to_leipzig_offline_is_coherent_and_reproducible() {
    let args = [
        "--from", "Potsdam", "--to", "Leipzig", "--speed", "max", "--sink", "stdout", "--seed", "7",
    ];
    let first = simulate(&args);
    let events = lines(&first);

    let topics: BTreeMap<&str, usize> = events.iter().fold(BTreeMap::new(), |mut m, l| {
        *m.entry(l.topic.as_str()).or_default() += 1;
        m
    });
    for (_, name) in Topics::default().iter() {
        assert!(
            topics.get(name).copied().unwrap_or(0) > 0,
            "no {name} events: {topics:?}"
        );
    }
    for l in &events {
        assert_eq!(
            l.value["device_id"].as_str(),
            Some(l.key.as_str()),
            "key is the device id"
        );
        assert_eq!(l.value["schema_version"], 1);
        let kind = Topics::default().kind_of(&l.topic).unwrap();
        let payload = serde_json::to_vec(&l.value).unwrap();
        iot_model::decode(kind, &payload).expect("every event decodes and validates");
    }

    let mut gps: HashMap<&str, Vec<&Value>> = HashMap::new();
    for l in events.iter().filter(|l| l.topic == "gps_data") {
        gps.entry(l.key.as_str()).or_default().push(&l.value);
    }
    assert_eq!(gps.len(), 3, "three vehicles by default");
    let (potsdam, leipzig) = ((52.3906, 13.0645), (51.3397, 12.3731));
    for (device, readings) in &gps {
        let at = |v: &Value| (v["lat"].as_f64().unwrap(), v["lon"].as_f64().unwrap());
        let (first_lat, first_lon) = at(readings[0]);
        let (last_lat, last_lon) = at(readings[readings.len() - 1]);
        assert!(
            distance_km(first_lat, first_lon, potsdam.0, potsdam.1) < 5.0,
            "{device} starts away from Potsdam"
        );
        assert!(
            distance_km(last_lat, last_lon, leipzig.0, leipzig.1) < 5.0,
            "{device} ends away from Leipzig"
        );
        // It braked to a standstill there: its last fix reads 0 km/h, at the place of
        // the fix before it.
        let last = readings[readings.len() - 1];
        assert_eq!(last["speed_kmh"].as_f64(), Some(0.0), "{device}: {last}");
        assert_eq!(at(readings[readings.len() - 2]), at(last), "{device}");

        let times: Vec<i64> = readings
            .iter()
            .map(|v| {
                v["timestamp"]
                    .as_str()
                    .unwrap()
                    .parse::<iot_model::Timestamp>()
                    .unwrap()
                    .millis()
            })
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "{device}: timestamps do not strictly increase"
        );

        let mut gaps: Vec<f64> = readings
            .windows(2)
            .zip(times.windows(2))
            .filter(|(w, _)| w[1]["speed_kmh"].as_f64().unwrap() > 1.0)
            .map(|(w, t)| {
                let ((a_lat, a_lon), (b_lat, b_lon)) = (at(w[0]), at(w[1]));
                let implied =
                    distance_km(a_lat, a_lon, b_lat, b_lon) / ((t[1] - t[0]) as f64 / 3.6e6);
                let reported = w[1]["speed_kmh"].as_f64().unwrap();
                (implied - reported).abs() / reported
            })
            .collect();
        gaps.sort_by(f64::total_cmp);
        let median = gaps[gaps.len() / 2];
        assert!(median < 0.10, "{device}: median speed gap {median}");
    }

    let again = simulate(&args);
    assert_eq!(
        first.stdout, again.stdout,
        "the same seed must give the same bytes"
    );
    let other_seed = simulate(&[
        "--from", "Potsdam", "--to", "Leipzig", "--speed", "max", "--sink", "stdout", "--seed", "8",
    ]);
    assert_ne!(
        first.stdout, other_seed.stdout,
        "another seed must give other events"
    );
}

#[test]
fn every_event_reaches_the_broker_once_keyed_by_device() {
    let bootstrap = bootstrap();
    let topics = unique_topics();
    let _gone = remove_at_end(&bootstrap, &topics);
    let common = [
        "--from",
        "Potsdam",
        "--to",
        "Leipzig",
        "--vehicles",
        "4",
        "--duration",
        "20m",
        "--speed",
        "max",
        "--seed",
        "11",
        "--emergency-rate",
        "6",
    ];
    let expected = lines(&simulate(&[&common[..], &["--sink", "stdout"]].concat()));

    let mut args: Vec<String> = common.iter().map(|s| s.to_string()).collect();
    args.extend(["--bootstrap-servers".into(), bootstrap.clone()]);
    args.extend(topic_args(&topics));
    let output = run(binary("simulate").args(&args), LIMIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "simulate failed: {stderr}");
    assert!(
        stderr.contains(&format!("delivered {}, failed 0", expected.len())),
        "{stderr}"
    );

    for (kind, topic) in topics.iter() {
        let records = read_topic(&bootstrap, topic);
        let default_name = kind.default_topic();
        let want: Vec<&Line> = expected
            .iter()
            .filter(|l| l.topic == default_name)
            .collect();
        assert_eq!(records.len(), want.len(), "{topic}: message count");
        assert!(
            !records.is_empty() || kind == EventKind::Emergency,
            "{topic} is empty"
        );

        // Per device, the broker holds exactly the generated events, in order.
        let mut got_by_device: HashMap<String, Vec<Value>> = HashMap::new();
        let mut partition_of: HashMap<String, i32> = HashMap::new();
        for r in &records {
            let key = r.key.clone().expect("every message has a key");
            let previous = partition_of.insert(key.clone(), r.partition);
            assert!(
                previous.is_none_or(|p| p == r.partition),
                "{key} is spread over partitions"
            );
            got_by_device
                .entry(key)
                .or_default()
                .push(serde_json::from_str(&r.payload).unwrap());
        }
        let mut want_by_device: HashMap<String, Vec<Value>> = HashMap::new();
        for l in want {
            want_by_device
                .entry(l.key.clone())
                .or_default()
                .push(l.value.clone());
        }
        assert_eq!(
            got_by_device, want_by_device,
            "{topic}: contents or order differ"
        );
    }
    assert_eq!(partition_count(&bootstrap, &topics.gps), 3);
}

#[test]
fn existing_topics_are_left_as_they_are() {
    let bootstrap = bootstrap();
    let topics = unique_topics();
    let _gone = remove_at_end(&bootstrap, &topics);
    let mut args: Vec<String> = [
        "--from",
        "Potsdam",
        "--to",
        "Berlin",
        "--vehicles",
        "1",
        "--max-events",
        "50",
        "--speed",
        "max",
        // No random emergency among the 50 events (one took a vehicle reading's
        // place in a CI run): each run is 25 vehicle and 25 GPS readings.
        "--emergency-rate",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--bootstrap-servers".into(), bootstrap.clone()]);
    args.extend(topic_args(&topics));

    let one_partition = [args.clone(), vec!["--partitions".into(), "1".into()]].concat();
    assert!(
        run(binary("simulate").args(&one_partition), LIMIT)
            .status
            .success()
    );
    let five_partitions = [args, vec!["--partitions".into(), "5".into()]].concat();
    assert!(
        run(binary("simulate").args(&five_partitions), LIMIT)
            .status
            .success()
    );

    assert_eq!(partition_count(&bootstrap, &topics.vehicle), 1);
    assert_eq!(read_topic(&bootstrap, &topics.vehicle).len(), 50);
}

#[test]
fn an_absurd_tick_or_interval_is_a_usage_error_that_says_why() {
    for (flag, value, why) in [
        ("--tick", "0s", "outside 1ms to 1h"),
        ("--tick", "100000000h", "outside 1ms to 1h"),
        ("--weather-interval", "0s", "longer than zero"),
    ] {
        let output = simulate(&[
            "--from", "Potsdam", "--to", "Leipzig", "--sink", "stdout", flag, value,
        ]);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(why), "{stderr}");
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn an_out_of_range_number_is_a_usage_error_naming_the_flag_and_range() {
    for (flag, value, range) in [
        ("--speed", "1e-30", "from 0.001 to 1000000, or max"),
        ("--speed", "NaN", "from 0.001 to 1000000, or max"),
        (
            "--camera-spacing-km",
            "1e-12",
            "0 (no cameras) or from 0.01 to 10000",
        ),
        ("--camera-spacing-km", "-1", "from 0 to 10000"),
        ("--emergency-rate", "-1", "from 0 to 3600"),
        ("--emergency-rate", "NaN", "from 0 to 3600"),
        ("--vehicles", "4000000000", "1..=100000"),
    ] {
        // flag=value: a negative number given apart would be read as a flag.
        let given = format!("{flag}={value}");
        let output = simulate(&[
            "--from", "Potsdam", "--to", "Leipzig", "--sink", "stdout", &given,
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{given}: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains(range), "{stderr}");
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn two_streams_on_one_topic_is_a_usage_error() {
    let output = simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Leipzig",
        "--sink",
        "stdout",
        "--gps-topic",
        "fleet",
        "--weather-topic",
        "fleet",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--gps-topic and --weather-topic both name topic \"fleet\""),
        "{stderr}"
    );
}

/// Text for a numeric flag: any float's spelling (NaN, infinities, negatives and
/// subnormals among them), powers of ten far beyond any sensible range, integers.
fn number_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        any::<f64>().prop_map(|f| f.to_string()),
        (1u32..10, -40i32..40).prop_map(|(m, e)| format!("{m}e{e}")),
        (-1i64..=1i64 << 40).prop_map(|i| i.to_string()),
    ]
}

fn duration_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    (
        0u64..=u64::MAX / 2,
        prop::sample::select(vec!["ns", "ms", "s", "m", "h", "d", "y"]),
    )
        .prop_map(|(n, unit)| format!("{}{unit}", n >> (n % 64)))
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 48, max_shrink_time: 120_000, ..Default::default() })]

    /// Whatever numbers the flags are given: no panic and no hang; the run ends
    /// (exit 0) or the flags are refused (exit 2).
    #[test]
    fn numeric_flags_end_in_a_run_or_a_usage_error(
        speed in proptest::option::of(number_text()),
        vehicles in proptest::option::of(number_text()),
        spacing in proptest::option::of(number_text()),
        rate in proptest::option::of(number_text()),
        tick in proptest::option::of(duration_text()),
        stagger in proptest::option::of(duration_text()),
        weather in proptest::option::of(duration_text()),
        duration in proptest::option::of(duration_text()),
    ) {
        let mut args: Vec<String> = ["--from", "Potsdam", "--to", "Leipzig", "--sink", "stdout", "--seed", "1"]
            .map(String::from)
            .to_vec();
        // At a slow speed the run paces itself in real time: one event keeps it short.
        let max_events = if speed.is_some() { "1" } else { "300" };
        args.extend(["--max-events".into(), max_events.into()]);
        args.push(format!("--speed={}", speed.unwrap_or_else(|| "max".into())));
        for (flag, value) in [
            ("--vehicles", vehicles),
            ("--camera-spacing-km", spacing),
            ("--emergency-rate", rate),
            ("--tick", tick),
            ("--stagger", stagger),
            ("--weather-interval", weather),
            ("--duration", duration),
        ] {
            if let Some(value) = value {
                args.push(format!("{flag}={value}"));
            }
        }
        let output = run(binary("simulate").args(&args), Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&output.stderr);
        proptest::prop_assert!(
            matches!(output.status.code(), Some(0 | 2)),
            "simulate {}: {:?}\n{}",
            args.join(" "),
            output.status,
            stderr
        );
        proptest::prop_assert!(!stderr.contains("panicked"), "{}", stderr);
    }
}

#[test]
fn an_unknown_place_is_named_and_fails() {
    let output = simulate(&["--from", "Atlantis", "--to", "Leipzig", "--sink", "stdout"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Atlantis"), "{stderr}");
    assert!(output.stdout.is_empty());
}

/// What every test relies on to leave a shared broker as it found it: the guard
/// deletes the test's topics when it goes.
#[test]
fn a_tests_topics_are_deleted_from_the_broker_when_it_ends() {
    let bootstrap = bootstrap();
    let topics = unique_topics();
    let ours = |listed: &std::collections::BTreeSet<String>| {
        topics.iter().filter(|(_, t)| listed.contains(*t)).count()
    };
    {
        let _gone = remove_at_end(&bootstrap, &topics);
        create_topics(&bootstrap, &topics, 1);
        assert_eq!(ours(&topic_names(&bootstrap)), 5);
    }
    wait_until(Duration::from_secs(30), "the topics deleted", || {
        ours(&topic_names(&bootstrap)) == 0
    });
}

#[test]
fn a_route_from_a_place_to_itself_says_so_and_fails() {
    let output = simulate(&["--from", "Berlin", "--to", "berlin", "--sink", "stdout"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Berlin and berlin are the same place") && stderr.contains("--from"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

/// `simulate --sink stdout | head -3`: the run ends when the reader goes, and its
/// summary counts the lines standard output took, not Kafka deliveries.
#[test]
fn a_reader_that_closes_stdout_ends_the_run_and_the_summary_counts_what_it_took() {
    use std::io::{BufRead, BufReader};
    let mut child = binary("simulate")
        .args([
            "--from", "Potsdam", "--to", "Leipzig", "--speed", "max", "--sink", "stdout",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..3 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("{\"topic\":"), "{line}");
    }
    drop(out);
    let output = iot_tests::finish(child, LIMIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let written: u64 = stderr
        .split("written to stdout ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count of lines written: {stderr}"));
    let total: u64 = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("total")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no total: {stderr}"));
    assert!(3 <= written && written <= total, "{stderr}");
    assert!(stderr.contains("then its reader closed it"), "{stderr}");
    assert!(!stderr.contains("delivered"), "{stderr}");
}

#[test]
fn an_unreachable_broker_fails_quickly_and_says_where() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let output = simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Leipzig",
        "--bootstrap-servers",
        &address,
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&address) && stderr.contains("scripts/broker.sh start"),
        "{stderr}"
    );
}

#[test]
fn ctrl_c_stops_generating_and_delivers_what_was_sent() {
    use std::process::Stdio;

    let bootstrap = bootstrap();
    let topics = unique_topics();
    let _gone = remove_at_end(&bootstrap, &topics);
    let mut child = binary("simulate")
        .args([
            "--from",
            "Potsdam",
            "--to",
            "Leipzig",
            "--speed",
            "120",
            "--bootstrap-servers",
            &bootstrap,
        ])
        .args(topic_args(&topics))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ctrl-C strikes a run that is sending.
    wait_until(LIMIT, "simulate delivers its first events", || {
        topic_ends(&bootstrap, &topics) > 0
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended by itself"
    );
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let output = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "simulate did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Interrupted:"), "{stderr}");

    let delivered: usize = stderr
        .split("delivered ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no delivery count in {stderr}"));
    let stored: usize = topics
        .iter()
        .map(|(_, t)| read_topic(&bootstrap, t).len())
        .sum();
    assert!(delivered > 0);
    assert_eq!(stored, delivered);
}

#[test]
fn ctrl_c_ends_a_run_whose_standard_error_is_closed() {
    use std::io::BufRead;

    // At 60x, the drive takes over a minute.
    let mut child = iot_tests::spawn(binary("simulate").args([
        "--from", "Potsdam", "--to", "Leipzig", "--speed", "60", "--sink", "stdout",
    ]));
    drop(child.stderr.take());
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let rest = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    iot_tests::interrupt(&child);
    let output = iot_tests::finish(child, Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(0));
    let rest = rest.join().unwrap();
    for line in std::iter::once(first.as_str()).chain(rest.lines()) {
        assert!(
            serde_json::from_str::<Value>(line.trim_end()).is_ok(),
            "{line}"
        );
    }
}

#[test]
fn settings_are_read_from_dot_env() {
    // binary() runs in a fresh directory; a .env there must be read before the flags.
    let mut command = binary("simulate");
    let dir = command.get_current_dir().unwrap().to_path_buf();
    std::fs::write(
        dir.join(".env"),
        "SIMULATE_FROM=Atlantis\nSIMULATE_TO=Leipzig\nSIMULATE_SINK=stdout\n",
    )
    .unwrap();
    let output = run(&mut command, LIMIT);
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Atlantis"));
}

#[test]
fn help_documents_every_variable_of_the_example_env() {
    let simulate = run(binary("simulate").arg("--help"), LIMIT);
    let load = run(binary("load").arg("--help"), LIMIT);
    assert!(simulate.status.success() && load.status.success());
    let help = format!(
        "{}{}",
        String::from_utf8_lossy(&simulate.stdout),
        String::from_utf8_lossy(&load.stdout)
    );
    let example = std::fs::read_to_string(iot_tests::repo().join(".env.example")).unwrap();
    // The programs' part of the file: the scripts' variables follow it.
    let programs = example
        .split("# --- dbt, the dashboard and the flow")
        .next()
        .unwrap_or_default();
    let variables: Vec<&str> = programs
        .lines()
        .map(|l| l.trim_start_matches('#'))
        .filter_map(|l| l.split_once('=').map(|(name, _)| name))
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect();
    assert!(variables.len() > 20, "{variables:?}");
    for variable in variables {
        assert!(
            help.contains(variable),
            "--help does not mention {variable}"
        );
    }
    for status in [
        "Exit status",
        "0  every event was delivered",
        "3  unknown place",
    ] {
        assert!(help.contains(status), "--help lacks {status:?}");
    }
}
