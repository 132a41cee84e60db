//! `aiscout-agent`: parses the command line, starts tracing, and hands over to the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use aiscout_agent::check::sarif::SarifOptions;
use aiscout_agent::check::CheckReport;
use aiscout_agent::config::{self, Config};
use aiscout_agent::fleet::daemon::{Ended, RunOptions};
use aiscout_agent::report::Section;
use aiscout_agent::scan::{self, Progress, ScanOptions};
use clap::{Parser, Subcommand};

/// The version this build states: the crate's, unless `AISCOUT_BUILD_VERSION` was set when it
/// was built (release builds that differ only in version, e.g. the self-update tests' second
/// build, scripts/test.sh).
const VERSION: &str = match option_env!("AISCOUT_BUILD_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// aiscout agent: inventories the machine-learning models on this host.
#[derive(Debug, Parser)]
#[command(name = "aiscout-agent", version = VERSION, about)]
struct Cli {
    /// Log as JSON lines on stderr (level from AISCOUT_LOG, else `log.level` for `run`, else warn).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Find model files under PATHs (default: homes, /opt, /srv, /data, /models, /mnt, /var/lib
    /// and model caches) and identify them by content.
    Scan {
        /// Roots to walk instead of the defaults.
        paths: Vec<PathBuf>,
        /// Print one JSON document (docs/scan-json.md) instead of a table (`--format json`).
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// table, json (docs/scan-json.md) or cyclonedx (a CycloneDX 1.6 BOM of this host,
        /// docs/exports.md).
        #[arg(long, value_parser = ["table", "json", "cyclonedx"])]
        format: Option<String>,
        /// Directory for the hash cache (default /var/cache/aiscout for root, else ~/.local/state/aiscout).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Do not read or write the hash cache.
        #[arg(long, conflicts_with = "state_dir")]
        no_cache: bool,
        /// Sections to produce (default: all).
        #[arg(long, value_delimiter = ',', default_value = "models,frameworks,gpus,runtimes,tooling")]
        only: Vec<Section>,
        /// Skip files and directories matching GLOB (a name, or an absolute path pattern with '/').
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// Walker threads (default: number of CPUs, at most 8).
        #[arg(long)]
        threads: Option<usize>,
        /// Also walk network file systems (NFS, SMB, sshfs) mounted below the roots.
        #[arg(long)]
        network_fs: bool,
        /// List every package of every Python environment, not only the AI watchlist.
        #[arg(long)]
        all_packages: bool,
        /// Ask inference servers listening on this host for their version and models (one GET
        /// on the loopback address, 1 s timeout).
        #[arg(long)]
        identify_servers: bool,
        /// Also list, in the table, the model files that installed packages shipped (test data
        /// of torch, scikit-learn, …); the JSON document always has them, with their `owner`.
        #[arg(long)]
        include_owned: bool,
    },
    /// Judge whether loading model files can run code: exit 1 when any is suspicious or
    /// dangerous or a file named like a model cannot be judged (unknown_format, unparseable), 2
    /// when nothing is flagged but a path cannot be read, 0 when all are safe. PATHs may be
    /// files or directories.
    Check {
        /// Files or directories to check.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Output: lines (`text`), one JSON document (`json`, docs/safety.md) or a SARIF 2.1.0
        /// log (`sarif`, docs/sarif.md). The exit status is the same for all three.
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
        /// The same as `--format json`.
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// SARIF only: report paths below DIR relative to `%SRCROOT%` (DIR), not as absolute
        /// `file://` URIs; give the repository checkout (`.`) for GitHub code scanning.
        #[arg(long, value_name = "DIR")]
        sarif_base: Option<PathBuf>,
        /// Walker threads (default: number of CPUs, at most 8).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Check an agent configuration file: print every problem, one per line naming its key;
    /// exit 0 when it is valid, 64 when it is invalid or cannot be read.
    Validate {
        /// The configuration file.
        #[arg(long, value_name = "FILE", default_value = config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Run as a daemon: enroll, collect on schedule, spool, stream to the collector
    /// (docs/agent-config.md). Stops on SIGINT or SIGTERM; SIGHUP reloads the configuration.
    Run {
        /// The configuration file.
        #[arg(long, value_name = "FILE", default_value = config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// One full collection, sent and acknowledged, then exit (0 on success).
        #[arg(long)]
        once: bool,
    },
    /// Check the release channel now and stage the release this agent should take (signed
    /// self-update, docs/rollout.md): verify the signed metadata, download, check the digest,
    /// extract and smoke-test. Exit 0 when a release was staged or there is nothing to take, 1
    /// when the metadata or the archive was refused, 2 on any other error.
    Update {
        /// The configuration file.
        #[arg(long, value_name = "FILE", default_value = config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Before every start of the service (its ExecStartPre, run with the packaged binary): when
    /// the agent switched to a new release that has not yet proved healthy, count this start,
    /// and after 3 starts or past `update.health_deadline` point the service's link back at the
    /// previous binary (docs/rollout.md, *Rollback*). Always exits 0 unless the state directory
    /// cannot be written (2): a guard must not keep the agent from starting.
    UpdateGuard {
        /// The configuration file (for its state_dir).
        #[arg(long, value_name = "FILE", default_value = config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Show the daemon's health from its status file: whether it runs, is enrolled, when it
    /// last inventoried and sent, the spool's level. Exit 0 when healthy, 1 when there is a
    /// problem (each is printed), 2 when there is no status to read.
    Status {
        /// The configuration file (for its state_dir).
        #[arg(long, value_name = "FILE", default_value = config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Print the status document as JSON, with a "problems" list.
        #[arg(long)]
        json: bool,
    },
}

/// How `check` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CheckFormat {
    /// One line per model, then errors and a summary.
    Text,
    /// The `check --json` document.
    Json,
    /// A SARIF 2.1.0 log.
    Sarif,
}

fn main() -> ExitCode {
    aiscout_agent::set_version(VERSION);
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run { .. }) {
        aiscout_agent::init_tracing(cli.log_json, "warn");
    }
    match run(cli.command, cli.log_json) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("aiscout-agent: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command, log_json: bool) -> anyhow::Result<ExitCode> {
    match command {
        Command::Scan {
            paths,
            json,
            format,
            state_dir,
            no_cache,
            only,
            exclude,
            threads,
            network_fs,
            all_packages,
            identify_servers,
            include_owned,
        } => {
            let opts = ScanOptions {
                roots: paths,
                state_dir: if no_cache { None } else { state_dir.or_else(scan::default_scan_state_dir) },
                only,
                excludes: exclude,
                threads: threads.unwrap_or_else(scan::default_threads),
                scan_network_fs: network_fs,
                hash_models: true,
                report_unjudged: false,
                all_packages,
                identify_servers,
                cpu_percent: None,
            };
            let format = if json { "json".to_owned() } else { format.unwrap_or_else(|| "table".to_owned()) };
            let progress = Arc::new(Progress::default());
            let bar = (format == "table").then(|| aiscout_agent::output::ProgressBar::start(Arc::clone(&progress)));
            let report = scan::run_scan(&opts, &progress)?;
            drop(bar);
            // Buffered: a pretty document is thousands of lines, and a locked stdout writes each
            // line with its own system call.
            let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            match format.as_str() {
                "json" => {
                    serde_json::to_writer_pretty(&mut out, &report)?;
                    writeln!(out)?;
                }
                "cyclonedx" => aiscout_agent::output::write_cyclonedx(&report, &mut out)?,
                _ => aiscout_agent::output::write_table(&report, include_owned, &mut out)?,
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { paths, format, json, sarif_base, threads } => {
            let format = if json { CheckFormat::Json } else { format };
            if sarif_base.is_some() && format != CheckFormat::Sarif {
                anyhow::bail!("--sarif-base applies to --format sarif only");
            }
            // Resolved before the scan, as the scanned paths are (canonical, absolute).
            let sarif = SarifOptions {
                base: sarif_base
                    .map(|b| {
                        std::fs::canonicalize(&b)
                            .map_err(|e| anyhow::anyhow!("cannot resolve --sarif-base {}: {e}", b.display()))
                    })
                    .transpose()?,
            };
            let opts = ScanOptions {
                roots: paths,
                state_dir: None,
                threads: threads.unwrap_or_else(scan::default_threads),
                hash_models: false,
                report_unjudged: true,
                ..ScanOptions::default()
            };
            let report = CheckReport::from_scan(scan::run_scan(&opts, &Progress::default())?);
            // Buffered: a pretty document is thousands of lines, and a locked stdout writes each
            // line with its own system call.
            let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            match format {
                CheckFormat::Text => report.write_text(&mut out)?,
                CheckFormat::Json => {
                    serde_json::to_writer_pretty(&mut out, &report)?;
                    writeln!(out)?;
                }
                CheckFormat::Sarif => aiscout_agent::check::sarif::write_sarif(&report, &sarif, &mut out)?,
            }
            out.flush()?;
            Ok(ExitCode::from(report.exit_code()))
        }
        Command::Validate { config: path } => match Config::load_validated(&path) {
            Ok(_) => {
                writeln!(std::io::stdout(), "{}: valid", path.display())?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(config::EXIT_INVALID_CONFIG))
            }
        },
        Command::Run { config: path, once } => {
            let config = match Config::load_validated(&path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::from(config::EXIT_INVALID_CONFIG));
                }
            };
            aiscout_agent::init_tracing(log_json || config.log.json, config.log.level.as_str());
            // Before any thread exists, so that every thread inherits it (throttle module docs).
            for e in aiscout_agent::throttle::lower_priority(config.throttle.nice, config.throttle.io_idle) {
                tracing::warn!(error = %e, "running at normal priority");
            }
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let ended = runtime.block_on(async move {
                let shutdown = async {
                    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
                    }
                };
                aiscout_agent::fleet::daemon::run(config, RunOptions { once, config_path: Some(path) }, shutdown).await
            })?;
            Ok(match ended {
                Ended::Stopped => ExitCode::SUCCESS,
                Ended::Restart => ExitCode::from(aiscout_agent::update::switch::EXIT_RESTART),
            })
        }
        Command::Status { config: path, json } => status(&path, json),
        Command::Update { config: path } => update(&path),
        Command::UpdateGuard { config: path } => update_guard(&path),
    }
}

/// `aiscout-agent update`.
fn update(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    use aiscout_agent::update::{self, CheckOutcome, UpdateError};
    let config = match Config::load_validated(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(config::EXIT_INVALID_CONFIG));
        }
    };
    let state = aiscout_agent::state_dir::StateDir::open(&config.state_dir)?;
    let Some(enrolled) = aiscout_agent::fleet::credentials::load(&state)? else {
        anyhow::bail!("not enrolled: run the agent once first (state directory {})", config.state_dir.display());
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut out = std::io::stdout().lock();
    match runtime.block_on(update::check_and_stage(&config, path, &state, &enrolled)) {
        Ok(CheckOutcome::NothingPublished) => writeln!(out, "channel {}: nothing published", config.update.channel)?,
        Ok(CheckOutcome::Stay { sequence }) => {
            writeln!(out, "channel {} sequence {sequence}: nothing to take now", config.update.channel)?;
        }
        Ok(CheckOutcome::Staged { version, binary }) => writeln!(out, "staged {version}: {}", binary.display())?,
        Ok(CheckOutcome::Paused { reason }) => writeln!(out, "channel {}: {reason}", config.update.channel)?,
        Err(e @ (UpdateError::Refused(_) | UpdateError::Archive { .. } | UpdateError::Smoke { .. })) => {
            eprintln!("aiscout-agent: refused: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(ExitCode::SUCCESS)
}

/// `aiscout-agent update-guard`.
fn update_guard(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    use aiscout_agent::update::switch::{self, Guarded};
    // The state directory only: a configuration the new release rejects must not stop the guard.
    let state_dir = match Config::state_dir_of(path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let state = aiscout_agent::state_dir::StateDir::open(&state_dir)?;
    let mut out = std::io::stdout().lock();
    match switch::guard(&state, aiscout_agent::now_ms())? {
        Guarded::Nothing => {}
        Guarded::Superseded { version } => {
            writeln!(out, "update-guard: {version} is no longer what the link names; forgotten")?
        }
        Guarded::Counted { version, starts } => writeln!(out, "update-guard: start {starts} of {version}")?,
        Guarded::RolledBack { version, reason } => {
            writeln!(out, "update-guard: rolled back {version}: {reason}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `aiscout-agent status`.
fn status(path: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    use aiscout_agent::fleet::status::AgentStatus;
    let state_dir = match Config::state_dir_of(path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let file = aiscout_agent::state_dir::StateDir::status_in(&state_dir);
    let status = match AgentStatus::read(&file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("aiscout-agent: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let alive = status.daemon_alive();
    let problems = status.problems(alive);
    let mut out = std::io::stdout().lock();
    if json {
        let mut doc = serde_json::to_value(&status)?;
        if let Some(map) = doc.as_object_mut() {
            map.insert("running".into(), alive.into());
            map.insert("problems".into(), problems.clone().into());
        }
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        aiscout_agent::output::write_status(&status, alive, &problems, &mut out)?;
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
