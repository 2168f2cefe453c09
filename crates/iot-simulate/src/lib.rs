//! `simulate`: drives a fleet of vehicles along real routes on a simulated clock and
//! publishes what they report (vehicle, GPS, traffic camera, weather and emergency
//! events) to Kafka, or to standard output as NDJSON.
//!
//! [`run`] is the whole program behind the command line: plan the routes, open the
//! sink, step the [`Simulation`], pace it, and report.

pub mod fleet;
pub mod gazetteer;
pub mod geo;
pub mod incidents;
pub mod offline;
pub mod ors;
pub mod plan;
pub mod readings;
pub mod road;
pub mod route;
pub mod seed;
pub mod simulation;
pub mod sink;
pub mod vehicle;
pub mod weather;

use std::time::{Duration, Instant};

use iot_kafka::{KafkaError, KafkaSettings};
use iot_model::{Event, EventKind, Topics};
use iot_runtime::{Shutdown, Ticker};

use crate::fleet::{FleetFileError, TripPlan};
use crate::gazetteer::Gazetteer;
use crate::ors::{OrsClient, OrsOptions};
use crate::plan::PlanError;
pub use crate::plan::Trip;
use crate::seed::Stream;
pub use crate::simulation::{Simulation, SimulationOptions};
use crate::sink::{KafkaSink, Sink, StdoutSink};

/// Exit statuses, as documented in `simulate --help`.
pub mod exit {
    pub const OK: u8 = 0;
    /// Any failure not listed below (an I/O error, for instance).
    pub const FAILURE: u8 = 1;
    /// A flag or the fleet file is invalid.
    pub const USAGE: u8 = 2;
    /// A place is unknown or has no road near it.
    pub const BAD_PLACE: u8 = 3;
    /// OpenRouteService refused the key, rate-limited us or could not be reached.
    pub const ROUTING: u8 = 4;
    /// The Kafka broker cannot be reached or the Kafka settings are invalid.
    pub const KAFKA: u8 = 5;
    /// Some events could not be delivered.
    pub const UNDELIVERED: u8 = 6;
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error(transparent)]
    Fleet(#[from] FleetFileError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("cannot write the events to standard output: {0}")]
    Output(#[source] std::io::Error),
}

impl SimulateError {
    pub fn exit_code(&self) -> u8 {
        match self {
            SimulateError::Fleet(_) => exit::USAGE,
            SimulateError::Plan(e) if e.is_bad_place() => exit::BAD_PLACE,
            SimulateError::Plan(_) => exit::ROUTING,
            SimulateError::Kafka(_) => exit::KAFKA,
            SimulateError::Output(_) => exit::FAILURE,
        }
    }
}

/// How fast simulated time runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// This many simulated seconds per real second.
    Factor(f64),
    /// As fast as the machine and the sink allow.
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    Kafka,
    Stdout,
}

/// Everything `simulate` needs to know; the command line fills it in.
#[derive(Debug, Clone)]
pub struct Options {
    /// The routes and their vehicles.
    pub trips: Vec<TripPlan>,
    pub simulation: SimulationOptions,
    pub speed: Speed,
    /// Stop after this many events.
    pub max_events: Option<u64>,
    pub ors: OrsOptions,
    pub sink: SinkKind,
    pub kafka: KafkaSettings,
    pub topics: Topics,
    /// Partitions and replication factor of the topics simulate creates.
    pub partitions: i32,
    pub replication_factor: i32,
    /// Print a progress line every few seconds (on a terminal, by default).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            trips: Vec::new(),
            simulation: SimulationOptions::default(),
            speed: Speed::Factor(1.0),
            max_events: None,
            ors: OrsOptions::default(),
            sink: SinkKind::Kafka,
            kafka: KafkaSettings::default(),
            topics: Topics::default(),
            partitions: 3,
            replication_factor: 1,
            progress: iot_runtime::progress_by_default(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Events generated per stream, in [`EventKind::ALL`] order.
    pub events: [u64; 5],
    pub delivered: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    /// Real time the run took.
    pub elapsed: Duration,
    /// Simulated time it covered.
    pub simulated: Duration,
    pub vehicles: usize,
    pub interrupted: bool,
    /// The events went to standard output, as lines, not to Kafka.
    pub to_stdout: bool,
    /// Standard output's reader closed it before the run ended.
    pub stdout_closed: bool,
}

impl Summary {
    pub fn total(&self) -> u64 {
        self.events.iter().sum()
    }

    pub fn exit_code(&self) -> u8 {
        if self.failed > 0 {
            exit::UNDELIVERED
        } else {
            exit::OK
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "{} {} vehicles, {} of simulated time in {:.1}s",
            if self.interrupted {
                "Interrupted:"
            } else {
                "Done:"
            },
            self.vehicles,
            humantime::format_duration(Duration::from_secs(self.simulated.as_secs())),
            self.elapsed.as_secs_f64()
        )?;
        for (kind, n) in EventKind::ALL.iter().zip(self.events) {
            writeln!(f, "  {:<16} {n:>10}", kind.default_topic())?;
        }
        writeln!(f, "  {:<16} {:>10}", "total", self.total())?;
        if self.to_stdout {
            write!(
                f,
                "  written to stdout {}{}, {:.0} lines/s",
                self.delivered,
                if self.stdout_closed {
                    ", then its reader closed it"
                } else {
                    ""
                },
                self.delivered as f64 / secs
            )?;
        } else {
            write!(
                f,
                "  delivered {}, failed {}, {:.0} events/s",
                self.delivered,
                self.failed,
                self.delivered as f64 / secs
            )?;
        }
        if let Some(e) = &self.first_error {
            write!(f, "\n  first failure: {e}")?;
        }
        Ok(())
    }
}

/// Runs the simulation to its end, to `max_events`, or until `shutdown` fires;
/// then waits for outstanding deliveries and reports.
pub async fn run(options: Options, shutdown: Shutdown) -> Result<Summary, SimulateError> {
    let gazetteer = Gazetteer::builtin();
    let ors = OrsClient::new(options.ors.clone()).map_err(PlanError::Client)?;
    if ors.is_none() {
        tracing::info!("no OPENROUTE_KEY set: driving offline routes");
    }
    // Vehicles from the catalogue come from their own stream of the seed, so that
    // adding a named vehicle to a fleet does not change the others' readings.
    let mut catalogue_rng = seed::rng(Stream::Catalogue {
        seed: options.simulation.seed,
    });
    let trips = plan::resolve(&options.trips, &gazetteer, ors.as_ref(), &mut catalogue_rng).await?;

    let mut sink = match options.sink {
        SinkKind::Stdout => Sink::Stdout(StdoutSink::default()),
        SinkKind::Kafka => Sink::Kafka(open_kafka(&options).await?),
    };

    let mut simulation = Simulation::new(&trips, options.simulation.clone());
    let mut summary = Summary {
        vehicles: simulation.vehicle_count(),
        ..Summary::default()
    };
    let started = Instant::now();
    let mut ticker = Ticker::new(options.progress);
    let mut events: Vec<Event> = Vec::with_capacity(64);
    let mut payload = Vec::with_capacity(512);
    let max_events = options.max_events.unwrap_or(u64::MAX);

    'run: while !shutdown.requested() {
        events.clear();
        if !simulation.step(&mut events) {
            break;
        }
        for event in &events {
            if summary.total() >= max_events {
                break 'run;
            }
            payload.clear();
            event.encode(&mut payload);
            let mut key = [0u8; uuid::fmt::Hyphenated::LENGTH];
            let key = event.device_id().hyphenated().encode_lower(&mut key);
            let topic = options.topics.name(event.kind());
            let sent = sink.send(topic, key.as_bytes(), &payload).await;
            // Counted once handed over: a line may reach standard output whole in
            // the very write that found its reader gone.
            summary.events[event.kind() as usize] += 1;
            match sent {
                Ok(()) => {}
                // A closed pipe (`simulate … | head`) ends the run like Ctrl-C does.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break 'run,
                Err(e) => return Err(SimulateError::Output(e)),
            }
        }
        report_progress(&mut ticker, &simulation, &summary, sink.in_flight());
        if let Speed::Factor(factor) = options.speed {
            let due = simulation.elapsed().div_f64(factor);
            shutdown.sleep_until(started + due).await;
        }
    }

    summary.interrupted = shutdown.requested();
    summary.simulated = simulation.elapsed();
    if summary.interrupted {
        tracing::info!(
            in_flight = sink.in_flight(),
            "stopping: waiting for outstanding deliveries"
        );
    }
    let to_stdout = matches!(sink, Sink::Stdout(_));
    let report = sink.finish().await.map_err(SimulateError::Output)?;
    summary.to_stdout = to_stdout;
    summary.stdout_closed = report.closed;
    summary.delivered = report.delivered;
    summary.failed = report.failed;
    summary.first_error = report.first_error;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

async fn open_kafka(options: &Options) -> Result<KafkaSink, SimulateError> {
    let settings = options.kafka.clone();
    tokio::task::spawn_blocking(move || settings.check_reachable())
        .await
        .expect("the reachability check does not panic")?;
    let topics: Vec<&str> = options.topics.iter().map(|(_, t)| t).collect();
    let created = options
        .kafka
        .ensure_topics(&topics, options.partitions, options.replication_factor)
        .await?;
    if !created.is_empty() {
        tracing::info!(topics = ?created, partitions = options.partitions, "created topics");
    }
    Ok(KafkaSink::new(&options.kafka)?)
}

/// A line on standard error every few seconds, for people watching a long run.
fn report_progress(
    ticker: &mut Ticker,
    simulation: &Simulation,
    summary: &Summary,
    in_flight: usize,
) {
    if let Some(elapsed) = ticker.due() {
        iot_runtime::say!(
            "simulated {}  {}/{} vehicles on the road  {} events ({:.0}/s, {} awaiting delivery)",
            simulation.now(),
            simulation.on_the_road(),
            simulation.vehicle_count(),
            summary.total(),
            summary.total() as f64 / elapsed.as_secs_f64(),
            in_flight
        );
    }
}
