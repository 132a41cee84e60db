//! Archives holding models: zip, tar (plain, gzip, bzip2 or xz compressed), 7z and single
//! gzip/bzip2/xz streams, nested up to a bound, told apart by content, never by name.
//!
//! An archive is a model entry (format `archive`) when something inside identifies as a model,
//! when it is a bundle that carries code by design (TorchServe `.mar`, NeMo `.nemo`, skops,
//! an MLflow model: [`BUNDLE_MARKERS`]), or when a bound stopped the walk before it could tell.
//! Any other archive (source tarballs, zipped documents) is not a model. A zip that is itself a
//! model format (PyTorch, Keras v3, `.npz`) is identified by [`super::zip_models`] first and is
//! never walked as an archive, at the top or inside another archive.
//!
//! The walk, depth first:
//! 1. the container is named by its first bytes ([`container_of`]); a zip with data before its
//!    first header is found by its end-of-central-directory record;
//! 2. a zip is read through **both** of its views: the central directory (what `zipfile` and
//!    PyTorch read, offsets shifted past leading data as `zipfile` shifts them) and the local
//!    headers one after another (what streaming extractors read); a member only the local
//!    headers show is reported as [`Event::Hidden`] and walked, one the local header names
//!    differently as [`Event::Renamed`]. Encryption flags and CRCs are
//!    ignored and duplicate names are each read, as loaders ignore and read them;
//! 3. a tar is read with the `tar` crate from a stream (through the decompressor when it is
//!    compressed), never seeking, never written to disk;
//! 4. every file member is read (at most [`Bounds::member`] bytes), identified with
//!    [`super::identify_member`]; a member that is no model but a container is walked in turn;
//! 5. a member's path is the containers from the outside in, joined by [`SEPARATOR`]:
//!    `inner.tar.gz!model/weights.pkl` (the outermost archive is the model entry's own path).
//!    A compressed single stream adds no segment: `weights.pkl.gz` holds `weights.pkl.gz`.
//!
//! Bounds ([`BOUNDS`]): nesting depth, members and bytes read or decompressed in all levels
//! together, bytes per member. Reaching one is an [`Event::Bound`], never an error: the walk
//! reports what it saw. The `tar` crate reads GNU long names and PAX records whole; they are
//! read through the same byte budget, so they cost at most that.
//!
//! # One walk for identification and assessment
//! Identifying an archive ([`probe`]) needs the whole walk (an archive of ordinary files is told
//! from a model archive only at its end), and so does its safety assessment. The probe records
//! the walk ([`WalkRecord`]: every event in order, owned) and hands it over in the
//! [`Detection`] ([`WalkHandoff`]); the assessment replays it instead of walking again. A
//! record keeps the bytes of the model members (the assessment judges them) and of the small
//! texts bundle judges read ([`Event::Other`]'s `text`), at most [`Bounds::member`] bytes in
//! all: a walk that would keep more is not recorded, and the assessment walks the archive
//! itself. A record so costs at most one member bound of memory more than a walk holds
//! anyway (the member being read), and saves a second pass over up to [`Bounds::total`] bytes
//! read and decompressed.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::io::Read;

use super::compress::SourceReader;
use super::zip::{ZipArchive, ZipMember, LOCAL_MAGIC};
use super::{identify_member, sevenz, Detection, FormatError, ModelFormat, ModelMetadata, ProbeInput, HEAD_LEN};

/// Separates the containers in a member path.
pub const SEPARATOR: char = '!';

/// Archives that carry code by design, told by one member at the archive's top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bundle {
    /// TorchServe model archive (`.mar`): `MAR-INF/MANIFEST.json` names a handler and a model file.
    TorchServe,
    /// NeMo checkpoint (`.nemo`): `model_config.yaml` whose `_target_` class paths are imported.
    Nemo,
    /// skops file: `schema.json` lists the types that loading instantiates.
    Skops,
}

impl Bundle {
    /// The name used in metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TorchServe => "torchserve",
            Self::Nemo => "nemo",
            Self::Skops => "skops",
        }
    }
}

/// The member's path inside its innermost container, without a leading `./`.
pub fn inner_path(path: &str) -> &str {
    let inner = path.rsplit(SEPARATOR).next().unwrap_or_default();
    inner.strip_prefix("./").unwrap_or(inner)
}

/// The bundle a member at `path` holding `data` marks, if any.
pub fn bundle_marker(path: &str, data: &[u8]) -> Option<Bundle> {
    let inner = inner_path(path);
    if inner.eq_ignore_ascii_case("MAR-INF/MANIFEST.json") {
        Some(Bundle::TorchServe)
    } else if inner == "model_config.yaml" {
        Some(Bundle::Nemo)
    } else if inner == "schema.json" && memchr::memmem::find(data, b"\"__class__\"").is_some() {
        Some(Bundle::Skops)
    } else {
        None
    }
}

/// Largest member kept as a text for the bundle judges (manifests, configs, schemas, Python).
pub const MAX_TEXT: usize = 1024 * 1024;
/// Most text bytes kept in one walk.
pub const MAX_TEXTS_TOTAL: usize = 16 * 1024 * 1024;

/// Whether the bundle judges may read the member at `path`: Python modules, JSON and YAML
/// configs, MLflow's `MLmodel`.
pub fn is_bundle_text(path: &str) -> bool {
    let inner = inner_path(path);
    inner.ends_with(".py") || inner.ends_with(".json") || inner.ends_with(".yaml") || inner.ends_with("MLmodel")
}

/// Limits of one walk, all levels together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Most containers nested, the archive itself included.
    pub depth: usize,
    /// Most members looked at.
    pub members: usize,
    /// Most bytes read or decompressed.
    pub total: u64,
    /// Most bytes read from one member.
    pub member: usize,
}

/// The bounds of a scan.
pub const BOUNDS: Bounds =
    Bounds { depth: 4, members: 10_000, total: 256 * 1024 * 1024, member: crate::safety::MAX_DECOMPRESSED };

/// A container kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// PKZIP.
    Zip,
    /// POSIX/GNU tar.
    Tar,
    /// A gzip stream (a `.tar.gz` or one compressed file).
    Gzip,
    /// A bzip2 stream.
    Bzip2,
    /// An xz stream.
    Xz,
    /// 7-Zip.
    SevenZ,
}

impl Container {
    /// The name used in metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zip => "zip",
            Self::Tar => "tar",
            Self::Gzip => "gzip",
            Self::Bzip2 => "bzip2",
            Self::Xz => "xz",
            Self::SevenZ => "7z",
        }
    }
}

/// Whether `block` is a tar header: `ustar` magic, or a valid header checksum (v7 tar).
fn is_tar_header(block: &[u8]) -> bool {
    let Some(header) = block.get(..512) else { return false };
    if header.get(257..262) == Some(b"ustar".as_slice()) {
        return true;
    }
    if header.first().is_none_or(|b| *b == 0) {
        return false;
    }
    let stored = header.get(148..156).unwrap_or_default();
    let digits: String = stored.iter().filter(|b| (b'0'..=b'7').contains(*b)).map(|b| char::from(*b)).collect();
    let Ok(stored) = u32::from_str_radix(&digits, 8) else { return false };
    let sum: u32 =
        header.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { u32::from(*b) }).sum();
    sum == stored
}

/// The container `input` is, from its first bytes (a zip also from its end record).
pub fn container_of(input: &ProbeInput<'_>) -> Option<Container> {
    let head = input.head;
    if head.starts_with(LOCAL_MAGIC) {
        Some(Container::Zip)
    } else if head.starts_with(sevenz::MAGIC) {
        Some(Container::SevenZ)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Some(Container::Gzip)
    } else if matches!(head, [b'B', b'Z', b'h', b'1'..=b'9', ..]) {
        Some(Container::Bzip2)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some(Container::Xz)
    } else if is_tar_header(head) {
        Some(Container::Tar)
    } else if ZipArchive::has_eocd(input) {
        Some(Container::Zip)
    } else {
        None
    }
}

/// What the walk meets.
#[derive(Debug)]
pub enum Event<'a> {
    /// A member that identifies as a model format.
    Model {
        /// Its path ([`SEPARATOR`]-joined).
        path: &'a str,
        /// Its bytes (at most [`Bounds::member`]).
        data: &'a [u8],
        /// What it is.
        detection: Box<Detection>,
    },
    /// Any other file member that is not a container.
    Other {
        /// Its path.
        path: &'a str,
        /// The bundle it marks ([`bundle_marker`]).
        bundle: Option<Bundle>,
        /// Its bytes when it is a text bundle judges read ([`is_bundle_text`]) of at most
        /// [`MAX_TEXT`] bytes, while the walk has kept less than [`MAX_TEXTS_TOTAL`].
        text: Option<&'a [u8]>,
    },
    /// A bound was reached at `path`; `what` says which.
    Bound {
        /// Where.
        path: &'a str,
        /// Which bound, with its value.
        what: String,
    },
    /// A member or container that cannot be read; the rest is still walked.
    Damaged {
        /// Where.
        path: &'a str,
        /// Why.
        error: String,
    },
    /// A zip member the local headers show but the central directory does not list.
    Hidden {
        /// Its path.
        path: &'a str,
    },
    /// A zip member whose local header names it differently from the central directory:
    /// extractors that read local headers see another file than `zipfile` does.
    Renamed {
        /// Its path (the central directory's name).
        path: &'a str,
        /// The name in its local header.
        local_name: &'a str,
    },
}

/// State of one walk. Counters are cells: the tar reader counts the bytes it pulls while the
/// walk recurses into the member it just read.
struct Walker<'v> {
    /// The bounds.
    bounds: Bounds,
    /// Members looked at so far.
    members: Cell<usize>,
    /// Bytes read or decompressed so far.
    total: Cell<u64>,
    /// The visitor asked to stop, or the member bound was reached.
    stopped: Cell<bool>,
    /// Text bytes handed out in [`Event::Other`] so far.
    texts: Cell<usize>,
    /// Receives the events; returns `false` to stop.
    visit: std::cell::RefCell<&'v mut dyn FnMut(Event<'_>) -> bool>,
}

/// A reader that stops at the walk's byte budget, counting what it passes on.
struct Budgeted<'w, R> {
    /// The stream.
    inner: R,
    /// The walk's byte counter.
    total: &'w Cell<u64>,
    /// The budget.
    limit: u64,
    /// The budget ran out before the stream did.
    hit: bool,
}

impl<R: Read> Read for Budgeted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.limit.saturating_sub(self.total.get());
        if left == 0 {
            self.hit = !buf.is_empty();
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        self.total.set(self.total.get() + n as u64);
        Ok(n)
    }
}

/// `prefix!name`, or `name` at the top.
fn join(prefix: Option<&str>, name: &str) -> String {
    match prefix {
        Some(p) => format!("{p}{SEPARATOR}{name}"),
        None => name.to_string(),
    }
}

/// The last path component, lowercase (what probers see as the name).
fn leaf(name: &str) -> String {
    name.rsplit(['/', '\\']).next().unwrap_or_default().to_lowercase()
}

/// A decompressing reader for a compressed container.
fn decoder<'r>(kind: Container, inner: impl Read + 'r) -> Option<Box<dyn Read + 'r>> {
    match kind {
        Container::Gzip => Some(Box::new(flate2::read::MultiGzDecoder::new(inner))),
        Container::Bzip2 => Some(Box::new(bzip2::read::MultiBzDecoder::new(inner))),
        // 64 MiB of dictionary at most: xz -9 uses 64 MiB.
        Container::Xz => Some(Box::new(lzma_rust2::XzReader::new_mem_limit(inner, true, 64 * 1024))),
        Container::Zip | Container::Tar | Container::SevenZ => None,
    }
}

impl Walker<'_> {
    fn emit(&self, event: Event<'_>) {
        if self.stopped.get() {
            return;
        }
        let go_on = (self.visit.borrow_mut())(event);
        if !go_on {
            self.stopped.set(true);
        }
    }

    /// Bytes left in the budget.
    fn left(&self) -> u64 {
        self.bounds.total.saturating_sub(self.total.get())
    }

    /// The most bytes the next member may keep (readers ask for one more, to see it is longer).
    fn member_cap(&self) -> usize {
        self.bounds.member.min(usize::try_from(self.left()).unwrap_or(usize::MAX))
    }

    fn budget_hit(&self, path: &str) {
        let what = format!("archive expands past {} bytes in all; only that much was analysed", self.bounds.total);
        self.emit(Event::Bound { path, what });
    }

    /// Walks the container `input` of kind `kind` found at `path` (`None`: the file itself),
    /// `depth` containers deep.
    fn container(&self, input: &ProbeInput<'_>, kind: Container, path: Option<&str>, depth: usize) {
        if depth > self.bounds.depth {
            let what = format!("archives nested more than {} deep; the innermost was not opened", self.bounds.depth);
            return self.emit(Event::Bound { path: path.unwrap_or_default(), what });
        }
        match kind {
            Container::Zip => self.zip(input, path, depth),
            Container::SevenZ => self.sevenz(input, path, depth),
            Container::Tar => self.tar(SourceReader { src: input.source, pos: 0 }, path, depth),
            Container::Gzip | Container::Bzip2 | Container::Xz => self.compressed(input, kind, path, depth),
        }
    }

    /// A compressed stream: a tar inside is walked as one; anything else is one member with
    /// the same path, named without the compression suffix.
    fn compressed(&self, input: &ProbeInput<'_>, kind: Container, path: Option<&str>, depth: usize) {
        let open = || decoder(kind, SourceReader { src: input.source, pos: 0 });
        let mut peek = Vec::new();
        if let Some(mut d) = open() {
            // A short or broken stream leaves what it gave; the tar test needs 512 bytes.
            let _ = d.by_ref().take(512).read_to_end(&mut peek);
        }
        if is_tar_header(&peek) {
            if let Some(d) = open() {
                self.tar(d, path, depth);
            }
            return;
        }
        let name = input.name.rsplit_once('.').map_or(input.name, |(stem, _)| stem);
        let cap = self.member_cap();
        let mut data = Vec::new();
        let Some(d) = open() else { return };
        let mut counted = Budgeted { inner: d, total: &self.total, limit: self.bounds.total, hit: false };
        let read = counted.by_ref().take(cap as u64 + 1).read_to_end(&mut data);
        let here = path.unwrap_or(input.name);
        if let Err(e) = read {
            if data.is_empty() {
                return self.emit(Event::Damaged { path: here, error: format!("{}: {e}", kind.as_str()) });
            }
        }
        let cut = data.len() > cap || counted.hit;
        data.truncate(cap);
        self.member(here, name, &data, cut, depth);
    }

    /// Both views of a zip: the central directory, then local headers it does not list.
    fn zip(&self, input: &ProbeInput<'_>, path: Option<&str>, depth: usize) {
        let central = match ZipArchive::open_anywhere(input) {
            Ok(Some(z)) => z,
            Ok(None) => ZipArchive { members: Vec::new() },
            Err(e) => {
                self.emit(Event::Damaged { path: path.unwrap_or(input.name), error: e.to_string() });
                ZipArchive { members: Vec::new() }
            }
        };
        let start = match input.head.starts_with(LOCAL_MAGIC) {
            true => Some(0),
            false => central.members.iter().map(|m| m.local_offset).min(),
        };
        let (local, inflated) =
            start.map(|s| ZipArchive::local_members(input, s, self.bounds.members, self.left())).unwrap_or_default();
        // Finding where streamed members end is decompression too: it spends the same budget.
        self.total.set(self.total.get() + inflated);
        let local_names: HashMap<u64, &str> = local.iter().map(|l| (l.local_offset, l.name.as_str())).collect();
        let central_offsets: HashSet<u64> = central.members.iter().map(|c| c.local_offset).collect();
        for m in &central.members {
            if let Some(local_name) = local_names.get(&m.local_offset).filter(|n| **n != m.name) {
                let here = join(path, &m.name);
                self.emit(Event::Renamed { path: &here, local_name });
            }
            self.zip_member(input, &central, m, path, depth);
            if self.stopped.get() {
                return;
            }
        }
        for m in local.iter().filter(|l| !central_offsets.contains(&l.local_offset)) {
            let here = join(path, &m.name);
            self.emit(Event::Hidden { path: &here });
            self.zip_member(input, &central, m, path, depth);
            if self.stopped.get() {
                return;
            }
        }
    }

    fn zip_member(&self, input: &ProbeInput<'_>, zip: &ZipArchive, m: &ZipMember, path: Option<&str>, depth: usize) {
        if m.name.ends_with('/') {
            return;
        }
        let here = join(path, &m.name);
        let cap = self.member_cap();
        if cap == 0 {
            self.budget_hit(&here);
            self.stopped.set(true);
            return;
        }
        match zip.read(input, m, cap + 1) {
            Ok(mut data) => {
                self.total.set(self.total.get() + data.len() as u64);
                let cut = data.len() > cap;
                data.truncate(cap);
                self.member(&here, &leaf(&m.name), &data, cut, depth);
            }
            Err(e) => self.emit(Event::Damaged { path: &here, error: e.to_string() }),
        }
    }

    fn sevenz(&self, input: &ProbeInput<'_>, path: Option<&str>, depth: usize) {
        let budget = usize::try_from(self.left()).unwrap_or(usize::MAX);
        let walked = sevenz::members(input, budget, |m| {
            self.total.set(self.total.get() + m.data.len() as u64);
            let here = join(path, &m.name);
            self.member(&here, &leaf(&m.name), &m.data, m.cut, depth);
            !self.stopped.get()
        });
        if let Err(error) = walked {
            self.emit(Event::Damaged { path: path.unwrap_or(input.name), error: format!("7z: {error}") });
        }
        if self.left() == 0 {
            self.budget_hit(path.unwrap_or(input.name));
        }
    }

    fn tar(&self, reader: impl Read, path: Option<&str>, depth: usize) {
        let here = path.unwrap_or_default();
        let mut counted = Budgeted { inner: reader, total: &self.total, limit: self.bounds.total, hit: false };
        let mut archive = tar::Archive::new(&mut counted);
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(e) => return self.emit(Event::Damaged { path: here, error: format!("tar: {e}") }),
        };
        for entry in entries {
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    self.emit(Event::Damaged { path: here, error: format!("tar: {e}") });
                    break;
                }
            };
            let kind = entry.header().entry_type();
            if !(kind.is_file() || kind.is_contiguous()) {
                continue;
            }
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let member = join(path, &name);
            let cap = self.member_cap();
            let mut data = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(cap).min(cap));
            if let Err(e) = entry.by_ref().take(cap as u64 + 1).read_to_end(&mut data) {
                self.emit(Event::Damaged { path: &member, error: format!("tar: {e}") });
                break;
            }
            let cut = data.len() > cap;
            data.truncate(cap);
            self.member(&member, &leaf(&name), &data, cut, depth);
            if self.stopped.get() {
                break;
            }
        }
        if counted.hit {
            self.budget_hit(here);
        }
    }

    /// One file member: a model, a container to walk, or anything else.
    fn member(&self, path: &str, name: &str, data: &[u8], cut: bool, depth: usize) {
        if self.stopped.get() {
            return;
        }
        self.members.set(self.members.get() + 1);
        if self.members.get() > self.bounds.members {
            let what = format!("archive holds more than {} members; the rest were not analysed", self.bounds.members);
            self.emit(Event::Bound { path, what });
            self.stopped.set(true);
            return;
        }
        if cut {
            let what = format!("member larger than {} bytes; only that much was analysed", data.len());
            self.emit(Event::Bound { path, what });
        }
        let head = data.get(..data.len().min(HEAD_LEN)).unwrap_or_default();
        let input = ProbeInput { source: &data, size: data.len() as u64, head, name };
        match identify_member(&input) {
            Ok(Some(detection)) => return self.emit(Event::Model { path, data, detection: Box::new(detection) }),
            Ok(None) => {}
            Err(e) if container_of(&input).is_none() => {
                return self.emit(Event::Damaged { path, error: e.to_string() });
            }
            Err(_) => {}
        }
        match container_of(&input) {
            Some(kind) => self.container(&input, kind, Some(path), depth + 1),
            None => {
                let bundle = bundle_marker(path, data);
                let kept = self.texts.get();
                let text = (is_bundle_text(path) && data.len() <= MAX_TEXT && kept + data.len() <= MAX_TEXTS_TOTAL)
                    .then(|| {
                        self.texts.set(kept + data.len());
                        data
                    });
                self.emit(Event::Other { path, bundle, text })
            }
        }
    }
}

/// Walks the archive `input` (of kind `kind`) within `bounds`, calling `visit` for what it
/// meets until it returns `false`.
pub fn walk(input: &ProbeInput<'_>, kind: Container, bounds: Bounds, visit: &mut dyn FnMut(Event<'_>) -> bool) {
    let walker = Walker {
        bounds,
        members: Cell::new(0),
        total: Cell::new(0),
        stopped: Cell::new(false),
        texts: Cell::new(0),
        visit: std::cell::RefCell::new(visit),
    };
    walker.container(input, kind, None, 1);
}

/// One event of a walk, owned ([`Event`] without the borrows).
#[derive(Debug, Clone)]
enum Kept {
    /// [`Event::Model`].
    Model { path: String, data: Vec<u8>, detection: Box<Detection> },
    /// [`Event::Other`].
    Other { path: String, bundle: Option<Bundle>, text: Option<Vec<u8>> },
    /// [`Event::Bound`].
    Bound { path: String, what: String },
    /// [`Event::Damaged`].
    Damaged { path: String, error: String },
    /// [`Event::Hidden`].
    Hidden { path: String },
    /// [`Event::Renamed`].
    Renamed { path: String, local_name: String },
}

/// A walk kept whole, to be replayed to a second reader (module doc).
#[derive(Clone)]
pub struct WalkRecord {
    /// The events, in the order the walk met them.
    events: Vec<Kept>,
    /// Member bytes kept.
    bytes: usize,
    /// Most member bytes kept: the walk's [`Bounds::member`].
    limit: usize,
}

impl std::fmt::Debug for WalkRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WalkRecord {{ {} events, {} bytes }}", self.events.len(), self.bytes)
    }
}

impl WalkRecord {
    /// An empty record of a walk within `bounds`.
    fn new(bounds: Bounds) -> Self {
        Self { events: Vec::new(), bytes: 0, limit: bounds.member }
    }

    /// Keeps `event`; `false` (the record is then incomplete and must be dropped) when its bytes
    /// would take the record past its limit.
    fn keep(&mut self, event: &Event<'_>) -> bool {
        let kept = match event {
            Event::Model { path, data, detection } => {
                self.bytes += data.len();
                Kept::Model { path: path.to_string(), data: data.to_vec(), detection: detection.clone() }
            }
            Event::Other { path, bundle, text } => {
                self.bytes += text.map_or(0, <[u8]>::len);
                Kept::Other { path: path.to_string(), bundle: *bundle, text: text.map(<[u8]>::to_vec) }
            }
            Event::Bound { path, what } => Kept::Bound { path: path.to_string(), what: what.clone() },
            Event::Damaged { path, error } => Kept::Damaged { path: path.to_string(), error: error.clone() },
            Event::Hidden { path } => Kept::Hidden { path: path.to_string() },
            Event::Renamed { path, local_name } => {
                Kept::Renamed { path: path.to_string(), local_name: local_name.to_string() }
            }
        };
        if self.bytes > self.limit {
            return false;
        }
        self.events.push(kept);
        true
    }

    /// Calls `visit` with each event of the walk, in order, until it returns `false`: what
    /// [`walk`] would call it with.
    pub fn replay(&self, visit: &mut dyn FnMut(Event<'_>) -> bool) {
        for kept in &self.events {
            let event = match kept {
                Kept::Model { path, data, detection } => Event::Model { path, data, detection: detection.clone() },
                Kept::Other { path, bundle, text } => Event::Other { path, bundle: *bundle, text: text.as_deref() },
                Kept::Bound { path, what } => Event::Bound { path, what: what.clone() },
                Kept::Damaged { path, error } => Event::Damaged { path, error: error.clone() },
                Kept::Hidden { path } => Event::Hidden { path },
                Kept::Renamed { path, local_name } => Event::Renamed { path, local_name },
            };
            if !visit(event) {
                return;
            }
        }
    }
}

/// Hands a [`WalkRecord`] from identification to the assessment, once: taking it leaves the
/// handoff empty, so a [`Detection`] kept after the assessment holds no member bytes. Clones
/// share it. It is a cache, not part of what was detected: any two compare equal.
#[derive(Clone, Default)]
pub struct WalkHandoff(std::sync::Arc<std::sync::Mutex<Option<WalkRecord>>>);

impl WalkHandoff {
    fn put(record: WalkRecord) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(Some(record))))
    }

    /// The record, if identification kept one and nobody took it yet.
    pub fn take(&self) -> Option<WalkRecord> {
        self.0.lock().ok().and_then(|mut r| r.take())
    }
}

impl PartialEq for WalkHandoff {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for WalkHandoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.0.lock().map(|r| r.is_some()).unwrap_or(false);
        write!(f, "WalkHandoff({})", if held { "held" } else { "empty" })
    }
}

/// Most member paths listed in the metadata's `contents`.
const MAX_LISTED: usize = 64;

/// Identifies an archive that holds a model, is a bundle carrying code, or could not be walked
/// to its end within the bounds. `contents` lists the models inside as `path (format)`.
pub fn probe(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    probe_within(input, BOUNDS)
}

/// [`probe`] within `bounds`. An archive that hit a bound before showing anything is a model
/// entry only when it is smaller on disk than a quarter of the byte budget (see below).
fn probe_within(input: &ProbeInput<'_>, bounds: Bounds) -> Result<Option<Detection>, FormatError> {
    let Some(kind) = container_of(input) else { return Ok(None) };
    let mut md = ModelMetadata::default();
    let mut found = false;
    let mut bounded = false;
    let mut record = Some(WalkRecord::new(bounds));
    walk(input, kind, bounds, &mut |event| {
        if record.as_mut().is_some_and(|r| !r.keep(&event)) {
            record = None;
        }
        match event {
            Event::Model { path, detection, .. } => {
                if md.contents.len() < MAX_LISTED {
                    md.contents.push(format!("{path} ({})", detection.format));
                }
                found = true;
            }
            Event::Other { bundle: Some(bundle), .. } => {
                md.extra.insert("bundle".into(), bundle.as_str().into());
                found = true;
            }
            Event::Other { bundle: None, .. } => {}
            Event::Bound { .. } => bounded = true,
            Event::Hidden { .. } | Event::Renamed { .. } => found = true,
            Event::Damaged { .. } => {}
        }
        true
    });
    // A bound alone makes a small archive a model entry (a bomb, a nesting trick: what it hides
    // cannot be cleared), but not one that is large on disk: a dataset or backup archive of
    // ordinary files runs past the budget without any trick, and reporting every one would bury
    // the models. Hiding a payload past the bounds then takes that much incompressible padding
    // (docs/safety.md).
    if bounded && !found && input.size >= bounds.total / 4 {
        tracing::debug!(size = input.size, "large archive with no model before the analysis bounds: not a model");
    } else if bounded {
        found = true;
    }
    if !found {
        return Ok(None);
    }
    md.extra.insert("container".into(), kind.as_str().into());
    let mut detection = Detection::new(ModelFormat::Archive, md);
    if let Some(record) = record {
        detection.walk = WalkHandoff::put(record);
    }
    Ok(Some(detection))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::identify_bytes;
    use proptest::prelude::*;

    /// A committed fixture of the safety corpus.
    fn fixture(rel: &str) -> Vec<u8> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// One walk event as a line: `model PATH FORMAT`, `other PATH`, `bound PATH`, …
    fn describe(e: Event<'_>) -> String {
        match e {
            Event::Model { path, detection, .. } => format!("model {path} {}", detection.format),
            Event::Other { path, .. } => format!("other {path}"),
            Event::Bound { path, .. } => format!("bound {path}"),
            Event::Damaged { path, .. } => format!("damaged {path}"),
            Event::Hidden { path } => format!("hidden {path}"),
            Event::Renamed { path, local_name } => format!("renamed {path} {local_name}"),
        }
    }

    /// The walk's events, one line each: `model PATH FORMAT`, `bound PATH`, `hidden PATH`,
    /// `damaged PATH`, `other PATH`.
    fn events(name: &str, bytes: &[u8], bounds: Bounds) -> Vec<String> {
        let head = bytes.get(..bytes.len().min(HEAD_LEN)).unwrap_or_default();
        let input = ProbeInput { source: &bytes, size: bytes.len() as u64, head, name };
        let mut out = Vec::new();
        let Some(kind) = container_of(&input) else { return out };
        walk(&input, kind, bounds, &mut |e| {
            out.push(describe(e));
            true
        });
        out
    }

    #[test]
    fn identification_hands_its_walk_over_once_and_replays_it_as_walked() {
        for rel in ["hostile/nested_tgz_in_zip.zip", "hostile/zip_local_name_differs.zip", "benign/torchserve_ok.mar"] {
            let bytes = fixture(&format!("safety/{rel}"));
            let head = bytes.get(..bytes.len().min(HEAD_LEN)).unwrap_or_default();
            let input = ProbeInput { source: &bytes.as_slice(), size: bytes.len() as u64, head, name: "x" };
            let detection = probe(&input).unwrap().unwrap();
            let shared = detection.clone();
            let record = detection.walk.take().unwrap_or_else(|| panic!("{rel}: no record"));
            assert!(shared.walk.take().is_none(), "{rel}: taken twice");
            let mut replayed = Vec::new();
            record.replay(&mut |e| {
                replayed.push(describe(e));
                true
            });
            assert_eq!(replayed, corpus(rel, BOUNDS), "{rel}");
        }
    }

    #[test]
    fn a_record_that_would_keep_more_than_one_member_bound_is_dropped() {
        let mut record = WalkRecord::new(Bounds { member: 10, ..BOUNDS });
        let detection = Box::new(Detection::bare(ModelFormat::Pickle));
        let model = |data| Event::Model { path: "a.pkl", data, detection: detection.clone() };
        assert!(record.keep(&model(b"12345678")));
        assert!(record.keep(&Event::Other { path: "x.py", bundle: None, text: Some(b"12") }));
        assert!(!record.keep(&model(b"1")));
        // Through the probe: two pickles of 3 bytes each do not fit in 4.
        let bytes = tar_of(&[("a.pkl", b"\x80\x02N."), ("b.pkl", b"\x80\x02N.")]);
        let head = bytes.get(..bytes.len().min(HEAD_LEN)).unwrap_or_default();
        let input = ProbeInput { source: &bytes.as_slice(), size: bytes.len() as u64, head, name: "t.tar" };
        let small = Bounds { member: 6, ..BOUNDS };
        let found = probe_within(&input, small).unwrap().unwrap();
        assert!(found.walk.take().is_none());
        let found = probe_within(&input, BOUNDS).unwrap().unwrap();
        assert!(found.walk.take().is_some());
    }

    fn corpus(rel: &str, bounds: Bounds) -> Vec<String> {
        let name = rel.rsplit('/').next().unwrap_or_default();
        events(name, &fixture(&format!("safety/{rel}")), bounds)
    }

    /// A ustar archive of `(name, data)` members, as `tar` writes it.
    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in members {
            let mut h = vec![0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..108].copy_from_slice(b"0000644\0");
            h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
            h[136..148].copy_from_slice(b"00000000000\0");
            h[156] = b'0';
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    #[test]
    fn a_bound_alone_reports_a_small_archive_but_not_a_large_one() {
        let detect = |bytes: &[u8], bounds: Bounds| {
            let head = bytes.get(..bytes.len().min(HEAD_LEN)).unwrap_or_default();
            let input = ProbeInput { source: &bytes, size: bytes.len() as u64, head, name: "data.tar" };
            probe_within(&input, bounds).unwrap().map(|d| d.format)
        };
        let noise: Vec<u8> = (0..6000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let pickle: &[u8] = b"\x80\x04K\x01.";
        let bounds = Bounds { depth: 4, members: 100, total: 16 * 1024, member: 8 * 1024 };
        // Past the budget with nothing seen: large on disk (over a quarter of the budget) is an
        // ordinary archive; a model before the bound still makes it one.
        let large = tar_of(&[("a.jpg", &noise), ("b.jpg", &noise), ("c.jpg", &noise)]);
        assert_eq!(detect(&large, bounds), None);
        let large_with_model = tar_of(&[("w.pkl", pickle), ("a.jpg", &noise), ("b.jpg", &noise), ("c.jpg", &noise)]);
        assert_eq!(detect(&large_with_model, bounds), Some(ModelFormat::Archive));
        // Small on disk, past a bound (here the member count): it cannot be cleared.
        let many: Vec<(String, Vec<u8>)> = (0..101).map(|i| (format!("f{i}.txt"), vec![b'x'])).collect();
        let many: Vec<(&str, &[u8])> = many.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
        let small = tar_of(&many);
        let tight = Bounds { total: 1 << 20, ..bounds };
        assert!((small.len() as u64) < tight.total / 4, "small on disk");
        assert_eq!(detect(&small, tight), Some(ModelFormat::Archive));
    }

    #[test]
    fn v7_tar_header_needs_a_valid_checksum() {
        let mut h = vec![0u8; 512];
        h[..5].copy_from_slice(b"a.txt");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum::<u32>() + 8 * 32;
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        assert!(is_tar_header(&h));
        h[0] = b'b';
        assert!(!is_tar_header(&h));
        assert!(!is_tar_header(&[0u8; 512]));
    }

    #[test]
    fn nested_members_are_named_by_their_containers() {
        assert_eq!(corpus("hostile/nested_tgz_in_zip.zip", BOUNDS), ["model inner.tar.gz!model/weights.pkl pickle"]);
        assert_eq!(
            corpus("hostile/nested_tar_formats.tar", BOUNDS),
            ["model a.tar.bz2!w.pkl pickle", "model b.tar.xz!w.pkl pickle", "model c.pkl.gz joblib"]
        );
        assert_eq!(corpus("hostile/nested_7z_in_tar.tar", BOUNDS), ["model m.7z!evil.pkl pickle"]);
        assert_eq!(corpus("hostile/archive_7z_hostile.7z", BOUNDS), ["model model.pt pytorch"]);
        // Content, not the name: a tar.gz called .bin.
        assert_eq!(corpus("hostile/renamed_tgz.bin", BOUNDS), ["model w.pkl pickle"]);
    }

    #[test]
    fn zip_tricks_hide_no_member() {
        assert_eq!(
            corpus("hostile/zip_central_hides_member.zip", BOUNDS),
            ["other readme.txt", "hidden weights.pkl", "model weights.pkl pickle"]
        );
        assert_eq!(corpus("hostile/zip_duplicate_names.zip", BOUNDS), ["model weights.pkl pickle"; 2]);
        assert_eq!(corpus("hostile/zip_prefixed.zip", BOUNDS), ["model weights.pkl pickle"]);
        assert_eq!(corpus("hostile/zip_encrypted_flag.zip", BOUNDS), ["other readme.txt", "model weights.pkl pickle"]);
        assert_eq!(corpus("hostile/zip_bad_crc.zip", BOUNDS), ["model weights.pkl pickle"]);
        // Sizes in data descriptors: the local view finds the next header past the deflate stream.
        assert_eq!(
            corpus("hostile/zip_streamed_hides_member.zip", BOUNDS),
            ["other readme.txt", "hidden weights.pkl", "model weights.pkl pickle"]
        );
        assert_eq!(corpus("benign/zip_streamed_ok.zip", BOUNDS), ["other readme.txt", "model weights.pkl pickle"]);
        assert_eq!(
            corpus("hostile/zip_local_name_differs.zip", BOUNDS),
            ["renamed notes.txt model.pkl", "model notes.txt pickle"]
        );
        // The benign twin: leading data and duplicate names are no finding by themselves.
        assert_eq!(corpus("benign/zip_tricks_ok.zip", BOUNDS), ["model weights.pkl pickle"; 2]);
    }

    #[test]
    fn every_bound_stops_the_walk_with_an_event() {
        let nested = "level1.zip!level2.zip!weights.pkl";
        assert_eq!(corpus("benign/nested_in_depth.zip", BOUNDS), [format!("model {nested} pickle")]);
        assert_eq!(
            corpus("benign/nested_in_depth.zip", Bounds { depth: 2, ..BOUNDS }),
            ["bound level1.zip!level2.zip"]
        );
        assert_eq!(
            corpus("hostile/nested_past_depth.zip", BOUNDS),
            ["bound level1.zip!level2.zip!level3.zip!level4.zip"]
        );
        let members = corpus("benign/nested_tar_formats_ok.tar", Bounds { members: 2, ..BOUNDS });
        // a.tar.bz2 and w.pkl are the two; b.tar.xz is one too many.
        assert_eq!(members, ["model a.tar.bz2!w.pkl pickle", "bound b.tar.xz"]);
        let total = corpus("benign/nested_tar_formats_ok.tar", Bounds { total: 2048, ..BOUNDS });
        assert!(total.iter().any(|e| e.starts_with("bound")), "{total:?}");
        let member = corpus("benign/nested_tgz_in_zip_ok.zip", Bounds { member: 64, ..BOUNDS });
        assert!(member.first().is_some_and(|e| e == "bound inner.tar.gz"), "{member:?}");
    }

    #[test]
    fn archives_without_models_are_not_models_and_torch_zips_stay_torch() {
        for decoy in ["decoys/archive.tar", "decoys/plain.zip"] {
            let bytes = fixture(decoy);
            assert_eq!(identify_bytes(decoy, &bytes).ok().flatten(), None, "{decoy}");
        }
        let pt = fixture("safety/benign/torch_checkpoint.pt");
        let found = identify_bytes("torch_checkpoint.pt", &pt).ok().flatten().map(|d| d.format);
        assert_eq!(found, Some(ModelFormat::Pytorch));
        let mar = fixture("safety/benign/torchserve_ok.mar");
        let d = identify_bytes("torchserve_ok.mar", &mar).ok().flatten();
        let md = d.as_ref().map(|d| (d.format, d.metadata.contents.clone(), d.metadata.extra.get("bundle").cloned()));
        assert_eq!(md, Some((ModelFormat::Archive, vec!["model.pt (pytorch)".to_string()], Some("torchserve".into()))));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Damage anywhere in a nested archive: the walk ends, without panicking, within bounds.
        #[test]
        fn damaged_archives_never_panic(at in 0usize..4096, byte in any::<u8>(), cut in 0usize..4096) {
            for rel in ["safety/hostile/nested_tgz_in_zip.zip", "safety/hostile/zip_central_hides_member.zip",
                        "safety/hostile/nested_7z_in_tar.tar", "safety/benign/nested_tar_formats_ok.tar"] {
                let mut bytes = fixture(rel);
                let len = bytes.len().max(1);
                if let Some(b) = bytes.get_mut(at % len) {
                    *b = byte;
                }
                bytes.truncate(bytes.len().saturating_sub(cut % 64));
                let _ = events(rel, &bytes, Bounds { total: 1 << 20, ..BOUNDS });
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = events("x.bin", &bytes, BOUNDS);
        }
    }
}
