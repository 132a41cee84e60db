//! The fleet simulator behind `aiscout-fleet-sim`: N agents in one process, each with its own
//! key, certificate and identity, speaking the real protocol (`proto/aiscout/v1/fleet.proto`)
//! over real mutual TLS to one or several collectors, then checking what the store holds.
//!
//! # Layout
//! - this file: the command line ([`Args`]) and [`run`], the three phases below.
//! - [`inventory`]: what each host holds, derived from the seed (slots and generations, not
//!   JSON), and the deltas.
//! - [`enroll`]: keys, CSRs, `Enrollment.Enroll`, the `--state` file.
//! - [`agent`]: one agent's streams: snapshot, deltas, acknowledgements, reconnects, replays,
//!   failover.
//! - [`report`]: fleet-wide counters and the final report.
//! - [`verify`]: the checks through the HTTP API.
//!
//! # Phases
//! 1. **Enrollment**: agents the `--state` file does not hold enroll, at most
//!    `--concurrency-of-enrollment` at a time (its duration is reported apart).
//! 2. **Streaming**: every agent streams at once on a multi-thread runtime (one task and one TLS
//!    channel each) for `--duration`, then drains its acknowledgements. Sightings per second
//!    and latencies are measured here only.
//! 3. **Verification** (with `--api`): the store against what every simulated host holds.
//!
//! It is a tool run from a shell, so errors are `anyhow` all the way to `main`, which prints
//! them and exits non-zero.

pub mod agent;
pub mod enroll;
pub mod inventory;
pub mod report;
pub mod verify;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use self::agent::StreamOptions;
use self::enroll::{Credentials, Enroller};
use self::inventory::FleetShape;
use self::report::{Latency, Report, Stats};

/// Simulates a fleet of aiscout agents against real collectors (docs/fleet-sim.md).
#[derive(Debug, Clone, Parser)]
#[command(name = "aiscout-fleet-sim", version)]
pub struct Args {
    /// Collector gRPC URL (https://host:port); repeat it or separate with commas for several
    /// replicas: agents are spread round-robin and fail over to the next one.
    #[arg(long = "collector", required = true, value_delimiter = ',')]
    pub collectors: Vec<String>,
    /// The collector CA (PEM), e.g. <data_dir>/pki/ca.pem of a dev collector.
    #[arg(long)]
    pub ca: PathBuf,
    /// A file holding an enrollment token with at least --agents uses (not needed when --state
    /// holds every agent).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Agents to simulate.
    #[arg(long, default_value_t = 100)]
    pub agents: u32,
    /// Seconds of streaming (deltas) after the first snapshots.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Entries per host at the start.
    #[arg(long, default_value_t = 300)]
    pub entries: u32,
    /// Share of models and frameworks drawn from the fleet-wide pools (0 to 1).
    #[arg(long, default_value_t = 0.5)]
    pub shared: f64,
    /// Distinct fleet-wide model weights in the pool.
    #[arg(long, default_value_t = 1000)]
    pub model_pool: u64,
    /// Upserts per snapshot part at most.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Seconds between two deltas of one agent (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    pub delta_interval: f64,
    /// Entries a delta adds, removes or modifies.
    #[arg(long, default_value_t = 3)]
    pub delta_changes: u32,
    /// Every Nth inventory (a tick of --delta-interval) is sent as a full snapshot instead of
    /// a delta, as the real agent's `schedule.snapshot_every`; 0: never.
    #[arg(long, default_value_t = 0)]
    pub snapshot_every: u32,
    /// Seconds between planned reconnects of one agent (jittered); 0: never.
    #[arg(long, default_value_t = 0.0)]
    pub reconnect_every: f64,
    /// After a planned reconnect, resend the last acknowledged delta (the collector must
    /// acknowledge it again without applying it).
    #[arg(long)]
    pub replay: bool,
    /// Seconds over which agents start streaming (0: all at once, a reconnect storm).
    #[arg(long, default_value_t = 0.0)]
    pub ramp: f64,
    /// Seconds an agent waits for its acknowledgements after --duration.
    #[arg(long, default_value_t = 120)]
    pub drain_timeout: u64,
    /// Seed of every inventory and identity.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Enrollments in flight at most.
    #[arg(long, default_value_t = 32)]
    pub concurrency_of_enrollment: usize,
    /// The collector's HTTP API (http://host:port), to verify the store at the end.
    #[arg(long)]
    pub api: Option<String>,
    /// A file holding an API token (read scope) for --api.
    #[arg(long)]
    pub api_token_file: Option<PathBuf>,
    /// Keeps agent ids, keys, certificates and sequences here; a later run reuses them.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Prints the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl Args {
    /// Every problem with the arguments at once.
    fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.shared) {
            problems.push(format!("--shared: {} is not between 0 and 1", self.shared));
        }
        if self.agents == 0 {
            problems.push("--agents: at least 1".to_owned());
        }
        if self.delta_interval.is_nan() || self.delta_interval <= 0.0 {
            problems.push("--delta-interval: must be above 0".to_owned());
        }
        if self.reconnect_every < 0.0 || self.ramp < 0.0 {
            problems.push("--reconnect-every, --ramp: must not be negative".to_owned());
        }
        if self.api.is_some() != self.api_token_file.is_some() {
            problems.push("--api and --api-token-file go together".to_owned());
        }
        for url in &self.collectors {
            if !url.starts_with("https://") {
                problems.push(format!("--collector: {url}: must be https://host:port"));
            }
        }
        anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
        Ok(())
    }
}

/// Reads a secret from `path` (trimmed).
fn read_secret(path: &std::path::Path, what: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read the {what}", path.display()))?;
    let secret = text.trim().to_owned();
    anyhow::ensure!(!secret.is_empty(), "{}: the {what} file is empty", path.display());
    Ok(secret)
}

/// Lets this process open a connection per agent: the soft limit of open files goes up to
/// the hard one.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

/// Runs the three phases (module docs) and returns the report.
pub fn run(args: &Args) -> anyhow::Result<Report> {
    args.validate()?;
    raise_open_files_limit();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.enable_all().build().context("cannot start the async runtime")?;
    let ca_pem = std::fs::read_to_string(&args.ca)
        .with_context(|| format!("{}: cannot read the collector ca", args.ca.display()))?;
    let shape = Arc::new(FleetShape::new(args.seed, args.entries, args.shared, args.model_pool));
    let mut report = Report { agents: args.agents, ..Report::default() };

    // 1. Enrollment.
    let mut credentials = match &args.state {
        Some(path) => enroll::load_state(path)?,
        None => Vec::new(),
    };
    credentials.truncate(args.agents as usize);
    report.reused = credentials.len() as u32;
    if credentials.len() < args.agents as usize {
        let token_file = args.token_file.as_ref().context("--token-file: needed to enroll agents")?;
        let enroller = Arc::new(Enroller::new(
            &args.collectors,
            &ca_pem,
            read_secret(token_file, "enrollment token")?,
            Arc::clone(&shape),
        )?);
        // New agents take the indexes after the state file's, so no two share an identity.
        let from = credentials.iter().map(|c| c.index + 1).max().unwrap_or(0);
        let count = args.agents - credentials.len() as u32;
        eprintln!("enrolling {count} agents");
        let started = std::time::Instant::now();
        let (enrolled, failed) =
            runtime.block_on(enroll_all(enroller, from..from + count, args.concurrency_of_enrollment));
        report.enroll_s = started.elapsed().as_secs_f64();
        report.enrolled = enrolled.len() as u32;
        report.enroll_failed = failed;
        credentials.extend(enrolled);
        if let Some(path) = &args.state {
            enroll::save_state(path, &credentials)?;
        }
    }
    anyhow::ensure!(!credentials.is_empty(), "no agent could enroll");
    report.agents = credentials.len() as u32;

    // 2. Streaming.
    eprintln!("streaming: {} agents for {} s", credentials.len(), args.duration);
    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let options = Arc::new(StreamOptions {
        collectors: args.collectors.clone(),
        ca: tonic::transport::Certificate::from_pem(&ca_pem),
        batch_size: args.batch_size,
        delta_interval: Duration::from_secs_f64(args.delta_interval),
        delta_changes: args.delta_changes,
        snapshot_every: args.snapshot_every,
        reconnect_every: (args.reconnect_every > 0.0).then(|| Duration::from_secs_f64(args.reconnect_every)),
        replay: args.replay,
        deadline: started + Duration::from_secs(args.duration),
        drain_timeout: Duration::from_secs(args.drain_timeout),
        ramp: Duration::from_secs_f64(args.ramp),
        agents: credentials.len() as u32,
    });
    let outcomes = runtime.block_on(async {
        let tasks: Vec<_> = credentials
            .iter()
            .cloned()
            .map(|c| tokio::spawn(agent::run(c, Arc::clone(&shape), Arc::clone(&options), Arc::clone(&stats), started)))
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(task.await.context("an agent task failed")?);
        }
        anyhow::Ok(outcomes)
    })?;
    report.stream_s = started.elapsed().as_secs_f64();
    drop(runtime);
    report.take_counters(&stats);
    report.sightings_per_s = report.sightings_acked as f64 / report.stream_s.max(f64::MIN_POSITIVE);
    report.unflushed_agents = outcomes.iter().filter(|o| !o.flushed).count() as u32;
    let first_done: Vec<Duration> = outcomes.iter().filter_map(|o| o.first_snapshot_acked).collect();
    if first_done.len() == outcomes.len() {
        report.initial_snapshot_s = first_done.iter().max().map_or(0.0, Duration::as_secs_f64);
        let sightings: u64 = outcomes.iter().map(|o| o.first_snapshot_sightings).sum();
        report.initial_snapshot_sightings_per_s = sightings as f64 / report.initial_snapshot_s.max(f64::MIN_POSITIVE);
    }
    report.latency = Latency::of(outcomes.iter().flat_map(|o| o.latencies.iter().copied()).collect());
    if let Some(path) = &args.state {
        let saved: Vec<Credentials> = outcomes.iter().map(|o| o.credentials.clone()).collect();
        enroll::save_state(path, &saved)?;
    }

    // 3. Verification.
    if let (Some(api), Some(token_file)) = (&args.api, &args.api_token_file) {
        eprintln!("verifying through {api}");
        let api =
            verify::Api { base: api.trim_end_matches('/').to_owned(), token: read_secret(token_file, "api token")? };
        let mut expected = verify::Expected::default();
        for o in &outcomes {
            expected.sightings.insert(o.credentials.agent_id.clone(), o.inventory.live() as u64);
            let index = o.credentials.index;
            expected
                .model_digests
                .extend(o.inventory.present().filter_map(|(slot, gen)| shape.model_digest(index, slot, gen)));
        }
        report.verification = Some(verify::verify(&api, &expected)?);
    }
    Ok(report)
}

/// Enrolls agents `indexes`, `concurrency` at a time: the credentials of those that enrolled,
/// in index order, and how many failed (the first failures are printed).
async fn enroll_all(
    enroller: Arc<Enroller>,
    indexes: std::ops::Range<u32>,
    concurrency: usize,
) -> (Vec<Credentials>, u32) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let tasks: Vec<_> = indexes
        .map(|index| {
            let (enroller, permits) = (Arc::clone(&enroller), Arc::clone(&permits));
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                enroller.enroll(index).await
            })
        })
        .collect();
    let (mut enrolled, mut failed, mut reasons) = (Vec::new(), 0u32, BTreeSet::new());
    for task in tasks {
        match task.await {
            Ok(Ok(c)) => enrolled.push(c),
            Ok(Err(e)) => {
                failed += 1;
                reasons.insert(format!("{e:#}"));
            }
            Err(e) => {
                failed += 1;
                reasons.insert(format!("enrollment task failed: {e}"));
            }
        }
    }
    for reason in reasons.iter().take(5) {
        eprintln!("enrollment failed: {reason}");
    }
    (enrolled, failed)
}
