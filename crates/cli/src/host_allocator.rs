//! glibc's allocator told to keep freed memory for reuse.
//!
//! The host passes allocate fresh multi-megabyte buffers for every layer of every pass (a
//! convyu activation over 1200 images is 28 MB). By default glibc hands the top of the heap
//! back to the kernel as soon as 128 KiB of it are free, so the next pass's buffer of the same
//! size is faulted in again, page by page: ≈ 0.5 ms per MB on this project's machines, about 15%
//! of a convyu GD step (docs/performance.md, attempt 6). Raising the trim threshold and the
//! top pad keeps that memory mapped.
//!
//! Blocks above glibc's mmap threshold (32 MiB at most) are mappings of their own, unmapped on
//! free, so they were faulted in afresh on every pass too: a block of 20 directions of the
//! 784–2048–10 net is 130 MB, a convyu R-pass block over 1200 images 550 MB. Turning glibc's
//! own mappings off (`M_MMAP_MAX` = 0) serves them from the heap as well, whose pages stay:
//! burn's 128 MiB `x · 1` went from 3.1–4.0 to 13–14.6 GB/s, and a block of 20 Hessian products
//! of that net from 12.9–14.3 to 6.8–7.7 ms per direction (attempt 13). The price: freed heap
//! stays mapped, so a process's resident memory stays near its peak between passes, or above
//! it where the heap fragments. A worker thread's block beyond its arena's 64 MiB heap is still a
//! mapping of its own (glibc maps it whatever `M_MMAP_MAX` says). Results are unchanged: only
//! where the bytes live differs. A user's own `MALLOC_*` settings win.

/// Sets glibc's trim threshold (1 GiB), top pad (64 MiB) and mmap threshold (32 MiB, its
/// maximum), and turns its own mappings of large blocks off, unless the environment sets any
/// `MALLOC_*` tunable. Call before threads start.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let user_tuned = std::env::vars_os().any(|(k, _)| {
            let k = k.to_string_lossy();
            k.starts_with("MALLOC_") || k == "GLIBC_TUNABLES"
        });
        if user_tuned {
            return;
        }
        // SAFETY: mallopt only changes glibc's allocation parameters; called from main before
        // any other thread exists. A refused value (return 0) leaves glibc's default, which is
        // correct, only slower.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_TOP_PAD, 64 << 20);
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_MMAP_MAX, 0);
        }
    }
}
