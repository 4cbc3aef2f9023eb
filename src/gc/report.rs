//! What one collection did, as the command prints it and the daemon logs it.

use super::Report;

impl Report {
    /// One line per removed (or, dry, removable) manifest and blob, with the
    /// summary `N blobs marked, M blobs eligible for deletion` between.
    pub fn lines(&self, dry_run: bool) -> Vec<String> {
        let verb = if dry_run { "would delete" } else { "deleted" };
        let mut out = vec![];
        if self.recovered > 0 {
            out.push(format!(
                "put back {} blobs and manifests an interrupted collection had set aside",
                self.recovered
            ));
        }
        for (repo, d) in &self.manifests_deleted {
            out.push(format!("{verb} manifest {repo}@{d}"));
        }
        out.push(format!(
            "{} blobs marked, {} blobs eligible for deletion",
            self.marked, self.eligible
        ));
        for d in &self.blobs_deleted {
            out.push(format!("{verb} blob {d}"));
        }
        if self.links_removed > 0 {
            out.push(format!(
                "removed {} repository links to deleted blobs",
                self.links_removed
            ));
        }
        out
    }
}
