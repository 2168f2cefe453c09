//! Messages that cannot be loaded become dead letters with their reason, and the rest loads.

use super::*;

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
