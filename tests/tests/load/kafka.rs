//! The broker and its settings: a missing topic, an unreachable broker, secrets in logs, librdkafka's trace.

use super::*;

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
    let scratch = scratch_dir();
    let db = scratch.path().join("x.duckdb");
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
    // The run read nothing, and _loads still says it ran, failed, and why.
    let runs = query_strings(
        &db,
        "SELECT status || ': ' || error FROM iot_stream._loads WHERE finished_at IS NOT NULL",
    );
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(
        runs[0].starts_with("failed: ") && runs[0].contains(&format!("127.0.0.1:{port}")),
        "{runs:?}"
    );
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
