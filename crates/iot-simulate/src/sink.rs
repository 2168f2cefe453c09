//! Where events go: a Kafka topic per stream, or standard output as NDJSON.
//!
//! The Kafka sink hands messages to librdkafka without waiting for each one, keeps
//! the delivery receipts, and waits for them in bulk, oldest first, whenever too
//! many are outstanding and at the end. librdkafka batches, compresses and retries;
//! the idempotent producer keeps retries from writing a message twice.

use std::collections::VecDeque;
use std::io::{self, BufWriter, Write};
use std::time::Duration;

use iot_kafka::{KafkaError, KafkaSettings};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

/// Delivery receipts kept before waiting for the oldest half of them.
const MAX_IN_FLIGHT: usize = 200_000;

/// How the sending went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryReport {
    pub delivered: u64,
    pub failed: u64,
    /// The first failure, to show the user what went wrong.
    pub first_error: Option<String>,
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
            Sink::Kafka(k) => k.in_flight.len(),
            Sink::Stdout(_) => 0,
        }
    }
}

pub struct KafkaSink {
    producer: FutureProducer,
    in_flight: VecDeque<DeliveryFuture>,
    report: DeliveryReport,
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
        let producer = config.create().map_err(KafkaError::Config)?;
        Ok(Self {
            producer,
            in_flight: VecDeque::new(),
            report: DeliveryReport::default(),
        })
    }

    async fn send(&mut self, topic: &str, key: &[u8], payload: &[u8]) {
        loop {
            let record = FutureRecord::to(topic).key(key).payload(payload);
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.in_flight.push_back(delivery);
                    break;
                }
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // librdkafka's queue is full: make room by waiting for receipts.
                    if !self.settle_oldest().await {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                Err((e, _)) => {
                    self.report.fail(format!("{topic}: {e}"));
                    break;
                }
            }
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            while self.in_flight.len() > MAX_IN_FLIGHT / 2 {
                self.settle_oldest().await;
            }
        }
    }

    /// Waits for the oldest outstanding receipt; `false` if there was none.
    async fn settle_oldest(&mut self) -> bool {
        let Some(delivery) = self.in_flight.pop_front() else {
            return false;
        };
        match delivery.await {
            Ok(Ok(_)) => self.report.delivered += 1,
            Ok(Err((e, message))) => {
                use rdkafka::Message;
                self.report.fail(format!("{}: {e}", message.topic()));
            }
            Err(_) => self
                .report
                .fail("the producer shut down before confirming delivery"),
        }
        true
    }

    async fn finish(mut self) -> DeliveryReport {
        while self.settle_oldest().await {}
        self.report
    }
}

/// Writes `{"topic":…,"key":…,"value":{…}}` lines, one per event.
pub struct StdoutSink {
    out: BufWriter<io::Stdout>,
    report: DeliveryReport,
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 16, io::stdout()),
            report: DeliveryReport::default(),
        }
    }
}

impl StdoutSink {
    fn send(&mut self, topic: &str, key: &[u8], payload: &[u8]) -> io::Result<()> {
        // Topic names are plain ASCII (Kafka allows only [a-zA-Z0-9._-]) and keys are
        // UUIDs, so neither needs escaping.
        self.out.write_all(b"{\"topic\":\"")?;
        self.out.write_all(topic.as_bytes())?;
        self.out.write_all(b"\",\"key\":\"")?;
        self.out.write_all(key)?;
        self.out.write_all(b"\",\"value\":")?;
        self.out.write_all(payload)?;
        self.out.write_all(b"}\n")?;
        self.report.delivered += 1;
        Ok(())
    }

    fn finish(mut self) -> io::Result<DeliveryReport> {
        self.out.flush()?;
        Ok(self.report)
    }
}
