//! What each simulated host holds, derived from the seed instead of stored.
//!
//! A host has a fixed number of **slots**; a slot is one inventory entry of a fixed kind and a
//! **generation**, or absent. Everything an entry says (local key, JSON, digest) is a pure
//! function of (seed, agent index, slot, generation), so a host costs 4 bytes a slot and the
//! simulator knows exactly what every host holds without keeping a single JSON string.
//!
//! # Slots
//! 1. Slots `0..runtimes` are servers (`ollama`, `vllm`, …), identity per host (kind, port);
//!    a new generation is a restart: a new local key (`pid:started_at`), the old one removed.
//! 2. Then `models` slots: a file under `/home/<user>/models/<slot>/`. A **shared** slot (chosen
//!    per slot with probability `shared`) holds one of `model_pool` fleet-wide weights (the same
//!    sha256 on many hosts, which the collector deduplicates); the others hold weights unique to
//!    the host. The file name comes from the weights, so a new generation replaces the file.
//! 3. Then frameworks: PyPI packages (torch, numpy, transformers, …) across several
//!    environments, one (environment, package) per slot, so its local key never changes and a
//!    new generation is an upgrade in place. A shared slot has one of four fleet-wide versions
//!    of its package; the others a local build (`2.3.1+sim.<agent>.<slot>.<gen>`).
//! 4. `entries / 10` spare slots start absent, so deltas can add entries as well as remove them.
//!
//! # Deltas
//! [`HostInventory::mutate`] changes a few random slots: an absent slot is added, a present one
//! is removed (30 %) or takes its next generation (70 %). [`delta_assets`] turns the changes into
//! wire removals and upserts; a change whose local key moved removes the old key too.

use aiscout_proto::v1;

/// splitmix64's finaliser: a well-mixed 64-bit value from any input.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic hash of `parts`.
pub fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5eed_f1ee_7000_0001, |acc, p| mix(acc ^ mix(*p)))
}

/// Domain tags, so that hashes for different purposes never coincide.
mod tag {
    pub const SHARED: u64 = 1;
    pub const POOL_PICK: u64 = 2;
    pub const POOL: u64 = 3;
    pub const UNIQUE: u64 = 4;
    pub const DIGEST: u64 = 5;
    pub const FRAMEWORK: u64 = 6;
    pub const IDENTITY: u64 = 7;
}

/// A small random number generator (splitmix64) for the deltas of one agent.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `parts`.
    pub fn new(parts: &[u64]) -> Self {
        Self(hash(parts))
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64().checked_rem(n).unwrap_or(0)
    }
}

/// `list[h % len]`, or `""` for an empty list.
fn pick<'a>(list: &[&'a str], h: u64) -> &'a str {
    let len = list.len() as u64;
    h.checked_rem(len).and_then(|i| list.get(i as usize)).copied().unwrap_or("")
}

const USERS: &[&str] = &["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan"];

/// (format, extension, architecture)
const MODEL_FORMATS: &[(&str, &str, &str)] = &[
    ("gguf", "gguf", "llama"),
    ("safetensors", "safetensors", ""),
    ("onnx", "onnx", ""),
    ("pytorch", "pt", "torch.nn.Module"),
    ("pickle", "pkl", "sklearn.ensemble._forest.RandomForestClassifier"),
    ("numpy", "npy", ""),
    ("keras_v3", "keras", "Functional"),
];

const MODEL_NAMES: &[&str] = &[
    "llama-3-8b-instruct",
    "mistral-7b-v0.3",
    "phi-3-mini",
    "qwen2-7b",
    "gemma-2b",
    "bert-base-uncased",
    "resnet50",
    "whisper-small",
    "clip-vit-b32",
    "yolov8n",
    "t5-small",
    "sdxl-vae",
    "fraud-detector",
    "churn-model",
    "embeddings-minilm",
];

/// (name, category)
const FRAMEWORKS: &[(&str, &str)] = &[
    ("torch", "core"),
    ("numpy", "core"),
    ("transformers", "core"),
    ("tensorflow", "core"),
    ("jax", "core"),
    ("scikit-learn", "core"),
    ("safetensors", "core"),
    ("tokenizers", "core"),
    ("accelerate", "core"),
    ("datasets", "core"),
    ("sentence-transformers", "core"),
    ("onnxruntime", "serving"),
    ("vllm", "serving"),
    ("llama-cpp-python", "serving"),
    ("bentoml", "serving"),
    ("langchain", "app"),
    ("langchain-openai", "app"),
    ("llama-index", "app"),
    ("openai", "app"),
    ("anthropic", "app"),
    ("chromadb", "vector"),
    ("faiss-cpu", "vector"),
    ("qdrant-client", "vector"),
    ("mlflow", "mlops"),
    ("wandb", "mlops"),
    ("jupyter-server", "notebook"),
    ("notebook", "notebook"),
    ("nvidia-cublas-cu12", "gpu"),
    ("nvidia-cudnn-cu12", "gpu"),
    ("xformers", "gpu"),
];

const ENVIRONMENTS: &[&str] = &["ml", "llm", "serving", "research", "etl", "notebooks", "agents", "eval"];

/// (kind, executable, port, library)
const RUNTIMES: &[(&str, &str, u16, &str)] = &[
    ("ollama", "/usr/local/bin/ollama", 11434, "ggml"),
    ("vllm", "/opt/vllm/bin/python3", 8000, "libtorch-cuda"),
    ("llama.cpp-server", "/usr/local/bin/llama-server", 8080, "llama.cpp"),
    ("jupyter-server", "/opt/conda/bin/python3", 8888, "libtorch"),
    ("tritonserver", "/opt/tritonserver/bin/tritonserver", 8001, "tensorrt"),
    ("ml-process", "/usr/bin/python3", 9000, "onnxruntime"),
];

/// The shape every simulated host shares, and the seed its contents derive from.
#[derive(Debug, Clone)]
pub struct FleetShape {
    /// Everything is derived from it.
    pub seed: u64,
    /// Slots present at the start (the host's `--entries`).
    pub entries: u32,
    /// Probability that a model or framework slot holds a fleet-wide entry.
    pub shared: f64,
    /// Distinct fleet-wide model weights.
    pub model_pool: u64,
    /// Server slots.
    pub runtimes: u32,
    /// Model slots.
    pub models: u32,
    /// Framework slots (the rest of `entries`).
    pub frameworks: u32,
    /// Spare slots, absent at the start.
    pub spare: u32,
}

/// One inventory entry as the wire carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The wire kind.
    pub kind: v1::AssetKind,
    /// The entry's key on its host.
    pub local_key: String,
    /// The scan JSON (docs/scan-json.md).
    pub json: String,
}

impl Entry {
    /// As a wire upsert.
    pub fn into_asset(self) -> v1::Asset {
        v1::Asset { kind: self.kind.into(), local_key: self.local_key, json: self.json }
    }
}

/// What a slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotKind {
    /// Server number `n`.
    Runtime(u32),
    /// Model number `n`.
    Model(u32),
    /// Framework number `n`.
    Framework(u32),
}

impl FleetShape {
    /// The shape of hosts of `entries` entries, `shared` of them fleet-wide, with a pool of
    /// `model_pool` fleet-wide model weights.
    pub fn new(seed: u64, entries: u32, shared: f64, model_pool: u64) -> Self {
        let runtimes = (entries / 60).clamp(u32::from(entries > 2), RUNTIMES.len() as u32);
        let models = (entries.saturating_sub(runtimes)) * 2 / 5;
        let frameworks = entries.saturating_sub(runtimes + models);
        Self { seed, entries, shared, model_pool: model_pool.max(1), runtimes, models, frameworks, spare: entries / 10 }
    }

    /// Slots of a host, spare ones included.
    pub fn slots(&self) -> u32 {
        self.entries + self.spare
    }

    /// What slot `slot` is: spare slots alternate between models and further frameworks (in
    /// more environments), so no two slots ever share a local key.
    fn kind(&self, slot: u32) -> SlotKind {
        if slot < self.runtimes {
            SlotKind::Runtime(slot)
        } else if slot < self.runtimes + self.models {
            SlotKind::Model(slot - self.runtimes)
        } else if slot < self.entries {
            SlotKind::Framework(slot - self.runtimes - self.models)
        } else {
            let spare = slot - self.entries;
            if spare.is_multiple_of(2) {
                SlotKind::Model(self.models + spare / 2)
            } else {
                SlotKind::Framework(self.frameworks + spare / 2)
            }
        }
    }

    /// Whether a slot of `agent` holds fleet-wide entries.
    fn is_shared(&self, agent: u32, slot: u32) -> bool {
        let h = hash(&[self.seed, tag::SHARED, u64::from(agent), u64::from(slot)]);
        (h >> 11) as f64 / (1u64 << 53) as f64 <= self.shared && self.shared > 0.0
    }

    /// The content key of a model slot's weights at `gen`: the pool entry's for a shared slot.
    fn model_content(&self, agent: u32, slot: u32, gen: u32) -> u64 {
        let shared = self.is_shared(agent, slot);
        let (agent, slot, gen) = (u64::from(agent), u64::from(slot), u64::from(gen));
        if shared {
            let pool = hash(&[self.seed, tag::POOL_PICK, agent, slot, gen]) % self.model_pool;
            hash(&[self.seed, tag::POOL, pool])
        } else {
            hash(&[self.seed, tag::UNIQUE, agent, slot, gen])
        }
    }

    /// The sha256 of model slot `slot` of `agent` at `gen`; `None` for other kinds.
    pub fn model_digest(&self, agent: u32, slot: u32, gen: u32) -> Option<String> {
        match self.kind(slot) {
            SlotKind::Model(_) => Some(digest_of(self.model_content(agent, slot, gen))),
            _ => None,
        }
    }

    /// The entry slot `slot` of `agent` holds at generation `gen`.
    pub fn entry(&self, agent: u32, slot: u32, gen: u32) -> Entry {
        let user = pick(USERS, u64::from(agent));
        match self.kind(slot) {
            SlotKind::Runtime(n) => runtime_entry(user, slot, n, gen),
            SlotKind::Model(_) => model_entry(user, slot, self.model_content(agent, slot, gen)),
            SlotKind::Framework(n) => {
                let shared = self.is_shared(agent, slot);
                framework_entry(self.seed, user, n, shared, agent, slot, gen)
            }
        }
    }

    /// The host identity of agent `agent`: hostname, machine id, install key and the machine
    /// fingerprint over them.
    pub fn identity(&self, agent: u32) -> v1::HostIdentity {
        use sha2::Digest;
        let h = |n: u64| hash(&[self.seed, tag::IDENTITY, u64::from(agent), n]);
        let machine_id = format!("{:016x}{:016x}", h(1), h(2));
        let install_key = digest_of(h(3));
        let hostname = format!("sim-{:x}-{agent:05}", self.seed & 0xffff);
        let mac = format!(
            "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            agent >> 24 & 0xff,
            agent >> 16 & 0xff,
            agent >> 8 & 0xff,
            agent & 0xff,
            self.seed & 0xff
        );
        let mut fingerprint = sha2::Sha256::new();
        for part in [machine_id.as_str(), "", hostname.as_str(), mac.as_str(), "", install_key.as_str()] {
            fingerprint.update(part.as_bytes());
            fingerprint.update([0]);
        }
        v1::HostIdentity {
            machine_id,
            hostname,
            mac_addresses: vec![mac],
            install_key,
            machine_fingerprint: hex::encode(fingerprint.finalize()),
            ..v1::HostIdentity::default()
        }
    }
}

/// 64 hex digits derived from `content`.
fn digest_of(content: u64) -> String {
    let part = |n: u64| hash(&[tag::DIGEST, content, n]);
    format!("{:016x}{:016x}{:016x}{:016x}", part(0), part(1), part(2), part(3))
}

/// An RFC 3339 time in 2026 derived from `h`.
fn time_of(h: u64) -> String {
    format!(
        "2026-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        1 + h % 12,
        1 + (h >> 8) % 28,
        (h >> 16) % 24,
        (h >> 24) % 60,
        (h >> 32) % 60
    )
}

fn model_entry(user: &str, slot: u32, content: u64) -> Entry {
    let &(format, ext, architecture) =
        MODEL_FORMATS.get((content % MODEL_FORMATS.len() as u64) as usize).unwrap_or(&("gguf", "gguf", "llama"));
    let name = pick(MODEL_NAMES, content >> 8);
    let path = format!("/home/{user}/models/{slot:04}/{name}-{:06x}.{ext}", content >> 40);
    let size = 4096 + (content >> 20) % (8 << 30);
    let parameters = size / 2;
    // Pickles are where code hides: a few are suspicious, fewer dangerous.
    let safety = match (format, content >> 56) {
        ("pickle", 0..=15) => {
            r#"{"verdict":"dangerous","findings":[{"kind":"dangerous_call","subject":"posix.system","detail":"the pickle calls posix.system at load","severity":"critical","atlas":"AML.T0011","owasp":"LLM05"}],"imports":["posix.system"],"calls":["posix.system"]}"#
        }
        ("pickle", 16..=63) => {
            r#"{"verdict":"suspicious","findings":[{"kind":"unknown_import","subject":"acme.layers.Custom","detail":"an import outside the known-safe list","severity":"medium","atlas":"AML.T0011","owasp":"LLM05"}],"imports":["acme.layers.Custom"],"calls":[]}"#
        }
        _ => r#"{"verdict":"safe","findings":[]}"#,
    };
    let architecture =
        if architecture.is_empty() { String::new() } else { format!(r#","architecture":"{architecture}""#) };
    let json = format!(
        r#"{{"path":"{path}","format":"{format}","size":{size},"sha256":"{}","digest_source":"hashed","modified":"{}","metadata":{{"name":"{name}"{architecture},"parameters":{parameters}}},"source":null,"group":null,"owner":null,"safety":{safety}}}"#,
        digest_of(content),
        time_of(content),
    );
    Entry { kind: v1::AssetKind::Model, local_key: path, json }
}

fn framework_entry(seed: u64, user: &str, n: u32, shared: bool, agent: u32, slot: u32, gen: u32) -> Entry {
    let count = FRAMEWORKS.len() as u32;
    let &(name, category) = FRAMEWORKS.get((n % count) as usize).unwrap_or(&("torch", "core"));
    let env_index = n / count;
    let (env_path, env_kind) = if env_index == 0 {
        ("/usr/lib/python3/dist-packages".to_owned(), "system")
    } else {
        let env = pick(ENVIRONMENTS, u64::from(env_index - 1));
        let round = (env_index - 1) / ENVIRONMENTS.len() as u32;
        let suffix = if round == 0 { String::new() } else { format!("-{round}") };
        (format!("/home/{user}/venvs/{env}{suffix}"), "venv")
    };
    // Four fleet-wide versions of each package; a host-unique slot has a local build of one.
    let pick_version = hash(&[u64::from(agent), u64::from(slot), u64::from(gen)]) % 4;
    let v = hash(&[seed, tag::FRAMEWORK, u64::from(n % count), pick_version]);
    let mut version = format!("{}.{}.{}", 1 + v % 4, (v >> 8) % 20, (v >> 16) % 10);
    if !shared {
        version.push_str(&format!("+sim.{agent}.{slot}.{gen}"));
    }
    let local_key = format!("pypi:{name}@{env_path}");
    let json = format!(
        r#"{{"ecosystem":"pypi","name":"{name}","version":"{version}","environment":{{"path":"{env_path}","kind":"{env_kind}"}},"category":"{category}"}}"#
    );
    Entry { kind: v1::AssetKind::Framework, local_key, json }
}

fn runtime_entry(user: &str, slot: u32, n: u32, gen: u32) -> Entry {
    let &(kind, exe, port, library) =
        RUNTIMES.get(n as usize % RUNTIMES.len()).unwrap_or(&("ollama", "/usr/local/bin/ollama", 11434, "ggml"));
    let port = port + (n / RUNTIMES.len() as u32) as u16;
    let pid = 2000 + slot * 1000 + gen % 1000;
    let started_at = time_of(hash(&[u64::from(slot), u64::from(gen)]));
    let program = exe.rsplit('/').next().unwrap_or(exe);
    let json = format!(
        r#"{{"pid":{pid},"ppid":1,"kind":"{kind}","exe":"{exe}","cmdline":["{program}","serve"],"user":"{user}","uid":1000,"started_at":"{started_at}","ml_libraries":["{library}"],"open_models":[],"listening":[{{"address":"127.0.0.1","port":{port},"exposure":"loopback"}}],"gpu_memory_bytes":null,"container":null,"environment":{{}},"unreadable":[],"findings":[]}}"#
    );
    Entry { kind: v1::AssetKind::Runtime, local_key: format!("{pid}:{started_at}"), json }
}

/// A host's slots: the generation of each, or absent.
#[derive(Debug, Clone)]
pub struct HostInventory {
    /// Per slot: its generation, [`ABSENT`] when the slot holds nothing.
    slots: Vec<u32>,
}

/// A slot that holds nothing.
const ABSENT: u32 = u32::MAX;

/// One slot's change in a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The slot.
    pub slot: u32,
    /// Its generation before, `None` when it was absent.
    pub before: Option<u32>,
    /// Its generation after, `None` when it is removed.
    pub after: Option<u32>,
}

impl HostInventory {
    /// A host of `shape` as it starts: every slot but the spare ones at generation 0.
    pub fn new(shape: &FleetShape) -> Self {
        let slots = (0..shape.slots()).map(|s| if s < shape.entries { 0 } else { ABSENT }).collect();
        Self { slots }
    }

    /// The present slots and their generations.
    pub fn present(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.slots.iter().enumerate().filter(|(_, g)| **g != ABSENT).map(|(s, g)| (s as u32, *g))
    }

    /// How many entries the host holds.
    pub fn live(&self) -> usize {
        self.slots.iter().filter(|g| **g != ABSENT).count()
    }

    /// Changes `count` random slots (module docs, Deltas) and says how.
    pub fn mutate(&mut self, rng: &mut Rng, count: u32) -> Vec<Change> {
        let mut changes: Vec<Change> = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let slot = rng.below(self.slots.len() as u64) as u32;
            if changes.iter().any(|c| c.slot == slot) {
                continue;
            }
            let Some(g) = self.slots.get_mut(slot as usize) else { continue };
            let before = (*g != ABSENT).then_some(*g);
            let after = match before {
                None => Some(0),
                Some(_) if rng.below(10) < 3 => None,
                Some(old) => Some(old.wrapping_add(1) % (ABSENT - 1)),
            };
            *g = after.unwrap_or(ABSENT);
            changes.push(Change { slot, before, after });
        }
        changes
    }
}

/// The wire upserts and removals of `changes` on `agent`'s host (module docs, Deltas).
pub fn delta_assets(shape: &FleetShape, agent: u32, changes: &[Change]) -> (Vec<v1::Asset>, Vec<v1::AssetRemoval>) {
    let (mut upserts, mut removals) = (Vec::new(), Vec::new());
    for c in changes {
        let after = c.after.map(|g| shape.entry(agent, c.slot, g));
        if let Some(before) = c.before.map(|g| shape.entry(agent, c.slot, g)) {
            if after.as_ref().is_none_or(|a| a.local_key != before.local_key) {
                removals.push(v1::AssetRemoval { kind: before.kind.into(), local_key: before.local_key });
            }
        }
        upserts.extend(after.map(Entry::into_asset));
    }
    (upserts, removals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_present_slot_has_its_own_key_and_valid_json() {
        let shape = FleetShape::new(7, 300, 0.5, 100);
        let host = HostInventory::new(&shape);
        assert_eq!(host.live(), 300);
        let mut keys = std::collections::HashSet::new();
        for slot in 0..shape.slots() {
            let e = shape.entry(3, slot, 0);
            assert!(serde_json::from_str::<serde_json::Value>(&e.json).is_ok(), "{}", e.json);
            assert!(keys.insert((e.kind, e.local_key.clone())), "{} twice", e.local_key);
        }
    }

    #[test]
    fn shared_models_repeat_across_hosts() {
        let shape = FleetShape::new(1, 300, 0.5, 50);
        let digests = |agent| -> std::collections::HashSet<String> {
            (0..shape.entries).filter_map(|s| shape.model_digest(agent, s, 0)).collect()
        };
        assert!(digests(1).intersection(&digests(2)).count() > 10);
    }
}
