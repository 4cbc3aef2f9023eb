//! What one collection did, as the command prints it and the daemon logs it.

use super::Report;
use crate::cli::count;
use crate::config::duration::GoDuration;
use crate::timefmt::rfc3339;

impl Report {
    /// One line per removed (or, dry, removable) manifest and blob, with the
    /// summary `N blobs marked, M blobs eligible for deletion` between.
    pub fn lines(&self, dry_run: bool) -> Vec<String> {
        let verb = if dry_run { "would delete" } else { "deleted" };
        let mut out = vec![];
        if self.recovered > 0 {
            out.push(format!(
                "put back {} an interrupted collection had set aside",
                count(self.recovered, "blob or manifest", "blobs and manifests")
            ));
        }
        for (repo, d) in &self.manifests_deleted {
            out.push(format!("{verb} manifest {repo}@{d}"));
        }
        out.push(format!(
            "{} marked, {} eligible for deletion",
            count(self.marked, "blob", "blobs"),
            count(self.eligible, "blob", "blobs")
        ));
        out.extend(self.held_line());
        for d in &self.blobs_deleted {
            out.push(format!("{verb} blob {d}"));
        }
        if self.links_removed > 0 {
            out.push(format!(
                "removed {} to deleted blobs",
                count(self.links_removed, "repository link", "repository links")
            ));
        }
        out
    }

    /// Why blobs `du` counts as reclaimable were left, and until when.
    fn held_line(&self) -> Option<String> {
        let until = rfc3339(self.held_until?);
        let when = match self.held {
            1 => format!("eligible at {until}"),
            _ => format!("the last eligible at {until}"),
        };
        Some(format!(
            "{} unreferenced but younger than the grace period ({}): kept, {when}",
            count(self.held, "blob", "blobs"),
            GoDuration(self.grace)
        ))
    }
}
