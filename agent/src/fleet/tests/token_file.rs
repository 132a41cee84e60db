//! Unit tests of [`super`] (the enrollment token file).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::sync::{Arc, Mutex};

use super::*;

fn private_file(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn a_private_regular_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    private_file(&token, "  aiscout_enroll_abc\n");
    assert_eq!(read(&token).unwrap(), "aiscout_enroll_abc");
    fs::set_permissions(&token, fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(read(&token).unwrap(), "aiscout_enroll_abc");
}

#[test]
fn a_file_group_or_others_may_touch_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o660] {
        private_file(&token, "aiscout_enroll_abc");
        fs::set_permissions(&token, fs::Permissions::from_mode(mode)).unwrap();
        let err = read(&token).unwrap_err();
        assert!(matches!(err, TokenFileError::Unsafe { .. }), "{mode:o}: {err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: refusing the enrollment token file: mode {mode:04o} lets group or others read or change it; \
                 chmod 600 {}",
                token.display(),
                token.display()
            )
        );
    }
}

#[test]
fn a_symbolic_link_anywhere_on_the_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("real");
    fs::create_dir(&real_dir).unwrap();
    let token = real_dir.join("token");
    private_file(&token, "aiscout_enroll_abc");
    // The file itself is a link (to a private file: the link is what is refused).
    let file_link = dir.path().join("token-link");
    symlink(&token, &file_link).unwrap();
    // A directory on the way is a link.
    let dir_link = dir.path().join("linked");
    symlink(&real_dir, &dir_link).unwrap();
    for path in [file_link, dir_link.join("token")] {
        let err = read(&path).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "refusing the enrollment token file: it is reached through a symbolic link; \
                 give the real path of a regular file"
            ),
            "{}: {err}",
            path.display()
        );
        assert!(err.to_string().starts_with(&path.display().to_string()), "{err}");
    }
}

#[test]
fn missing_empty_and_special_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = read(&missing).unwrap_err();
    assert!(err.to_string().starts_with(&format!("{}: cannot read the enrollment token: ", missing.display())));
    let empty = dir.path().join("empty");
    private_file(&empty, " \n");
    assert_eq!(
        read(&empty).unwrap_err().to_string(),
        format!("{}: the enrollment token file is empty", empty.display())
    );
    let sub = dir.path().join("dir");
    fs::create_dir(&sub).unwrap();
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(read(&sub).unwrap_err().to_string().contains("not a regular file"));
}

/// What `remove_used` logs, as lines.
fn logged(path: &Path) -> String {
    let out = Arc::new(Mutex::new(Vec::new()));
    let writer = Arc::clone(&out);
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || WriteTo(Arc::clone(&writer)))
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || remove_used(path));
    let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    text
}

struct WriteTo(Arc<Mutex<Vec<u8>>>);

impl io::Write for WriteTo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_used_token_file_is_deleted_or_the_reason_it_is_not_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    private_file(&token, "aiscout_enroll_abc");
    assert!(logged(&token).contains("INFO enrollment token file deleted"));
    assert!(!token.exists());
    assert_eq!(logged(&token), "", "already gone: nothing to say");
    // Something that cannot be removed as a file, whoever runs the test (root included).
    let stuck = dir.path().join("stuck");
    fs::create_dir(&stuck).unwrap();
    let line = logged(&stuck);
    assert!(line.contains("WARN cannot delete the enrollment token file"), "{line}");
    assert!(line.contains(&format!("path={}", stuck.display())) && line.contains("error="), "{line}");
}
