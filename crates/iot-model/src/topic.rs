//! The five event streams and the Kafka topic each one travels on.

use std::fmt;

/// Which stream an event belongs to. Each kind has its own topic and, in the
/// analytical store, its own table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Vehicle,
    Gps,
    TrafficCamera,
    Weather,
    Emergency,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::Vehicle,
        EventKind::Gps,
        EventKind::TrafficCamera,
        EventKind::Weather,
        EventKind::Emergency,
    ];

    /// The topic name used when none is configured; also the table name.
    pub fn default_topic(self) -> &'static str {
        match self {
            EventKind::Vehicle => "vehicle_data",
            EventKind::Gps => "gps_data",
            EventKind::TrafficCamera => "traffic_data",
            EventKind::Weather => "weather_data",
            EventKind::Emergency => "emergency_data",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.default_topic())
    }
}

/// Topic names, one per [`EventKind`]; configurable so that several fleets or test
/// runs can share a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub vehicle: String,
    pub gps: String,
    pub traffic_camera: String,
    pub weather: String,
    pub emergency: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            vehicle: EventKind::Vehicle.default_topic().into(),
            gps: EventKind::Gps.default_topic().into(),
            traffic_camera: EventKind::TrafficCamera.default_topic().into(),
            weather: EventKind::Weather.default_topic().into(),
            emergency: EventKind::Emergency.default_topic().into(),
        }
    }
}

impl Topics {
    pub fn name(&self, kind: EventKind) -> &str {
        match kind {
            EventKind::Vehicle => &self.vehicle,
            EventKind::Gps => &self.gps,
            EventKind::TrafficCamera => &self.traffic_camera,
            EventKind::Weather => &self.weather,
            EventKind::Emergency => &self.emergency,
        }
    }

    /// The kind of event a topic carries, if it is one of ours.
    pub fn kind_of(&self, topic: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|&k| self.name(k) == topic)
    }

    /// Every `(kind, topic)` pair, in [`EventKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (EventKind, &str)> {
        EventKind::ALL.into_iter().map(|k| (k, self.name(k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_python_pipeline() {
        let names: Vec<_> = Topics::default()
            .iter()
            .map(|(_, t)| t.to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "vehicle_data",
                "gps_data",
                "traffic_data",
                "weather_data",
                "emergency_data"
            ]
        );
    }

    #[test]
    fn finds_the_kind_of_a_renamed_topic() {
        let topics = Topics {
            gps: "fleet_a.gps".into(),
            ..Topics::default()
        };
        assert_eq!(topics.kind_of("fleet_a.gps"), Some(EventKind::Gps));
        assert_eq!(topics.kind_of("gps_data"), None);
    }
}
