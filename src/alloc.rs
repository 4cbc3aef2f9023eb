//! Allocator settings for a daemon that moves large buffers between threads.
//!
//! glibc gives each thread that allocates its own arena (up to eight per
//! core) and, once a large block has been freed, serves later large blocks
//! from those arenas instead of fresh mappings, so freed upload and pull
//! buffers stayed resident in many arenas at once: 41 MiB peak after a few
//! 1 GiB pushes and pulls (bench/README.md). Two arenas bring that to about
//! 26 MiB with no measurable loss of throughput.
//!
//! The opposite problem inside an arena: request bodies arrive in fresh
//! buffers, and glibc handed the freed top of the heap back to the kernel
//! as soon as 128 KiB of it was free, so the next buffers were faulted in
//! and zeroed again: 25,000-180,000 page faults for three 1 GiB pushes and a
//! pull, 4% of the server's time in perf. Keeping up to 8 MiB free at the top
//! (and serving blocks under 4 MiB from the heap, not from fresh mappings)
//! brings that to about 3,500 and pushes were 3-4% faster, plain and TLS,
//! for 2-6 MiB more resident memory after the first large transfer.

/// Call once, before any thread is started.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
        nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, 8 << 20);
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// Hands free memory inside the heap back to the kernel. A full usage scan
/// frees far more than it keeps (listings, digests as text, per-repository
/// sets) in small blocks between the ones it keeps, which the top-of-heap
/// trim never reaches: without this, resident memory after a scan of
/// 20,000 repositories stayed about twice what the inventory holds.
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}
