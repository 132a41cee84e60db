//! The WAL checkpointer: a thread with its own connection that copies committed pages from the
//! WAL into the database file, so that the writer does not.
//!
//! By default SQLite checkpoints inside the commit that takes the WAL past 1,000 pages: the
//! batch that happens to commit then copies and fsyncs everyone's pages while it holds the one
//! connection every other call waits for (measured: 7 % of a loaded collector's CPU, all of it
//! on that path; docs/scale.md). Here a `PASSIVE` checkpoint runs every [`EVERY`] on another
//! core: it never blocks the writer or a reader, and copies what no reader still needs. The
//! writer keeps an automatic checkpoint at [`BACKSTOP_PAGES`] in case this thread falls behind
//! or fails, so the WAL stays bounded whatever happens here; when the thread cannot start, the
//! writer keeps SQLite's default of 1,000 pages.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tracing::{debug, warn};

use super::BUSY_TIMEOUT;

/// How often the thread checkpoints.
pub(super) const EVERY: Duration = Duration::from_millis(100);

/// WAL pages (4 KiB) past which the writer checkpoints itself: 64 MiB.
pub(super) const BACKSTOP_PAGES: i64 = 16_384;

/// The running thread; stopped and joined when dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (already open in WAL mode) on a connection
    /// of its own, opened here so that a failure is the caller's to handle.
    pub(super) fn start(path: &Path) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (flag, path) = (Arc::clone(&stop), path.to_owned());
        let thread =
            std::thread::Builder::new().name("sqlite-checkpoint".into()).spawn(move || run(&conn, &path, &flag))?;
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, path: &Path, stop: &(Mutex<bool>, Condvar)) {
    let (stopped, wake) = stop;
    let mut failing = false;
    loop {
        let guard = stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = wake.wait_timeout_while(guard, EVERY, |s| !*s).unwrap_or_else(PoisonError::into_inner);
        if *guard {
            return;
        }
        drop(guard);
        // (busy, WAL pages, pages copied)
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        }) {
            Ok((_, wal, copied)) => {
                failing = false;
                if copied > 0 {
                    debug!(path = %path.display(), wal_pages = wal, copied, "wal checkpoint");
                }
            }
            Err(e) if !failing => {
                failing = true;
                warn!(path = %path.display(), error = %e, "wal checkpoint failed, retrying (the writer's backstop holds)");
            }
            Err(_) => {}
        }
    }
}
