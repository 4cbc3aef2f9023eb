//! `privateregistry.gc`: garbage collection run by the daemon itself on a
//! schedule. Off by default, as collection removes data; the same
//! collection `private-registry garbage-collect` runs, with the same
//! grace-period protocol (see `crate::gc`).

use super::duration::GoDuration;
use super::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The shortest grace period accepted while serving: it must exceed the
/// time one request takes between touching a blob and linking it.
const MIN_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct ScheduledGc {
    pub enabled: bool,
    /// Time from the end of one collection to the start of the next.
    pub interval: GoDuration,
    /// Also remove manifests no tag reaches (`--delete-untagged`).
    pub deleteuntagged: bool,
    /// Keep anything written or referenced this recently (`--grace`).
    pub grace: GoDuration,
    /// Only log what would be removed.
    pub dryrun: bool,
}

impl Default for ScheduledGc {
    fn default() -> Self {
        ScheduledGc {
            enabled: false,
            interval: GoDuration(Duration::from_secs(24 * 3600)),
            deleteuntagged: false,
            grace: GoDuration(Duration::from_secs(3600)),
            dryrun: false,
        }
    }
}

impl ScheduledGc {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval.0.is_zero() {
            return Err(invalid(
                "privateregistry.gc.interval",
                "expected a positive duration",
            ));
        }
        if self.grace.0 < MIN_GRACE {
            return Err(invalid(
                "privateregistry.gc.grace",
                "expected at least 1s: the daemon serves while it collects, and a zero grace period could remove a blob a push is linking",
            ));
        }
        Ok(())
    }
}
