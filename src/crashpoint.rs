//! Named crash points, for the crash tests (tests/crash.rs): a test starts
//! the daemon with `PRIVATE_REGISTRY_CRASH_AT=<name>` and the process
//! SIGKILLs itself when it reaches [`here`] with that name, so every step
//! of a multi-step write can be interrupted on purpose instead of by a
//! lucky timer. Unset (production), each point costs one load and a
//! comparison with `None`.

use std::sync::OnceLock;

/// The variable naming the point at which to die.
pub const VAR: &str = "PRIVATE_REGISTRY_CRASH_AT";

/// Read once: the environment does not change while the daemon runs, and
/// reading it on every request would cost a lock.
static CRASH_AT: OnceLock<Option<String>> = OnceLock::new();

/// Kills the process with SIGKILL if [`VAR`] names `point`. The line on
/// stderr lets a test tell this death from any other.
pub fn here(point: &str) {
    let at = CRASH_AT.get_or_init(|| std::env::var(VAR).ok());
    if at.as_deref() == Some(point) {
        eprintln!("crash point {point}: killing the process (SIGKILL)");
        // SAFETY: kill(2) with our own pid and a valid signal number touches
        // no memory of ours.
        unsafe {
            nix::libc::kill(nix::libc::getpid(), nix::libc::SIGKILL);
        }
        // Not reached: a pending SIGKILL ends the process before kill(2)
        // returns to it.
        std::process::abort();
    }
}
