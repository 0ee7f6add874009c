//! The ledger thread's CPU priority: below the threads that serve requests.
//!
//! Its commits are bookkeeping (tens of microseconds of SQLite work per batch) that no client
//! waits for. On a core it shares with a runtime worker, a commit that has the CPU when a request
//! arrives delays that request by as much (measured: p99 at concurrency 1 with the gateway on one
//! core under real-time round-robin, 350 µs against 280 µs once the commit yields; docs/bench.md).
//! So on Linux the thread runs under `SCHED_BATCH`: its fair share of the CPU and its nice value
//! are unchanged (it cannot fall behind under load), but it never preempts another thread when it
//! wakes; and when the gateway was started under a real-time policy (`chrt -r`), the ledger
//! thread leaves it, so the workers always come first. Elsewhere the operating system's default
//! stays.

/// Moves the calling thread to `SCHED_BATCH`. A refusal is only logged: the ledger works the
/// same either way.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // `sched_setscheduler` has no safe wrapper in the crates izzi uses.
pub(super) fn lower() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` that outlives the call; pid 0 is the calling
    // thread, and changing its own policy touches no memory of this process.
    let failed = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &raw const param) } != 0;
    if failed {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "the ledger thread keeps its scheduling policy"
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn lower() {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The calling thread's scheduling policy, from `/proc` (field 41 of `stat`).
    fn policy() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc is mounted");
        // The command name (field 2) may hold spaces; the fields after it are plain numbers.
        let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
        let field = after_name.split(' ').nth(38).expect("field 41");
        field.parse().expect("a number")
    }

    #[test]
    fn the_calling_thread_moves_to_batch_and_no_other() {
        let before = policy();
        assert_ne!(before, libc::SCHED_BATCH);
        let there = std::thread::spawn(|| {
            super::lower();
            policy()
        })
        .join()
        .expect("the thread ran");
        assert_eq!(there, libc::SCHED_BATCH);
        assert_eq!(policy(), before);
    }
}
