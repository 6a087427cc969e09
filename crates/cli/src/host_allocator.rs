//! glibc's allocator told to keep freed memory for reuse.
//!
//! The host passes allocate fresh multi-megabyte buffers for every layer of every pass (a
//! convyu activation over 1200 images is 28 MB). By default glibc hands the top of the heap
//! back to the kernel as soon as 128 KiB of it are free, so the next pass's buffer of the same
//! size is faulted in again, page by page: ≈ 0.5 ms per MB on this project's machines, about 15%
//! of a convyu GD step (docs/performance.md, attempt 6). Raising the trim threshold and the
//! top pad keeps that memory mapped, and the largest buffers below glibc's 32 MiB ceiling
//! come from the heap rather than from fresh mappings. Results are unchanged: only where the
//! bytes live differs. A user's own `MALLOC_*` settings win.

/// Sets glibc's trim threshold (1 GiB), top pad (64 MiB) and mmap threshold (32 MiB, its
/// maximum), unless the environment sets any `MALLOC_*` tunable. Call before threads start.
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
        }
    }
}
