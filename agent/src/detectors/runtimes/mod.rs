//! Runtimes: running inference servers and ML processes.
//!
//! One long-lived `sysinfo` process table (refreshed with only the command line, executable
//! and user, never threads) lists the processes; `/proc` (procfs) answers the rest. Per
//! process, in order:
//! 1. skip kernel threads and the agent itself;
//! 2. classify it as a known server from its executable and command line
//!    ([`signatures`], data in `agent/data/servers.toml`);
//! 3. read its memory maps and descriptors ([`procinfo`]): ML libraries mapped, model files open
//!    or mapped (a model candidate by name whose content a format prober recognises; its digest
//!    when this scan found the same file), socket inodes;
//! 4. keep it if it is a known server, maps an ML library, holds a model or uses GPU memory
//!    (NVML); otherwise move on (a process the agent may not read and whose command line names
//!    an interpreter is listed in `restricted_processes` instead: it could be ML work);
//! 5. for kept processes: listening sockets with their exposure ([`sockets`]), user, start
//!    time, container (cgroup), the ML-relevant environment and the command line, both redacted
//!    ([`crate::redact`]), the authentication setting ([`auth`]), findings, and, when enabled,
//!    the server's own answer on loopback ([`identify`]).
//!
//! Nothing here writes to a process or signals it; identification is the only network traffic
//! and is off by default.

mod auth;
mod identify;
mod procinfo;
pub mod signatures;
mod sockets;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use procfs::process::Process;
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, ThreadKind, UpdateKind, Users};

use crate::cache::{CacheEntry, VerdictCache};
use crate::detectors::models::is_candidate;
use crate::fileio::{open_regular, read_head, FileStamp};
use crate::formats::{self, ProbeInput, HEAD_LEN};
use crate::redact;
use crate::report::inventory::{OpenModel, RestrictedProcess, RuntimeEntry};
use crate::report::{FileError, ModelEntry};
use crate::throttle::CpuBudget;
use signatures::Signatures;

pub use auth::open_to_anyone;
pub use procinfo::container_from_cgroup;

/// What to collect.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Ask servers on loopback for their identity ([`identify`]).
    pub identify: bool,
}

/// What the runtime detector found.
#[derive(Debug, Default)]
pub struct RuntimesOutcome {
    /// Entries, sorted by pid.
    pub runtimes: Vec<RuntimeEntry>,
    /// Processes that could host ML work but could not be examined.
    pub restricted: Vec<RestrictedProcess>,
    /// Processes examined.
    pub processes: u64,
    /// Processes with parts the agent could not read.
    pub restricted_count: u64,
    /// Problems with the agent's own data.
    pub errors: Vec<FileError>,
}

/// Models known to this scan, by path (and, when needed, by resolved path).
#[derive(Debug, Default)]
pub struct ModelLookup<'a> {
    /// Entries by reported path.
    by_path: HashMap<&'a str, &'a ModelEntry>,
    /// Entries by canonical path, built on first miss.
    by_real_path: OnceLock<HashMap<String, &'a ModelEntry>>,
    /// Every entry, for the canonical index.
    all: &'a [ModelEntry],
    /// Where the digest of an open model this scan did not walk comes from.
    digests: Option<OpenModelDigests<'a>>,
}

/// The digest of an open model file that is not among the scan's models (a runtimes-only
/// refresh has none; a server may hold a file outside the roots): the hash cache, keyed by
/// the file's stamp, and on a miss a hash of the file, paced by the scan's CPU budget, that the
/// cache then keeps. So every refresh links a runtime to the digest of the model it serves.
#[derive(Debug)]
pub struct OpenModelDigests<'a> {
    /// The scan's hash cache.
    cache: &'a VerdictCache,
    /// The scan's CPU budget, when it has one.
    budget: Option<&'a CpuBudget>,
    /// One hashing buffer for the collection, made at the first miss.
    hasher: std::sync::Mutex<Option<crate::hash::FileHasher>>,
}

impl<'a> OpenModelDigests<'a> {
    /// Digests from `cache`, hashing misses paced by `budget`.
    pub fn new(cache: &'a VerdictCache, budget: Option<&'a CpuBudget>) -> Self {
        Self { cache, budget, hasher: std::sync::Mutex::new(None) }
    }

    /// The hex SHA-256 of the regular file `file` stamped `stamp`.
    fn digest(&self, file: &std::fs::File, stamp: &FileStamp) -> Option<String> {
        let cached = self.cache.get(stamp);
        if let Some(digest) = cached.as_ref().and_then(|c| c.sha256.clone()) {
            return Some(digest);
        }
        let pace = |_| {
            if let Some(b) = self.budget {
                b.pace();
            }
        };
        let mut hasher = self.hasher.lock().unwrap_or_else(|p| p.into_inner());
        let digest = hex::encode(hasher.get_or_insert_with(Default::default).sha256(file, stamp, &pace).ok()?);
        self.cache.put(stamp, &CacheEntry { sha256: Some(digest.clone()), ..cached.unwrap_or_default() });
        Some(digest)
    }
}

impl<'a> ModelLookup<'a> {
    /// Indexes `models`.
    pub fn new(models: &'a [ModelEntry]) -> Self {
        Self {
            by_path: models.iter().map(|m| (m.path.as_str(), m)).collect(),
            by_real_path: OnceLock::new(),
            all: models,
            digests: None,
        }
    }

    /// Resolves the digests of open models this scan did not walk through `digests`.
    pub fn with_digests(mut self, digests: OpenModelDigests<'a>) -> Self {
        self.digests = Some(digests);
        self
    }

    fn get(&self, path: &str) -> Option<&'a ModelEntry> {
        if let Some(m) = self.by_path.get(path) {
            return Some(m);
        }
        let real = self.by_real_path.get_or_init(|| {
            self.all
                .iter()
                .filter_map(|m| std::fs::canonicalize(&m.path).ok().map(|p| (p.display().to_string(), m)))
                .collect()
        });
        real.get(path).copied()
    }
}

/// Interpreters and runtimes that may host ML work: a process running one that the agent may
/// not read is listed as restricted.
const INTERPRETERS: &[&str] = &["python", "java", "node", "julia", "R", "Rscript", "ruby", "bun", "deno", "dotnet"];

/// Collects runtimes; keeps its process table between collections.
#[derive(Debug, Default)]
pub struct RuntimeCollector {
    /// The process table, created on first use and refreshed on each collection.
    system: Option<System>,
    /// User names by uid.
    users: Option<Users>,
}

fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn may_host_ml(cmd: &[String]) -> bool {
    cmd.first().map(|a| name_of(a)).is_some_and(|n| {
        INTERPRETERS
            .iter()
            .any(|i| n == *i || n.strip_prefix(i).is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.')))
    })
}

/// What is known of an open file that the scan did not walk: its model format, if it is a
/// model, and its digest when [`OpenModelDigests`] are at hand.
#[derive(Debug, Clone, Default)]
struct Probed {
    /// The model format, `None` when the content is not a model.
    format: Option<String>,
    /// Hex SHA-256.
    sha256: Option<String>,
}

/// Reads the first bytes of `path` (or of the same path inside the process's root): the model
/// format, if it is a model, and then its digest through `digests`.
fn probe_open_file(pid: u32, path: &str, digests: Option<&OpenModelDigests<'_>>) -> Probed {
    let opened = open_regular(Path::new(path))
        .or_else(|_| open_regular(&Path::new(&format!("/proc/{pid}/root")).join(path.trim_start_matches('/'))));
    let Ok((file, stamp)) = opened else { return Probed::default() };
    let mut head = vec![0u8; HEAD_LEN];
    let Ok(n) = read_head(&file, &mut head) else { return Probed::default() };
    let name = name_of(path).to_lowercase();
    let input = ProbeInput { source: &file, size: stamp.size, head: head.get(..n).unwrap_or_default(), name: &name };
    let Ok(Some(detection)) = formats::identify(&input) else { return Probed::default() };
    let format = serde_json::to_value(detection.format).ok().and_then(|v| v.as_str().map(str::to_string));
    let sha256 = digests.and_then(|d| d.digest(&file, &stamp));
    Probed { format, sha256 }
}

impl RuntimeCollector {
    /// A collector; the process table is created on the first collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// One collection. `gpu_memory` is NVML's per-process GPU memory.
    pub fn collect(
        &mut self,
        opts: &RuntimeOptions,
        models: &ModelLookup<'_>,
        gpu_memory: &HashMap<u32, u64>,
    ) -> RuntimesOutcome {
        let mut outcome = RuntimesOutcome::default();
        let sigs = match Signatures::embedded() {
            Ok(s) => s,
            Err(e) => {
                outcome.errors.push(FileError { path: "agent/data/servers.toml".into(), error: e.to_string() });
                return outcome;
            }
        };
        if self.system.is_none() {
            match (System::new(), Users::new()) {
                (Ok(system), Ok(users)) => {
                    self.system = Some(system);
                    self.users = Some(users);
                }
                (Err(e), _) | (_, Err(e)) => {
                    let error = format!("cannot read the process table: {}", e.to_string().to_lowercase());
                    outcome.errors.push(FileError { path: "/proc".into(), error });
                    return outcome;
                }
            }
        }
        let (Some(system), Some(users)) = (self.system.as_mut(), self.users.as_mut()) else { return outcome };
        system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .without_tasks()
                .with_cmd(UpdateKind::OnlyIfNotSet)
                .with_exe(UpdateKind::OnlyIfNotSet)
                .with_user(UpdateKind::OnlyIfNotSet),
        );
        users.refresh();
        let own_pid = std::process::id();
        let mut tables = sockets::SocketTables::default();
        let mut formats_seen: HashMap<String, Probed> = HashMap::new();
        let mut pids: Vec<_> = system.processes().keys().copied().collect();
        pids.sort();
        for pid in pids {
            let Some(p) = system.process(pid) else { continue };
            let pid_u32 = pid.as_u32();
            if pid_u32 == own_pid || p.thread_kind() == Some(ThreadKind::Kernel) {
                continue;
            }
            let cmd: Vec<String> = p.cmd().iter().map(|a| a.to_string_lossy().into_owned()).collect();
            if cmd.is_empty() && p.exe().is_none() {
                continue; // a kernel thread or a zombie
            }
            outcome.processes += 1;
            let exe = p.exe().map(|e| e.display().to_string());
            let server = sigs.classify(exe.as_deref(), &cmd);
            let Ok(proc_) = Process::new(pid_u32 as i32) else { continue };
            let files = procinfo::files(&proc_);
            if files.gone {
                continue;
            }
            let mut unreadable: Vec<String> = Vec::new();
            if exe.is_none() {
                unreadable.push("exe".into());
            }
            unreadable.extend(files.unreadable.iter().map(|s| (*s).to_string()));
            let ml_libraries = sigs.libraries_in(files.mapped.iter().map(String::as_str));
            let open_models = open_models(pid_u32, &files, models, &mut formats_seen);
            let gpu_memory_bytes = gpu_memory.get(&pid_u32).copied();
            let user = p.user_id().map(|uid| {
                users.get_user_by_id(uid).map(|u| u.name().to_string()).unwrap_or_else(|| (**uid).to_string())
            });
            if !unreadable.is_empty() {
                outcome.restricted_count += 1;
            }
            let keep =
                server.is_some() || !ml_libraries.is_empty() || !open_models.is_empty() || gpu_memory_bytes.is_some();
            if !keep {
                if files.unreadable.contains(&"maps") && may_host_ml(&cmd) {
                    outcome.restricted.push(RestrictedProcess {
                        pid: pid_u32,
                        user,
                        cmdline: redact::cmdline(&cmd),
                        unreadable,
                    });
                }
                continue;
            }
            let listening = sockets::listeners(&files.sockets, tables.table(&proc_, procinfo::netns(proc_.pid)));
            let env = match procinfo::environ(&proc_) {
                Ok(env) => env,
                Err(part) => {
                    unreadable.push(part.to_string());
                    BTreeMap::new()
                }
            };
            let auth = server.map(|s| auth::setting(s, &cmd, &env));
            let environment = env
                .iter()
                .filter(|(k, _)| sigs.reports_variable(k) || server.is_some_and(|s| s.auth_env.contains(k)))
                .map(|(k, v)| (k.clone(), redact::value(k, &v.to_string_lossy())))
                .collect();
            let kind = server.map(|s| s.kind.clone()).unwrap_or_else(|| "ml-process".to_string());
            let findings = auth::findings(&kind, auth.as_ref(), &listening);
            let identity = match server {
                Some(s) if opts.identify => identify::identify_process(proc_.pid, &listening, &s.identify),
                _ => None,
            };
            outcome.runtimes.push(RuntimeEntry {
                pid: pid_u32,
                ppid: p.parent().map(|pp| pp.as_u32()),
                kind,
                exe,
                cmdline: redact::cmdline(&cmd),
                uid: p.user_id().map(|u| **u),
                user,
                started_at: Some(
                    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(p.start_time())).to_string(),
                ),
                ml_libraries,
                open_models,
                listening,
                gpu_memory_bytes,
                container: procinfo::container(proc_.pid),
                auth,
                environment,
                identity,
                unreadable,
                findings,
            });
        }
        outcome
    }
}

/// The model files among what a process has open or mapped.
fn open_models(
    pid: u32,
    files: &procinfo::ProcessFiles,
    models: &ModelLookup<'_>,
    formats_seen: &mut HashMap<String, Probed>,
) -> Vec<OpenModel> {
    let mut via: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (paths, how) in [(&files.open, "fd"), (&files.mapped, "mmap")] {
        for p in paths.iter().filter(|p| is_candidate(Path::new(p.as_str()))) {
            via.entry(p.as_str()).or_default().push(how.to_string());
        }
    }
    let mut out = Vec::new();
    for (path, via) in via {
        let known = models.get(path).filter(|m| !m.sha256.is_empty());
        let (sha256, format) = match known {
            Some(m) => (
                Some(m.sha256.clone()),
                serde_json::to_value(m.format).ok().and_then(|v| v.as_str().map(str::to_string)),
            ),
            None => {
                let probed = formats_seen
                    .entry(path.to_string())
                    .or_insert_with(|| probe_open_file(pid, path, models.digests.as_ref()))
                    .clone();
                if probed.format.is_none() {
                    continue;
                }
                (probed.sha256, probed.format)
            }
        };
        out.push(OpenModel { path: path.to_string(), sha256, format, via });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreters_may_host_ml() {
        let c = |s: &str| vec![s.to_string()];
        assert!(may_host_ml(&c("/usr/bin/python3.11")));
        assert!(may_host_ml(&c("python")));
        assert!(may_host_ml(&c("/opt/java/bin/java")));
        assert!(!may_host_ml(&c("/usr/sbin/sshd")));
        assert!(!may_host_ml(&c("pythonista-helper")));
    }

    #[test]
    fn a_process_holding_an_onnx_file_is_an_ml_process() {
        // This test process opens a real ONNX model and keeps it open while collecting.
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/tiny.onnx");
        let _held = std::fs::File::open(&model).unwrap();
        let mut c = RuntimeCollector::new();
        let out = c.collect(&RuntimeOptions::default(), &ModelLookup::new(&[]), &HashMap::new());
        assert!(out.processes > 0);
        // The agent skips its own pid, so the test looks at its own process through the helper.
        let files = procinfo::files(&Process::myself().unwrap());
        let mut seen = HashMap::new();
        let found = open_models(std::process::id(), &files, &ModelLookup::new(&[]), &mut seen);
        assert!(found.iter().any(|m| m.format.as_deref() == Some("onnx") && m.via == vec!["fd"]), "{found:?}");
    }
}
