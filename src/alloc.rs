//! Allocator settings for a daemon that moves large buffers between threads.
//!
//! glibc gives each thread that allocates its own arena (up to eight per
//! core) and, once a large block has been freed, serves later large blocks
//! from those arenas instead of fresh mappings, so freed upload and pull
//! buffers stayed resident in many arenas at once: 41 MiB peak after a few
//! 1 GiB pushes and pulls (bench/README.md). Two arenas bring that to about
//! 26 MiB with no measurable loss of throughput.

/// Call once, before any thread is started.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
}
