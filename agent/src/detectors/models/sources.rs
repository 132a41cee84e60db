//! Provenance and content addresses from a model's location.
//!
//! Stores recognised (layouts in `shared/reference/models-and-scanners.md` §3):
//! 1. Hugging Face hub cache: `<cache>/models--<org>--<name>/{blobs/<etag>, snapshots/<commit>/<file>
//!    -> ../../blobs/<etag>, refs/<branch>}`. LFS blobs are named by their SHA-256, which is
//!    taken as the digest; the snapshot links give each blob its file name and revision;
//! 2. Ollama: `<models>/{blobs/sha256-<hex>, manifests/<registry>/<namespace>/<model>/<tag>}`;
//!    the digest comes from the blob name once the manifest's layer size matches the file;
//! 3. LM Studio: `.lmstudio/models/<publisher>/<model>/` or `.cache/lm-studio/models/...`;
//! 4. MLflow file store: `mlruns/<experiment>/<run>/artifacts/<path>` and MLflow 3's
//!    `mlruns/<experiment>/models/<model id>/artifacts/<path>`;
//! 5. torch hub `hub/checkpoints/`, Keras `.keras/models/`, llama.cpp `llama.cpp/` cache,
//!    GPT4All `nomic.ai/GPT4All/` and `.cache/gpt4all/`, Jan `jan/models/<id>/` and
//!    `Jan/data/models/<engine>/<id>/`.
//!
//! Store indexes (snapshot links, manifests) are read once per store and shared between the
//! walker threads. They are read by path (not yet through the walk's directory handles): the
//! files read (`refs/main`, manifests) are regular files only, never through a final symlink,
//! and bounded ([`crate::fileio::read_bounded`]); links met are read (`readlink`), never
//! followed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::fileio::Oversize;
use crate::report::ModelSource;

/// Largest manifest or snapshot tree read per store.
const MAX_STORE_FILES: usize = 100_000;
/// Largest `refs/<name>` file of a Hugging Face repo folder read (a commit hash).
const MAX_REF_BYTES: u64 = 4096;
/// Largest Ollama manifest read.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// A Hugging Face repository folder in the hub cache.
#[derive(Debug, Default)]
pub struct HfRepo {
    /// `org/name`.
    pub repo: String,
    /// `model`, `dataset` or `space`.
    pub repo_type: &'static str,
    /// Blob name → (revision, file path relative to the snapshot).
    pub links: HashMap<String, (String, String)>,
}

/// An Ollama models directory.
#[derive(Debug, Default)]
pub struct OllamaStore {
    /// Hex digest → (model names `name:tag`, layer size, media type).
    pub layers: HashMap<String, (Vec<String>, u64, String)>,
}

/// Where a model file sits, for grouping shards with their index: the directory the model's
/// files are named relative to, and this file's name there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Logical {
    /// The directory (a snapshot directory for Hugging Face blobs).
    pub dir: PathBuf,
    /// The file's name relative to `dir`.
    pub name: String,
}

/// What a location tells about a file.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Provenance.
    pub source: Option<ModelSource>,
    /// Digest from a content-addressed name, with the size the store records (if any).
    pub content_address: Option<(String, Option<u64>)>,
    /// Logical location.
    pub logical: Logical,
}

/// Shared, lazily built indexes of the stores met during a scan.
#[derive(Debug, Default)]
pub struct StoreIndex {
    /// Hugging Face repo folders by path.
    hf: Mutex<HashMap<PathBuf, Arc<HfRepo>>>,
    /// Ollama models directories by path.
    ollama: Mutex<HashMap<PathBuf, Arc<OllamaStore>>>,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn name_of(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn source(kind: &str, attrs: &[(&str, String)]) -> ModelSource {
    ModelSource {
        kind: kind.into(),
        attributes: attrs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| ((*k).to_string(), v.clone())).collect(),
    }
}

fn load_hf(repo_dir: &Path) -> HfRepo {
    let folder = name_of(repo_dir);
    let (repo_type, rest) = match folder.split_once("--") {
        Some(("models", r)) => ("model", r),
        Some(("datasets", r)) => ("dataset", r),
        Some(("spaces", r)) => ("space", r),
        _ => ("model", folder.as_str()),
    };
    let repo = rest.replacen("--", "/", 1);
    // Regular files only, never through a final symlink, bounded ([`crate::fileio::read_bounded`]).
    let main = crate::fileio::read_bounded(&repo_dir.join("refs/main"), MAX_REF_BYTES, Oversize::Refuse)
        .ok()
        .map(|s| String::from_utf8_lossy(&s).trim().to_string());
    let mut links: HashMap<String, (String, String)> = HashMap::new();
    let Ok(revs) = std::fs::read_dir(repo_dir.join("snapshots")) else {
        return HfRepo { repo, repo_type, links };
    };
    for rev in revs.flatten() {
        let snapshot = rev.path();
        let revision = name_of(&snapshot);
        for_each_entry(&snapshot, |path, ft| {
            if !ft.is_symlink() {
                return;
            }
            let Ok(target) = std::fs::read_link(path) else { return };
            let blob = name_of(&target);
            let file = path.strip_prefix(&snapshot).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
            if main.as_deref() == Some(revision.as_str()) || !links.contains_key(&blob) {
                links.insert(blob, (revision.clone(), file));
            }
        });
    }
    HfRepo { repo, repo_type, links }
}

/// Calls `f` with every entry below `root` (directories are descended, links are not
/// followed), stopping after [`MAX_STORE_FILES`] entries.
fn for_each_entry(root: &Path, mut f: impl FnMut(&Path, std::fs::FileType)) {
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            seen += 1;
            if seen > MAX_STORE_FILES {
                return;
            }
            let Ok(ft) = e.file_type() else { continue };
            let path = e.path();
            if ft.is_dir() {
                stack.push(path);
            } else {
                f(&path, ft);
            }
        }
    }
}

fn ollama_name(rel: &Path) -> Option<String> {
    let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let [registry, namespace, model, tag] = parts.as_slice() else {
        return None;
    };
    Some(match (registry.as_str(), namespace.as_str()) {
        ("registry.ollama.ai", "library") => format!("{model}:{tag}"),
        ("registry.ollama.ai", ns) => format!("{ns}/{model}:{tag}"),
        (reg, ns) => format!("{reg}/{ns}/{model}:{tag}"),
    })
}

fn load_ollama(models_dir: &Path) -> OllamaStore {
    let mut store = OllamaStore::default();
    let root = models_dir.join("manifests");
    for_each_entry(&root, |path, ft| {
        if !ft.is_file() {
            return;
        }
        let Some(name) = path.strip_prefix(&root).ok().and_then(ollama_name) else { return };
        let Ok(text) = crate::fileio::read_bounded(path, MAX_MANIFEST_BYTES, Oversize::Refuse) else { return };
        let Ok(manifest) = serde_json::from_slice::<serde_json::Value>(&text) else { return };
        let layers = manifest.get("layers").and_then(|l| l.as_array()).cloned().unwrap_or_default();
        for layer in layers.iter().chain(manifest.get("config")) {
            let Some(hex) = layer.get("digest").and_then(|d| d.as_str()).and_then(|d| d.strip_prefix("sha256:")) else {
                continue;
            };
            let size = layer.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
            let media = layer.get("mediaType").and_then(|m| m.as_str()).unwrap_or_default().to_string();
            let slot = store.layers.entry(hex.to_string()).or_insert_with(|| (Vec::new(), size, media));
            if !slot.0.contains(&name) {
                slot.0.push(name.clone());
                slot.0.sort();
            }
        }
    });
    store
}

fn components(path: &Path) -> Vec<String> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

impl StoreIndex {
    fn hf_repo(&self, repo_dir: &Path) -> Arc<HfRepo> {
        let mut map = self.hf.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(repo_dir.to_path_buf()).or_insert_with(|| Arc::new(load_hf(repo_dir))))
    }

    fn ollama_store(&self, models_dir: &Path) -> Arc<OllamaStore> {
        let mut map = self.ollama.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(models_dir.to_path_buf()).or_insert_with(|| Arc::new(load_ollama(models_dir))))
    }

    /// What the location of `path` (a file, or a directory model) tells.
    pub fn place(&self, path: &Path) -> Placement {
        let name = name_of(path);
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let plain = Logical { dir: parent.clone(), name: name.clone() };
        let parent_name = name_of(&parent);
        let grand = parent.parent().map(Path::to_path_buf).unwrap_or_default();

        // 1. Hugging Face blob.
        let grand_name = name_of(&grand);
        if parent_name == "blobs" && ["models--", "datasets--", "spaces--"].iter().any(|p| grand_name.starts_with(p)) {
            let repo = self.hf_repo(&grand);
            let content_address = is_hex(&name, 64).then(|| (name.clone(), None));
            let (src, logical) = match repo.links.get(&name) {
                Some((revision, file)) => (
                    source(
                        "huggingface",
                        &[
                            ("repo", repo.repo.clone()),
                            ("revision", revision.clone()),
                            ("file", file.clone()),
                            ("type", type_attr(repo.repo_type)),
                        ],
                    ),
                    Logical { dir: grand.join("snapshots").join(revision), name: file.clone() },
                ),
                None => (
                    source("huggingface", &[("repo", repo.repo.clone()), ("type", type_attr(repo.repo_type))]),
                    plain.clone(),
                ),
            };
            return Placement { source: Some(src), content_address, logical };
        }
        // 2. Ollama blob.
        if parent_name == "blobs" {
            if let Some(hex) = name.strip_prefix("sha256-").filter(|h| is_hex(h, 64)) {
                let store = grand.join("manifests").is_dir().then(|| self.ollama_store(&grand));
                let layer = store.as_ref().and_then(|s| s.layers.get(hex).cloned());
                let src = layer.as_ref().map(|(names, _, _)| {
                    let mut attrs = vec![("name", names.first().cloned().unwrap_or_default())];
                    if names.len() > 1 {
                        attrs.push(("tags", names.join(", ")));
                    }
                    source("ollama", &attrs)
                });
                let size = layer.map(|(_, size, _)| size);
                return Placement {
                    source: src.or_else(|| Some(source("ollama", &[]))),
                    content_address: Some((hex.to_string(), size)),
                    logical: plain,
                };
            }
        }
        let parts = components(path);
        Placement { source: path_source(&parts), content_address: None, logical: plain }
    }
}

fn type_attr(t: &str) -> String {
    if t == "model" {
        String::new()
    } else {
        t.to_string()
    }
}

fn position(parts: &[String], seq: &[&str]) -> Option<usize> {
    parts.windows(seq.len()).position(|w| w.iter().zip(seq).all(|(a, b)| a == b))
}

fn part(parts: &[String], i: usize) -> String {
    parts.get(i).cloned().unwrap_or_default()
}

/// Provenance from path patterns (stores 3 to 5 of the module doc).
fn path_source(parts: &[String]) -> Option<ModelSource> {
    let n = parts.len();
    for seq in [&[".lmstudio", "models"][..], &["lm-studio", "models"][..]] {
        if let Some(i) = position(parts, seq) {
            if i + 4 <= n {
                return Some(source("lmstudio", &[("publisher", part(parts, i + 2)), ("model", part(parts, i + 3))]));
            }
        }
    }
    if let Some(i) = parts.iter().rposition(|p| p == "mlruns") {
        let rest = parts.get(i + 1..).unwrap_or_default();
        let art = rest.iter().position(|p| p == "artifacts");
        if let Some(a) = art {
            let dir_parts = rest.get(a + 1..rest.len().saturating_sub(1)).unwrap_or_default();
            let artifact_path = dir_parts.join("/");
            return Some(match rest.get(..a) {
                Some([exp, models, model_id]) if models == "models" => source(
                    "mlflow",
                    &[("experiment_id", exp.clone()), ("model_id", model_id.clone()), ("artifact_path", artifact_path)],
                ),
                Some([exp, run]) => source(
                    "mlflow",
                    &[("experiment_id", exp.clone()), ("run_id", run.clone()), ("artifact_path", artifact_path)],
                ),
                _ => source("mlflow", &[("artifact_path", artifact_path)]),
            });
        }
    }
    if position(parts, &["hub", "checkpoints"]).is_some() {
        return Some(source("torch_hub", &[]));
    }
    if position(parts, &[".keras", "models"]).is_some() {
        return Some(source("keras", &[]));
    }
    if parts.iter().any(|p| p == "llama.cpp") && parts.iter().any(|p| p == ".cache" || p == "Caches") {
        return Some(source("llama_cpp", &[]));
    }
    if position(parts, &["nomic.ai", "GPT4All"]).is_some() || position(parts, &[".cache", "gpt4all"]).is_some() {
        return Some(source("gpt4all", &[]));
    }
    for seq in [&["jan", "models"][..], &["Jan", "data", "models"][..]] {
        if let Some(i) = position(parts, seq) {
            let after = i + seq.len();
            // Newer layouts add an engine folder (`llamacpp/<id>`).
            let id = if part(parts, after) == "llamacpp" && after + 2 < n {
                part(parts, after + 1)
            } else {
                part(parts, after)
            };
            return Some(source("jan", &[("model", id)]));
        }
    }
    None
}

/// Turns a source attribute map into a sorted list (for tests and tables).
pub fn describe(source: &ModelSource) -> String {
    let attrs: BTreeMap<&String, &String> = source.attributes.iter().collect();
    match source.kind.as_str() {
        "huggingface" => attrs.get(&"repo".to_string()).map(|r| format!("hf:{r}")).unwrap_or_else(|| "hf".into()),
        "ollama" => attrs.get(&"name".to_string()).map(|r| format!("ollama:{r}")).unwrap_or_else(|| "ollama".into()),
        "lmstudio" => format!(
            "lmstudio:{}/{}",
            attrs.get(&"publisher".to_string()).map(|s| s.as_str()).unwrap_or(""),
            attrs.get(&"model".to_string()).map(|s| s.as_str()).unwrap_or("")
        ),
        "mlflow" => attrs
            .get(&"run_id".to_string())
            .or(attrs.get(&"model_id".to_string()))
            .map(|r| format!("mlflow:{r}"))
            .unwrap_or_else(|| "mlflow".into()),
        other => other.to_string(),
    }
}
