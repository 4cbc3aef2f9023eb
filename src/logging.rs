//! A plain stderr logger: one line per message with time, level and origin.
//! Requests log under the `access` target.

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let now = crate::timefmt::rfc3339(std::time::SystemTime::now());
        let target = if r.target() == "access" {
            "access"
        } else {
            "registry"
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "{now} {:<5} {target}: {}",
            r.level(),
            r.args()
        );
    }

    fn flush(&self) {}
}

pub fn init(level: LevelFilter) {
    static LOGGER: StderrLogger = StderrLogger;
    // A second call (tests) keeps the first logger and only changes the level.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
