//! Model discovery: walk, pick candidates, identify by content, digest, attribute, group.
//!
//! Per file, in order:
//! 1. the walker hands over regular files only (by directory entry type);
//! 2. [`is_candidate`] decides from the name whether the content is worth opening (model
//!    extensions, defining files of directory models, shard indexes, extension-less blobs in
//!    content-addressed stores); other files are counted and left alone;
//! 3. `lstat` gives the [`FileStamp`]; the cache answers for unchanged content (not a model, or
//!    a model with its identification and digest) without opening the file;
//! 4. otherwise the file is opened safely, relative to its directory's descriptor
//!    ([`crate::walk::Entry::open`]: no symlink at any component), its first bytes read and the
//!    format registry consulted ([`crate::formats::identify`]);
//! 5. a model's digest comes from its content-addressed name (after the store's size check),
//!    or from hashing it; directory models get the tree digest of their files;
//! 6. after the walk, shards are grouped with their index and GGUF splits with each other, and
//!    each model's directory is read for Hugging Face remote code (`remote.rs`).
//!
//! Any failure is an entry in `errors` naming the path; the walk never stops for one file.

mod directory;
mod groups;
mod remote;
pub mod sources;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use crate::cache::{CacheEntry, VerdictCache};
use crate::detectors::markers::MarkerSink;
use crate::fileio::{read_head, DirHandle, FileStamp};
use crate::formats::{self, Detection, ModelFormat, ProbeInput, HEAD_LEN};
use crate::hash::{tree_digest, FileHasher};
use crate::listing::{CandidateRecord, ListingCache, Verdict};
use crate::report::{DigestSource, FileError, ModelEntry, UnjudgedFile};
use crate::safety::{self, Finding, SafetyReport, Verdict as Safety};
use crate::scan::progress::Progress;
use crate::throttle::CpuBudget;
use crate::walk::{walk, Entry, Known, Visitor, WalkError, WalkOptions};
use sources::{Logical, StoreIndex};

/// Extensions whose files are opened and identified by content.
pub const MODEL_EXTENSIONS: &[&str] = &[
    "gguf",
    "ggml",
    "ggjt",
    "bin",
    "safetensors",
    "onnx",
    "ort",
    "pt",
    "pth",
    "ckpt",
    "pkl",
    "pickle",
    "joblib",
    "jl",
    "dat",
    "data",
    "npy",
    "npz",
    "h5",
    "hdf5",
    "keras",
    "pb",
    "tflite",
    "lite",
    "mlmodel",
    "xml",
    "model",
    "mar",
    "dill",
    "sav",
    "zip",
    "7z",
    "tar",
    "tgz",
    "tbz",
    "tbz2",
    "txz",
    "nemo",
    "skops",
];

/// Extensions only pickles carry: such a file that no prober identifies is `unparseable` in
/// `check` (it should parse as a pickle and does not).
pub const PICKLE_ONLY_EXTENSIONS: &[&str] = &["pkl", "pickle", "joblib", "dill"];

/// Other extensions that name a model and little else: such a file that no prober identifies
/// is `unknown_format` in `check`. Extensions shared with common data (`xml`, `zip`, `dat`,
/// `model`, `hdf5`, …) are left out, so that a `check` of a project tree stays quiet about them.
pub const MODEL_ONLY_EXTENSIONS: &[&str] = &[
    "pt",
    "pth",
    "bin",
    "ckpt",
    "onnx",
    "ort",
    "gguf",
    "ggml",
    "ggjt",
    "safetensors",
    "h5",
    "keras",
    "pb",
    "tflite",
    "npy",
    "npz",
    "mlmodel",
    "mar",
    "nemo",
    "skops",
];

/// Compression suffixes opened when the stem names a pickle, joblib or tar file (`x.pkl.gz`,
/// `x.tar.gz`).
const COMPRESSED_SUFFIXES: &[&str] = &["z", "gz", "bz2", "xz", "lzma", "lz4"];

/// Largest shard index read.
const MAX_INDEX_BYTES: u64 = 16 * 1024 * 1024;

/// A model found, with where it sits logically (for grouping).
#[derive(Debug, Clone)]
pub struct Found {
    /// The public entry.
    pub entry: ModelEntry,
    /// Logical location.
    pub logical: Logical,
}

/// A shard index (`*.index.json` with a `weight_map`).
#[derive(Debug, Clone)]
pub struct IndexFile {
    /// Where the index is.
    pub path: PathBuf,
    /// Its logical location (shards are named relative to it).
    pub logical: Logical,
    /// Its SHA-256.
    pub sha256: String,
    /// Shard file names, distinct, sorted.
    pub shards: Vec<String>,
}

/// Everything the model scan produced.
#[derive(Debug, Default)]
pub struct ModelsOutcome {
    /// Models, sorted by path.
    pub models: Vec<ModelEntry>,
    /// Per-path errors.
    pub errors: Vec<FileError>,
    /// Cache keys met (for pruning).
    pub seen_keys: HashSet<[u8; 40]>,
    /// Files named like a model that could not be judged (only with
    /// [`ModelScan::reporting_unjudged`]), sorted by path.
    pub unjudged: Vec<UnjudgedFile>,
}

#[derive(Debug, Default)]
struct Collected {
    models: Vec<Found>,
    indexes: Vec<IndexFile>,
    errors: Vec<FileError>,
    seen_keys: HashSet<[u8; 40]>,
    unjudged: Vec<UnjudgedFile>,
}

/// Shared state of one model scan.
#[derive(Debug)]
pub struct ModelScan<'a> {
    /// Verdict and hash cache, when a state directory is in use.
    cache: Option<&'a VerdictCache>,
    /// Store indexes (Hugging Face, Ollama).
    stores: StoreIndex,
    /// Live counters.
    progress: &'a Progress,
    /// The CPU budget workers pace themselves to, if any ([`crate::throttle`]).
    budget: Option<&'a CpuBudget>,
    /// Results gathered by the walker threads.
    collected: Mutex<Collected>,
    /// Whether models are hashed (`check` needs verdicts, not digests).
    hashing: bool,
    /// Whether candidates are examined at all (not when only other sections walk the tree).
    examining: bool,
    /// Where marker files for the other detectors go, when they want them.
    markers: Option<&'a MarkerSink>,
    /// Whether files named like a model that cannot be judged are collected (`check`).
    reporting_unjudged: bool,
}

/// Files up to this size are read whole in one system call, and probed, judged and hashed from
/// memory: most of a small file's cost was the system calls of reading it four times.
const READ_WHOLE_MAX: usize = 64 * 1024;

/// Per-thread buffers.
#[derive(Debug)]
pub struct Worker {
    /// Hashing buffer.
    hasher: FileHasher,
    /// Header buffer, or the whole of a small file.
    head: Vec<u8>,
}

impl Default for Worker {
    fn default() -> Self {
        Self { hasher: FileHasher::default(), head: vec![0u8; READ_WHOLE_MAX.max(HEAD_LEN)] }
    }
}

/// What one examined file turned out to be.
enum Examined {
    NotModel,
    Model(Box<Found>),
    Index(IndexFile),
    Unjudged(Box<UnjudgedFile>),
}

fn lower_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default()
}

/// Whether the file at `path` is opened, from its name alone. See the module doc. Runs for
/// every file the walk meets, so it allocates nothing.
pub fn is_candidate(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Some(name) = path.file_name().map(OsStrExt::as_bytes) else { return false };
    let eq = |a: &[u8], b: &str| a.eq_ignore_ascii_case(b.as_bytes());
    let ends = |a: &[u8], b: &str| a.len() >= b.len() && eq(a.get(a.len() - b.len()..).unwrap_or_default(), b);
    if eq(name, formats::savedmodel::DEFINING_FILE)
        || eq(name, formats::mlflow::DEFINING_FILE)
        || ends(name, ".index.json")
    {
        return true;
    }
    match name.iter().rposition(|b| *b == b'.') {
        Some(dot) if dot > 0 => {
            let (stem, ext) = (name.get(..dot).unwrap_or_default(), name.get(dot + 1..).unwrap_or_default());
            MODEL_EXTENSIONS.iter().any(|e| eq(ext, e))
                || (COMPRESSED_SUFFIXES.iter().any(|e| eq(ext, e))
                    && [".pkl", ".pickle", ".joblib", ".tar"].iter().any(|s| ends(stem, s)))
        }
        // Extension-less (or dot-file) names: only blobs of content-addressed stores.
        _ => path.parent().and_then(Path::file_name).is_some_and(|p| p == "blobs"),
    }
}

fn rfc3339(mtime_ns: i128) -> Option<String> {
    let ns = u64::try_from(mtime_ns).ok()?;
    let t = UNIX_EPOCH.checked_add(Duration::from_nanos(ns))?;
    Some(humantime::format_rfc3339_seconds(t).to_string())
}

impl<'a> ModelScan<'a> {
    /// A scan that reports into `progress` and uses `cache` when given.
    pub fn new(cache: Option<&'a VerdictCache>, progress: &'a Progress) -> Self {
        Self {
            cache,
            stores: StoreIndex::default(),
            progress,
            budget: None,
            collected: Mutex::new(Collected::default()),
            hashing: true,
            examining: true,
            markers: None,
            reporting_unjudged: false,
        }
    }

    /// Collects files named like a model that no prober identifies (`unknown_format`, or
    /// `unparseable` for pickle-only names) and files whose prober found them broken
    /// (`unparseable`, instead of an error): for `check`, which must not call them safe.
    pub fn reporting_unjudged(mut self) -> Self {
        self.reporting_unjudged = true;
        self
    }

    /// Paces the walk and the hashing to `budget` ([`crate::throttle`]).
    pub fn with_budget(mut self, budget: &'a CpuBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Waits while the scan is ahead of its CPU budget.
    fn pace(&self) {
        if let Some(b) = self.budget {
            b.pace();
        }
    }

    /// Counts `n` bytes hashed and paces.
    fn hashed(&self, n: u64) {
        self.progress.bytes_hashed.fetch_add(n, Ordering::Relaxed);
        self.pace();
    }

    /// Notes marker files ([`crate::detectors::markers`]) into `sink` during the walk.
    pub fn with_markers(mut self, sink: &'a MarkerSink) -> Self {
        self.markers = Some(sink);
        self
    }

    /// Walks for markers only: candidates are not opened, and their listing records say
    /// "examine next time", so a later models scan loses nothing.
    pub fn markers_only(mut self) -> Self {
        self.examining = false;
        self
    }

    /// Leaves models unhashed (`sha256` empty, `digest_source` `skipped`) and uncached: for
    /// `check`, which reports verdicts only.
    pub fn without_hashing(mut self) -> Self {
        self.hashing = false;
        self.cache = None;
        self
    }

    fn collected(&self) -> std::sync::MutexGuard<'_, Collected> {
        self.collected.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, path: &Path, error: impl Into<String>) {
        let error = error.into();
        tracing::debug!(path = %path.display(), error = %error, "cannot scan file");
        self.collected().errors.push(FileError { path: path.display().to_string(), error });
    }

    /// Notes a stamp-cache key in use (a model or a directory model's member), so that a scan
    /// of the default roots can prune the rest.
    fn remember(&self, key: [u8; 40]) {
        if self.cache.is_some() {
            self.collected().seen_keys.insert(key);
        }
    }

    /// Runs the walk (refreshing `listings` when given) and returns the models found.
    pub fn run(self, opts: &WalkOptions, listings: Option<&ListingCache>) -> Result<ModelsOutcome, WalkError> {
        walk(opts, listings, &self)?;
        let mut c = self.collected.into_inner().unwrap_or_else(|p| p.into_inner());
        groups::assign(&mut c.models, &c.indexes);
        // Without a marker sink every model directory is looked at for config files.
        let configs = self.markers.map(MarkerSink::hf_config_dirs);
        remote::attach(&mut c.models, configs.as_ref());
        // The raw weights of an OpenVINO model (`model.bin`) are judged with the model.
        let members: HashSet<&str> = c
            .models
            .iter()
            .filter_map(|m| m.entry.group.as_ref())
            .flat_map(|g| g.members.iter().map(String::as_str))
            .collect();
        c.unjudged.retain(|u| !members.contains(u.path.as_str()));
        c.unjudged.sort_by(|a, b| a.path.cmp(&b.path));
        let mut models: Vec<ModelEntry> = c.models.into_iter().map(|f| f.entry).collect();
        models.sort_by(|a, b| a.path.cmp(&b.path));
        models.dedup_by(|a, b| a.path == b.path);
        c.errors.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(ModelsOutcome { models, errors: c.errors, seen_keys: c.seen_keys, unjudged: c.unjudged })
    }

    /// Examines one candidate. `lstat` is its stamp when the caller already took it (rescans);
    /// otherwise the file is opened straight away and stamped with `fstat`.
    fn examine(
        &self,
        entry: Entry<'_>,
        name: &str,
        lstat: Option<FileStamp>,
        worker: &mut Worker,
    ) -> Result<(Examined, FileStamp), String> {
        let io = |e: std::io::Error| e.to_string().to_lowercase();
        let path = entry.path();
        let (mut opened, stamp) = match lstat {
            Some(stamp) => (None, stamp),
            None => {
                let (file, stamp) = entry.open().map_err(io)?;
                (Some(file), stamp)
            }
        };
        let cached = self.cache.and_then(|c| c.get(&stamp));
        if let Some(CacheEntry { detection: Some(det), sha256: Some(digest), safety: Some(verdict) }) = &cached {
            if !directory::is_directory_model(path, det.format) {
                self.remember(stamp.key());
                self.progress.hash_cache_hits.fetch_add(1, Ordering::Relaxed);
                let placement = self.stores.place(path);
                let found =
                    model(path, &stamp, det.clone(), digest.clone(), DigestSource::Cache, placement, verdict.clone());
                return Ok((found, stamp));
            }
        }
        let (file, stamp) = match opened.take() {
            Some(file) => (file, stamp),
            None => {
                let (file, now) = entry.open().map_err(io)?;
                (file, now)
            }
        };
        // A small file is read whole; of a larger one, the head. No more than the file holds:
        // a short read would cost a second syscall.
        let size = usize::try_from(stamp.size).unwrap_or(usize::MAX);
        let want = if size <= READ_WHOLE_MAX { size } else { HEAD_LEN };
        let n = read_head(&file, worker.head.get_mut(..want).unwrap_or_default()).map_err(io)?;
        let read = worker.head.get(..n).unwrap_or_default();
        let whole: Option<&[u8]> = (size <= READ_WHOLE_MAX && n == size).then_some(read);
        let head = read.get(..n.min(HEAD_LEN)).unwrap_or_default();
        let memory: &[u8] = whole.unwrap_or_default();
        let source: &dyn formats::Source = if whole.is_some() { &memory } else { &file };
        let input = ProbeInput { source, size: stamp.size, head, name };

        if name.ends_with(".index.json")
            || (head.first() == Some(&b'{') && path.parent().and_then(Path::file_name).is_some_and(|p| p == "blobs"))
        {
            return Ok((self.index(path, &input).map(Examined::Index).unwrap_or(Examined::NotModel), stamp));
        }

        let detection = match formats::identify(&input) {
            Ok(Some(d)) => d,
            Ok(None) if self.reporting_unjudged => {
                let examined =
                    unidentified(path, input.extension(), input.head).map_or(Examined::NotModel, Examined::Unjudged);
                return Ok((examined, stamp));
            }
            Ok(None) => return Ok((Examined::NotModel, stamp)),
            Err(e) if self.reporting_unjudged => return Ok((Examined::Unjudged(unparseable(path, &e)), stamp)),
            Err(e) => return Err(e.to_string()),
        };
        let siblings = |name: &str| entry.dir().open_regular(Path::new(name));
        let verdict = safety::assess_with(&input, &detection, &siblings);
        if directory::is_directory_model(path, detection.format) {
            return self.directory(entry, detection, verdict, worker).map(|e| (e, stamp));
        }

        let placement = self.stores.place(path);
        let name_digest = placement.content_address.as_ref().and_then(|(digest, size)| match size {
            Some(s) if *s != stamp.size => {
                let state = format!("{s} {}", stamp.size);
                crate::log_once!(warn, "models.blob_size", &path.to_string_lossy(), &state, path = %path.display(), manifest_size = s, size = stamp.size, "blob size differs from its manifest, hashing it");
                None
            }
            _ => Some(digest.clone()),
        });
        let (digest, how) = match name_digest {
            Some(d) => {
                self.progress.digests_from_name.fetch_add(1, Ordering::Relaxed);
                (d, DigestSource::Name)
            }
            None if !self.hashing => (String::new(), DigestSource::Skipped),
            None => {
                let d = match whole {
                    Some(content) => {
                        let d = crate::hash::sha256_read(&file, &stamp, content);
                        self.hashed(stamp.size);
                        d
                    }
                    None => worker.hasher.sha256(&file, &stamp, &|n| self.hashed(n)),
                };
                (hex::encode(d.map_err(|e| e.to_string().to_lowercase())?), DigestSource::Hashed)
            }
        };
        self.remember(stamp.key());
        if let Some(c) = self.cache {
            let entry = CacheEntry {
                detection: Some(detection.clone()),
                sha256: Some(digest.clone()),
                safety: Some(verdict.clone()),
            };
            c.put(&stamp, &entry);
        }
        Ok((model(path, &stamp, detection, digest, how, placement, verdict), stamp))
    }
}

impl Visitor for ModelScan<'_> {
    type Worker = Worker;

    fn file(&self, entry: Entry<'_>, known: Option<Known<'_>>, worker: &mut Worker) -> Option<CandidateRecord> {
        let path = entry.path();
        self.progress.files_seen.fetch_add(1, Ordering::Relaxed);
        self.pace();
        let file_name = || path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let record = |stamp: &FileStamp, verdict| CandidateRecord {
            name: file_name(),
            ino: stamp.ino,
            size: stamp.size,
            mtime_ns: stamp.mtime_ns,
            verdict,
        };
        const NO_STAMP: FileStamp = FileStamp { dev: 0, ino: 0, size: 0, mtime_ns: 0 };
        if !is_candidate(path) {
            if self.markers.is_some_and(|m| m.offer(path)) {
                return Some(record(&NO_STAMP, Verdict::Marker));
            }
            return None;
        }
        if !self.examining {
            return Some(record(&NO_STAMP, Verdict::Error));
        }
        let name = lower_name(path);
        self.progress.candidates.fetch_add(1, Ordering::Relaxed);
        // A file known from the last listing comes with its stamp now, to see whether it
        // changed; a new one is opened directly (examine stamps it).
        let lstat = match known {
            None => None,
            Some(Known { record: k, now }) => match now {
                Ok(Some(stamp)) => {
                    if k.verdict == Verdict::NotModel && k.matches(&stamp) {
                        self.progress.verdict_cache_hits.fetch_add(1, Ordering::Relaxed);
                        return Some(k.clone());
                    }
                    Some(stamp)
                }
                Ok(None) => return None,
                Err(e) => {
                    self.error(path, e.to_string().to_lowercase());
                    return Some(record(&NO_STAMP, Verdict::Error));
                }
            },
        };
        let mut stamp = lstat.unwrap_or(NO_STAMP);
        let examined = self.examine(entry, &name, lstat, worker).map(|(e, s)| {
            stamp = s;
            e
        });
        let verdict = match examined {
            Ok(Examined::NotModel) => Verdict::NotModel,
            Ok(Examined::Model(found)) => {
                self.progress.models.fetch_add(1, Ordering::Relaxed);
                self.collected().models.push(*found);
                Verdict::Examine
            }
            Ok(Examined::Index(index)) => {
                self.collected().indexes.push(index);
                Verdict::Examine
            }
            Ok(Examined::Unjudged(file)) => {
                self.collected().unjudged.push(*file);
                Verdict::NotModel
            }
            Err(e) => {
                self.error(path, e);
                Verdict::Error
            }
        };
        Some(record(&stamp, verdict))
    }

    fn known_other_files(&self, n: u64) {
        self.progress.files_seen.fetch_add(n, Ordering::Relaxed);
    }

    fn unchanged_candidates(&self, n: u64) {
        for counter in [&self.progress.files_seen, &self.progress.candidates, &self.progress.verdict_cache_hits] {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn dir(&self, _path: &Path) {
        self.progress.dirs_seen.fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self, path: Option<&Path>, message: String) {
        ModelScan::error(self, path.unwrap_or(Path::new("")), message);
    }
}

/// The `check` entry of a file named like a model (by its extension `ext`) that no prober
/// identified; `None` for any other name, and for an HDF5 file without Keras' attributes (a
/// data file: Keras cannot load it as a model).
fn unidentified(path: &Path, ext: &str, head: &[u8]) -> Option<Box<UnjudgedFile>> {
    if head.starts_with(formats::keras_h5::HDF5_MAGIC) {
        return None;
    }
    let (kind, detail) = if PICKLE_ONLY_EXTENSIONS.contains(&ext) {
        ("unparseable", format!("named .{ext} but does not parse as a pickle; it cannot be judged"))
    } else if MODEL_ONLY_EXTENSIONS.contains(&ext) {
        ("unknown_format", format!("named .{ext} but no known model format matches its content; it cannot be judged"))
    } else {
        return None;
    };
    let format = if kind == "unparseable" { "pickle" } else { "unknown" };
    Some(Box::new(UnjudgedFile {
        path: path.display().to_string(),
        format: format.into(),
        finding: Finding::new(kind, &format!(".{ext}"), &detail, Safety::Suspicious, None),
    }))
}

/// The `check` entry of a file whose format's prober found it broken.
fn unparseable(path: &Path, e: &formats::FormatError) -> Box<UnjudgedFile> {
    Box::new(UnjudgedFile {
        path: path.display().to_string(),
        format: e.format().into(),
        finding: Finding::new(
            "unparseable",
            e.format(),
            &format!("{e}; it cannot be judged"),
            Safety::Suspicious,
            None,
        ),
    })
}

fn model(
    path: &Path,
    stamp: &FileStamp,
    detection: Detection,
    sha256: String,
    how: DigestSource,
    placement: sources::Placement,
    safety: SafetyReport,
) -> Examined {
    Examined::Model(Box::new(Found {
        entry: ModelEntry {
            path: path.display().to_string(),
            format: detection.format,
            size: stamp.size,
            sha256,
            digest_source: how,
            modified: rfc3339(stamp.mtime_ns),
            metadata: detection.metadata,
            source: placement.source,
            group: None,
            owner: None,
            safety,
        },
        logical: placement.logical,
    }))
}

/// The safety of one file inside a directory model, when it is a format that can carry code
/// (an MLflow model's pickle, a SavedModel's assets); `None` for anything else.
fn member_safety(root: &DirHandle, rel: &str, path: &Path, worker: &mut Worker) -> Option<SafetyReport> {
    let (file, stamp) = root.open_regular(Path::new(rel)).ok()?;
    let want = worker.head.len().min(usize::try_from(stamp.size).unwrap_or(usize::MAX));
    let n = read_head(&file, worker.head.get_mut(..want).unwrap_or_default()).ok()?;
    let name = lower_name(path);
    let input =
        ProbeInput { source: &file, size: stamp.size, head: worker.head.get(..n).unwrap_or_default(), name: &name };
    let detection = formats::identify(&input).ok()??;
    match detection.format {
        ModelFormat::Pickle
        | ModelFormat::Joblib
        | ModelFormat::Pytorch
        | ModelFormat::PytorchLegacy
        | ModelFormat::Numpy => {
            let siblings = |name: &str| root.open_regular(&Path::new(rel).with_file_name(name));
            Some(safety::assess_with(&input, &detection, &siblings))
        }
        _ => None,
    }
}

/// The safety of a Python module an MLflow model's loader imports (`code/*.py`), read at most
/// [`safety::pycode::MAX_SOURCE`] + 1 bytes; `None` when it cannot be read.
fn python_module_safety(root: &DirHandle, rel: &str) -> Option<SafetyReport> {
    let (file, stamp) = root.open_regular(Path::new(rel)).ok()?;
    let input = ProbeInput { source: &file, size: stamp.size, head: &[], name: rel };
    let want = stamp.size.min(safety::pycode::MAX_SOURCE as u64 + 1);
    let source = input.read_exact_at("python", 0, want).ok()?;
    Some(safety::assess_python_module(rel, &source, safety::MLFLOW_CODE))
}

impl<'a> ModelScan<'a> {
    fn index(&self, path: &Path, input: &ProbeInput<'_>) -> Option<IndexFile> {
        if input.size > MAX_INDEX_BYTES {
            return None;
        }
        let raw = input.read_exact_at("index", 0, input.size).ok()?;
        let json: serde_json::Value = serde_json::from_slice(&raw).ok()?;
        let map = json.get("weight_map")?.as_object()?;
        let mut shards: Vec<String> = map.values().filter_map(|v| v.as_str().map(str::to_string)).collect();
        shards.sort();
        shards.dedup();
        Some(IndexFile {
            path: path.to_path_buf(),
            logical: self.stores.place(path).logical,
            sha256: crate::hash::sha256_hex(&raw),
            shards,
        })
    }

    fn directory(
        &self,
        entry: Entry<'_>,
        detection: Detection,
        mut verdict: SafetyReport,
        worker: &mut Worker,
    ) -> Result<Examined, String> {
        let defining = entry.path();
        let Some(directory::Layout { root, handle, files }) = directory::layout(entry.dir(), defining, &detection)?
        else {
            return Ok(Examined::NotModel);
        };
        let mut digests = Vec::with_capacity(files.len());
        let mut size = 0u64;
        let mut newest = 0i128;
        for (rel, path) in &files {
            let digest =
                self.member_digest(&handle, rel, worker).map_err(|e| format!("member {}: {e}", path.display()))?;
            size += digest.1.size;
            newest = newest.max(digest.1.mtime_ns);
            digests.push((rel.clone(), digest.0));
            if path != defining {
                if let Some(member) = member_safety(&handle, rel, path, worker) {
                    verdict.merge_at(member, rel);
                }
                if detection.format == ModelFormat::Mlflow && rel.starts_with("code/") && rel.ends_with(".py") {
                    if let Some(member) = python_module_safety(&handle, rel) {
                        verdict.merge_at(member, rel);
                    }
                }
            }
        }
        let verdict = verdict.finish();
        let sha256 = tree_digest(&digests);
        let placement = self.stores.place(&root);
        Ok(Examined::Model(Box::new(Found {
            entry: ModelEntry {
                path: root.display().to_string(),
                format: detection.format,
                size,
                sha256: sha256.clone(),
                digest_source: DigestSource::Tree,
                modified: rfc3339(newest),
                metadata: detection.metadata,
                source: placement.source,
                group: Some(directory::group(
                    root.parent().filter(|_| detection.format == ModelFormat::Openvino).unwrap_or(&root),
                    &sha256,
                    &files,
                )),
                owner: None,
                safety: verdict,
            },
            logical: placement.logical,
        })))
    }

    /// SHA-256 of one member of a directory model (`rel` below `root`), through the cache. The
    /// member is opened (never by path, [`DirHandle::open_regular`]) but read only on a miss.
    fn member_digest(&self, root: &DirHandle, rel: &str, worker: &mut Worker) -> Result<(String, FileStamp), String> {
        let (file, stamp) = root.open_regular(Path::new(rel)).map_err(|e| e.to_string().to_lowercase())?;
        if !self.hashing {
            return Ok((String::new(), stamp));
        }
        self.remember(stamp.key());
        let cached = self.cache.and_then(|c| c.get(&stamp));
        if let Some(d) = cached.as_ref().and_then(|c| c.sha256.clone()) {
            return Ok((d, stamp));
        }
        let digest = hex::encode(
            worker.hasher.sha256(&file, &stamp, &|n| self.hashed(n)).map_err(|e| e.to_string().to_lowercase())?,
        );
        if let Some(c) = self.cache {
            c.put(&stamp, &CacheEntry { sha256: Some(digest.clone()), ..cached.unwrap_or_default() });
        }
        Ok((digest, stamp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_model_names_that_do_not_parse_are_unjudged() {
        let kind = |name: &str, head: &[u8]| {
            unidentified(Path::new(name), name.rsplit_once('.').map_or("", |(_, e)| e), head)
                .map(|u| (u.format, u.finding.kind, u.finding.severity))
        };
        let unknown = Some(("unknown".to_string(), "unknown_format".to_string(), Safety::Suspicious));
        let pickle = Some(("pickle".to_string(), "unparseable".to_string(), Safety::Suspicious));
        assert_eq!(kind("/m/w.pt", b"\x01\x02"), unknown);
        assert_eq!(kind("/m/w.safetensors", b"junk"), unknown);
        assert_eq!(kind("/m/w.pkl", b"junk"), pickle);
        assert_eq!(kind("/m/w.dill", b"junk"), pickle);
        // Names shared with ordinary data, and HDF5 data files, are not models to judge.
        assert_eq!(kind("/m/layout.xml", b"<x/>"), None);
        assert_eq!(kind("/m/archive.zip", b"PK"), None);
        assert_eq!(kind("/m/data.h5", b"\x89HDF\r\n\x1a\n\0\0"), None);
        assert_eq!(kind("/m/broken.h5", b"not hdf5"), unknown);
    }

    #[test]
    fn archives_are_candidates_and_other_compressed_files_are_not() {
        for name in
            ["a.zip", "a.tar", "a.tgz", "a.tar.gz", "A.TAR.BZ2", "a.tar.xz", "a.7z", "m.mar", "m.nemo", "m.skops"]
        {
            assert!(is_candidate(Path::new(name)), "{name}");
        }
        for name in ["a.gz", "notes.txt.gz", "a.xz", "a.tar.zst"] {
            assert!(!is_candidate(Path::new(name)), "{name}");
        }
    }
}
