//! `aiscout-collector`: parses the command line, starts tracing, loads the configuration and
//! hands over to the library; errors print `{:#}` and exit 2. A configuration that cannot be
//! read, parsed or validated prints its error as the agent does (`PATH: key: message`, one line
//! per problem) and exits 64; `validate` prints `PATH: valid` when it is fit to run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aiscout_collector::config::CollectorConfig;
use aiscout_collector::now_ms;
use aiscout_collector::operator;
use aiscout_collector::store::limits::AgentQuota;
use aiscout_collector::store::postgres::{redact_url, PgOptions};
use aiscout_collector::store::{NewApiToken, NewEnrollmentToken, PgStore, Scope, SqliteStore, Store};
use aiscout_collector::tls::TlsMaterial;
use clap::{Parser, Subcommand};

/// aiscout collector: enrolls agents, ingests their inventory, serves the fleet inventory.
#[derive(Debug, Parser)]
#[command(name = "aiscout-collector", version, about)]
struct Cli {
    /// Configuration file (docs/collector.md).
    #[arg(long, global = true, default_value = "/etc/aiscout/collector.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve agents (gRPC, mTLS) and the HTTP API.
    Serve,
    /// Check the configuration and print every problem.
    Validate,
    /// Bring the store's schema to this build's version and exit (serve does it too; run this
    /// first when several collectors share one PostgreSQL database).
    Migrate,
    /// Enrollment tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// API bearer tokens.
    ApiToken {
        #[command(subcommand)]
        action: ApiTokenAction,
    },
    /// Agents.
    Agent {
        #[command(subcommand)]
        action: AgentAction,
    },
    /// The agent release channel: keygen and sign run offline on the release manager's
    /// machine (no collector configuration needed); publish stores a signed release here.
    Release {
        #[command(subcommand)]
        action: ReleaseAction,
    },
    /// The advisories the vulnerable-version rule matches (OSV format, docs/findings.md).
    Advisories {
        #[command(subcommand)]
        action: AdvisoriesAction,
    },
    /// Findings over the inventory (docs/findings.md).
    Findings {
        #[command(subcommand)]
        action: FindingsAction,
    },
    /// Hosts.
    Host {
        #[command(subcommand)]
        action: HostAction,
    },
    /// The audit trail (docs/findings.md, "Audit trail").
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// The security team's policy (docs/findings.md, "Policy").
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Export the inventory (docs/exports.md): CSV or JSON lines (one row per asset or per
    /// sighting), a CycloneDX 1.6 BOM or an SPDX 3.0.1 document, of the fleet or of one host.
    Export {
        /// csv, jsonl, cyclonedx or spdx.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(aiscout_collector::export::Format::NAMES))]
        format: String,
        /// CSV and JSON lines: one row per asset or per sighting.
        #[arg(long, default_value = "assets", value_parser = ["assets", "sightings"])]
        rows: String,
        /// Only this kind of asset.
        #[arg(long, value_parser = ["model", "framework", "runtime", "tooling"])]
        kind: Option<String>,
        /// Only this host (its agent id, from `GET /api/v1/hosts`).
        #[arg(long)]
        host: Option<String>,
        /// Assets and sightings no host has any more, too.
        #[arg(long)]
        include_removed: bool,
        /// Write here (mode 0600, complete or not at all) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Push hosts, inference servers and models to a CMDB now (docs/exports.md, *CMDB push*), as the
    /// `[cmdb.*]` tables of the configuration say: exit 0 when every CI was accepted, 1 when
    /// some were refused, 2 when the push stopped (credentials, HTTP error).
    Push {
        #[command(subcommand)]
        target: PushTarget,
    },
}

#[derive(Debug, Subcommand)]
enum PushTarget {
    /// ServiceNow, through the Identification and Reconciliation API (`[cmdb.servicenow]`).
    Servicenow {
        /// Identify only (`identifyreconcile/query`): report what would change, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The signed JSON webhook (`[cmdb.webhook]`).
    Webhook {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum HostAction {
    /// Decommission a host (by its agent id): its live sightings close, its agent is revoked,
    /// its history stays in the inventory and the audit trail.
    Decommission {
        /// The agent id (from `GET /api/v1/hosts`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Recompute the hash chain: exit 0 and print the last record's hash (keep it elsewhere:
    /// it anchors the chain) when intact, 1 naming the first broken record.
    Verify,
}

#[derive(Debug, Subcommand)]
enum PolicyAction {
    /// Check a policy file and name every problem by key (no collector configuration needed):
    /// exit 0 when valid, 1 when not.
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Check a policy file, record it as the applied policy (its version must be above the
    /// applied one's) and evaluate the findings under it.
    Apply {
        /// The policy file.
        file: PathBuf,
        /// Who applies it, for the record.
        #[arg(long, default_value = "operator")]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
enum AdvisoriesAction {
    /// Check FILE (a JSON array of OSV entries) and install it in the data directory: the
    /// running collector uses it from its next start instead of the advisories it shipped with.
    Update {
        /// The advisories file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum FindingsAction {
    /// Evaluate every rule over the inventory now and print what changed.
    Evaluate,
}

#[derive(Debug, Subcommand)]
enum ReleaseAction {
    /// Make an ed25519 signing key (PEM, mode 0600; never over an existing file) and print its
    /// public key for the agents' `update.public_keys` and the collector's
    /// `releases.public_keys`.
    Keygen {
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign release metadata naming one agent archive.
    Sign {
        /// The private key (from `release keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The agent archive.
        #[arg(long)]
        archive: PathBuf,
        /// Its version (semver).
        #[arg(long = "release-version")]
        release_version: String,
        /// The target it runs on.
        #[arg(long, default_value = "x86_64-unknown-linux-gnu")]
        target: String,
        /// The channel.
        #[arg(long, default_value = "stable")]
        channel: String,
        /// The document's sequence number: higher than every one signed before for the channel.
        #[arg(long)]
        sequence: u64,
        /// How long the document is valid (humantime: 30d).
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        valid_for: Duration,
        /// The lowest version allowed to run: older agents update whatever the rollout.
        #[arg(long, default_value = "0.0.0")]
        min_version: String,
        /// Percentage of the agents that take it.
        #[arg(long, default_value_t = 100)]
        rollout_percent: u8,
        /// Cohorts it is offered to (repeat; none: every agent).
        #[arg(long = "cohort")]
        cohorts: Vec<String>,
        /// Where to write the signed document.
        #[arg(long)]
        out: PathBuf,
        /// Where to write the signed copy of the archive, the one to publish (default:
        /// `aiscout-agent-<version>-<target>.tar.gz` beside --out).
        #[arg(long)]
        signed_archive: Option<PathBuf>,
    },
    /// Verify a signed document against `releases.public_keys` (signature, no replay of an
    /// older sequence, not expired) and publish it with the archives it names.
    Publish {
        /// The signed document (from `release sign`).
        #[arg(long)]
        metadata: PathBuf,
        /// The archives it names (repeat).
        #[arg(long = "archive")]
        archives: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Create an enrollment token; prints its secret once.
    Create {
        /// How many agents may enroll with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long it is valid (humantime: 1h, 7d).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// A label for audits.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List enrollment tokens: ids, state, uses left, expiry; never a secret.
    List,
    /// Revoke an enrollment token: no agent enrolls with it from now on.
    Revoke {
        /// The token id (from `token list`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ApiTokenAction {
    /// Create an API token; prints its secret once.
    Create {
        /// A label for audits.
        #[arg(long, default_value = "")]
        label: String,
        /// What it may do: read, export, admin (repeat for several; none implies another).
        #[arg(long = "scope", default_value = "read", value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// How long it is valid (humantime: 90d); without it, until revoked.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
    },
    /// List API tokens: ids, state, scopes, expiry, last use; never a secret.
    List,
    /// Revoke an API token: its next request is refused.
    Revoke {
        /// The token id (from `api-token list`).
        id: String,
    },
}

fn parse_scope(name: &str) -> Result<Scope, String> {
    Scope::from_name(name).ok_or_else(|| format!("unknown scope {name:?}: read, export or admin"))
}

/// `ttl` from now, in Unix milliseconds.
fn expiry(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

#[derive(Debug, Subcommand)]
enum AgentAction {
    /// Revoke an agent: its next call is refused.
    Revoke {
        /// The agent id.
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The release manager's offline commands need no collector configuration.
    if let Command::Release { action: action @ (ReleaseAction::Keygen { .. } | ReleaseAction::Sign { .. }) } =
        &cli.command
    {
        return match release_offline(action) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("aiscout-collector: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    if let Command::Policy { action: PolicyAction::Check { file } } = &cli.command {
        return policy_check(file);
    }
    let config = match CollectorConfig::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            // As the agent prints it: every line starts with the file.
            eprintln!("{e}");
            return ExitCode::from(64);
        }
    };
    aiscout_collector::init_tracing(config.log.json, config.log.level.as_str());
    match run(cli, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aiscout-collector: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `policy check FILE`: no configuration needed.
#[allow(clippy::print_stdout)]
fn policy_check(file: &std::path::Path) -> ExitCode {
    match read_policy(file) {
        Ok((policy, _)) => {
            println!("{}: valid (version {})", file.display(), policy.version);
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in problems {
                eprintln!("{}: {p}", file.display());
            }
            ExitCode::from(1)
        }
    }
}

/// The policy in `file`, checked, and its text; or every problem.
fn read_policy(file: &std::path::Path) -> Result<(aiscout_collector::policy::Policy, String), Vec<String>> {
    use std::io::Read;
    let mut text = String::new();
    let max = aiscout_collector::policy::MAX_POLICY_BYTES as u64;
    std::fs::File::open(file)
        .and_then(|f| f.take(max + 1).read_to_string(&mut text))
        .map_err(|e| vec![e.to_string()])?;
    let policy = aiscout_collector::policy::Policy::parse(&text)?;
    Ok((policy, text))
}

fn open_store(config: &CollectorConfig) -> anyhow::Result<Arc<dyn Store>> {
    let quota = AgentQuota { max_stored_bytes: config.agents.max_stored_bytes };
    if config.store.is_empty() {
        aiscout_collector::create_private_dir(&config.data_dir)?;
        return Ok(Arc::new(SqliteStore::open(&config.database_path())?.with_quota(quota)));
    }
    let password = if config.store_password_file.as_os_str().is_empty() {
        None
    } else {
        let file = &config.store_password_file;
        Some(
            aiscout_collector::read_secret_file(file)
                .map_err(|e| anyhow::anyhow!("store_password_file {}: {e}", file.display()))?,
        )
    };
    let options = PgOptions { pool_size: config.store_pool_size, ..PgOptions::default() };
    Ok(Arc::new(PgStore::open_with_password(&config.store, password.as_deref(), &options)?.with_quota(quota)))
}

/// Writes an export to `path` through `path.partial` (owner-only), renamed into place once
/// complete: an interrupted export never leaves a file that looks whole.
fn export_to_file(
    store: &dyn Store,
    request: &aiscout_collector::export::ExportRequest,
    context: &aiscout_collector::export::ExportContext,
    path: &std::path::Path,
) -> anyhow::Result<aiscout_collector::export::ExportSummary> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    // A stale partial file (or a link planted there) is removed, never followed: the new one is
    // created exclusively, owner-only.
    match std::fs::remove_file(&partial) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", partial.display())),
    }
    let file = aiscout_collector::create_new_file(&partial, 0o600)
        .map_err(|e| anyhow::anyhow!("{}: {e}", partial.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    let summary = match aiscout_collector::export::run(store, request, context, &mut writer) {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(anyhow::anyhow!("{}: {e}", path.display()));
        }
    };
    let file = writer.into_inner().map_err(|e| anyhow::anyhow!("{}: {}", partial.display(), e.error()))?;
    file.sync_all().map_err(|e| anyhow::anyhow!("{}: {e}", partial.display()))?;
    std::fs::rename(&partial, path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(summary)
}

/// Seconds since the epoch.
fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `release keygen` and `release sign`.
#[allow(clippy::print_stdout)]
fn release_offline(action: &ReleaseAction) -> anyhow::Result<()> {
    use aiscout_collector::release;
    match action {
        ReleaseAction::Keygen { out } => {
            let public = release::keygen(out)?;
            println!("{}", public.to_hex());
            eprintln!("private key written to {} (mode 0600); keep it offline", out.display());
        }
        ReleaseAction::Sign {
            key,
            archive,
            release_version,
            target,
            channel,
            sequence,
            valid_for,
            min_version,
            rollout_percent,
            cohorts,
            out,
            signed_archive,
        } => {
            let signing = release::read_key(key)?;
            let signed_archive = signed_archive
                .clone()
                .unwrap_or_else(|| out.with_file_name(aiscout_proto::release::archive_name(release_version, target)));
            release::sign_archive(&signing, archive, release_version, target, &signed_archive)?;
            let request = release::SignRequest {
                channel: channel.clone(),
                sequence: *sequence,
                now: now_secs(),
                valid_for_secs: valid_for.as_secs(),
                min_version: min_version.clone(),
                releases: vec![(
                    signed_archive.clone(),
                    aiscout_proto::release::Release {
                        version: release_version.clone(),
                        target: target.clone(),
                        sha256: String::new(),
                        size: 0,
                        rollout_percent: *rollout_percent,
                        cohorts: cohorts.clone(),
                    },
                )],
            };
            let signed = release::sign(&signing, &request)?;
            std::fs::write(out, signed).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
            println!("{}: channel {channel}, sequence {sequence}, {release_version} for {target}", out.display());
            println!("{}: the signed archive to publish with it", signed_archive.display());
        }
        ReleaseAction::Publish { .. } => anyhow::bail!("release publish needs the collector configuration"),
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn run(cli: Cli, config: CollectorConfig) -> anyhow::Result<()> {
    match cli.command {
        Command::Validate => {
            println!("{}: valid", cli.config.display());
            Ok(())
        }
        Command::Migrate => {
            let (name, version) = if config.store.is_empty() {
                drop(open_store(&config)?);
                (
                    config.database_path().display().to_string(),
                    aiscout_collector::store::sqlite::schema::CURRENT_VERSION,
                )
            } else {
                drop(open_store(&config)?);
                (redact_url(&config.store), aiscout_collector::store::postgres::schema::CURRENT_VERSION)
            };
            println!("{name}: schema version {version}");
            Ok(())
        }
        Command::Serve => {
            let store = open_store(&config)?;
            let tls = match TlsMaterial::load(&config) {
                Ok(tls) => tls,
                Err(problems) => {
                    let path = cli.config.display().to_string();
                    return Err(aiscout_collector::config::ConfigError::Invalid { path, problems }.into());
                }
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(async move {
                let grpc = tokio::net::TcpListener::bind(config.listen).await?;
                let api = tokio::net::TcpListener::bind(config.api_listen).await?;
                if let Some(ca) = &tls.ca_path {
                    println!("dev mode: agents trust the CA in {} (collector.ca_file)", ca.display());
                }
                println!("agent certificates are signed by the CA with key digest {}", tls.ca.key_sha256());
                match aiscout_collector::pki::chain_ca_pin(&tls.server_cert_pem) {
                    Some(pin) => println!("agents may pin the collector's CA instead: collector.ca_sha256 = \"{pin}\""),
                    None => println!("tls.cert_file holds no CA certificate: agents need collector.ca_file"),
                }
                let scheme = if config.api_tls.cert_file.is_some() { "https" } else { "http" };
                println!("agents: https://{}  api: {scheme}://{}", grpc.local_addr()?, api.local_addr()?);
                let shutdown = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                aiscout_collector::server::run(&config, store, tls, grpc, api, shutdown).await
            })
        }
        Command::Token { action: TokenAction::Create { uses, ttl, label } } => {
            let store = open_store(&config)?;
            let now = now_ms();
            let token = store.create_enrollment_token(&NewEnrollmentToken {
                uses,
                expires_at_ms: expiry(now, ttl),
                label,
                now_ms: now,
            })?;
            println!("{}", token.secret.expose());
            Ok(())
        }
        Command::Release { action: ReleaseAction::Publish { metadata, archives } } => {
            let keys = config.releases.keys();
            if keys.is_empty() {
                anyhow::bail!("{}: releases.public_keys is empty: no release can be published", cli.config.display());
            }
            let dir = config.releases_dir();
            aiscout_collector::create_private_dir(&dir)?;
            let (channel, sequence) =
                aiscout_collector::release::publish(&dir, &metadata, &archives, &keys, now_secs())?;
            println!("published channel {channel} sequence {sequence} in {}", dir.display());
            Ok(())
        }
        Command::Release { .. } => anyhow::bail!("release keygen and sign run before the configuration is loaded"),
        Command::Advisories { action: AdvisoriesAction::Update { file } } => {
            let list = aiscout_collector::findings::read_advisories(&file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
                .ok_or_else(|| anyhow::anyhow!("{}: no such file", file.display()))?;
            let target = config.advisories_file();
            aiscout_collector::create_private_dir(&config.data_dir)?;
            let bytes = std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let temp = target.with_extension("new");
            std::fs::write(&temp, bytes).map_err(|e| anyhow::anyhow!("{}: {e}", temp.display()))?;
            std::fs::rename(&temp, &target).map_err(|e| anyhow::anyhow!("{}: {e}", target.display()))?;
            println!("{} advisories installed in {} (used from the next start)", list.len(), target.display());
            Ok(())
        }
        Command::Policy { action: PolicyAction::Check { .. } } => {
            anyhow::bail!("policy check runs without a configuration")
        }
        Command::Policy { action: PolicyAction::Apply { file, by } } => {
            let (policy, text) = read_policy(&file).map_err(|problems| {
                anyhow::anyhow!(
                    "{}",
                    problems.iter().map(|p| format!("{}: {p}", file.display())).collect::<Vec<_>>().join("\n")
                )
            })?;
            let store = open_store(&config)?;
            let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
            store.apply_policy(&aiscout_collector::store::PolicyRecord {
                version: policy.version,
                sha256: sha256.clone(),
                text,
                applied_at_ms: now_ms(),
                applied_by: by,
            })?;
            let settings =
                aiscout_collector::findings::Settings::load(&config).map_err(|e| anyhow::anyhow!("findings: {e}"))?;
            let c = aiscout_collector::findings::evaluate(&*store, &settings, now_ms())?;
            println!(
                "policy version {} applied (sha256 {sha256}); findings: {} opened, {} reopened, {} resolved",
                policy.version, c.opened, c.reopened, c.resolved
            );
            Ok(())
        }
        Command::Host { action: HostAction::Decommission { id } } => {
            if open_store(&config)?.decommission_agent(&id, now_ms())? {
                println!("host {id} decommissioned: its sightings are closed and its agent revoked");
            } else {
                println!("host {id} was already decommissioned");
            }
            Ok(())
        }
        Command::Audit { action: AuditAction::Verify } => {
            let store = open_store(&config)?;
            let result = store.verify_audit()?;
            if let Some((seq, reason)) = result.broken_at {
                eprintln!(
                    "audit trail broken at record {seq}: {reason} ({} records before it are intact)",
                    result.records
                );
                std::process::exit(1);
            }
            let last = store
                .audit_log(
                    None,
                    &aiscout_collector::store::PageRequest {
                        after: result.records.checked_sub(1).map(|n| n.to_string()),
                        limit: 1,
                    },
                )?
                .items
                .pop();
            match last {
                Some(r) => {
                    println!("audit trail intact: {} records, last {} sha256 {}", result.records, r.seq, r.sha256)
                }
                None => println!("audit trail intact: 0 records"),
            }
            Ok(())
        }
        Command::Export { format, rows, kind, host, include_removed, out } => {
            use aiscout_collector::export::{self, ExportContext, ExportRequest, Format, Rows};
            let request = ExportRequest {
                format: Format::from_name(&format).ok_or_else(|| anyhow::anyhow!("--format: unknown {format:?}"))?,
                rows: Rows::from_name(&rows).unwrap_or_default(),
                kind: kind.as_deref().and_then(aiscout_collector::store::AssetKind::from_name),
                agent_id: host,
                include_removed,
            };
            let store = open_store(&config)?;
            let context = ExportContext::now();
            let summary = match out {
                None => {
                    export::run(&*store, &request, &context, &mut std::io::BufWriter::new(std::io::stdout().lock()))?
                }
                Some(path) => export_to_file(&*store, &request, &context, &path)?,
            };
            eprintln!(
                "export: {} {} written",
                summary.items,
                if matches!(request.format, Format::Csv | Format::Jsonl) { "rows" } else { "elements" }
            );
            Ok(())
        }
        Command::Findings { action: FindingsAction::Evaluate } => {
            let store = open_store(&config)?;
            let settings =
                aiscout_collector::findings::Settings::load(&config).map_err(|e| anyhow::anyhow!("findings: {e}"))?;
            let c = aiscout_collector::findings::evaluate(&*store, &settings, now_ms())?;
            println!(
                "findings: {} opened, {} reopened, {} resolved, {} acknowledgements expired, {} unchanged",
                c.opened, c.reopened, c.resolved, c.ack_expired, c.kept
            );
            Ok(())
        }
        Command::Token { action: TokenAction::List } => {
            let tokens = open_store(&config)?.list_enrollment_tokens()?;
            print!("{}", operator::enrollment_tokens_text(&tokens, now_ms()));
            Ok(())
        }
        Command::Token { action: TokenAction::Revoke { id } } => {
            if !open_store(&config)?.revoke_enrollment_token(&id, now_ms())? {
                anyhow::bail!("no unrevoked enrollment token {id}");
            }
            println!("enrollment token {id} revoked");
            Ok(())
        }
        Command::ApiToken { action: ApiTokenAction::Create { label, scopes, ttl } } => {
            let store = open_store(&config)?;
            let now = now_ms();
            let token = store.create_api_token(&NewApiToken {
                label,
                scopes,
                expires_at_ms: ttl.map(|ttl| expiry(now, ttl)),
                now_ms: now,
            })?;
            println!("{}", token.secret.expose());
            Ok(())
        }
        Command::ApiToken { action: ApiTokenAction::List } => {
            let tokens = open_store(&config)?.list_api_tokens()?;
            print!("{}", operator::api_tokens_text(&tokens, now_ms()));
            Ok(())
        }
        Command::ApiToken { action: ApiTokenAction::Revoke { id } } => {
            if !open_store(&config)?.revoke_api_token(&id, now_ms())? {
                anyhow::bail!("no unrevoked api token {id}");
            }
            println!("api token {id} revoked");
            Ok(())
        }
        Command::Push { target } => push(&config, target),
        Command::Agent { action: AgentAction::Revoke { id } } => {
            let store = open_store(&config)?;
            store.revoke_agent(&id, now_ms())?;
            println!("agent {id} revoked");
            Ok(())
        }
    }
}

/// `push servicenow|webhook` (the `Push` command's documentation says the exit codes).
fn push(config: &CollectorConfig, target: PushTarget) -> anyhow::Result<()> {
    use aiscout_collector::cmdb::{self, Target};
    use std::io::Write;
    let (target, dry_run, json) = match target {
        PushTarget::Servicenow { dry_run, json } => {
            let section =
                config.cmdb.servicenow.clone().ok_or_else(|| {
                    anyhow::anyhow!("push servicenow: the configuration has no [cmdb.servicenow] table")
                })?;
            (Target::ServiceNow(cmdb::servicenow::ServiceNow::new(section).map_err(anyhow::Error::msg)?), dry_run, json)
        }
        PushTarget::Webhook { json } => {
            let section = config
                .cmdb
                .webhook
                .clone()
                .ok_or_else(|| anyhow::anyhow!("push webhook: the configuration has no [cmdb.webhook] table"))?;
            (Target::Webhook(cmdb::webhook::Webhook::new(section).map_err(anyhow::Error::msg)?), false, json)
        }
    };
    let store = open_store(config)?;
    let report = target.push(&*store, dry_run);
    cmdb::record(&*store, &report);
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", report.text())?;
    }
    out.flush()?;
    if let Some(e) = &report.error {
        anyhow::bail!("push {}: {e}", report.target);
    }
    if !report.ok {
        eprintln!("aiscout-collector: push {}: {} cis refused", report.target, report.errors_total);
        std::process::exit(1);
    }
    Ok(())
}
