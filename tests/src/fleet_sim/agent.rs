//! One simulated agent: its own TLS channel and `Inventory.Stream`, snapshots, deltas,
//! reconnects and replays.
//!
//! # A stream
//! 1. Connect to the agent's current collector with its client certificate; a collector that
//!    cannot be reached (or a stream that ends `UNAVAILABLE`) moves the agent to the next URL
//!    (failover), after a backoff of 100 ms doubling to 5 s.
//! 2. Send `Hello`, then, in order: the last acknowledged delta again when this is a planned
//!    reconnect with `--replay` (the collector answers `AlreadyApplied` with an `Ack` of its
//!    sequence: counted as a replay); a full snapshot when none was acknowledged yet, one was
//!    requested, or a snapshot part was lost unacknowledged; else every unacknowledged delta
//!    again, with its sequence (the collector applies each sequence once).
//! 3. Every `--delta-interval` (the first at a random point of the first interval): an inventory
//!    of `--delta-changes` changes, sent as a delta, or as a full snapshot every
//!    `--snapshot-every` inventories (the real agent's `schedule.snapshot_every`; a snapshot
//!    due while the last one is unacknowledged waits for the next tick). An `Ack`
//!    acknowledges every sequence up to its own. A `SnapshotRequest` is answered with a full
//!    snapshot; `RetryAfterMs` waits that long and reconnects; `RenewCertificate` is counted
//!    and ignored.
//! 4. Every `--reconnect-every` (jittered per agent) the agent stops sending, waits for its
//!    acknowledgements and opens a new connection (a planned reconnect).
//! 5. At the end of `--duration` it sends nothing more, waits for its acknowledgements (at most
//!    `--drain-timeout`) and closes.
//!
//! # Memory
//! The outbound side is an unbounded channel of small descriptors (slots and generations, not
//! JSON); the request stream renders each into a wire batch only when tonic polls it, so an
//! agent holds its slots, its unacknowledged descriptors and its connection, nothing else.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use aiscout_proto::v1::{self, agent_message, collector_message, inventory_client::InventoryClient};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use super::enroll::{error_chain, Credentials, AGENT_VERSION, CONNECT_TIMEOUT};
use super::inventory::{delta_assets, Change, FleetShape, HostInventory, Rng};
use super::report::Stats;

/// Largest message the agent sends (as the real agent: agent/src/fleet/transport.rs).
const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// Backoff after a failed connection: first and longest.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How agents stream, from the command line.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Collector URLs; agent `i` starts at `i % len`.
    pub collectors: Vec<String>,
    /// The collector CA, trusted for the server certificate.
    pub ca: Certificate,
    /// Upserts per snapshot part at most.
    pub batch_size: usize,
    /// Time between deltas of one agent.
    pub delta_interval: Duration,
    /// Changes per delta.
    pub delta_changes: u32,
    /// Every this many inventories is a full snapshot; 0: none.
    pub snapshot_every: u32,
    /// Time between planned reconnects of one agent, if any.
    pub reconnect_every: Option<Duration>,
    /// Whether a planned reconnect replays the last acknowledged delta.
    pub replay: bool,
    /// When agents stop sending deltas.
    pub deadline: Instant,
    /// How long after the deadline an agent waits for its acknowledgements.
    pub drain_timeout: Duration,
    /// Agents start spread over this long after the streaming phase begins.
    pub ramp: Duration,
    /// Agents in the fleet (for the ramp).
    pub agents: u32,
}

/// What an agent ends with.
#[derive(Debug)]
pub struct AgentOutcome {
    /// Its credentials, with the last sequence it sent.
    pub credentials: Credentials,
    /// What its host holds now.
    pub inventory: HostInventory,
    /// Whether every batch it sent was acknowledged.
    pub flushed: bool,
    /// When its first snapshot was fully acknowledged, from the start of the streaming phase.
    pub first_snapshot_acked: Option<Duration>,
    /// Upserts of that first snapshot.
    pub first_snapshot_sightings: u64,
    /// Send-to-acknowledgement latency of each acknowledged batch, in microseconds.
    pub latencies: Vec<u32>,
}

/// A batch in flight, as a descriptor.
#[derive(Debug, Clone)]
enum Body {
    /// A snapshot part: the slots and generations it names.
    SnapshotPart { snapshot_id: u64, first_part: bool, last_part: bool, slots: Vec<(u32, u32)> },
    /// A delta: its changes.
    Delta(Vec<Change>),
}

/// What goes on the outbound stream.
#[derive(Debug)]
enum Outbound {
    Hello,
    Batch { sequence: u64, body: Body },
}

/// A batch sent and not yet acknowledged.
#[derive(Debug)]
struct InFlight {
    sequence: u64,
    sent_at: Instant,
    body: Body,
}

/// Why a stream ended.
#[derive(Debug)]
enum Ended {
    /// The deadline passed and everything is acknowledged (or the drain timed out).
    Done,
    /// A planned reconnect.
    Planned,
    /// The collector asked to wait this long.
    RetryAfter(Duration),
    /// The stream broke or closed; whether to move to the next collector.
    Broken { failover: bool },
}

/// One agent's state across its streams.
struct Agent {
    credentials: Credentials,
    shape: Arc<FleetShape>,
    options: Arc<StreamOptions>,
    stats: Arc<Stats>,
    host_facts: Arc<v1::HostFacts>,
    inventory: HostInventory,
    rng: Rng,
    next_sequence: u64,
    in_flight: VecDeque<InFlight>,
    /// A full snapshot must be sent on the next stream.
    need_snapshot: bool,
    /// The last acknowledged delta, for a replay.
    last_acked_delta: Option<(u64, Vec<Change>)>,
    /// The sequence of a replay waiting for its acknowledgement.
    replay_pending: Option<u64>,
    /// The last part of the first snapshot, until acknowledged.
    first_snapshot_last: Option<u64>,
    first_snapshot_acked: Option<Duration>,
    first_snapshot_sightings: u64,
    latencies: Vec<u32>,
    started: Instant,
    collector: usize,
    /// Inventories taken so far.
    inventories: u64,
}

/// Runs agent `credentials` until the deadline and its drain; the streaming phase began at
/// `started`.
pub async fn run(
    credentials: Credentials,
    shape: Arc<FleetShape>,
    options: Arc<StreamOptions>,
    stats: Arc<Stats>,
    started: Instant,
) -> AgentOutcome {
    let index = credentials.index;
    let identity = shape.identity(index);
    let facts = format!(
        r#"{{"hostname":"{}","os":"Debian GNU/Linux 12 (bookworm)","kernel":"6.1.0-sim","arch":"x86_64","agent_version":"{AGENT_VERSION}","ip_addresses":["10.{}.{}.{}"]}}"#,
        identity.hostname,
        index >> 16 & 0xff,
        index >> 8 & 0xff,
        index & 0xff
    );
    let mut agent = Agent {
        next_sequence: credentials.last_sequence + 1,
        collector: index as usize % options.collectors.len().max(1),
        inventory: HostInventory::new(&shape),
        rng: Rng::new(&[shape.seed, 0xde17a, u64::from(index)]),
        host_facts: Arc::new(v1::HostFacts { json: facts, identity: Some(identity) }),
        credentials,
        shape,
        options,
        stats,
        in_flight: VecDeque::new(),
        need_snapshot: true,
        last_acked_delta: None,
        replay_pending: None,
        first_snapshot_last: None,
        first_snapshot_acked: None,
        first_snapshot_sightings: 0,
        latencies: Vec::new(),
        started,
        inventories: 0,
    };
    agent.run().await;
    AgentOutcome {
        flushed: agent.in_flight.is_empty() && !agent.need_snapshot,
        credentials: Credentials { last_sequence: agent.next_sequence - 1, ..agent.credentials },
        inventory: agent.inventory,
        first_snapshot_acked: agent.first_snapshot_acked,
        first_snapshot_sightings: agent.first_snapshot_sightings,
        latencies: agent.latencies,
    }
}

impl Agent {
    fn jitter(&mut self, period: Duration) -> Duration {
        let millis = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis(self.rng.below(millis))
    }

    async fn run(&mut self) {
        let options = Arc::clone(&self.options);
        let ramp = options.ramp.mul_f64(f64::from(self.credentials.index) / f64::from(options.agents.max(1)));
        tokio::time::sleep(ramp).await;
        let give_up = options.deadline + options.drain_timeout;
        let first_delta = self.jitter(options.delta_interval);
        let mut next_delta = Instant::now() + first_delta;
        let mut backoff = BACKOFF_FIRST;
        let mut planned = false;
        let mut connected_before = false;
        loop {
            let now = Instant::now();
            if now >= give_up || (now >= options.deadline && self.in_flight.is_empty() && !self.need_snapshot) {
                return;
            }
            let ended = match self.open().await {
                Ok((tx, inbound)) => {
                    if connected_before {
                        Stats::add(&self.stats.reconnects, 1);
                    }
                    connected_before = true;
                    backoff = BACKOFF_FIRST;
                    let replay = planned && options.replay;
                    self.stream(tx, inbound, replay, &mut next_delta, give_up).await
                }
                Err(failover) => Ended::Broken { failover },
            };
            planned = false;
            match ended {
                Ended::Done => return,
                Ended::Planned => planned = true,
                Ended::RetryAfter(wait) => tokio::time::sleep_until((Instant::now() + wait).min(give_up)).await,
                Ended::Broken { failover } => {
                    if failover {
                        self.collector = (self.collector + 1) % options.collectors.len().max(1);
                    }
                    let wait = backoff + self.jitter(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    tokio::time::sleep_until((Instant::now() + wait).min(give_up)).await;
                }
            }
        }
    }

    /// Connects and opens the stream with `Hello` queued; on failure, whether to fail over.
    async fn open(
        &mut self,
    ) -> Result<(mpsc::UnboundedSender<Outbound>, tonic::Streaming<v1::CollectorMessage>), bool> {
        let url = self.options.collectors.get(self.collector).cloned().unwrap_or_default();
        let tls = ClientTlsConfig::new()
            .ca_certificate(self.options.ca.clone())
            .identity(Identity::from_pem(&self.credentials.cert_pem, &self.credentials.key_pem));
        let endpoint = match Endpoint::from_shared(url).and_then(|e| e.tls_config(tls)) {
            Ok(e) => e.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true),
            Err(_) => {
                self.stats.error("connect");
                return Err(true);
            }
        };
        let channel = match endpoint.connect().await {
            Ok(channel) => channel,
            Err(e) => {
                self.stats.error("connect");
                if self.stats.errors().get("connect").copied().unwrap_or(0) <= 3 {
                    eprintln!(
                        "agent {}: {}: cannot connect: {}",
                        self.credentials.index,
                        endpoint.uri(),
                        error_chain(&e)
                    );
                }
                return Err(true);
            }
        };
        let mut client = InventoryClient::new(channel)
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let (tx, rx) = mpsc::unbounded_channel::<Outbound>();
        let _ = tx.send(Outbound::Hello);
        let (shape, facts, stats, index) =
            (Arc::clone(&self.shape), Arc::clone(&self.host_facts), Arc::clone(&self.stats), self.credentials.index);
        let outbound = tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
            .map(move |o| render(&shape, index, &facts, &stats, o));
        match client.stream(outbound).await {
            Ok(response) => Ok((tx, response.into_inner())),
            Err(status) => Err(self.status_error(&status)),
        }
    }

    /// Counts a status and says whether it calls for failover.
    fn status_error(&self, status: &tonic::Status) -> bool {
        self.stats.error(&format!("status:{:?}", status.code()));
        matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown)
    }

    /// Runs one stream until it ends.
    async fn stream(
        &mut self,
        tx: mpsc::UnboundedSender<Outbound>,
        mut inbound: tonic::Streaming<v1::CollectorMessage>,
        replay: bool,
        next_delta: &mut Instant,
        give_up: Instant,
    ) -> Ended {
        let options = Arc::clone(&self.options);
        self.replay_pending = None;
        if replay {
            if let Some((sequence, changes)) = self.last_acked_delta.clone() {
                self.replay_pending = Some(sequence);
                self.send(&tx, Outbound::Batch { sequence, body: Body::Delta(changes) });
            }
        }
        let lost_snapshot = self.in_flight.iter().any(|f| matches!(f.body, Body::SnapshotPart { .. }));
        if self.need_snapshot || lost_snapshot {
            self.in_flight.clear();
            self.snapshot(&tx);
        } else {
            let resend: Vec<(u64, Body)> = self.in_flight.iter().map(|f| (f.sequence, f.body.clone())).collect();
            self.in_flight.clear();
            for (sequence, body) in resend {
                Stats::add(&self.stats.resent, 1);
                self.track(sequence, body.clone());
                self.send(&tx, Outbound::Batch { sequence, body });
            }
        }
        let mut next_reconnect = options.reconnect_every.map(|every| {
            let jitter = self.jitter(every / 2);
            Instant::now() + every / 2 + jitter
        });
        let mut reconnecting = false;
        loop {
            let now = Instant::now();
            if now >= options.deadline && self.in_flight.is_empty() && self.replay_pending.is_none() {
                return Ended::Done;
            }
            if reconnecting && self.in_flight.is_empty() && self.replay_pending.is_none() {
                return Ended::Planned;
            }
            let mut wake = give_up;
            if now < options.deadline && !reconnecting {
                wake = wake.min(*next_delta).min(options.deadline);
                if let Some(at) = next_reconnect {
                    wake = wake.min(at);
                }
            }
            tokio::select! {
                message = inbound.next() => match message {
                    Some(Ok(v1::CollectorMessage { message: Some(m) })) => match m {
                        collector_message::Message::Ack(ack) => self.acked(ack.sequence),
                        collector_message::Message::SnapshotRequest(_) => {
                            Stats::add(&self.stats.snapshot_requests, 1);
                            self.snapshot(&tx);
                        }
                        collector_message::Message::RetryAfterMs(ms) => {
                            self.stats.error("retry_after");
                            return Ended::RetryAfter(Duration::from_millis(ms));
                        }
                        collector_message::Message::RenewCertificate(_) => {
                            Stats::add(&self.stats.renew_requests, 1);
                        }
                    },
                    Some(Ok(_)) => {}
                    Some(Err(status)) => return Ended::Broken { failover: self.status_error(&status) },
                    None => {
                        self.stats.error("closed");
                        return Ended::Broken { failover: false };
                    }
                },
                () = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if now >= give_up {
                        return Ended::Done;
                    }
                    if now >= options.deadline || reconnecting {
                        continue;
                    }
                    if next_reconnect.is_some_and(|at| now >= at) {
                        next_reconnect = None;
                        reconnecting = true;
                        continue;
                    }
                    if now >= *next_delta {
                        *next_delta += options.delta_interval;
                        let every = u64::from(options.snapshot_every);
                        let snapshot_due = every > 0 && (self.inventories + 1).is_multiple_of(every);
                        // As the real agent's spool, which holds what the collector has not
                        // acknowledged: one snapshot in flight at a time; a snapshot due while
                        // the last is unacknowledged waits for the next tick, inventory unchanged.
                        if snapshot_due
                            && self.in_flight.iter().any(|f| matches!(f.body, Body::SnapshotPart { .. }))
                        {
                            Stats::add(&self.stats.snapshots_deferred, 1);
                            continue;
                        }
                        self.inventories += 1;
                        let changes = self.inventory.mutate(&mut self.rng, options.delta_changes);
                        if snapshot_due {
                            self.snapshot(&tx);
                        } else if !changes.is_empty() {
                            let sequence = self.take_sequence();
                            self.track(sequence, Body::Delta(changes.clone()));
                            self.send(&tx, Outbound::Batch { sequence, body: Body::Delta(changes) });
                        }
                    }
                }
            }
        }
    }

    fn take_sequence(&mut self) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        sequence
    }

    /// Queues a full snapshot of the host, in parts of `--batch-size`.
    fn snapshot(&mut self, tx: &mpsc::UnboundedSender<Outbound>) {
        Stats::add(&self.stats.snapshots, 1);
        self.need_snapshot = false;
        let present: Vec<(u32, u32)> = self.inventory.present().collect();
        let size = self.options.batch_size.max(1);
        let parts: Vec<&[(u32, u32)]> = if present.is_empty() { vec![&[]] } else { present.chunks(size).collect() };
        let count = parts.len();
        let mut snapshot_id = 0;
        for (i, part) in parts.into_iter().enumerate() {
            let sequence = self.take_sequence();
            if i == 0 {
                snapshot_id = sequence;
            }
            let body =
                Body::SnapshotPart { snapshot_id, first_part: i == 0, last_part: i + 1 == count, slots: part.to_vec() };
            if i + 1 == count && self.first_snapshot_acked.is_none() {
                self.first_snapshot_last = Some(sequence);
            }
            self.track(sequence, body.clone());
            self.send(tx, Outbound::Batch { sequence, body });
        }
    }

    fn track(&mut self, sequence: u64, body: Body) {
        self.in_flight.push_back(InFlight { sequence, sent_at: Instant::now(), body });
    }

    fn send(&self, tx: &mpsc::UnboundedSender<Outbound>, outbound: Outbound) {
        Stats::add(&self.stats.batches_sent, 1);
        // A closed channel means the stream is gone: the batch stays in flight and is resent.
        let _ = tx.send(outbound);
    }

    /// An acknowledgement of every sequence up to `sequence`.
    fn acked(&mut self, sequence: u64) {
        let now = Instant::now();
        if self.replay_pending == Some(sequence) {
            self.replay_pending = None;
            Stats::add(&self.stats.replays, 1);
            return;
        }
        while self.in_flight.front().is_some_and(|f| f.sequence <= sequence) {
            let Some(done) = self.in_flight.pop_front() else { break };
            let micros = u32::try_from(now.duration_since(done.sent_at).as_micros()).unwrap_or(u32::MAX);
            self.latencies.push(micros);
            Stats::add(&self.stats.batches_acked, 1);
            match done.body {
                Body::SnapshotPart { slots, .. } => {
                    Stats::add(&self.stats.sightings_acked, slots.len() as u64);
                    if self.first_snapshot_acked.is_none() {
                        self.first_snapshot_sightings += slots.len() as u64;
                    }
                }
                Body::Delta(changes) => {
                    let ups = changes.iter().filter(|c| c.after.is_some()).count() as u64;
                    let removals = changes.iter().filter(|c| c.after.is_none()).count() as u64;
                    Stats::add(&self.stats.sightings_acked, ups);
                    Stats::add(&self.stats.removals_acked, removals);
                    self.last_acked_delta = Some((done.sequence, changes));
                }
            }
            if self.first_snapshot_last == Some(done.sequence) {
                self.first_snapshot_last = None;
                self.first_snapshot_acked = Some(now.duration_since(self.started));
            }
        }
    }
}

/// The wire message of `outbound` for agent `index`.
fn render(
    shape: &FleetShape,
    index: u32,
    facts: &Arc<v1::HostFacts>,
    stats: &Stats,
    outbound: Outbound,
) -> v1::AgentMessage {
    let message = match outbound {
        Outbound::Hello => agent_message::Message::Hello(v1::Hello { agent_version: AGENT_VERSION.to_owned() }),
        Outbound::Batch { sequence, body } => {
            let observed_at_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let mut batch =
                v1::Batch { sequence, host: Some(v1::HostFacts::clone(facts)), observed_at_ms, ..v1::Batch::default() };
            match body {
                Body::SnapshotPart { snapshot_id, first_part, last_part, slots } => {
                    batch.snapshot = true;
                    batch.snapshot_id = snapshot_id;
                    batch.first_part = first_part;
                    batch.last_part = last_part;
                    batch.upserts =
                        slots.iter().map(|&(slot, gen)| shape.entry(index, slot, gen).into_asset()).collect();
                }
                Body::Delta(changes) => (batch.upserts, batch.removals) = delta_assets(shape, index, &changes),
            }
            Stats::add(&stats.bytes_sent, prost::Message::encoded_len(&batch) as u64);
            agent_message::Message::Batch(batch)
        }
    };
    v1::AgentMessage { message: Some(message) }
}
