//! What can go wrong between the cache and an upstream.

use crate::storage::StorageError;

/// A request to an upstream that got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection, a timeout, a cut-off answer.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// Our credentials were refused, or none were configured for a challenge.
    #[error("refused our credentials: {0}")]
    Denied(String),
    /// An answer that breaks the protocol (a token without a token).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An error status: 5xx, 429 (with its `Retry-After`), or another.
    #[error("answered {status}")]
    Status {
        status: u16,
        retry_after: Option<String>,
    },
}

impl UpstreamError {
    /// Whether cached content should be served instead: the upstream is
    /// down or overloaded, not saying the content is gone.
    pub fn is_outage(&self) -> bool {
        match self {
            UpstreamError::Unreachable(_) => true,
            UpstreamError::Status { status, .. } => *status >= 500 || *status == 429,
            UpstreamError::Denied(_) | UpstreamError::Protocol(_) => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("upstream {url}: {source}")]
    Upstream { url: String, source: UpstreamError },
    /// A write to a repository that mirrors an upstream.
    #[error("{repo} is a cache of {url}: push to the upstream instead")]
    ReadOnly { repo: String, url: String },
}
