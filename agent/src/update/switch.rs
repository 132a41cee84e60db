//! Switching to a staged release, and rolling back one that is not healthy.
//!
//! The service starts `state_dir/bin/aiscout-agent`, a symbolic link (the packages point it at
//! `/usr/bin/aiscout-agent` on every install and upgrade). Nothing the package manager owns is
//! ever written: releases live under `state_dir/update/versions/`, and only the link moves.
//!
//! 1. **switch** ([`switch`]): the daemon, with a release staged and the link present, records
//!    the pending switch in `update/state.json` (the version, the link's previous target, when,
//!    no start yet), then points the link at the staged binary atomically (a new link renamed
//!    over the old one) and ends with [`EXIT_RESTART`] so that its supervisor starts the new
//!    binary. A crash between the two writes leaves the link as it was, which the guard reads
//!    as "no switch happened".
//! 2. **guard** ([`guard`], `aiscout-agent update-guard`, which the unit runs before every start
//!    with the packaged binary, never the switched one): with a switch pending, it counts the
//!    start; the start after [`MAX_STARTS`], or a second start past the deadline, points the
//!    link back at the previous target and records the version as rolled back. A rolled-back
//!    version is never taken again ([`UpdateState::rolled_back`]).
//! 3. **confirm** ([`confirm`]): the new binary's first acknowledged send ends the pending
//!    switch: the update is done. A new binary still unconfirmed at the deadline ends itself
//!    with [`EXIT_RESTART`], and the guard rolls it back at the next start.
//!
//! Without a link (a binary started by hand or from a path of its own), releases are staged
//! and nothing is switched.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{io, UpdateError, UpdateState};
use crate::state_dir::{self, StateDir};

/// Exit status of a daemon that ends so that its supervisor starts the binary the link now
/// names (`EX_TEMPFAIL`; the unit's `RestartForceExitStatus`).
pub const EXIT_RESTART: u8 = 75;
/// Starts a switched-to release gets before the guard rolls it back.
pub const MAX_STARTS: u32 = 3;
/// Rolled-back versions remembered.
const MAX_ROLLED_BACK: usize = 32;

/// A switch waiting for the new binary to prove itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The version switched to.
    pub version: String,
    /// The version that switched.
    pub from_version: String,
    /// Where the link pointed before: where a rollback points it again.
    pub previous: PathBuf,
    /// When the link was switched (ms since the epoch).
    pub switched_at_ms: i64,
    /// The first acknowledged send must come before this (ms since the epoch).
    pub deadline_ms: i64,
    /// Starts the guard has counted.
    pub starts: u32,
}

/// The last switch that ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// `updated` or `rolled_back`.
    pub kind: String,
    /// The version switched to.
    pub version: String,
    /// Why, for a rollback.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// When (ms since the epoch).
    pub at_ms: i64,
}

/// What [`switch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Switched {
    /// The link now names the release: end with [`EXIT_RESTART`].
    Restart,
    /// There is no link to switch: the release stays staged.
    NoLink,
}

/// What [`guard`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guarded {
    /// No switch pending.
    Nothing,
    /// The link no longer names the pending release (a package install reset it): forgotten.
    Superseded {
        /// The release that was pending.
        version: String,
    },
    /// A start of the pending release, counted.
    Counted {
        /// The release.
        version: String,
        /// Its starts so far.
        starts: u32,
    },
    /// The pending release was rolled back.
    RolledBack {
        /// The release.
        version: String,
        /// Why.
        reason: String,
    },
}

/// `state_dir/bin/aiscout-agent`: the link the service starts.
pub fn link(state: &StateDir) -> PathBuf {
    state.root().join("bin").join("aiscout-agent")
}

/// The staged binary of `version`.
pub fn staged_binary(state: &StateDir, version: &str) -> PathBuf {
    state.update().join("versions").join(version).join("aiscout-agent")
}

/// Where `link` points, when it is a symbolic link.
fn target_of(link: &Path) -> Option<PathBuf> {
    let meta = std::fs::symlink_metadata(link).ok()?;
    meta.file_type().is_symlink().then(|| std::fs::read_link(link).ok()).flatten()
}

/// Points `link` at `target` atomically: a new link beside it, renamed over it.
fn point(link: &Path, target: &Path) -> Result<(), UpdateError> {
    let temp = state_dir::temp_path(link).map_err(io(link))?;
    std::os::unix::fs::symlink(target, &temp).map_err(io(&temp))?;
    std::fs::rename(&temp, link).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        io(link)(e)
    })
}

/// Step 1: records the switch to the staged `version` (running `from_version`) and points the
/// link at it; `deadline_ms` is how long it has to prove itself.
pub fn switch(state: &StateDir, version: &str, from_version: &str, deadline_ms: i64) -> Result<Switched, UpdateError> {
    let link = link(state);
    let Some(previous) = target_of(&link) else { return Ok(Switched::NoLink) };
    let binary = staged_binary(state, version);
    if !binary.is_file() {
        return Err(UpdateError::Io {
            path: binary.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "the staged release is gone"),
        });
    }
    let mut kept = UpdateState::load(state);
    let now = crate::now_ms();
    kept.pending = Some(Pending {
        version: version.to_string(),
        from_version: from_version.to_string(),
        previous,
        switched_at_ms: now,
        deadline_ms: now.saturating_add(deadline_ms),
        starts: 0,
    });
    kept.staged = None;
    kept.save(state)?;
    point(&link, &binary)?;
    tracing::info!(version, from_version, link = %link.display(), "switched to the staged release; restarting");
    Ok(Switched::Restart)
}

/// Step 2: before a start, counts it or rolls the pending release back (module docs).
pub fn guard(state: &StateDir, now_ms: i64) -> Result<Guarded, UpdateError> {
    let mut kept = UpdateState::load(state);
    let Some(mut pending) = kept.pending.take() else { return Ok(Guarded::Nothing) };
    let link = link(state);
    let version = pending.version.clone();
    if target_of(&link).as_deref() != Some(staged_binary(state, &version).as_path()) {
        kept.save(state)?;
        return Ok(Guarded::Superseded { version });
    }
    pending.starts = pending.starts.saturating_add(1);
    let reason = if pending.starts > MAX_STARTS {
        Some(format!("not healthy after {MAX_STARTS} starts"))
    } else if pending.starts > 1 && now_ms > pending.deadline_ms {
        let secs = (pending.deadline_ms - pending.switched_at_ms) / 1000;
        Some(format!("no acknowledged send within {secs}s of the switch"))
    } else {
        None
    };
    let Some(reason) = reason else {
        let starts = pending.starts;
        kept.pending = Some(pending);
        kept.save(state)?;
        return Ok(Guarded::Counted { version, starts });
    };
    point(&link, &pending.previous)?;
    kept.rolled_back.retain(|v| v != &version);
    kept.rolled_back.push(version.clone());
    if kept.rolled_back.len() > MAX_ROLLED_BACK {
        kept.rolled_back.remove(0);
    }
    kept.last_outcome =
        Some(Outcome { kind: "rolled_back".into(), version: version.clone(), detail: reason.clone(), at_ms: now_ms });
    kept.last_error = Some(format!("rolled back {version}: {reason}"));
    kept.save(state)?;
    Ok(Guarded::RolledBack { version, reason })
}

/// The switch waiting for `running` to prove itself, if any.
pub fn pending_for(state: &StateDir, running: &str) -> Option<Pending> {
    UpdateState::load(state).pending.filter(|p| p.version == running)
}

/// Step 3: `running` made its first acknowledged send: the pending switch to it is done.
pub fn confirm(state: &StateDir, running: &str) -> Result<bool, UpdateError> {
    let mut kept = UpdateState::load(state);
    if kept.pending.as_ref().is_none_or(|p| p.version != running) {
        return Ok(false);
    }
    kept.pending = None;
    kept.last_error = None;
    kept.last_outcome = Some(Outcome {
        kind: "updated".into(),
        version: running.to_string(),
        detail: String::new(),
        at_ms: crate::now_ms(),
    });
    kept.save(state)?;
    tracing::info!(version = running, "update confirmed healthy");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (tempfile::TempDir, StateDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(&dir.path().join("state")).unwrap();
        std::fs::create_dir_all(state.root().join("bin")).unwrap();
        let packaged = dir.path().join("usr-bin-aiscout-agent");
        std::fs::write(&packaged, b"v1").unwrap();
        std::os::unix::fs::symlink(&packaged, link(&state)).unwrap();
        let staged = staged_binary(&state, "2.0.0");
        std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
        std::fs::write(&staged, b"v2").unwrap();
        (dir, state, packaged)
    }

    #[test]
    fn a_switch_moves_the_link_and_a_confirmed_release_stays() {
        let (_dir, state, packaged) = fixture();
        assert_eq!(switch(&state, "2.0.0", "1.0.0", 60_000).unwrap(), Switched::Restart);
        assert_eq!(std::fs::read(link(&state)).unwrap(), b"v2");
        let pending = pending_for(&state, "2.0.0").unwrap();
        assert_eq!((pending.previous, pending.starts), (packaged, 0));
        assert_eq!(guard(&state, crate::now_ms()).unwrap(), Guarded::Counted { version: "2.0.0".into(), starts: 1 });
        assert!(confirm(&state, "2.0.0").unwrap());
        assert_eq!(guard(&state, crate::now_ms()).unwrap(), Guarded::Nothing);
        assert_eq!(std::fs::read(link(&state)).unwrap(), b"v2");
        let kept = UpdateState::load(&state);
        assert_eq!(kept.last_outcome.unwrap().kind, "updated");
        assert!(kept.rolled_back.is_empty());
        // Nothing left beside the link.
        let names: Vec<_> =
            std::fs::read_dir(state.root().join("bin")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("aiscout-agent")]);
    }

    #[test]
    fn a_release_that_keeps_failing_to_start_is_rolled_back_once_and_remembered() {
        let (_dir, state, _) = fixture();
        switch(&state, "2.0.0", "1.0.0", 600_000).unwrap();
        for starts in 1..=MAX_STARTS {
            assert_eq!(guard(&state, crate::now_ms()).unwrap(), Guarded::Counted { version: "2.0.0".into(), starts });
        }
        let Guarded::RolledBack { version, reason } = guard(&state, crate::now_ms()).unwrap() else { panic!() };
        assert_eq!((version.as_str(), reason.as_str()), ("2.0.0", "not healthy after 3 starts"));
        assert_eq!(std::fs::read(link(&state)).unwrap(), b"v1");
        let kept = UpdateState::load(&state);
        assert_eq!(kept.rolled_back, vec!["2.0.0".to_string()]);
        assert!(kept.last_error.unwrap().contains("rolled back 2.0.0"));
        assert_eq!(guard(&state, crate::now_ms()).unwrap(), Guarded::Nothing);
        assert!(!confirm(&state, "2.0.0").unwrap());
    }

    #[test]
    fn a_second_start_past_the_deadline_rolls_back_and_a_reset_link_is_left_alone() {
        let (_dir, state, packaged) = fixture();
        switch(&state, "2.0.0", "1.0.0", 10_000).unwrap();
        let late = crate::now_ms() + 20_000;
        assert!(matches!(guard(&state, late).unwrap(), Guarded::Counted { starts: 1, .. }));
        assert!(
            matches!(guard(&state, late).unwrap(), Guarded::RolledBack { ref reason, .. } if reason.contains("within 10s"))
        );

        // A package install points the link at the packaged binary again: the pending switch
        // is forgotten, the link left as the package set it.
        std::fs::create_dir_all(staged_binary(&state, "2.0.1").parent().unwrap()).unwrap();
        std::fs::write(staged_binary(&state, "2.0.1"), b"v2.0.1").unwrap();
        switch(&state, "2.0.1", "1.0.0", 10_000).unwrap();
        point(&link(&state), &packaged).unwrap();
        assert_eq!(guard(&state, crate::now_ms()).unwrap(), Guarded::Superseded { version: "2.0.1".into() });
        assert_eq!(std::fs::read(link(&state)).unwrap(), b"v1");
    }

    #[test]
    fn without_a_link_nothing_is_switched() {
        let (_dir, state, _) = fixture();
        std::fs::remove_file(link(&state)).unwrap();
        assert_eq!(switch(&state, "2.0.0", "1.0.0", 60_000).unwrap(), Switched::NoLink);
        assert!(UpdateState::load(&state).pending.is_none());
    }
}
