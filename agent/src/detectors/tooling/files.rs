//! Finding and reading the tooling files: simple globs under a home, bounded safe reads.

use std::io;
use std::path::{Path, PathBuf};

use crate::fileio::is_absent;

/// Directory entries examined per `*` segment of a glob (a VS Code `globalStorage` holds one
/// directory per extension).
const MAX_DIR_ENTRIES: usize = 10_000;

pub use crate::fileio::Oversize;

/// The files `rel` (a path relative to `home` whose segments may hold `*`) names, sorted.
/// Directories matched by a `*` are descended only when they are real directories.
pub fn expand(home: &Path, rel: &str) -> Vec<PathBuf> {
    let mut found = vec![home.to_path_buf()];
    let segments: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        if !segment.contains('*') {
            found.iter_mut().for_each(|p| p.push(segment));
            continue;
        }
        let Ok(glob) = globset::Glob::new(segment) else { return Vec::new() };
        let matcher = glob.compile_matcher();
        found = found
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flat_map(|entries| entries.take(MAX_DIR_ENTRIES).flatten())
            .filter(|e| matcher.is_match(e.file_name()))
            .filter(|e| i == last || e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        found.sort();
    }
    found
}

/// Reads `path`, at most `limit` bytes, following a final symlink ([`resolve_link`]).
/// `Ok(None)` when it does not exist (a dangling link included). The file is read through
/// [`crate::fileio::read_bounded_if_present`], which refuses FIFOs, sockets and devices without
/// blocking. The error names what failed, lowercase; the path is the caller's to report.
pub fn read_resolving_link(path: &Path, limit: u64, oversize: Oversize) -> Result<Option<Vec<u8>>, String> {
    let Some(target) = resolve_link(path)? else { return Ok(None) };
    crate::fileio::read_bounded_if_present(&target, limit, oversize).map_err(|e| read_error(&e))
}

/// Where a file's path came from, which decides how it may be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A well-known place under a home (`~/.cursor/mcp.json`, `~/.bashrc`): a final symlink
    /// is followed ([`read_resolving_link`]), as dotfile managers make them.
    Home,
    /// A file the walk found (a project's `.env` or MCP configuration): reached again with no
    /// symlink at any component ([`crate::fileio::read_found_if_present`]), so a directory
    /// swapped for a link since the walk cannot make the root agent read elsewhere.
    Walk,
}

/// Reads `path` as its [`Origin`] allows, at most `limit` bytes; `Ok(None)` when it is absent.
pub fn read(path: &Path, limit: u64, oversize: Oversize, origin: Origin) -> Result<Option<Vec<u8>>, String> {
    match origin {
        Origin::Home => read_resolving_link(path, limit, oversize),
        Origin::Walk => crate::fileio::read_found_if_present(path, limit, oversize).map_err(|e| read_error(&e)),
    }
}

fn read_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::InvalidData => format!("too large to read: {}", lower(e)),
        _ => format!("cannot read: {}", lower(e)),
    }
}

/// `path` itself, or, when it is a symlink (a dotfile managed by stow or chezmoi), its target
/// resolved with `canonicalize`, which fails on loops. `Ok(None)` when nothing is there.
fn resolve_link(path: &Path) -> Result<Option<PathBuf>, String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(format!("cannot read: {}", lower(&e))),
    };
    if !meta.file_type().is_symlink() {
        return Ok(Some(path.to_path_buf()));
    }
    match std::fs::canonicalize(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(format!("cannot resolve symbolic link: {}", lower(&e))),
    }
}

/// An I/O error as a lowercase message.
pub fn lower(e: &io::Error) -> String {
    e.to_string().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_within_a_segment_and_descend_real_directories_only() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        for ext in ["a", "b"] {
            let dir = h.join(format!("g/{ext}/settings"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("m.json"), "{}").unwrap();
        }
        std::os::unix::fs::symlink(h.join("g/a"), h.join("g/link")).unwrap();
        let got = expand(h, "g/*/settings/m.json");
        assert_eq!(got, vec![h.join("g/a/settings/m.json"), h.join("g/b/settings/m.json")]);
        assert_eq!(expand(h, "g/a/settings/*.json"), vec![h.join("g/a/settings/m.json")]);
        assert_eq!(expand(h, "plain/file"), vec![h.join("plain/file")]);
    }

    #[test]
    fn reads_are_bounded_and_safe() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("f"), "A=1\nB=2\nC=3\n").unwrap();
        assert_eq!(read_resolving_link(&d.join("missing"), 10, Oversize::Refuse).unwrap(), None);
        assert_eq!(read_resolving_link(&d.join("f/below"), 10, Oversize::Refuse).unwrap(), None);
        assert!(read_resolving_link(&d.join("f"), 5, Oversize::Refuse).unwrap_err().contains("too large"));
        let cut = read_resolving_link(&d.join("f"), 9, Oversize::Truncate { separator: b'\n' }).unwrap().unwrap();
        assert_eq!(cut, b"A=1\nB=2");
        std::os::unix::fs::symlink(d.join("f"), d.join("link")).unwrap();
        assert_eq!(read_resolving_link(&d.join("link"), 100, Oversize::Refuse).unwrap().unwrap(), b"A=1\nB=2\nC=3\n");
        std::os::unix::fs::symlink(d.join("loop"), d.join("loop")).unwrap();
        assert!(read_resolving_link(&d.join("loop"), 100, Oversize::Refuse).unwrap_err().contains("symbolic link"));
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling")).unwrap();
        assert_eq!(read_resolving_link(&d.join("dangling"), 100, Oversize::Refuse).unwrap(), None);
        rustix::fs::mkfifoat(rustix::fs::CWD, d.join("fifo"), rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        assert!(read_resolving_link(&d.join("fifo"), 100, Oversize::Refuse)
            .unwrap_err()
            .contains("not a regular file"));
    }
}
