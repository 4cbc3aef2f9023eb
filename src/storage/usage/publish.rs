//! Where one node's usage scan is left for the others sharing the store
//! (`private-registry/usage/inventory`, outside distribution's tree).

use super::Inventory;
use crate::storage::{Registry, Result, error::optional, paths};
use bytes::Bytes;
use std::time::SystemTime;

impl Registry {
    /// Writes `inv` for other nodes; returns the record's time in the store.
    pub async fn publish_usage(&self, inv: &Inventory) -> Result<SystemTime> {
        let path = paths::usage_inventory();
        self.driver
            .put_content(path.clone(), Bytes::from(inv.encode()))
            .await?;
        Ok(self.driver.stat(path).await?.modified)
    }

    /// When the published inventory was last written, if there is one.
    pub async fn usage_published_at(&self) -> Result<Option<SystemTime>> {
        let info = optional(self.driver.stat(paths::usage_inventory()).await)?;
        Ok(info.map(|i| i.modified))
    }

    /// The published inventory's bytes, for [`Inventory::decode`].
    pub async fn published_usage(&self) -> Result<Option<Bytes>> {
        optional(self.driver.get_content(paths::usage_inventory()).await)
    }
}
