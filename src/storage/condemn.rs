//! Garbage collection's removal of a blob where a directory cannot be moved
//! aside in one step (a bucket: a move is a copy and a delete, and copying
//! a large blob to read its time again would cost what the removal saves).
//!
//! Instead the collector *condemns* the blob: it writes a marker in
//! `_quarantine/` (the name an aside blob has on disk), reads the blob's last
//! reference again, removes the blob only if that is still older than the
//! cutoff, and then removes the marker. A request referencing the blob
//! touches it (its mark is written before the blob is checked), waits while
//! a marker stands, and checks the blob is still there. Either its touch
//! came before the collector's second read, which then keeps the blob, or
//! its check comes after the removal and it answers "unknown", as on disk.
//! A killed collector's marker goes stale after [`DECIDE`]: nobody waits
//! for it then, and the next collection removes it. A collector that took
//! longer than [`GIVE_UP`] between its marker and the removal (paused,
//! slow store) keeps the blob instead, so a removal never comes after its
//! marker went stale; the difference between the two also absorbs clock
//! skew between the nodes and the store, whose time stamps the marker.

use super::{Registry, Result, StorageError, error::optional, paths, tags::random_id};
use crate::digest::Digest;
use bytes::Bytes;
use std::time::{Duration, Instant, SystemTime};

/// How long a marker counts: a collector holds one for a few requests.
const DECIDE: Duration = Duration::from_secs(10);
/// The longest a collector may take from its marker to the removal.
const GIVE_UP: Duration = Duration::from_secs(2);
/// The longest a request waits, should markers keep coming.
const WAIT: Duration = Duration::from_secs(30);

impl Registry {
    /// [`Registry::delete_blob_if_older`] for stores without atomic moves;
    /// the caller saw the blob older than `cutoff` already.
    pub(super) async fn condemn_blob_if_older(
        &self,
        d: &Digest,
        cutoff: SystemTime,
    ) -> Result<bool> {
        let marker = paths::quarantine_entry(d, &random_id());
        let started = Instant::now();
        self.driver
            .put_content(marker.clone(), Bytes::new())
            .await?;
        let again = optional(self.driver.last_referenced(paths::blob_data(d)).await)?;
        let removed = match again {
            Some(m) if m < cutoff && started.elapsed() < GIVE_UP => {
                self.seen.forget(None, Some(d));
                self.remove(paths::blob_dir(d)).await?
            }
            _ => false,
        };
        self.remove(marker).await?;
        Ok(removed)
    }

    /// A reference to a stored blob, on a store without atomic moves: see
    /// the module's comment. False if the blob is gone.
    pub(super) async fn refresh_condemnable(&self, d: &Digest) -> Result<bool> {
        if optional(self.driver.note_reference(paths::blob_data(d)).await)?.is_none() {
            return Ok(false);
        }
        self.await_condemnations(d).await?;
        Ok(self.stored_blob_size(d).await?.is_some())
    }

    /// Waits while a collector holds a fresh marker on `d`.
    pub(super) async fn await_condemnations(&self, d: &Digest) -> Result<()> {
        let until = Instant::now() + WAIT;
        while self.condemned(d).await? {
            if Instant::now() > until {
                return Err(StorageError::Busy(format!(
                    "{d}: garbage collection is deciding about this blob; try again"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Removes a link naming `d` whose bytes are gone, on a store without
    /// atomic moves, under a marker as [`Self::condemn_blob_if_older`] does:
    /// the bytes are read again after the marker, and a push storing them
    /// anew links them only once no marker stands. So either this read sees
    /// the new bytes and keeps the link, or the push links after the
    /// removal; removing first and re-linking after (as on disk) left an
    /// acknowledged push without its link for that moment, or for good if
    /// the collector was killed in between.
    pub(super) async fn unlink_if_still_gone(&self, link: String, d: &Digest) -> Result<bool> {
        let marker = paths::quarantine_entry(d, &random_id());
        let started = Instant::now();
        self.driver
            .put_content(marker.clone(), Bytes::new())
            .await?;
        let gone = self.stored_blob_size(d).await?.is_none();
        let removed = gone && started.elapsed() < GIVE_UP && self.remove_link(link).await?;
        self.remove(marker).await?;
        Ok(removed)
    }

    /// Whether a collector holds a fresh marker on `d`.
    async fn condemned(&self, d: &Digest) -> Result<bool> {
        let prefix = format!("{}-{}-", d.algorithm().name(), d.hex());
        for name in self.list(paths::quarantine()).await? {
            if name.starts_with(&prefix) && self.fresh(&name).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn fresh(&self, name: &str) -> Result<bool> {
        let path = format!("{}/{name}", paths::quarantine());
        let Some(info) = optional(self.driver.stat(path).await)? else {
            return Ok(false);
        };
        let age = SystemTime::now()
            .duration_since(info.modified)
            .unwrap_or_default();
        Ok(age < DECIDE)
    }

    /// Removes markers killed collectors left; returns how many.
    pub(super) async fn clear_stale_condemnations(&self) -> Result<usize> {
        let mut n = 0;
        for name in self.list(paths::quarantine()).await? {
            if !self.fresh(&name).await? {
                self.remove(format!("{}/{name}", paths::quarantine()))
                    .await?;
                n += 1;
            }
        }
        Ok(n)
    }
}
