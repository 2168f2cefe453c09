//! Where events go: a Kafka topic per stream, or standard output as NDJSON.
//!
//! The Kafka sink hands messages to librdkafka without waiting for each one.
//! librdkafka batches, compresses and retries (the idempotent producer keeps retries
//! from writing a message twice), and reports each message's fate on its own thread,
//! where it is counted; the run waits for the last reports at the end.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use iot_kafka::{KafkaError, KafkaSettings};
use rdkafka::ClientContext;
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

/// How the sending went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryReport {
    pub delivered: u64,
    pub failed: u64,
    /// The first failure, to show the user what went wrong.
    pub first_error: Option<String>,
    /// Standard output was closed by its reader (`simulate --sink stdout | head`)
    /// before the run ended.
    pub closed: bool,
}

impl DeliveryReport {
    fn fail(&mut self, error: impl ToString) {
        self.failed += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }
}

pub enum Sink {
    Kafka(KafkaSink),
    Stdout(StdoutSink),
}

impl Sink {
    pub async fn send(&mut self, topic: &str, key: &[u8], payload: &[u8]) -> io::Result<()> {
        match self {
            Sink::Kafka(k) => {
                k.send(topic, key, payload).await;
                Ok(())
            }
            Sink::Stdout(s) => s.send(topic, key, payload),
        }
    }

    /// Waits for every outstanding delivery and reports.
    pub async fn finish(self) -> io::Result<DeliveryReport> {
        match self {
            Sink::Kafka(k) => Ok(k.finish().await),
            Sink::Stdout(s) => s.finish(),
        }
    }

    /// Messages handed over and not yet confirmed.
    pub fn in_flight(&self) -> usize {
        match self {
            Sink::Kafka(k) => k.producer.in_flight_count().max(0) as usize,
            Sink::Stdout(_) => 0,
        }
    }
}

pub struct KafkaSink {
    producer: ThreadedProducer<Receipts>,
}

/// The delivery reports, counted as librdkafka's polling thread hands them over:
/// no future, channel or copy per message (a future per message held simulate to
/// under half of a bare producer's rate).
#[derive(Default)]
struct Receipts {
    delivered: AtomicU64,
    /// `delivered` stays 0 here: counted apart, without a lock.
    failures: Mutex<DeliveryReport>,
}

impl Receipts {
    fn fail(&self, error: String) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.fail(error);
    }
}

impl ClientContext for Receipts {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        iot_kafka::librdkafka_log(level, facility, message);
    }
}

impl ProducerContext for Receipts {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::SeqCst);
            }
            Err((error, message)) => self.fail(format!("{}: {error}", message.topic())),
        }
    }
}

impl KafkaSink {
    /// An idempotent, `acks=all` producer with lz4 compression and a short linger
    /// for batching; `--kafka-setting` overrides any of these.
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        let mut config = settings.client_config();
        let defaults = [
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("compression.type", "lz4"),
            ("linger.ms", "20"),
            ("queue.buffering.max.messages", "500000"),
            // A message not delivered in this time fails rather than hanging the run;
            // long enough to ride out a broker restart (Apache Kafka takes 10 to 30 s
            // to start on a small machine).
            ("message.timeout.ms", "120000"),
        ];
        for (key, value) in defaults {
            if !settings.extra.iter().any(|(k, _)| k == key) {
                config.set(key, value);
            }
        }
        let producer = config
            .create_with_context(Receipts::default())
            .map_err(KafkaError::Config)?;
        Ok(Self { producer })
    }

    async fn send(&mut self, topic: &str, key: &[u8], payload: &[u8]) {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                // librdkafka's queue is full: wait for it to deliver some.
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return self.producer.context().fail(format!("{topic}: {e}")),
            }
        }
    }

    /// Waits until librdkafka has reported on every message: delivered, or failed
    /// once `message.timeout.ms` ran out.
    async fn finish(self) -> DeliveryReport {
        while self.producer.in_flight_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let receipts = self.producer.context();
        let failures = receipts
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        DeliveryReport {
            delivered: receipts.delivered.load(Ordering::SeqCst),
            ..failures.clone()
        }
    }
}

/// Writes `{"topic":…,"key":…,"value":{…}}` lines, one per event, 64 KB at a time.
/// A line counts as delivered once standard output has taken it whole, up to its
/// newline (the JSON of an event holds none).
pub struct StdoutSink {
    out: io::Stdout,
    buffer: Vec<u8>,
    report: DeliveryReport,
}

const STDOUT_BUFFER: usize = 1 << 16;

impl Default for StdoutSink {
    fn default() -> Self {
        Self {
            out: io::stdout(),
            buffer: Vec::with_capacity(STDOUT_BUFFER + 1024),
            report: DeliveryReport::default(),
        }
    }
}

impl StdoutSink {
    fn send(&mut self, topic: &str, key: &[u8], payload: &[u8]) -> io::Result<()> {
        // Topic names are plain ASCII (Kafka allows only [a-zA-Z0-9._-]) and keys are
        // UUIDs, so neither needs escaping.
        self.buffer.extend_from_slice(b"{\"topic\":\"");
        self.buffer.extend_from_slice(topic.as_bytes());
        self.buffer.extend_from_slice(b"\",\"key\":\"");
        self.buffer.extend_from_slice(key);
        self.buffer.extend_from_slice(b"\",\"value\":");
        self.buffer.extend_from_slice(payload);
        self.buffer.extend_from_slice(b"}\n");
        if self.buffer.len() >= STDOUT_BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffer, counting the lines taken as they go.
    fn flush(&mut self) -> io::Result<()> {
        let mut out = self.out.lock();
        let mut written = 0;
        let result = loop {
            if written == self.buffer.len() {
                break out.flush();
            }
            match out.write(&self.buffer[written..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    let taken = &self.buffer[written..written + n];
                    self.report.delivered += taken.iter().filter(|&&b| b == b'\n').count() as u64;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.buffer.clear();
        if let Err(e) = &result {
            self.report.closed = e.kind() == io::ErrorKind::BrokenPipe;
        }
        result
    }

    /// Writes what is left; a reader that closed standard output ends the report
    /// with what it took, not with an error.
    fn finish(mut self) -> io::Result<DeliveryReport> {
        match self.flush() {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
            _ => Ok(self.report),
        }
    }
}
