//! Throughput of `simulate`, printed as figures: `cargo bench -p iot-simulate`, or
//! `scripts/bench.sh`, which also starts a local broker for the delivery figure.
//!
//! 1. generation: stepping the fleet, events built in memory, no sink;
//! 2. generation + JSON: the same, each event encoded as it would be sent;
//! 3. delivery: events encoded and sent to the broker at `IOT_BENCH_BOOTSTRAP`,
//!    until every delivery is confirmed. Skipped, with a note, when it is unset.

use std::sync::Arc;
use std::time::Instant;

use iot_kafka::KafkaSettings;
use iot_model::{Event, Topics};
use iot_simulate::fleet::VehicleSpec;
use iot_simulate::geo::GeoPoint;
use iot_simulate::sink::{KafkaSink, Sink};
use iot_simulate::{Simulation, SimulationOptions, Trip, offline};
use rand::SeedableRng;
use rand::rngs::StdRng;

const VEHICLES: usize = 500;

fn simulation() -> Simulation {
    let route = offline::route(
        GeoPoint {
            lat: 52.3906,
            lon: 13.0645,
        },
        GeoPoint {
            lat: 51.3397,
            lon: 12.3731,
        },
    )
    .expect("Potsdam and Leipzig are apart");
    let mut rng = StdRng::seed_from_u64(1);
    let trip = Trip {
        route: Arc::new(route),
        vehicles: (0..VEHICLES)
            .map(|_| VehicleSpec::random(&mut rng))
            .collect(),
    };
    let options = SimulationOptions {
        stagger: std::time::Duration::from_secs(1),
        seed: 1,
        ..SimulationOptions::default()
    };
    Simulation::new(&[trip], options)
}

/// Steps until `target` events are made, handing each batch to `each`.
fn drive(target: usize, mut each: impl FnMut(&[Event])) -> (usize, f64) {
    let mut simulation = simulation();
    let mut events = Vec::with_capacity(4 * VEHICLES);
    let mut made = 0;
    let started = Instant::now();
    while made < target {
        events.clear();
        if !simulation.step(&mut events) {
            simulation = self::simulation();
            continue;
        }
        each(&events);
        made += events.len();
    }
    (made, started.elapsed().as_secs_f64())
}

fn report(label: &str, events: usize, secs: f64, extra: &str) {
    println!(
        "{label:<22} {:>12.0} events/s   ({events} events in {secs:.2} s{extra})",
        events as f64 / secs
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing and
    // expects a quick run.
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 5_000_000 } else { 20_000 };

    let (made, secs) = drive(n, |events| {
        std::hint::black_box(events);
    });
    report("generation", made, secs, "");

    let mut payload = Vec::with_capacity(512);
    let mut bytes = 0usize;
    let (made, secs) = drive(n, |events| {
        for e in events {
            payload.clear();
            e.encode(&mut payload);
            bytes += payload.len();
        }
    });
    let mb_s = bytes as f64 / secs / 1e6;
    report(
        "generation + JSON",
        made,
        secs,
        &format!(", {mb_s:.0} MB/s, {} bytes/event", bytes / made.max(1)),
    );

    match std::env::var("IOT_BENCH_BOOTSTRAP") {
        Ok(bootstrap) => deliver(&bootstrap, if full { 1_000_000 } else { 10_000 }),
        Err(_) => println!(
            "delivery               skipped: set IOT_BENCH_BOOTSTRAP to a broker (scripts/bench.sh does)"
        ),
    }
}

/// Simulate's delivery beside a bare producer's, in alternating rounds: Kafka's JVM
/// is still compiling its hot paths during the first seconds of a fresh broker, so
/// whichever ran first used to lose a third of its rate to that.
fn deliver(bootstrap: &str, n: usize) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let settings = KafkaSettings {
            bootstrap_servers: bootstrap.to_owned(),
            ..KafkaSettings::default()
        };
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let topics = Topics {
            vehicle: format!("bench-{suffix}-vehicle"),
            gps: format!("bench-{suffix}-gps"),
            traffic_camera: format!("bench-{suffix}-traffic"),
            weather: format!("bench-{suffix}-weather"),
            emergency: format!("bench-{suffix}-emergency"),
        };
        let names: Vec<&str> = topics.iter().map(|(_, t)| t).collect();
        // The same bytes, encoded beforehand, for the bare producer's own topics.
        let mut messages = Vec::with_capacity(n);
        let mut simulation = simulation();
        let mut events = Vec::new();
        while messages.len() < n && simulation.step(&mut events) {
            for e in events.drain(..) {
                let mut payload = Vec::with_capacity(400);
                e.encode(&mut payload);
                let topic = format!("plain-{}", topics.name(e.kind()));
                messages.push((topic, e.device_id().hyphenated().to_string(), payload));
            }
        }
        messages.truncate(n);
        let plain: Vec<String> = names.iter().map(|t| format!("plain-{t}")).collect();
        let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
        for new in [&names, &plain] {
            settings
                .ensure_topics(new, 3, 1)
                .await
                .expect("the bench broker accepts new topics");
        }

        for round in 1..=3 {
            let cpu_before = cpu_seconds();
            let plain_secs = tokio::task::block_in_place(|| produce_plainly(&settings, &messages));
            let plain_busy = busy_since(cpu_before, plain_secs);
            let plain_rate = n as f64 / plain_secs;
            report(
                &format!("plain producer, {round}"),
                n,
                plain_secs,
                &format!(
                    ", the same bytes pre-encoded; this process busy {:.0}% of a core",
                    plain_busy.unwrap_or(f64::NAN)
                ),
            );
            let (delivered, secs, busy) = simulate_into(&settings, &topics, n).await;
            report(
                &format!("delivery (acks=all), {round}"),
                delivered,
                secs,
                &format!(
                    "; {:.0}% of the bare producer's rate; this process busy {:.0}% of a core",
                    delivered as f64 / secs / plain_rate * 100.0,
                    busy.unwrap_or(f64::NAN)
                ),
            );
        }
    });
}

/// Steps a fresh simulation and sends its first `n` events as `simulate` does, until
/// every delivery is confirmed: (delivered, seconds, % of a core this process used).
async fn simulate_into(
    settings: &KafkaSettings,
    topics: &Topics,
    n: usize,
) -> (usize, f64, Option<f64>) {
    let mut sink = Sink::Kafka(KafkaSink::new(settings).expect("producer settings are valid"));
    let mut simulation = simulation();
    let mut events = Vec::new();
    let mut payload = Vec::with_capacity(512);
    let mut sent = 0;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    while sent < n && simulation.step(&mut events) {
        let take = events.len().min(n - sent);
        for e in events.drain(..).take(take) {
            payload.clear();
            e.encode(&mut payload);
            let mut key = [0u8; uuid::fmt::Hyphenated::LENGTH];
            let key = e.device_id().hyphenated().encode_lower(&mut key);
            sink.send(topics.name(e.kind()), key.as_bytes(), &payload)
                .await
                .expect("Kafka sends do not fail with I/O errors");
            sent += 1;
        }
    }
    let report = sink
        .finish()
        .await
        .expect("finishing a Kafka sink cannot fail");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(report.failed, 0, "{:?}", report.first_error);
    (
        report.delivered as usize,
        secs,
        busy_since(cpu_before, secs),
    )
}

/// The share of one core this process used over the last `secs`, in percent.
fn busy_since(cpu_before: Option<f64>, secs: f64) -> Option<f64> {
    cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| (after - before) / secs * 100.0)
}

/// Sends `messages` (topic, key, payload) with a bare rdkafka producer set up as
/// simulate's (idempotent, acks=all, lz4, 20 ms linger) and waits for every
/// delivery; returns the seconds it took.
fn produce_plainly(settings: &KafkaSettings, messages: &[(String, String, Vec<u8>)]) -> f64 {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> = settings
        .client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "500000")
        .create()
        .expect("producer settings are valid");
    let started = Instant::now();
    for (topic, key, payload) in messages {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err((e, _)) => panic!("the plain producer failed: {e}"),
            }
        }
    }
    producer
        .flush(std::time::Duration::from_secs(60))
        .expect("every message is delivered");
    started.elapsed().as_secs_f64()
}

/// CPU time (user + system) this process has used, from /proc on Linux.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // Linux reports in USER_HZ, which is 100 on every mainstream configuration.
    Some(ticks / 100.0)
}
