//! Keeping rayon's other workers awake through a loop of short parallel phases.
//!
//! A training step forks five times (gather, towers forward, the loss's two halves, towers
//! backward, Adagrad), each phase a few hundred microseconds. Between
//! phases rayon's idle workers yield and then sleep, and a fork that finds them asleep waits for
//! a wake-up: on the 2-vCPU VM, a `rayon::join` whose second half had to be stolen started it
//! 28–44 µs later at the median (up to 300 µs at the 90th percentile), against 0.1 µs for a
//! thread spinning on an atomic (scratch measurements; `RESULTS.md`, issue 12, sixth round).
//! [`with_spinning_workers`] runs a loop on one worker while the others spin in
//! `rayon::yield_now`, which steals and runs any job the loop forks, as OpenMP's active wait
//! policy does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Runs `body` on one worker of the current rayon pool (the global one outside a pool) while
/// every other worker spins until it returns, running the jobs `body` forks as soon as they
/// appear. The spinning costs the other cores' time while `body` runs serial code: meant for
/// loops of short parallel phases that own the machine, such as training steps.
///
/// Work that other threads inject into the pool meanwhile runs on the spinners too
/// (`yield_now` takes injected jobs). A panic in `body` is resumed here after the spinners
/// have stopped.
pub fn with_spinning_workers<R: Send>(body: impl FnOnce() -> R + Send) -> R {
    let body = Mutex::new(Some(body));
    let result = Mutex::new(None);
    let done = AtomicBool::new(false);
    rayon::broadcast(|context| {
        if context.index() == 0 {
            // Released on return and on a panic alike, so no spinner waits forever.
            let _release = Release(&done);
            let body = body.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
            let value = body.expect("the body runs once, on worker 0")();
            *result.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(value);
        } else {
            while !done.load(Ordering::Acquire) {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::hint::spin_loop();
                }
            }
        }
    });
    result.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()).expect("worker 0 ran the body")
}

/// Sets the flag when dropped.
struct Release<'a>(&'a AtomicBool);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_runs_once_and_its_forks_run_on_the_spinning_workers() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let (value, threads) = pool.install(|| {
            with_spinning_workers(|| {
                let mut threads = std::collections::BTreeSet::new();
                // Both halves take a while, as a step's do: the second is there to be stolen
                // while the first runs.
                let half = || {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                    rayon::current_thread_index()
                };
                for _ in 0..50 {
                    let (a, b) = rayon::join(half, half);
                    threads.extend([a, b]);
                }
                (42, threads)
            })
        });
        assert_eq!(value, 42);
        assert!(threads.len() >= 2, "every fork ran on one thread: {threads:?}");
    }

    #[test]
    fn one_thread_runs_the_body_alone() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(pool.install(|| with_spinning_workers(|| rayon::join(|| 1, || 2))), (1, 2));
    }

    #[test]
    fn a_panic_in_the_body_reaches_the_caller_and_stops_the_spinners() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| with_spinning_workers(|| panic!("inside the body")))
        }));
        assert!(outcome.is_err());
        // The pool is usable afterwards: no worker is left spinning.
        assert_eq!(pool.install(|| rayon::join(|| 3, || 4)), (3, 4));
    }
}
