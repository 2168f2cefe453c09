//! Finding the rows of a refused batch, so that they alone become dead letters.

use iot_model::EventKind;

use super::Destination;
use crate::batch::Batch;
use crate::error::DestinationError;
use crate::refused::{MOST_REFUSED, Refused};
use crate::rows::Row;

/// Finds the rows of `batch` that `destination` refuses, by halves: a set it takes
/// holds none, a refused set is split until single rows remain. About two probes
/// per refused row and level, so a few rows among 50,000 cost some 30 probes.
/// None when no row is refused (the refusal was of something else: the dead
/// letters, the offsets), when more than [`MOST_REFUSED`] are, or when a probe
/// fails for another reason. A batch of one refused row is that row's refusal: a
/// follower on a trickle of messages commits such batches.
pub fn refused_rows(
    destination: &mut impl Destination,
    batch: &Batch,
) -> Result<Option<Vec<Refused>>, DestinationError> {
    let mut refused = Vec::new();
    for kind in EventKind::ALL {
        let rows = batch.rows(kind);
        if !rows.is_empty() {
            halve(destination, kind, rows, 0, &mut refused)?;
        }
        if refused.len() > MOST_REFUSED {
            return Ok(None);
        }
    }
    Ok((!refused.is_empty()).then_some(refused))
}

/// Probes `rows` (the batch's rows of `kind` from `first` on).
fn halve(
    destination: &mut impl Destination,
    kind: EventKind,
    rows: &[Row],
    first: usize,
    refused: &mut Vec<Refused>,
) -> Result<(), DestinationError> {
    if refused.len() > MOST_REFUSED {
        return Ok(());
    }
    match destination.try_rows(kind, rows) {
        Ok(()) => Ok(()),
        Err(e) if !e.is_refusal() => Err(e),
        Err(e) if rows.len() == 1 => {
            refused.push(Refused {
                kind,
                index: first,
                error: iot_runtime::error_chain(&e),
            });
            Ok(())
        }
        Err(_) => {
            let middle = rows.len() / 2;
            halve(destination, kind, &rows[..middle], first, refused)?;
            halve(destination, kind, &rows[middle..], first + middle, refused)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_record::LoadRecord;
    use crate::partitions::StoredOffsets;
    use crate::rows::KafkaMeta;
    use iot_model::Topics;

    const GPS: &str = r#"{"schema_version":1,"id":"6f1c2f9e-6a59-4f0e-9a43-2f1d1f0c9b11","device_id":"0d7c6b8a-1f2e-4d3c-8b7a-6f5e4d3c2b1a","trip_id":"1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d","timestamp":"2026-11-26T09:30:00.250Z","lat":52.39,"lon":13.06,"speed_kmh":48.2,"heading_deg":181.5,"accuracy_m":3.0}"#;

    /// A destination that refuses the rows at some offsets, or fails every probe
    /// for another reason; it counts its probes.
    struct Refusing {
        offsets: Vec<i64>,
        outage: bool,
        probes: usize,
    }

    impl Destination for Refusing {
        fn stored_offsets(&mut self) -> Result<StoredOffsets, DestinationError> {
            Ok(StoredOffsets::new())
        }
        fn commit(
            &mut self,
            _: &Batch,
            _: &StoredOffsets,
            _: &LoadRecord,
        ) -> Result<(), DestinationError> {
            Ok(())
        }
        fn record(&mut self, _: &LoadRecord) -> Result<(), DestinationError> {
            Ok(())
        }
        fn try_rows(&mut self, _: EventKind, rows: &[Row]) -> Result<(), DestinationError> {
            self.probes += 1;
            if self.outage {
                return Err(DestinationError::Unreachable {
                    url: "http://warehouse".into(),
                    source: "connection reset".into(),
                });
            }
            match rows.iter().find(|r| self.offsets.contains(&r.kafka.offset)) {
                Some(r) => Err(DestinationError::write(
                    "gps_data",
                    format!("NULL result in a non-nullable column at {}", r.kafka.offset),
                )),
                None => Ok(()),
            }
        }
    }

    fn gps_batch(messages: i64) -> Batch {
        let mut batch = Batch::default();
        for offset in 0..messages {
            let kafka = KafkaMeta {
                partition: 0,
                offset,
                timestamp: None,
                key: None,
            };
            batch.add(&Topics::default(), "gps_data", kafka, Some(GPS.as_bytes()));
        }
        batch
    }

    fn refusing(offsets: impl IntoIterator<Item = i64>) -> Refusing {
        Refusing {
            offsets: offsets.into_iter().collect(),
            outage: false,
            probes: 0,
        }
    }

    #[test]
    fn the_refused_rows_are_found_by_halves() {
        let mut destination = refusing([3, 41, 42, 9_999]);
        let found = refused_rows(&mut destination, &gps_batch(10_000))
            .unwrap()
            .unwrap();
        let indices: Vec<usize> = found.iter().map(|r| r.index).collect();
        assert_eq!(indices, [3, 41, 42, 9_999]);
        assert!(
            found[0].error.contains("non-nullable column at 3"),
            "{}",
            found[0].error
        );
        assert!(destination.probes < 120, "{} probes", destination.probes);
    }

    #[test]
    fn a_batch_of_one_refused_row_is_that_rows_refusal() {
        let found = refused_rows(&mut refusing([0]), &gps_batch(1))
            .unwrap()
            .unwrap();
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn no_row_refused_or_too_many_leave_the_batch_failed() {
        assert!(
            refused_rows(&mut refusing([]), &gps_batch(100))
                .unwrap()
                .is_none()
        );
        let every = refusing(0..2_000);
        assert!(
            refused_rows(&mut { every }, &gps_batch(2_000))
                .unwrap()
                .is_none()
        );
        let mut outage = Refusing {
            outage: true,
            ..refusing([])
        };
        let error = refused_rows(&mut outage, &gps_batch(100)).unwrap_err();
        assert!(
            matches!(error, DestinationError::Unreachable { .. }),
            "{error}"
        );
        assert_eq!(outage.probes, 1, "an outage is not probed further");
    }
}
