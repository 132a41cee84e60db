//! Node packages: a file under `node_modules/<name>/` or `node_modules/@scope/<name>/` belongs
//! to that package (the innermost one when `node_modules` nest, as npm and pnpm lay them out);
//! its `package.json` gives the name and version.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::records::{Reader, Record};

/// Bytes of a `package.json` read.
const PACKAGE_JSON_LIMIT: u64 = 4 * 1024 * 1024;

/// Where the package holding `path` lies, from the path alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Placement {
    /// The package directory (`…/node_modules/@s/x`).
    pub package_dir: PathBuf,
    /// Its name from the path (`@s/x`), used when `package.json` has none.
    pub dir_name: String,
    /// The project: the directory holding the outermost `node_modules`.
    pub project: PathBuf,
}

/// The package directory of the innermost `node_modules` that holds `path` below a package.
pub(super) fn placement(path: &Path) -> Option<Placement> {
    let parts: Vec<&OsStr> =
        path.components().filter_map(|c| if let Component::Normal(n) = c { Some(n) } else { None }).collect();
    let at = |i: usize| parts.get(i).and_then(|p| p.to_str());
    let first = parts.iter().position(|p| *p == "node_modules")?;
    let package = |i: usize| -> Option<(usize, String)> {
        let name = at(i + 1)?;
        if name.starts_with('.') {
            return None;
        }
        if name.starts_with('@') {
            Some((i + 3, format!("{name}/{}", at(i + 2)?)))
        } else {
            Some((i + 2, name.to_owned()))
        }
    };
    let (end, dir_name) = parts
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, p)| **p == "node_modules")
        .find_map(|(i, _)| package(i).filter(|(end, _)| *end < parts.len()))?;
    let join = |n: usize| parts.iter().take(n).fold(PathBuf::from("/"), |acc, p| acc.join(p));
    Some(Placement { package_dir: join(end), dir_name, project: join(first) })
}

/// The name and version a package's `package.json` gives (`None` when it has none or cannot be
/// parsed: the caller falls back to the directory's name).
pub(super) fn read_package(dir: &Path, reader: &mut Reader<'_>) -> Option<Record> {
    reader.load(&dir.join("package.json"), PACKAGE_JSON_LIMIT, |bytes| {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("cannot parse package.json: {}", e.to_string().to_lowercase()))?;
        let text = |k: &str| value.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        Ok(Record { name: text("name").unwrap_or_default(), version: text("version"), paths: Vec::new() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn innermost_package_and_outermost_project() {
        let p = placement(Path::new("/p/node_modules/a/node_modules/@s/b/m/x.onnx")).unwrap();
        assert_eq!(p.package_dir, Path::new("/p/node_modules/a/node_modules/@s/b"));
        assert_eq!(p.dir_name, "@s/b");
        assert_eq!(p.project, Path::new("/p"));
        let p = placement(Path::new("/p/node_modules/a/x.onnx")).unwrap();
        assert_eq!((p.dir_name.as_str(), p.package_dir.as_path()), ("a", Path::new("/p/node_modules/a")));
        // A file of the outer package beside a nested node_modules.
        let p = placement(Path::new("/p/node_modules/a/node_modules/.cache/x.bin")).unwrap();
        assert_eq!(p.dir_name, "a");
        assert_eq!(placement(Path::new("/p/node_modules/x.onnx")), None);
        assert_eq!(placement(Path::new("/p/node_modules/@s/x.onnx")), None);
        assert_eq!(placement(Path::new("/p/models/x.onnx")), None);
    }
}
