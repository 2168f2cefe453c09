//! A batch: the messages read since the last commit, decoded into rows or set aside
//! as dead letters, and the offset range they cover per partition. A destination
//! writes all of it, next offsets included, in one transaction.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use iot_model::{EventKind, Topics};

use crate::partitions::{OffsetRange, PartitionKey};
use crate::refused::Refused;
use crate::rows::{DeadLetter, KafkaMeta, Row};

/// How far a kind's list of rows grows past what it needs, and how much room it
/// keeps from one batch to the next. A batch is reused (the one read and the one
/// written take turns), and the mix of kinds shifts during a long load (one topic
/// runs out before the others): a list that kept all it ever grew into would hold
/// room for far more rows than a batch has. A list grows a step at a time and keeps
/// a step more than the last batch used, so memory follows the batch size.
const ROWS_STEP: usize = 4096;

#[derive(Debug, Default)]
pub struct Batch {
    rows: [Vec<Row>; 5],
    dead_letters: Vec<DeadLetter>,
    ranges: BTreeMap<PartitionKey, OffsetRange>,
    opened: Option<Instant>,
    messages: usize,
    /// The key of the last lookup in `ranges`, kept to spare an allocation per message.
    lookup: PartitionKey,
}

impl Batch {
    /// Decodes a message into a row, or a dead letter, and extends its partition's range.
    pub fn add(&mut self, topics: &Topics, topic: &str, kafka: KafkaMeta, payload: Option<&[u8]>) {
        self.skip(topic, kafka.partition, kafka.offset);

        let Some(kind) = topics.kind_of(topic) else {
            return self.reject(
                topic,
                kafka,
                payload,
                format!("topic {topic} is not one of the five event topics"),
            );
        };
        let Some(payload) = payload else {
            return self.reject(topic, kafka, None, "the message has no payload".into());
        };
        match iot_model::decode(kind, payload) {
            Ok(decoded) => {
                let rows = &mut self.rows[kind as usize];
                if rows.len() == rows.capacity() {
                    rows.reserve_exact(ROWS_STEP);
                }
                rows.push(Row {
                    kafka,
                    event: decoded.event,
                    extra: decoded.extra,
                });
            }
            Err(error) => self.reject(topic, kafka, Some(payload), error.to_string()),
        }
    }

    /// Passes over a message without loading it (older than `--start-from`): its
    /// offset still moves on with the batch.
    pub fn skip(&mut self, topic: &str, partition: i32, offset: i64) {
        self.pass_over(topic, partition, offset..offset + 1);
    }

    /// Passes over a range of offsets without reading them (before where
    /// `--start-from` begins a partition): they move on with the batch, as if loaded.
    pub fn pass_over(&mut self, topic: &str, partition: i32, offsets: Range<i64>) {
        if offsets.is_empty() {
            return;
        }
        self.messages += (offsets.end - offsets.start) as usize;
        self.cover(topic, partition, offsets);
    }

    /// Offsets that hold nothing a consumer receives (the control records that end
    /// transactions, an aborted transaction's messages): they move on with the
    /// batch, as no message.
    pub fn pass_unread(&mut self, topic: &str, partition: i32, offsets: Range<i64>) {
        if !offsets.is_empty() {
            self.cover(topic, partition, offsets);
        }
    }

    fn cover(&mut self, topic: &str, partition: i32, offsets: Range<i64>) {
        self.opened.get_or_insert_with(Instant::now);
        self.lookup.0.clear();
        self.lookup.0.push_str(topic);
        self.lookup.1 = partition;
        match self.ranges.get_mut(&self.lookup) {
            Some(range) => range.next = range.next.max(offsets.end),
            None => {
                let range = OffsetRange {
                    first: offsets.start,
                    next: offsets.end,
                };
                self.ranges.insert(self.lookup.clone(), range);
            }
        }
    }

    /// Moves a partition's next offset to `offset` with this batch, whether or not a
    /// message of it is read: where placement started it elsewhere than its stored
    /// offset (past a gap, or back to the start of a recreated topic). An empty
    /// partition must move too, or its stale offset would be taken up again by the
    /// next run. Called before any message of the partition is added.
    pub fn start_at(&mut self, topic: &str, partition: i32, offset: i64) {
        self.opened.get_or_insert_with(Instant::now);
        let range = OffsetRange {
            first: offset,
            next: offset,
        };
        self.ranges.insert((topic.to_owned(), partition), range);
    }

    fn reject(&mut self, topic: &str, kafka: KafkaMeta, payload: Option<&[u8]>, error: String) {
        self.dead_letters.push(DeadLetter {
            topic: topic.to_owned(),
            kafka,
            payload: payload.unwrap_or_default().to_vec(),
            error,
        });
    }

    /// Turns rows the destination refused into dead letters with its reason, in the
    /// same places of the offset ranges. Rows keep no raw bytes, so a dead letter's
    /// payload is the event as decoded, encoded again with the fields the model does
    /// not know.
    pub fn refuse(&mut self, topics: &Topics, refused: &[Refused]) {
        let mut refused: Vec<&Refused> = refused.iter().collect();
        // From the last, so that each index still points at its row.
        refused.sort_by_key(|r| std::cmp::Reverse((r.kind as usize, r.index)));
        for r in refused {
            let row = self.rows[r.kind as usize].remove(r.index);
            let payload = encoded(&row);
            self.reject(
                topics.name(r.kind),
                row.kafka,
                Some(&payload),
                format!("refused by the destination: {}", r.error),
            );
        }
    }

    /// Drops what the batch holds of a partition the group has taken from this
    /// loader: its offsets did not move, so its new owner reads it again.
    pub fn forget(&mut self, topics: &Topics, key: &PartitionKey) {
        if self.ranges.remove(key).is_none() {
            return;
        }
        let (topic, partition) = (key.0.as_str(), key.1);
        let mut dropped = 0;
        if let Some(kind) = topics.kind_of(topic) {
            let rows = &mut self.rows[kind as usize];
            let before = rows.len();
            rows.retain(|r| r.kafka.partition != partition);
            dropped += before - rows.len();
        }
        let before = self.dead_letters.len();
        self.dead_letters
            .retain(|d| !(d.topic == topic && d.kafka.partition == partition));
        dropped += before - self.dead_letters.len();
        // Messages passed over (`--start-from`) are counted but not kept, so the count
        // can stay a little high until the batch is committed.
        self.messages -= dropped.min(self.messages);
    }

    /// Empties the batch for the next one, keeping a step more room for each kind
    /// than this one used (see [`ROWS_STEP`]).
    pub fn clear(&mut self) {
        for rows in &mut self.rows {
            let used = rows.len();
            rows.clear();
            rows.shrink_to(used + ROWS_STEP);
        }
        self.dead_letters.clear();
        self.ranges.clear();
        self.opened = None;
        self.messages = 0;
    }

    /// Rows of one kind, in the order they were read.
    pub fn rows(&self, kind: EventKind) -> &[Row] {
        &self.rows[kind as usize]
    }

    pub fn dead_letters(&self) -> &[DeadLetter] {
        &self.dead_letters
    }

    /// The offsets covered, per partition.
    pub fn ranges(&self) -> &BTreeMap<PartitionKey, OffsetRange> {
        &self.ranges
    }

    /// Messages taken, rows and dead letters together.
    pub fn len(&self) -> usize {
        self.messages
    }

    /// Whether the batch moves no offset: nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Time since the first message was taken.
    pub fn age(&self, now: Instant) -> Duration {
        self.opened
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }
}

/// A row's event as JSON again, with its unknown fields.
fn encoded(row: &Row) -> Vec<u8> {
    let mut out = Vec::new();
    row.event.encode(&mut out);
    let Some(extra) = &row.extra else {
        return out;
    };
    let parsed = (
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&out),
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(extra),
    );
    match parsed {
        (Ok(mut event), Ok(extra)) => {
            event.extend(extra);
            serde_json::to_vec(&event).unwrap_or(out)
        }
        _ => out,
    }
}

/// When a batch is complete: enough messages, or its oldest has waited long enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    pub max_messages: usize,
    pub max_age: Duration,
}

impl Default for BatchPolicy {
    /// 75,000 messages or 5 seconds. A commit has a fixed cost whatever its size, and
    /// each batch leaves a partly filled row group per table, so larger batches load
    /// faster; two batches are in memory at once (one read, one written), so larger
    /// batches also cost memory. 75,000 is where the two meet (docs/performance.md).
    fn default() -> Self {
        Self {
            max_messages: 75_000,
            max_age: Duration::from_secs(5),
        }
    }
}

impl BatchPolicy {
    pub fn should_complete(&self, batch: &Batch, now: Instant) -> bool {
        !batch.is_empty() && (batch.len() >= self.max_messages || batch.age(now) >= self.max_age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::Key;

    const GPS: &str = r#"{"schema_version":1,"id":"6f1c2f9e-6a59-4f0e-9a43-2f1d1f0c9b11","device_id":"0d7c6b8a-1f2e-4d3c-8b7a-6f5e4d3c2b1a","trip_id":"1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d","timestamp":"2026-11-26T09:30:00.250Z","lat":52.39,"lon":13.06,"speed_kmh":48.2,"heading_deg":181.5,"accuracy_m":3.0}"#;

    fn meta(offset: i64) -> KafkaMeta {
        KafkaMeta {
            partition: 0,
            offset,
            timestamp: None,
            key: Some(Key::new(b"k")),
        }
    }

    #[test]
    fn a_reused_batch_keeps_room_for_what_its_last_use_needed() {
        let topics = Topics::default();
        let mut batch = Batch::default();
        let fill = |batch: &mut Batch, rows: i64| {
            for offset in 0..rows {
                batch.add(&topics, "gps_data", meta(offset), Some(GPS.as_bytes()));
            }
            batch.clear();
        };
        fill(&mut batch, 10_000);
        let room = batch.rows[EventKind::Gps as usize].capacity();
        assert!((10_000..10_000 + ROWS_STEP).contains(&room), "{room}");
        // The mix moved on: this kind came 100 times.
        fill(&mut batch, 100);
        let room = batch.rows[EventKind::Gps as usize].capacity();
        assert!(room <= 100 + ROWS_STEP, "{room}");
    }

    #[test]
    fn passed_over_offsets_move_with_the_batch_without_rows() {
        let mut batch = Batch::default();
        batch.pass_over("gps_data", 1, 5..5);
        assert!(batch.is_empty(), "an empty range passes over nothing");
        batch.pass_over("gps_data", 1, 0..40);
        batch.skip("gps_data", 1, 40);
        let key = ("gps_data".to_owned(), 1);
        assert_eq!(batch.ranges()[&key], OffsetRange { first: 0, next: 41 });
        assert_eq!(batch.len(), 41);
        assert!(batch.dead_letters().is_empty());
        assert!(EventKind::ALL.iter().all(|k| batch.rows(*k).is_empty()));
    }

    #[test]
    fn forgetting_a_partition_drops_its_rows_dead_letters_and_range_only() {
        let topics = Topics::default();
        let mut batch = Batch::default();
        let on = |partition, offset| KafkaMeta {
            partition,
            ..meta(offset)
        };
        batch.add(&topics, "gps_data", on(0, 7), Some(GPS.as_bytes()));
        batch.add(&topics, "gps_data", on(1, 3), Some(GPS.as_bytes()));
        batch.add(&topics, "gps_data", on(1, 4), Some(b"{not json"));
        batch.add(&topics, "vehicle_data", on(1, 9), Some(b"{not json"));

        batch.forget(&topics, &("gps_data".to_owned(), 1));
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.rows(EventKind::Gps).len(), 1);
        assert_eq!(batch.rows(EventKind::Gps)[0].kafka.offset, 7);
        let left: Vec<&str> = batch
            .dead_letters()
            .iter()
            .map(|d| d.topic.as_str())
            .collect();
        assert_eq!(left, ["vehicle_data"]);
        let keys: Vec<&PartitionKey> = batch.ranges().keys().collect();
        assert_eq!(
            keys,
            [&("gps_data".to_owned(), 0), &("vehicle_data".to_owned(), 1)]
        );
        // A partition the batch holds nothing of changes nothing.
        batch.forget(&topics, &("gps_data".to_owned(), 5));
        assert_eq!(batch.len(), 2);
    }

    #[test]
    fn sorts_messages_into_rows_and_dead_letters() {
        let topics = Topics::default();
        let mut batch = Batch::default();
        batch.add(&topics, "gps_data", meta(7), Some(GPS.as_bytes()));
        batch.add(&topics, "gps_data", meta(8), Some(b"{not json"));
        batch.add(
            &topics,
            "gps_data",
            meta(9),
            Some(&GPS.replace("52.39", "123.0").into_bytes()),
        );
        batch.add(&topics, "gps_data", meta(10), Some(b"\xff\xfe"));
        batch.add(&topics, "gps_data", meta(11), None);
        batch.add(&topics, "somebody_elses", meta(3), Some(GPS.as_bytes()));

        assert_eq!(batch.len(), 6);
        assert_eq!(batch.rows(EventKind::Gps).len(), 1);
        let errors: Vec<&str> = batch
            .dead_letters()
            .iter()
            .map(|d| d.error.as_str())
            .collect();
        assert_eq!(errors.len(), 5);
        assert!(
            errors[0].contains("not a valid gps_data event"),
            "{}",
            errors[0]
        );
        assert!(errors[1].contains("`lat` is 123"), "{}", errors[1]);
        assert!(errors[2].contains("not UTF-8"), "{}", errors[2]);
        assert!(errors[3].contains("no payload"), "{}", errors[3]);
        assert!(errors[4].contains("somebody_elses"), "{}", errors[4]);
        assert_eq!(batch.dead_letters()[2].payload, b"\xff\xfe");

        let gps = batch.ranges()[&("gps_data".to_owned(), 0)];
        assert_eq!(gps, OffsetRange { first: 7, next: 12 });
        assert_eq!(
            batch.ranges()[&("somebody_elses".to_owned(), 0)],
            OffsetRange { first: 3, next: 4 }
        );
    }

    #[test]
    fn completes_on_size_or_age() {
        let policy = BatchPolicy {
            max_messages: 2,
            max_age: Duration::from_secs(5),
        };
        let topics = Topics::default();
        let mut batch = Batch::default();
        let now = Instant::now();
        assert!(
            !policy.should_complete(&batch, now + Duration::from_secs(60)),
            "an empty batch never completes"
        );
        batch.add(&topics, "gps_data", meta(1), Some(GPS.as_bytes()));
        assert!(!policy.should_complete(&batch, Instant::now()));
        assert!(policy.should_complete(&batch, Instant::now() + Duration::from_secs(6)));
        batch.add(&topics, "gps_data", meta(2), Some(GPS.as_bytes()));
        assert!(policy.should_complete(&batch, Instant::now()));

        batch.clear();
        assert!(batch.is_empty() && batch.ranges().is_empty());
        assert_eq!(batch.rows(EventKind::Gps), &[]);
        assert_eq!(batch.age(Instant::now()), Duration::ZERO);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_become_a_row_or_a_dead_letter(payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let topics = Topics::default();
            let mut batch = Batch::default();
            for (_, topic) in topics.iter() {
                batch.add(&topics, topic, meta(1), Some(&payload));
            }
            let rows: usize = EventKind::ALL.iter().map(|&k| batch.rows(k).len()).sum();
            proptest::prop_assert_eq!(rows + batch.dead_letters().len(), 5);
        }

        /// Valid events of every kind with bytes flipped, inserted, removed or the
        /// tail cut off: each still becomes exactly one row or one dead letter, on
        /// any topic, and a row is only ever made of a payload that decodes.
        #[test]
        fn mutated_events_become_a_row_or_a_dead_letter(
            which in 0usize..5,
            on_topic in 0usize..5,
            mutations in proptest::collection::vec(
                (0u8..4, proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
                1..8,
            ),
        ) {
            static VALID: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
            let valid = VALID.get_or_init(|| {
                crate::tables::tests::one_of_each()
                    .iter()
                    .map(|e| {
                        let mut json = Vec::new();
                        e.encode(&mut json);
                        json
                    })
                    .collect()
            });
            let mut payload = valid[which].clone();
            for (op, at, byte) in mutations {
                if payload.is_empty() {
                    break;
                }
                let i = at.index(payload.len());
                match op {
                    0 => payload[i] ^= byte | 1,
                    1 => payload.insert(i, byte),
                    2 => {
                        payload.remove(i);
                    }
                    _ => payload.truncate(i),
                }
            }
            let topics = Topics::default();
            let topic = topics.name(EventKind::ALL[on_topic]).to_owned();
            let mut batch = Batch::default();
            batch.add(&topics, &topic, meta(1), Some(&payload));
            let rows: usize = EventKind::ALL.iter().map(|&k| batch.rows(k).len()).sum();
            proptest::prop_assert_eq!(rows + batch.dead_letters().len(), 1);
            if rows == 1 {
                let kind = EventKind::ALL[on_topic];
                proptest::prop_assert!(iot_model::decode(kind, &payload).is_ok());
            }
        }
    }
}
