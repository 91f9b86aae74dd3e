//! The tokio runtime the guard runs on. On one thread it is tokio's single-threaded scheduler:
//! with one worker a work-stealing scheduler has no one to steal from, only bookkeeping to do
//! (atomic run queues, a shared injector). In the proxy benchmark the single-threaded one cost
//! 0.4 to 1.8 us less CPU per request (means of two series; crates/pf-guard/BENCHMARKS.md,
//! `PF_BENCH_MULTI_THREAD`). On more threads it is the multi-threaded scheduler with that many
//! workers.

use std::num::NonZeroUsize;

/// Threads the guard runs on unless told otherwise: the CPUs this process may use (the
/// standard library's count, which honours cgroup CPU quotas and affinity masks), at least 1.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// A runtime (timers and I/O enabled) that runs tasks on `threads` threads (0 counts as 1).
/// With one, tasks run on whichever thread is inside [`tokio::runtime::Runtime::block_on`],
/// so that thread must stay in it while the guard serves.
pub fn build(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread each spawned task ran on, for `n` tasks spawned from `block_on`.
    fn task_threads(rt: &tokio::runtime::Runtime, n: usize) -> Vec<std::thread::ThreadId> {
        rt.block_on(async {
            let mut handles = Vec::new();
            for _ in 0..n {
                handles.push(tokio::spawn(async { std::thread::current().id() }));
            }
            let mut ids = Vec::new();
            for h in handles {
                ids.push(h.await.expect("task"));
            }
            ids
        })
    }

    #[test]
    fn one_thread_runs_every_task_on_the_caller() {
        let rt = build(1).expect("runtime");
        let me = std::thread::current().id();
        assert!(task_threads(&rt, 8).iter().all(|id| *id == me));
        // Zero is taken as one, not refused.
        let rt = build(0).expect("runtime");
        assert!(task_threads(&rt, 2).iter().all(|id| *id == me));
    }

    #[test]
    fn more_threads_run_tasks_off_the_caller_with_timers() {
        let rt = build(2).expect("runtime");
        let me = std::thread::current().id();
        assert!(task_threads(&rt, 8).iter().all(|id| *id != me));
        // Timers work (enable_all).
        rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(1)).await });
    }

    #[test]
    fn the_default_is_at_least_one_thread() {
        assert!(default_threads() >= 1);
    }
}
