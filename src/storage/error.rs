//! What can go wrong in the registry's storage layer, in the registry's terms.
//! The HTTP layer maps each variant to a status and error code in one place.

use super::driver::DriverError;
use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("blob unknown to registry: {0}")]
    BlobUnknown(Digest),
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    #[error("repository name not known to registry: {0}")]
    NameUnknown(String),
    #[error("blob upload unknown to registry: {0}")]
    UploadUnknown(String),
    #[error("provided digest {expected} did not match uploaded content ({actual})")]
    DigestInvalid { expected: String, actual: String },
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("manifest references a blob or manifest unknown to this repository: {0}")]
    ManifestBlobUnknown(Digest),
    #[error("upload range out of order: upload is at offset {size}")]
    RangeInvalid { size: u64 },
    #[error(
        "the upload would exceed its {limit}-byte limit (privateregistry.limits.maxuploadbytes)"
    )]
    UploadTooLarge { limit: u64 },
    #[error("upload body: {0}")]
    Body(std::io::Error),
    #[error("storage: {0}")]
    Driver(DriverError),
    /// Something else decides about this right now; retrying will do.
    #[error("{0}")]
    Busy(String),
    #[error("corrupt link {path}: {detail}")]
    CorruptLink { path: String, detail: String },
}

impl From<DriverError> for StorageError {
    fn from(e: DriverError) -> Self {
        StorageError::Driver(e)
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// Treats "not found" from the driver as an absent value.
pub fn optional<T>(r: std::result::Result<T, DriverError>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(DriverError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
