//! Step 4, **reload** (SIGHUP): a running daemon takes a new validated configuration, except
//! the keys it can only apply at start ([`RESTART_ONLY`]), which keep their running values
//! until the next start and are named in the status ([`crate::fleet::status`]).
//!
//! Everything else applies from the next cycle: the collector address and trust (a channel is
//! made for every send), the scan roots, excludes and sections, the schedule, the CPU budget,
//! the transport limits. A reload is followed by a full inventory, so the inventory the
//! collector holds reflects the new roots and sections at once.

use super::Config;

/// Keys a running daemon cannot change, with why.
pub const RESTART_ONLY: &[(&str, &str)] = &[
    ("state_dir", "the stores and credentials are open there"),
    ("identity", "the host identity was stated at enrollment"),
    ("watch", "the file watcher is set up at start"),
    ("throttle.nice", "the priority is set before any thread starts"),
    ("throttle.io_idle", "the I/O class is set before any thread starts"),
    ("spool.max_bytes", "the spool is opened with its cap"),
    ("log", "logging is set up at start"),
];

impl Config {
    /// `new` as the running configuration, keeping this one's [`RESTART_ONLY`] keys; returns
    /// it and the keys whose change waits for a restart.
    pub fn reloaded(&self, new: Config) -> (Config, Vec<&'static str>) {
        let mut merged = new;
        let mut pending = Vec::new();
        let mut keep = |changed: bool, key: &'static str| {
            if changed {
                pending.push(key);
            }
        };
        keep(merged.state_dir != self.state_dir, "state_dir");
        keep(merged.identity != self.identity, "identity");
        keep(merged.watch != self.watch, "watch");
        keep(merged.throttle.nice != self.throttle.nice, "throttle.nice");
        keep(merged.throttle.io_idle != self.throttle.io_idle, "throttle.io_idle");
        keep(merged.spool != self.spool, "spool.max_bytes");
        keep(merged.log != self.log, "log");
        merged.state_dir.clone_from(&self.state_dir);
        merged.identity = self.identity.clone();
        merged.watch = self.watch.clone();
        merged.throttle.nice = self.throttle.nice;
        merged.throttle.io_idle = self.throttle.io_idle;
        merged.spool = self.spool.clone();
        merged.log = self.log.clone();
        (merged, pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn live_keys_apply_and_restart_only_keys_wait() {
        let old = Config::default();
        let mut new = Config::default();
        new.scan.roots = vec![PathBuf::from("/data")];
        new.throttle.cpu_percent = 10;
        new.collector.url = Some("https://other:7443".into());
        let (merged, pending) = old.reloaded(new.clone());
        assert_eq!(merged, new);
        assert!(pending.is_empty());

        new.state_dir = PathBuf::from("/elsewhere");
        new.throttle.nice = 0;
        new.log.json = !old.log.json;
        let (merged, pending) = old.reloaded(new.clone());
        assert_eq!(pending, ["state_dir", "throttle.nice", "log"]);
        assert_eq!(merged.state_dir, old.state_dir);
        assert_eq!(merged.throttle.nice, old.throttle.nice);
        assert_eq!(merged.log, old.log);
        assert_eq!(merged.scan.roots, new.scan.roots);
        assert_eq!(merged.throttle.cpu_percent, 10);
    }

    #[test]
    fn every_restart_only_key_is_held_back_alone() {
        type Change = (&'static str, fn(&mut Config));
        let changes: [Change; 7] = [
            ("state_dir", |c| c.state_dir = PathBuf::from("/x")),
            ("identity", |c| c.identity.hostname = Some("other".into())),
            ("watch", |c| c.watch.max_watches += 1),
            ("throttle.nice", |c| c.throttle.nice -= 1),
            ("throttle.io_idle", |c| c.throttle.io_idle = !c.throttle.io_idle),
            ("spool.max_bytes", |c| c.spool.max_bytes = super::super::ByteSize(1)),
            ("log", |c| c.log.json = !c.log.json),
        ];
        let keys: Vec<&str> = changes.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, RESTART_ONLY.iter().map(|(k, _)| *k).collect::<Vec<_>>());
        let old = Config::default();
        for (key, change) in changes {
            let mut new = old.clone();
            change(&mut new);
            let (merged, pending) = old.reloaded(new);
            assert_eq!(pending, [key]);
            assert_eq!(merged, old, "{key} was applied");
        }
    }
}
