//! The `simulate` command line: parses flags (and `.env`), runs, prints the summary
//! and turns the outcome into an exit status.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, ValueEnum};
use iot_kafka::KafkaArgs;
use iot_model::Timestamp;
use iot_runtime::parse_duration;
use iot_simulate::fleet::{TripPlan, read_fleet_file};
use iot_simulate::ors::OrsOptions;
use iot_simulate::{Options, SimulationOptions, SinkKind, Speed, exit};

const AFTER_HELP: &str = "\
Environment:
  OPENROUTE_KEY   OpenRouteService API key (read only from the environment). Without
                  it, places come from the built-in list and routes are made offline.
  RUST_LOG        Log filter, e.g. debug or iot_simulate=debug (default: info).
  A .env file in the current directory is read first; .env.example lists every variable.

Exit status:
  0  every event was delivered
  1  another failure (e.g. writing to standard output)
  2  invalid flags or fleet file
  3  unknown place, the same place twice, or no road near it
  4  OpenRouteService refused the key, kept rate-limiting, or could not be reached
  5  the Kafka broker could not be reached, or the Kafka settings are invalid
  6  some events could not be delivered

Examples:
  simulate --from Potsdam --to Leipzig
  simulate --from Berlin --to 53.55,9.99 --vehicles 10 --speed 60
  simulate --fleet config/fleet.example.toml --speed max --sink stdout --seed 7";

/// Drive a simulated vehicle fleet along real routes and publish its telemetry
/// (vehicle, GPS, traffic camera, weather and emergency events) to Kafka.
#[derive(Debug, Parser)]
#[command(name = "simulate", version, after_help = AFTER_HELP)]
struct Cli {
    /// Start of the route: a place name (e.g. Potsdam) or lat,lon.
    #[arg(
        long,
        env = "SIMULATE_FROM",
        value_name = "PLACE",
        required_unless_present = "fleet"
    )]
    from: Option<String>,

    /// End of the route: a place name (e.g. Leipzig) or lat,lon.
    #[arg(
        long,
        env = "SIMULATE_TO",
        value_name = "PLACE",
        required_unless_present = "fleet"
    )]
    to: Option<String>,

    /// Vehicles on the route, leaving --stagger apart, from 1 to 100000.
    #[arg(long, env = "SIMULATE_VEHICLES", default_value_t = 3, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    vehicles: u32,

    /// A fleet file with several routes and named vehicles, instead of
    /// --from/--to/--vehicles (see config/fleet.example.toml).
    #[arg(long, env = "SIMULATE_FLEET", value_name = "FILE", conflicts_with_all = ["from", "to"])]
    fleet: Option<PathBuf>,

    /// Simulated seconds per real second, from 0.001 to 1000000: 1 is real time, 60
    /// a minute per second, max as fast as possible.
    #[arg(long, env = "SIMULATE_SPEED", default_value = "1", value_parser = parse_speed)]
    speed: Speed,

    /// Simulated time of the first reading, RFC 3339 (e.g. 2026-05-01T08:00:00Z).
    /// Default: now, or 2025-01-01T08:00:00Z with --seed, so that a seed replays exactly.
    #[arg(long, env = "SIMULATE_START_TIME", value_name = "TIME", value_parser = parse_time)]
    start_time: Option<Timestamp>,

    /// Stop after this much simulated time (e.g. 30m, 2h). Default: when every
    /// vehicle has arrived.
    #[arg(long, env = "SIMULATE_DURATION", value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,

    /// Stop after this many events.
    #[arg(long, env = "SIMULATE_MAX_EVENTS", value_name = "N")]
    max_events: Option<u64>,

    /// Seed for every random choice, ids included: the same seed and flags give
    /// byte-identical events. Default: a new random seed each run.
    #[arg(long, env = "SIMULATE_SEED", value_name = "N")]
    seed: Option<u64>,

    /// Simulated time between two readings of a vehicle, from 1ms to 1h.
    #[arg(long, env = "SIMULATE_TICK", default_value = "1s", value_name = "DURATION",
          value_parser = parse_tick)]
    tick: Duration,

    /// Time between the departures of vehicles on the same route.
    #[arg(long, env = "SIMULATE_STAGGER", default_value = "1m", value_name = "DURATION",
          value_parser = parse_duration)]
    stagger: Duration,

    /// Time between two weather readings of a vehicle, at least 1ms.
    #[arg(long, env = "SIMULATE_WEATHER_INTERVAL", default_value = "1m", value_name = "DURATION",
          value_parser = parse_interval)]
    weather_interval: Duration,

    /// Emergencies per vehicle per hour of driving, from 0 to 3600.
    #[arg(
        long,
        env = "SIMULATE_EMERGENCY_RATE",
        default_value_t = 1.0,
        value_name = "PER_HOUR",
        value_parser = parse_rate
    )]
    emergency_rate: f64,

    /// Distance between speed cameras along a route, kilometres: 0 for none, else
    /// from 0.01 (a camera's id is its position to about a metre) to 10000.
    #[arg(
        long,
        env = "SIMULATE_CAMERA_SPACING_KM",
        default_value_t = 10.0,
        value_name = "KM",
        value_parser = parse_spacing
    )]
    camera_spacing_km: f64,

    /// Where events go: kafka, or stdout as NDJSON lines {"topic","key","value"}.
    #[arg(long, env = "SIMULATE_SINK", value_enum, default_value_t = SinkArg::Kafka)]
    sink: SinkArg,

    /// Print a progress line every two seconds (default: when stderr is a terminal).
    #[arg(long, env = "SIMULATE_PROGRESS", value_name = "BOOL")]
    progress: Option<bool>,

    /// OpenRouteService base URL, for a self-hosted instance.
    #[arg(long, env = "ORS_URL", default_value = iot_simulate::ors::DEFAULT_URL, value_name = "URL")]
    ors_url: String,

    /// Directory for cached OpenRouteService answers (default: ~/.cache/iot-streaming/ors).
    #[arg(long, env = "ORS_CACHE_DIR", value_name = "DIR")]
    ors_cache_dir: Option<PathBuf>,

    #[command(flatten)]
    topics: iot_kafka::TopicArgs,

    /// Partitions of the topics simulate creates (existing topics are left alone).
    #[arg(long, env = "KAFKA_PARTITIONS", default_value_t = 3, value_name = "N",
          value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,

    /// Replication factor of the topics simulate creates.
    #[arg(long, env = "KAFKA_REPLICATION_FACTOR", default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(i32).range(1..))]
    replication_factor: i32,

    #[command(flatten)]
    kafka: KafkaArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SinkArg {
    Kafka,
    Stdout,
}

fn parse_speed(text: &str) -> Result<Speed, String> {
    if text.eq_ignore_ascii_case("max") {
        return Ok(Speed::Max);
    }
    // Below a thousandth, the wait for a tick overflows what a clock can count.
    match number_in(text, 0.001..=1_000_000.0) {
        Ok(f) => Ok(Speed::Factor(f)),
        Err(e) => Err(format!("{e}, or max")),
    }
}

/// A number within `range`: not NaN, not infinite.
fn number_in(text: &str, range: std::ops::RangeInclusive<f64>) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(f) if range.contains(&f) => Ok(f),
        _ => Err(format!(
            "expected a number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

/// At most one incident a second of driving: the chance per tick is capped at 1.
fn parse_rate(text: &str) -> Result<f64, String> {
    number_in(text, 0.0..=3600.0)
}

fn parse_spacing(text: &str) -> Result<f64, String> {
    match number_in(text, 0.0..=10_000.0)? {
        km if km > 0.0 && km < 0.01 => Err("expected 0 (no cameras) or from 0.01 to 10000".into()),
        km => Ok(km),
    }
}

/// A tick: a vehicle reports once a tick and drives straight on in between, so a
/// tick longer than an hour would cut corners off every route.
fn parse_tick(text: &str) -> Result<Duration, String> {
    let tick = parse_duration(text)?;
    if (Duration::from_millis(1)..=Duration::from_secs(3600)).contains(&tick) {
        Ok(tick)
    } else {
        Err(format!(
            "a tick of {} is outside 1ms to 1h (a vehicle reports once a tick)",
            humantime::format_duration(tick)
        ))
    }
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text)?;
    if interval.is_zero() {
        Err("the interval must be longer than zero".into())
    } else {
        Ok(interval)
    }
}

fn parse_time(text: &str) -> Result<Timestamp, String> {
    text.parse()
        .map_err(|e| format!("{e}; expected RFC 3339 such as 2026-05-01T08:00:00Z"))
}

fn main() -> ExitCode {
    if let Err(e) = iot_runtime::load_dotenv() {
        iot_runtime::say!("error: {e}");
        return ExitCode::from(exit::USAGE);
    }
    let cli = Cli::parse();
    if let Err(e) = cli.topics.check_distinct() {
        Cli::command().error(ErrorKind::ArgumentConflict, e).exit();
    }
    iot_runtime::init_logging();
    let options = match options(cli) {
        Ok(options) => options,
        Err(e) => {
            iot_runtime::say!("error: {}", iot_runtime::error_chain(&e));
            return ExitCode::from(e.exit_code());
        }
    };
    let outcome = match iot_runtime::run_until_done(|shutdown| iot_simulate::run(options, shutdown))
    {
        Ok(outcome) => outcome,
        Err(e) => {
            iot_runtime::say!("error: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match outcome {
        Ok(summary) => {
            iot_runtime::say!("{summary}");
            ExitCode::from(summary.exit_code())
        }
        Err(e) => {
            iot_runtime::say!("error: {}", iot_runtime::error_chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

fn options(cli: Cli) -> Result<Options, iot_simulate::SimulateError> {
    let trips = match (&cli.fleet, cli.from, cli.to) {
        (Some(path), _, _) => read_fleet_file(path)?,
        (None, Some(from), Some(to)) => vec![TripPlan {
            from,
            to,
            vehicles: Vec::new(),
            random_vehicles: cli.vehicles as usize,
        }],
        // clap's required_unless_present rules this out.
        _ => unreachable!("--from and --to are required without --fleet"),
    };
    let seed = cli.seed.unwrap_or_else(rand::random);
    let start = match (cli.start_time, cli.seed) {
        (Some(t), _) => t,
        (None, Some(_)) => SimulationOptions::default().start,
        (None, None) => Timestamp::now(),
    };
    let defaults = Options::default();
    Ok(Options {
        trips,
        simulation: SimulationOptions {
            start,
            tick: cli.tick,
            stagger: cli.stagger,
            weather_interval: cli.weather_interval,
            emergency_rate_per_hour: cli.emergency_rate,
            camera_spacing_m: cli.camera_spacing_km * 1000.0,
            duration: cli.duration,
            seed,
        },
        speed: cli.speed,
        max_events: cli.max_events,
        ors: OrsOptions {
            key: std::env::var("OPENROUTE_KEY").ok(),
            url: cli.ors_url,
            cache_dir: cli.ors_cache_dir.or_else(default_cache_dir),
            ..OrsOptions::default()
        },
        sink: match cli.sink {
            SinkArg::Kafka => SinkKind::Kafka,
            SinkArg::Stdout => SinkKind::Stdout,
        },
        kafka: cli.kafka.settings(),
        topics: cli.topics.topics(),
        partitions: cli.partitions,
        replication_factor: cli.replication_factor,
        progress: cli.progress.unwrap_or(defaults.progress),
    })
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("iot-streaming").join("ors"))
}
