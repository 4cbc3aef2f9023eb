//! The one place where failures become HTTP: the spec's JSON error bodies,
//! codes and statuses.

use crate::storage::StorageError;
use hyper::StatusCode;
use serde_json::{Value, json};

/// Error codes of the OCI distribution spec, plus distribution's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    TagInvalid,
    RangeInvalid,
    PaginationNumberInvalid,
    Unsupported,
    Unauthorized,
    Denied,
    TooManyRequests,
    Unavailable,
    Unknown,
}

impl Code {
    fn parts(self) -> (StatusCode, &'static str, &'static str) {
        use Code::*;
        match self {
            BlobUnknown => (
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                "blob unknown to registry",
            ),
            BlobUploadInvalid => (
                StatusCode::BAD_REQUEST,
                "BLOB_UPLOAD_INVALID",
                "blob upload invalid",
            ),
            BlobUploadUnknown => (
                StatusCode::NOT_FOUND,
                "BLOB_UPLOAD_UNKNOWN",
                "blob upload unknown to registry",
            ),
            DigestInvalid => (
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                "provided digest did not match uploaded content",
            ),
            ManifestBlobUnknown => (
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                "manifest references a manifest or blob unknown to registry",
            ),
            ManifestInvalid => (
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
                "manifest invalid",
            ),
            ManifestUnknown => (
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "manifest unknown",
            ),
            NameInvalid => (
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
                "invalid repository name",
            ),
            NameUnknown => (
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                "repository name not known to registry",
            ),
            SizeInvalid => (
                StatusCode::BAD_REQUEST,
                "SIZE_INVALID",
                "provided length did not match content length",
            ),
            TagInvalid => (
                StatusCode::BAD_REQUEST,
                "TAG_INVALID",
                "manifest tag did not match URI",
            ),
            RangeInvalid => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "RANGE_INVALID",
                "invalid content range",
            ),
            PaginationNumberInvalid => (
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                "invalid number of results requested",
            ),
            Unsupported => (
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "The operation is unsupported.",
            ),
            Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication required",
            ),
            Denied => (
                StatusCode::FORBIDDEN,
                "DENIED",
                "requested access to the resource is denied",
            ),
            TooManyRequests => (
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                "too many requests",
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "service unavailable",
            ),
            Unknown => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "unknown error",
            ),
        }
    }
}

/// An error response: a code, an optional status override, a detail, and
/// headers some errors must carry (416's `Range`).
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub status: Option<StatusCode>,
    pub detail: Value,
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(code: Code, detail: impl Into<Value>) -> Self {
        ApiError {
            code,
            status: None,
            detail: detail.into(),
            headers: vec![],
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or(self.code.parts().0)
    }

    pub fn body(&self) -> Value {
        let (_, code, message) = self.code.parts();
        let mut e = json!({ "code": code, "message": message });
        if !self.detail.is_null() {
            e["detail"] = self.detail.clone();
        }
        json!({ "errors": [e] })
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        use StorageError::*;
        let detail = e.to_string();
        match e {
            BlobUnknown(d) => ApiError::new(Code::BlobUnknown, json!({ "digest": d.to_string() })),
            ManifestUnknown(r) => ApiError::new(Code::ManifestUnknown, json!({ "reference": r })),
            NameUnknown(n) => ApiError::new(Code::NameUnknown, json!({ "name": n })),
            UploadUnknown(_) => ApiError::new(Code::BlobUploadUnknown, detail),
            DigestInvalid { .. } => ApiError::new(Code::DigestInvalid, detail),
            ManifestInvalid(_) => ApiError::new(Code::ManifestInvalid, detail),
            ManifestBlobUnknown(d) => ApiError::new(
                Code::ManifestBlobUnknown,
                json!({ "digest": d.to_string() }),
            ),
            RangeInvalid { size } => ApiError::new(Code::RangeInvalid, detail)
                .with_header("Range", super::upload_range(size)),
            UploadTooLarge { .. } => ApiError::new(Code::BlobUploadInvalid, detail)
                .with_status(StatusCode::PAYLOAD_TOO_LARGE),
            Body(_) => ApiError::new(Code::BlobUploadInvalid, detail),
            Busy(_) => {
                ApiError::new(Code::Unavailable, detail).with_header("Retry-After", "1".to_string())
            }
            Driver(_) | CorruptLink { .. } => {
                log::error!("{detail}");
                ApiError::new(Code::Unknown, Value::Null)
            }
        }
    }
}

impl From<crate::mirror::error::MirrorError> for ApiError {
    fn from(e: crate::mirror::error::MirrorError) -> Self {
        use crate::mirror::error::{MirrorError, UpstreamError};
        let detail = e.to_string();
        match e {
            MirrorError::Storage(s) => s.into(),
            MirrorError::ReadOnly { .. } => ApiError::new(Code::Unsupported, detail),
            MirrorError::Upstream {
                source:
                    UpstreamError::Status {
                        status: 429,
                        retry_after,
                    },
                ..
            } => {
                let e = ApiError::new(Code::TooManyRequests, detail);
                match retry_after {
                    Some(r) => e.with_header("Retry-After", r),
                    None => e,
                }
            }
            MirrorError::Upstream { .. } => {
                log::warn!("{detail}");
                ApiError::new(Code::Unavailable, detail).with_status(StatusCode::BAD_GATEWAY)
            }
        }
    }
}
