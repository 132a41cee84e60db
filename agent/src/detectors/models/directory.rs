//! Models that are directories: TensorFlow SavedModel (`saved_model.pb` + `variables/`),
//! MLflow (`MLmodel` + artifacts), OpenVINO IR (`<stem>.xml` + `<stem>.bin`) and Core ML
//! packages (`<name>.mlpackage/` holding `Manifest.json` and
//! `Data/com.apple.CoreML/model.mlmodel`).
//!
//! The defining file is identified by content; the model is then the set of its files. Its
//! `sha256` is the tree digest of those files ([`crate::hash::tree_digest`], reproducible with
//! `sha256sum`), its size their sum, and its `group` lists them. Member files are hashed through
//! the cache like any other file, so an unchanged directory costs only `lstat`s on a rescan.

use std::path::{Path, PathBuf};

use crate::formats::{Detection, ModelFormat};
use crate::report::ModelGroup;

/// Most files a directory model may hold before it is reported as an error.
pub const MAX_MEMBERS: usize = 10_000;
/// Deepest directory nesting followed inside a directory model.
const MAX_DEPTH: usize = 16;

/// Member files of a directory model: (path relative to the model root, path).
pub type Members = Vec<(String, PathBuf)>;

/// Regular files under `dir` (no symlinks followed), relative paths sorted.
fn members(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("cannot list {}: {e}", d.display()))?;
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let path = e.path();
            if ft.is_dir() && depth < MAX_DEPTH {
                stack.push((path, depth + 1));
            } else if ft.is_file() {
                let rel = path.strip_prefix(dir).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
                out.push((rel, path));
                if out.len() > MAX_MEMBERS {
                    return Err(format!("directory model holds more than {MAX_MEMBERS} files"));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The directory model whose defining file `defining` was identified as `detection`.
/// `Ok(None)` when the companion files are missing (an OpenVINO XML without its `.bin`).
/// The `.mlpackage` directory a Core ML specification sits in, if any.
fn mlpackage(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .take(4)
        .find(|a| a.extension().is_some_and(|e| e.eq_ignore_ascii_case("mlpackage")))
        .map(Path::to_path_buf)
}

/// Whether a file identified as `format` at `path` defines a directory model.
pub fn is_directory_model(path: &Path, format: ModelFormat) -> bool {
    match format {
        ModelFormat::TfSavedmodel | ModelFormat::Mlflow | ModelFormat::Openvino => true,
        ModelFormat::Coreml => mlpackage(path).is_some(),
        _ => false,
    }
}

/// Returns the path the model is reported at and its member files.
pub fn layout(defining: &Path, detection: &Detection) -> Result<Option<(PathBuf, Members)>, String> {
    let parent = defining.parent().map(Path::to_path_buf).unwrap_or_default();
    match detection.format {
        ModelFormat::Coreml => match mlpackage(defining) {
            Some(root) => Ok(Some((root.clone(), members(&root)?))),
            None => Ok(None),
        },
        ModelFormat::Openvino => {
            let bin = defining.with_extension("bin");
            match std::fs::symlink_metadata(&bin) {
                Ok(m) if m.is_file() => {}
                _ => return Ok(None),
            }
            let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let files = vec![(name(&bin), bin.clone()), (name(defining), defining.to_path_buf())];
            Ok(Some((defining.to_path_buf(), files)))
        }
        _ => Ok(Some((parent.clone(), members(&parent)?))),
    }
}

/// The group describing a directory model's files.
pub fn group(root: &Path, digest: &str, files: &[(String, PathBuf)]) -> ModelGroup {
    ModelGroup {
        id: digest.to_string(),
        kind: "directory".into(),
        root: root.display().to_string(),
        members: files.iter().map(|(_, p)| p.display().to_string()).collect(),
        missing: Vec::new(),
    }
}
