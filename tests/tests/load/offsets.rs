//! Topics that change under the loader: recreated, reset, or with messages deleted before they were loaded.

use super::*;

#[test]
fn a_recreated_topic_is_refused_until_reset() {
    let f = Fixture::new();
    f.one_vehicle(400);
    assert_success(&f.load(&[]));

    // The topics are deleted and created anew: every partition now ends below the
    // offsets the file stored.
    delete_topics(&f.bootstrap, &f.topics);
    let recreated = f.one_vehicle(10);
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
    let refused = query_strings(
        &f.db,
        "SELECT status || ': ' || error FROM iot_stream._loads ORDER BY started_at DESC LIMIT 1",
    );
    assert!(
        refused[0].starts_with("failed: ") && refused[0].contains("beyond the end"),
        "_loads records the refused run: {refused:?}"
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
