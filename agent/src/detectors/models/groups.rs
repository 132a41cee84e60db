//! Multi-file models: ties shards to their index, GGUF splits to each other.
//!
//! Group kinds:
//! 1. `sharded`: a `*.index.json` with a `weight_map` (transformers' safetensors and PyTorch
//!    shards). Members are the index and every shard it names, resolved relative to the index's
//!    logical directory (the snapshot directory for Hugging Face blobs);
//! 2. `gguf_split`: files named `<prefix>-NNNNN-of-MMMMM.gguf` carrying `split.count` > 1;
//! 3. `directory`: directory models (SavedModel, MLflow, OpenVINO, Core ML packages), built in
//!    `directory.rs`; a model file inside one (an MLflow model's pickle) joins its group.
//!
//! A group's `id` is the tree digest ([`crate::hash::tree_digest`]) over its members' logical
//! names and SHA-256, so the same sharded model has the same id in a Hugging Face cache and in
//! a plain folder.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Found, IndexFile};
use crate::hash::tree_digest;
use crate::report::ModelGroup;

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Assigns `group` to every model that belongs to one.
pub fn assign(models: &mut [Found], indexes: &[IndexFile]) {
    for index in indexes {
        let prefix = index.logical.name.rsplit_once('/').map(|(p, _)| p.to_string()).unwrap_or_default();
        let index_name = index.logical.name.rsplit('/').next().unwrap_or_default().to_string();
        let mut members = vec![(index_name, index.sha256.clone(), index.path.display().to_string())];
        let mut missing = Vec::new();
        let mut hits = Vec::new();
        for shard in &index.shards {
            let want = join(&prefix, shard);
            match models.iter().position(|m| m.logical.dir == index.logical.dir && m.logical.name == want) {
                Some(i) => {
                    if let Some(m) = models.get(i) {
                        members.push((shard.clone(), m.entry.sha256.clone(), m.entry.path.clone()));
                    }
                    hits.push(i);
                }
                None => missing.push(shard.clone()),
            }
        }
        if hits.is_empty() {
            continue;
        }
        members.sort_by(|a, b| a.0.cmp(&b.0));
        let id = tree_digest(&members.iter().map(|(n, d, _)| (n.clone(), d.clone())).collect::<Vec<_>>());
        let group = ModelGroup {
            id,
            kind: "sharded".into(),
            root: index.path.display().to_string(),
            members: members.into_iter().map(|(_, _, p)| p).collect(),
            missing,
        };
        for i in hits {
            if let Some(m) = models.get_mut(i) {
                m.entry.group = Some(group.clone());
            }
        }
    }
    gguf_splits(models);
    directory_members(models);
}

/// A model file inside a directory model (the pickle of an MLflow model) joins its group.
fn directory_members(models: &mut [Found]) {
    let dirs: Vec<ModelGroup> =
        models.iter().filter_map(|m| m.entry.group.as_ref()).filter(|g| g.kind == "directory").cloned().collect();
    for m in models.iter_mut().filter(|m| m.entry.group.is_none()) {
        if let Some(g) = dirs.iter().find(|g| g.members.contains(&m.entry.path)) {
            m.entry.group = Some(g.clone());
        }
    }
}

/// `(prefix, number, count)` of a `<prefix>-NNNNN-of-MMMMM.gguf` name.
fn split_name(name: &str) -> Option<(String, u32, u32)> {
    let stem = name.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, number) = rest.rsplit_once('-')?;
    if number.len() != 5 || count.len() != 5 {
        return None;
    }
    Some((prefix.to_string(), number.parse().ok()?, count.parse().ok()?))
}

fn gguf_splits(models: &mut [Found]) {
    let mut sets: BTreeMap<(PathBuf, String, u32), Vec<usize>> = BTreeMap::new();
    for (i, m) in models.iter().enumerate() {
        if m.entry.group.is_some() || m.entry.metadata.split_count.unwrap_or(0) < 2 {
            continue;
        }
        if let Some((prefix, _, count)) = split_name(&m.logical.name) {
            sets.entry((m.logical.dir.clone(), prefix, count)).or_default().push(i);
        }
    }
    for ((_, prefix, count), mut idx) in sets {
        idx.sort_by_key(|i| models.get(*i).map(|m| m.logical.name.clone()));
        let members: Vec<(String, String, String)> = idx
            .iter()
            .filter_map(|i| models.get(*i))
            .map(|m| {
                (
                    m.logical.name.rsplit('/').next().unwrap_or_default().to_string(),
                    m.entry.sha256.clone(),
                    m.entry.path.clone(),
                )
            })
            .collect();
        let present: Vec<&String> = members.iter().map(|m| &m.0).collect();
        let missing = (1..=count)
            .map(|n| format!("{prefix}-{n:05}-of-{count:05}.gguf"))
            .map(|n| n.rsplit('/').next().unwrap_or_default().to_string())
            .filter(|n| !present.contains(&n))
            .collect();
        let group = ModelGroup {
            id: tree_digest(&members.iter().map(|(n, d, _)| (n.clone(), d.clone())).collect::<Vec<_>>()),
            kind: "gguf_split".into(),
            root: members.first().map(|m| m.2.clone()).unwrap_or_default(),
            members: members.iter().map(|m| m.2.clone()).collect(),
            missing,
        };
        for i in idx {
            if let Some(m) = models.get_mut(i) {
                m.entry.group = Some(group.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_names() {
        assert_eq!(super::split_name("tiny-00001-of-00002.gguf"), Some(("tiny".into(), 1, 2)));
        assert_eq!(super::split_name("tiny.gguf"), None);
    }
}
