//! Issue 11 §5: the agent runs as root in trees users own. A user who swaps a directory for a
//! symlink while the walk is in it must not make the agent read anything outside the tree.
//!
//! The tree is `root/a/` (models, and `root/a/b/` with more). Beside it, outside the tree, is a
//! directory of the same shape whose files are models too, with contents (so digests) of their
//! own and one uniquely named file. A swapper thread exchanges `root/a` with a symlink to that
//! directory (`renameat2(RENAME_EXCHANGE)`: atomic, so the tree is always whole) as fast as it
//! can while the agent scans, cold and with its listing records, for a bounded number of
//! rounds. No scan may report a file outside the tree (no outside digest, no outside name), and
//! nothing may even open anything there: inotify watches the outside directories for `IN_OPEN`
//! and `IN_ACCESS` during the race.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use aiscout_e2e::{agent_bin, fixtures_dir};
use rustix::fs::inotify::{CreateFlags, WatchFlags};

/// Scans raced against the swapper.
const ROUNDS: usize = 300;

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

/// A GGUF model whose digest is its own: the fixture with `tag` appended (readers stop at the
/// header and tensors the header describes).
fn model(path: &Path, tag: &str) {
    let mut bytes = std::fs::read(fixtures_dir().join("models/tiny-llama.gguf")).unwrap();
    bytes.extend_from_slice(tag.as_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// The same shape under `dir`: `n` models at the top, `n` in `b/`, names from `prefix`.
fn shape(dir: &Path, tag: &str, n: usize, extra: Option<&str>) {
    std::fs::create_dir_all(dir.join("b")).unwrap();
    for i in 0..n {
        model(&dir.join(format!("m{i}.gguf")), &format!("{tag}-top-{i}"));
        model(&dir.join(format!("b/m{i}.gguf")), &format!("{tag}-b-{i}"));
    }
    if let Some(name) = extra {
        model(&dir.join(name), &format!("{tag}-unique"));
        model(&dir.join("b").join(name), &format!("{tag}-unique-b"));
    }
}

#[test]
fn swapping_a_directory_for_a_symlink_mid_walk_never_reads_outside_the_tree() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    let outside = base.path().join("outside");
    let unique = format!("outside-{}-{}.gguf", std::process::id(), base.path().file_name().unwrap().to_string_lossy());
    shape(&root.join("a"), "inside", 12, None);
    shape(&outside, "outside", 12, Some(&unique));
    std::os::unix::fs::symlink(&outside, root.join("a.link")).unwrap();

    let mut outside_digests = HashSet::new();
    for entry in walk_files(&outside) {
        outside_digests.insert(sha256(&entry));
    }
    assert_eq!(outside_digests.len(), 26);
    // From here on, nothing has any business opening the outside directories or their files.
    let watch = rustix::fs::inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC).unwrap();
    for d in [outside.clone(), outside.join("b")] {
        rustix::fs::inotify::add_watch(&watch, d, WatchFlags::OPEN | WatchFlags::ACCESS).unwrap();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (stop, swaps, root) = (Arc::clone(&stop), Arc::clone(&swaps), root.clone());
        std::thread::spawn(move || {
            let (a, link) = (root.join("a"), root.join("a.link"));
            while !stop.load(Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &a,
                    rustix::fs::CWD,
                    &link,
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .unwrap();
                swaps.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };

    let state = tempfile::tempdir().unwrap();
    let mut inside_found = 0usize;
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let mut cmd = Command::new(agent_bin());
        cmd.args(["scan", "--json", "--only", "models"]);
        // Every other round keeps its state: rescans go through the listing records.
        if round % 2 == 0 {
            cmd.arg("--state-dir").arg(state.path());
        } else {
            cmd.arg("--no-cache");
        }
        let out = cmd.arg(&root).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
        let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        for m in doc["models"].as_array().unwrap() {
            let (path, digest) = (m["path"].as_str().unwrap(), m["sha256"].as_str().unwrap());
            if outside_digests.contains(digest) || path.contains("outside-") {
                failures.push(format!("round {round}: {path} {digest}"));
            } else {
                inside_found += 1;
            }
        }
        if stdout.contains(&unique) {
            failures.push(format!("round {round}: the outside file's name appears in the output"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    let opened = outside_opens(&watch);
    // Put the tree back the right way round for the sanity check below.
    if std::fs::symlink_metadata(root.join("a")).unwrap().file_type().is_symlink() {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            root.join("a"),
            rustix::fs::CWD,
            root.join("a.link"),
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .unwrap();
    }
    assert!(
        failures.is_empty() && opened.is_empty(),
        "files outside the tree were read:\n{}\nopened outside the tree (inotify): {opened:?}",
        failures.join("\n")
    );
    assert!(swaps.load(Ordering::Relaxed) > ROUNDS as u64, "the swapper hardly ran");
    assert!(inside_found > 0, "the walk never found the tree's own models while racing");
}

/// What the inotify watch saw opened or read (the first 20 events).
fn outside_opens(watch: &std::os::fd::OwnedFd) -> Vec<String> {
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
    let mut reader = rustix::fs::inotify::Reader::new(watch, &mut buf);
    let mut seen = Vec::new();
    while seen.len() < 20 {
        match reader.next() {
            Ok(event) => seen.push(format!("{:?} {:?}", event.file_name(), event.events())),
            Err(rustix::io::Errno::AGAIN) => break,
            Err(e) => panic!("cannot read the inotify watch: {e}"),
        }
    }
    seen
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk_files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
