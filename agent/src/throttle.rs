//! Keeping the agent cheap on the hosts it inventories: low CPU and I/O priority for the whole
//! daemon, a CPU budget for scans, and the heap a scan freed handed back to the kernel.
//!
//! # Priority
//! [`lower_priority`] runs once, on the main thread, before the daemon starts any thread: on
//! Linux a thread's nice value and I/O priority belong to the thread and are inherited by the
//! threads it creates, so every runtime and scan worker inherits them. Raising the nice value
//! needs no privilege; the idle I/O class needs none either since Linux 2.6.25. A failure is
//! logged and the agent runs at normal priority: it is never a reason not to run.
//!
//! # CPU budget
//! A [`CpuBudget`] paces a scan so that the process's CPU time since the scan began stays
//! within `percent` % of one CPU over the wall time since then. Scan workers call
//! [`CpuBudget::pace`] at every file and every hashed chunk; at most every [`CHECK_EVERY`] one
//! caller reads the process CPU clock and, when the scan is ahead of its budget, sets a resume
//! time that every worker then sleeps until. Sleeps are at most [`MAX_SLEEP`] each, so a
//! shutdown is never held up long.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the process CPU clock is read.
pub const CHECK_EVERY: Duration = Duration::from_millis(20);
/// Longest single sleep of a worker.
pub const MAX_SLEEP: Duration = Duration::from_millis(500);

/// `IOPRIO_WHO_PROCESS` of `linux/ioprio.h` (a thread id; 0 is the calling thread).
const IOPRIO_WHO_PROCESS: libc::c_long = 1;
/// `IOPRIO_CLASS_IDLE`.
const IOPRIO_CLASS_IDLE: libc::c_long = 3;
/// `IOPRIO_CLASS_SHIFT`.
const IOPRIO_CLASS_SHIFT: u32 = 13;

/// Errors of [`lower_priority`] (each logged, none fatal).
#[derive(Debug, thiserror::Error)]
pub enum PriorityError {
    /// `setpriority` failed.
    #[error("cannot set nice value {nice}: {source}")]
    Nice {
        /// The value asked for.
        nice: i32,
        /// The cause.
        source: std::io::Error,
    },
    /// `ioprio_set` failed.
    #[error("cannot enter the idle i/o class: {0}")]
    IoIdle(std::io::Error),
}

/// Sets the calling thread's nice value to `nice` (when it is higher than the current one) and,
/// when `io_idle`, its I/O class to idle. Call it before creating threads (module docs).
pub fn lower_priority(nice: i32, io_idle: bool) -> Vec<PriorityError> {
    let mut errors = Vec::new();
    let current = rustix::process::getpriority_process(None).unwrap_or(0);
    if nice > current {
        if let Err(e) = rustix::process::setpriority_process(None, nice) {
            errors.push(PriorityError::Nice { nice, source: e.into() });
        }
    }
    if io_idle {
        if let Err(e) = set_io_idle() {
            errors.push(PriorityError::IoIdle(e));
        }
    }
    errors
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT)`: glibc has no
/// wrapper and neither has rustix, so this is the raw system call.
#[allow(unsafe_code)]
fn set_io_idle() -> std::io::Result<()> {
    let value = IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT;
    // SAFETY: ioprio_set takes three integers and no pointers; it changes only the calling
    // thread's I/O scheduling class, which no Rust invariant depends on.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0 as libc::c_long, value) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The I/O class of the calling thread, as `ioprio_get` gives it (for tests and `check`).
#[allow(unsafe_code)]
pub fn io_class() -> std::io::Result<u32> {
    // SAFETY: as in `set_io_idle`, integers only; ioprio_get reads the calling thread's class.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0 as libc::c_long) };
    u32::try_from(rc).map(|v| v >> IOPRIO_CLASS_SHIFT).map_err(|_| std::io::Error::last_os_error())
}

/// Returns the heap memory that a scan freed to the kernel (`malloc_trim(0)`): glibc keeps
/// freed memory in per-thread arenas, and a daemon whose scans run on short-lived threads
/// would otherwise hold each scan's peak for good. A no-op off glibc.
#[allow(unsafe_code)]
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes an integer, has no preconditions and only returns free
        // heap pages to the kernel; no live allocation moves.
        let _ = unsafe { libc::malloc_trim(0) };
    }
}

/// The process's CPU time (every thread), from `CLOCK_PROCESS_CPUTIME_ID`.
pub fn process_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0))
}

/// Paces a scan to a share of one CPU (module docs).
#[derive(Debug)]
pub struct CpuBudget {
    /// The share of one CPU, in (0, 1].
    share: f64,
    /// When the scan began.
    start: Instant,
    /// Process CPU time then.
    cpu_at_start: Duration,
    /// Nanoseconds after `start` of the next clock reading.
    next_check_ns: AtomicU64,
    /// Nanoseconds after `start` until which workers sleep.
    resume_at_ns: AtomicU64,
}

impl CpuBudget {
    /// A budget of `percent` % of one CPU (clamped to 1–100), starting now.
    pub fn new(percent: u32) -> Self {
        Self {
            share: f64::from(percent.clamp(1, 100)) / 100.0,
            start: Instant::now(),
            cpu_at_start: process_cpu_time(),
            next_check_ns: AtomicU64::new(0),
            resume_at_ns: AtomicU64::new(0),
        }
    }

    fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Sleeps while the scan is ahead of its budget (module docs).
    pub fn pace(&self) {
        let now = self.elapsed_ns();
        let check_at = self.next_check_ns.load(Ordering::Relaxed);
        if now >= check_at
            && self
                .next_check_ns
                .compare_exchange(
                    check_at,
                    now.saturating_add(nanos(CHECK_EVERY)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            let used = process_cpu_time().saturating_sub(self.cpu_at_start);
            // The wall time this much CPU may take at the budget.
            let due = Duration::from_secs_f64(used.as_secs_f64() / self.share);
            self.resume_at_ns.store(nanos(due), Ordering::Relaxed);
        }
        let resume = self.resume_at_ns.load(Ordering::Relaxed);
        if resume > now {
            std::thread::sleep(Duration::from_nanos(resume - now).min(MAX_SLEEP));
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_cpu_time() -> Duration {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0))
    }

    /// Burns `d` of this thread's CPU time, pacing as a scan worker does.
    fn burn(budget: Option<&CpuBudget>, d: Duration) {
        let start = thread_cpu_time();
        let mut x = 0u64;
        while thread_cpu_time().saturating_sub(start) < d {
            for i in 0..10_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            if let Some(b) = budget {
                b.pace();
            }
        }
    }

    #[test]
    fn a_budget_stretches_cpu_work_over_wall_time() {
        let budget = CpuBudget::new(25);
        let wall = Instant::now();
        burn(Some(&budget), Duration::from_millis(100));
        // 100 ms of this thread's CPU at 25 % of one CPU takes about 400 ms of wall time
        // (other test threads add process CPU time, which only lengthens it).
        assert!(wall.elapsed() >= Duration::from_millis(300), "{:?}", wall.elapsed());
    }

    #[test]
    fn a_full_budget_does_not_sleep() {
        let budget = CpuBudget::new(100);
        let wall = Instant::now();
        burn(Some(&budget), Duration::from_millis(50));
        assert!(wall.elapsed() < Duration::from_secs(5), "{:?}", wall.elapsed());
        assert_eq!(CpuBudget::new(0).share, 0.01);
        assert_eq!(CpuBudget::new(500).share, 1.0);
    }

    #[test]
    fn lowering_priority_takes_effect_on_a_new_thread() {
        let (nice, class) = std::thread::spawn(|| {
            let errors = lower_priority(12, true);
            assert!(errors.is_empty(), "{errors:?}");
            // A thread created now inherits both.
            std::thread::spawn(|| (rustix::process::getpriority_process(None).unwrap_or(0), io_class().ok()))
                .join()
                .unwrap_or((0, None))
        })
        .join()
        .unwrap_or((0, None));
        assert_eq!((nice, class), (12, Some(IOPRIO_CLASS_IDLE as u32)));
    }
}
