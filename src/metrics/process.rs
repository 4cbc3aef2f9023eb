//! The `process_*` series every Prometheus client library exports, under the
//! same names and meanings, so dashboards and alerts written for any exporter
//! (CPU use, memory growth, descriptors running out, restarts) work unchanged.
//! Read from `/proc/self` only: the packaged service runs with
//! `ProcSubset=pid`, which hides the rest of `/proc`. A figure that cannot be
//! read is left out rather than reported as 0, which would look like a value.

use super::head;
use std::fmt::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static STARTED: OnceLock<f64> = OnceLock::new();

/// Notes the start time; called first thing in `main`. The kernel's own
/// record (`/proc/self/stat` field 22) counts from boot, and the boot time
/// is in `/proc/stat`, which `ProcSubset=pid` hides.
pub fn started() {
    STARTED.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    });
}

/// The process series, each with its HELP and TYPE lines.
pub fn render(o: &mut String) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let series = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            cpu_seconds(&stat),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            status_kib(&status, "VmRSS:").map(|k| k * 1024.0),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            status_kib(&status, "VmSize:").map(|k| k * 1024.0),
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            open_fds(),
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max_fds(&limits),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            STARTED.get().copied(),
        ),
    ];
    for (name, kind, help, value) in series {
        if let Some(v) = value {
            head(o, name, kind, help);
            let _ = writeln!(o, "{name} {v}");
        }
    }
}

/// utime plus stime (fields 14 and 15), in clock ticks. The fields are
/// counted after the command name's closing parenthesis, since the name
/// itself may hold spaces and parentheses.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 3 (the state) is the first after the name.
    let ticks = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    Some((ticks(14)? + ticks(15)?) / ticks_per_second()?)
}

fn ticks_per_second() -> Option<f64> {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) };
    (hz > 0).then_some(hz as f64)
}

/// A `Key:   1234 kB` line of `/proc/self/status`.
fn status_kib(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Entries of `/proc/self/fd`, not counting the descriptor that lists them.
fn open_fds() -> Option<f64> {
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count();
    Some(n.saturating_sub(1) as f64)
}

/// The soft limit on open files, which is the one `open` runs into.
fn max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_after_the_command_name() {
        // A name with a space and a parenthesis; utime 250, stime 150 ticks.
        let mut stat = String::from("42 (a) b) S");
        for field in 4..=52 {
            let v = match field {
                14 => 250,
                15 => 150,
                _ => 7,
            };
            stat.push_str(&format!(" {v}"));
        }
        let hz = ticks_per_second().unwrap();
        assert_eq!(cpu_seconds(&stat), Some(400.0 / hz));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn limits_and_status_lines_parse() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_fds(limits), Some(1024.0));
        assert_eq!(max_fds("Max open files  unlimited unlimited files\n"), None);
        let status = "Name:\tx\nVmSize:\t  123 kB\nVmRSS:\t    45 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(45.0));
        assert_eq!(status_kib(status, "VmSize:"), Some(123.0));
    }
}
