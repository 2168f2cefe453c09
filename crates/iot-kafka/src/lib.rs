//! How `simulate` and `load` reach Kafka: one set of connection flags (with the
//! environment names the Python pipeline used), one check that the broker answers,
//! and one place that creates missing topics.

mod log;

use std::fmt;
use std::time::Duration;

use iot_model::Topics;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::types::RDKafkaErrorCode;

pub use log::librdkafka_log;

/// Where the local broker listens: `scripts/broker.sh` and docker-compose both use it.
pub const DEFAULT_BOOTSTRAP_SERVERS: &str = "127.0.0.1:9092";

/// The hint every "cannot reach the broker" message ends with.
const START_A_BROKER: &str = "start one with `scripts/broker.sh start` (or `docker compose up -d`), \
     or point --bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS at yours";

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("cannot reach the Kafka broker at {servers} within {timeout:?}; {START_A_BROKER}")]
    Unreachable {
        servers: String,
        timeout: Duration,
        #[source]
        source: RdKafkaError,
    },
    #[error(
        "the Kafka client settings are invalid: {0}; check --kafka-setting and the KAFKA_* variables"
    )]
    Config(#[source] RdKafkaError),
    #[error("could not create topic {topic}")]
    CreateTopic {
        topic: String,
        #[source]
        source: RDKafkaErrorCode,
    },
}

impl KafkaError {
    /// Whether trying again later may succeed without the user changing anything.
    pub fn is_retriable(&self) -> bool {
        matches!(self, KafkaError::Unreachable { .. })
    }
}

/// Connection settings for the Kafka cluster.
#[derive(Clone)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` list of brokers to bootstrap from.
    pub bootstrap_servers: String,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`; librdkafka's default when unset.
    pub security_protocol: Option<String>,
    /// SASL mechanism, e.g. `PLAIN` or `SCRAM-SHA-512`.
    pub sasl_mechanisms: Option<String>,
    pub sasl_username: Option<String>,
    /// Read from the environment only, and never printed.
    pub sasl_password: Option<String>,
    /// Any other librdkafka property, applied last so it can override ours.
    pub extra: Vec<(String, String)>,
    /// How long to wait for the cluster to answer before calling it unreachable.
    pub timeout: Duration,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            bootstrap_servers: DEFAULT_BOOTSTRAP_SERVERS.into(),
            security_protocol: None,
            sasl_mechanisms: None,
            sasl_username: None,
            sasl_password: None,
            extra: Vec::new(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanisms", &self.sasl_mechanisms)
            .field("sasl_username", &self.sasl_username)
            .field(
                "sasl_password",
                &self.sasl_password.as_ref().map(|_| "<redacted>"),
            )
            .field("extra", &self.extra)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl KafkaSettings {
    /// A librdkafka configuration with the connection settings filled in; each
    /// program adds its producer or consumer properties on top.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        // librdkafka otherwise retries an unreachable cluster silently for minutes.
        config.set("socket.connection.setup.timeout.ms", millis(self.timeout));
        let optional = [
            ("security.protocol", &self.security_protocol),
            ("sasl.mechanisms", &self.sasl_mechanisms),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                config.set(key, value);
            }
        }
        for (key, value) in &self.extra {
            config.set(key, value);
        }
        config
    }

    /// Asks the cluster for its metadata, to fail early and clearly when it is not
    /// there. Blocking: call it from a blocking context.
    pub fn check_reachable(&self) -> Result<(), KafkaError> {
        let consumer: BaseConsumer = self.client_config().create().map_err(KafkaError::Config)?;
        consumer
            .fetch_metadata(None, self.timeout)
            .map(|_| ())
            .map_err(|e| self.unreachable(e))
    }

    fn unreachable(&self, error: RdKafkaError) -> KafkaError {
        KafkaError::Unreachable {
            servers: self.bootstrap_servers.clone(),
            timeout: self.timeout,
            source: error,
        }
    }

    /// Creates those of `topics` that do not exist yet, with `partitions`
    /// partitions, and returns their names. Existing topics are left as they are.
    pub async fn ensure_topics(
        &self,
        topics: &[&str],
        partitions: i32,
        replication: i32,
    ) -> Result<Vec<String>, KafkaError> {
        let existing = {
            let settings = self.clone();
            tokio::task::spawn_blocking(move || settings.topic_names())
                .await
                .expect("listing topics does not panic")?
        };
        let missing: Vec<&str> = topics
            .iter()
            .copied()
            .filter(|t| !existing.iter().any(|e| e == t))
            .collect();
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let admin: AdminClient<DefaultClientContext> =
            self.client_config().create().map_err(KafkaError::Config)?;
        let new_topics: Vec<NewTopic> = missing
            .iter()
            .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = admin
            .create_topics(&new_topics, &options)
            .await
            .map_err(|e| self.unreachable(e))?;
        let mut created = Vec::new();
        for result in results {
            match result {
                Ok(topic) => created.push(topic),
                // Another process created it between our look and our request.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(KafkaError::CreateTopic {
                        topic,
                        source: code,
                    });
                }
            }
        }
        Ok(created)
    }

    fn topic_names(&self) -> Result<Vec<String>, KafkaError> {
        let consumer: BaseConsumer = self.client_config().create().map_err(KafkaError::Config)?;
        let metadata = consumer
            .fetch_metadata(None, self.timeout)
            .map_err(|e| self.unreachable(e))?;
        Ok(metadata
            .topics()
            .iter()
            .map(|t| t.name().to_owned())
            .collect())
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// The connection flags both programs take; `--help` lists each with its variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KafkaArgs {
    /// Kafka brokers to connect to, `host:port[,host:port…]`.
    /// Also read from SOURCES__KAFKA__CREDENTIALS__BOOTSTRAP_SERVERS.
    /// [default: 127.0.0.1:9092]
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", value_name = "SERVERS")]
    pub bootstrap_servers: Option<String>,

    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    /// Also read from SOURCES__KAFKA__CREDENTIALS__SECURITY_PROTOCOL.
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL", value_name = "PROTOCOL")]
    pub security_protocol: Option<String>,

    /// SASL mechanism, e.g. PLAIN or SCRAM-SHA-512.
    /// Also read from SOURCES__KAFKA__CREDENTIALS__SASL_MECHANISMS.
    #[arg(long, env = "KAFKA_SASL_MECHANISMS", value_name = "MECHANISM")]
    pub sasl_mechanisms: Option<String>,

    /// SASL user name. The password is read only from the environment:
    /// KAFKA_SASL_PASSWORD or SOURCES__KAFKA__CREDENTIALS__SASL_PASSWORD.
    /// Also read from SOURCES__KAFKA__CREDENTIALS__SASL_USERNAME.
    #[arg(long, env = "KAFKA_SASL_USERNAME", value_name = "USER")]
    pub sasl_username: Option<String>,

    /// Any librdkafka property, as key=value; repeat the flag for several, or
    /// separate them with commas (in the variable too). A value may hold commas
    /// itself: text is split only before a `key=`. `debug=broker,fetch` (or cgrp,
    /// protocol, all) prints librdkafka's own trace of those parts.
    #[arg(
        long = "kafka-setting",
        env = "KAFKA_SETTINGS",
        value_name = "KEY=VALUE",
        value_parser = parse_settings
    )]
    pub kafka_settings: Vec<SettingList>,

    /// How long to wait for the broker to answer before giving up (e.g. 10s, 1m).
    #[arg(long, env = "KAFKA_TIMEOUT", value_name = "DURATION", default_value = "10s",
          value_parser = iot_runtime::parse_duration)]
    pub kafka_timeout: Duration,
}

impl KafkaArgs {
    /// The settings these flags describe, with the dlt-style variable names as
    /// fall-backs and the password from the environment.
    pub fn settings(&self) -> KafkaSettings {
        KafkaSettings {
            bootstrap_servers: or_env(&self.bootstrap_servers, "BOOTSTRAP_SERVERS")
                .unwrap_or_else(|| DEFAULT_BOOTSTRAP_SERVERS.into()),
            security_protocol: or_env(&self.security_protocol, "SECURITY_PROTOCOL"),
            sasl_mechanisms: or_env(&self.sasl_mechanisms, "SASL_MECHANISMS"),
            sasl_username: or_env(&self.sasl_username, "SASL_USERNAME"),
            sasl_password: or_env(&None, "SASL_PASSWORD")
                .or_else(|| non_empty_env("KAFKA_SASL_PASSWORD")),
            extra: self
                .kafka_settings
                .iter()
                .flat_map(|l| l.0.clone())
                .collect(),
            timeout: self.kafka_timeout,
        }
    }
}

/// Topic names; the variables are those of the Python pipeline.
#[derive(Debug, clap::Args)]
pub struct TopicArgs {
    /// Topic for vehicle readings.
    #[arg(long, env = "VEHICLE_TOPIC", default_value = "vehicle_data", value_name = "TOPIC",
          value_parser = topic_name)]
    pub vehicle_topic: String,
    /// Topic for GPS readings.
    #[arg(long, env = "GPS_TOPIC", default_value = "gps_data", value_name = "TOPIC",
          value_parser = topic_name)]
    pub gps_topic: String,
    /// Topic for traffic camera events.
    #[arg(long, env = "TRAFFIC_TOPIC", default_value = "traffic_data", value_name = "TOPIC",
          value_parser = topic_name)]
    pub traffic_topic: String,
    /// Topic for weather readings.
    #[arg(long, env = "WEATHER_TOPIC", default_value = "weather_data", value_name = "TOPIC",
          value_parser = topic_name)]
    pub weather_topic: String,
    /// Topic for emergency events.
    #[arg(long, env = "EMERGENCY_TOPIC", default_value = "emergency_data", value_name = "TOPIC",
          value_parser = topic_name)]
    pub emergency_topic: String,
}

impl TopicArgs {
    /// Refuses two streams named to one topic: the events of both kinds would mix
    /// there, and a loader could not tell one kind from the other.
    pub fn check_distinct(&self) -> Result<(), String> {
        let flags = [
            ("--vehicle-topic", &self.vehicle_topic),
            ("--gps-topic", &self.gps_topic),
            ("--traffic-topic", &self.traffic_topic),
            ("--weather-topic", &self.weather_topic),
            ("--emergency-topic", &self.emergency_topic),
        ];
        for (i, (flag, topic)) in flags.iter().enumerate() {
            if let Some((other, _)) = flags[i + 1..].iter().find(|(_, t)| t == topic) {
                return Err(format!(
                    "{flag} and {other} both name topic {topic:?}; each stream needs a topic of its own"
                ));
            }
        }
        Ok(())
    }

    pub fn topics(&self) -> Topics {
        Topics {
            vehicle: self.vehicle_topic.clone(),
            gps: self.gps_topic.clone(),
            traffic_camera: self.traffic_topic.clone(),
            weather: self.weather_topic.clone(),
            emergency: self.emergency_topic.clone(),
        }
    }
}

/// The flag's value, or else the variable the dlt pipeline used for it.
pub fn or_env(value: &Option<String>, dlt_suffix: &str) -> Option<String> {
    value
        .clone()
        .or_else(|| non_empty_env(&format!("SOURCES__KAFKA__CREDENTIALS__{dlt_suffix}")))
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The librdkafka settings one `--kafka-setting` (or `KAFKA_SETTINGS`) gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingList(pub Vec<(String, String)>);

/// Reads `key=value[,key=value…]`. A comma starts a new setting only where a
/// property name and `=` follow it; otherwise it belongs to the value, as in
/// `debug=broker,fetch` or `ssl.cipher.suites=A,B`.
pub fn parse_settings(text: &str) -> Result<SettingList, String> {
    let mut settings: Vec<(String, String)> = Vec::new();
    for part in text.split(',') {
        match (part.split_once('='), settings.last_mut()) {
            (Some((key, value)), _) if is_property_name(key.trim()) => {
                settings.push((key.trim().to_owned(), value.trim().to_owned()));
            }
            (_, Some((_, value))) => {
                value.push(',');
                value.push_str(part.trim());
            }
            (_, None) => return Err(format!("expected key=value, got {text:?}")),
        }
    }
    Ok(SettingList(settings))
}

/// Whether `key` can name a librdkafka property: dotted lower-case words.
fn is_property_name(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Accepts a valid Kafka topic name: 1–249 characters of `a-z A-Z 0-9 . _ -`.
pub fn topic_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 249
        && text != "."
        && text != ".."
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a Kafka topic name (1-249 characters of a-z, A-Z, 0-9, '.', '_', '-')"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_reach_the_client_config() {
        let settings = KafkaSettings {
            sasl_username: Some("fleet".into()),
            extra: vec![("linger.ms".into(), "20".into())],
            ..KafkaSettings::default()
        };
        let config = settings.client_config();
        assert_eq!(
            config.get("bootstrap.servers"),
            Some(DEFAULT_BOOTSTRAP_SERVERS)
        );
        assert_eq!(config.get("sasl.username"), Some("fleet"));
        assert_eq!(config.get("linger.ms"), Some("20"));
        assert_eq!(config.get("sasl.password"), None);
    }

    #[test]
    fn debug_output_hides_the_password() {
        let settings = KafkaSettings {
            sasl_password: Some("hunter2".into()),
            ..KafkaSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn checks_topic_names() {
        assert!(topic_name("fleet_a.gps-data").is_ok());
        for bad in ["", "..", "with space", "quote\"", "ü"] {
            assert!(topic_name(bad).is_err(), "{bad:?}");
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_key_value_settings() {
        let parse = |text| parse_settings(text).map(|l| l.0);
        assert_eq!(
            parse("compression.type = zstd"),
            Ok(pairs(&[("compression.type", "zstd")]))
        );
        assert_eq!(
            parse("linger.ms=50,compression.type=zstd"),
            Ok(pairs(&[("linger.ms", "50"), ("compression.type", "zstd")]))
        );
        assert_eq!(
            parse("ssl.cipher.suites=A,B,linger.ms=5"),
            Ok(pairs(&[("ssl.cipher.suites", "A,B"), ("linger.ms", "5")]))
        );
        assert!(parse("no-equals-sign").is_err());
        assert!(parse("=value").is_err());
        assert!(parse(",debug=all").is_err());
    }

    #[derive(Debug, clap::Parser)]
    struct Command {
        #[command(flatten)]
        kafka: KafkaArgs,
    }

    #[test]
    fn the_help_example_sets_a_value_with_commas() {
        use clap::Parser;
        let args = ["prog", "--kafka-setting", "debug=broker,fetch"];
        let extra = Command::try_parse_from(args)
            .unwrap()
            .kafka
            .settings()
            .extra;
        assert_eq!(extra, pairs(&[("debug", "broker,fetch")]));
        let repeated = [
            "prog",
            "--kafka-setting",
            "debug=cgrp",
            "--kafka-setting",
            "linger.ms=5,acks=all",
        ];
        let extra = Command::try_parse_from(repeated)
            .unwrap()
            .kafka
            .settings()
            .extra;
        assert_eq!(
            extra,
            pairs(&[("debug", "cgrp"), ("linger.ms", "5"), ("acks", "all")])
        );
        let help = Command::try_parse_from(["prog", "--help"])
            .unwrap_err()
            .to_string();
        assert!(help.contains("debug=broker,fetch"), "{help}");
    }

    #[tokio::test]
    async fn an_unreachable_broker_is_named_in_the_error() {
        // Port 9 (discard) on loopback has no Kafka broker behind it.
        let settings = KafkaSettings {
            bootstrap_servers: "127.0.0.1:9".into(),
            timeout: Duration::from_secs(2),
            ..KafkaSettings::default()
        };
        let err = tokio::task::spawn_blocking(move || settings.check_reachable())
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.is_retriable());
        let text = err.to_string();
        assert!(text.contains("127.0.0.1:9"), "{text}");
        assert!(text.contains("scripts/broker.sh start"), "{text}");
    }
}
