//! How many threads the host kernels use: one number for the whole process, read by the
//! convolution kernels' sample splits and handed to `matrixmultiply` (`MATMUL_NUM_THREADS`).
//!
//! The convolution kernels split their sums over samples by thread, so the thread count is
//! part of a convolution net's bits; `matrixmultiply` splits output blocks, which leaves the
//! bits alone. A run that must continue bit for bit elsewhere fixes the count.

use std::sync::atomic::{AtomicUsize, Ordering};

/// 0: not set, use the cores this process may run on.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// The host kernels' thread count: as set by [`set_host_threads`], else the cores this
/// process may run on (its CPU affinity, so `taskset -c 0` gives 1).
pub fn host_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, |t| t.get()),
        n => n,
    }
}

/// Fixes the host kernels' thread count (at least 1).
///
/// `matrixmultiply` reads `MATMUL_NUM_THREADS` once, at its first product; a caller that wants
/// it to agree sets that variable to the same count before any product runs (the binary does,
/// before it opens a device).
pub fn set_host_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_the_affinity_until_set() {
        // Setting it here would race with the convolution tests that compare bits between
        // two runs in this process; the binary's `--threads` test sets it.
        let cores = std::thread::available_parallelism().map_or(1, |t| t.get());
        assert_eq!(host_threads(), cores);
    }
}
