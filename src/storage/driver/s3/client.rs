//! The AWS SDK client as the driver uses it: signing, retries with back-off,
//! timeouts and connection reuse are the SDK's; what is ours is the mapping
//! of its errors to [`DriverError`] with the operation and key named.

use super::super::DriverError;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use std::time::Duration;

/// What the driver needs to reach a bucket, resolved from `storage.s3`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    pub path_style: bool,
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    pub chunk_size: u64,
    pub copy_chunk_size: u64,
    pub copy_concurrency: usize,
    pub copy_threshold: u64,
    /// `None` for distribution's `NONE`: the store's default class.
    pub storage_class: Option<String>,
    pub encrypt: bool,
    pub kms_key: Option<String>,
}

impl Settings {
    pub fn from_config(s3: &crate::config::s3::S3) -> Result<Settings, String> {
        let c = s3.credentials().map_err(|e| e.to_string())?;
        Ok(Settings {
            endpoint: s3.endpoint(),
            region: s3.region.clone(),
            bucket: s3.bucket.clone(),
            prefix: s3.prefix(),
            // A custom endpoint (Garage, MinIO, Ceph) is addressed by path
            // unless told otherwise, as distribution's driver does.
            path_style: s3.forcepathstyle || s3.regionendpoint.is_some(),
            access_key: c.access_key,
            secret_key: c.secret_key,
            session_token: c.session_token,
            chunk_size: s3.chunksize,
            copy_chunk_size: s3.multipartcopychunksize,
            copy_concurrency: s3.multipartcopymaxconcurrency as usize,
            copy_threshold: s3.multipartcopythresholdsize,
            storage_class: Some(s3.storageclass.clone()).filter(|c| c != "NONE"),
            encrypt: s3.encrypt,
            kms_key: s3.keyid.clone(),
        })
    }
}

pub fn build(s: &Settings) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let credentials = Credentials::new(
        &s.access_key,
        &s.secret_key,
        s.session_token.clone(),
        None,
        "private-registry",
    );
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(60))
        .operation_attempt_timeout(Duration::from_secs(300))
        .build();
    let retries = RetryConfig::standard()
        .with_max_attempts(5)
        .with_initial_backoff(Duration::from_millis(100))
        .with_max_backoff(Duration::from_secs(5));
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(s.region.clone()))
        .endpoint_url(&s.endpoint)
        .force_path_style(s.path_style)
        .credentials_provider(credentials)
        .http_client(http)
        .timeout_config(timeouts)
        .retry_config(retries)
        // Checksums only where S3 requires them: stores that implement
        // the older API (Garage, MinIO, Ceph) reject the newer trailers.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// Maps an SDK error: 404 (or `NoSuchKey`/`NoSuchUpload`) is
/// [`DriverError::NotFound`]; anything else an I/O error that names the
/// operation, the key and what the store said.
pub fn error<E>(op: &str, key: &str, e: SdkError<E>) -> DriverError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    if status == Some(404) || matches!(code.as_deref(), Some("NoSuchKey" | "NoSuchUpload")) {
        return DriverError::NotFound(key.to_string());
    }
    let detail = match (status, code) {
        (Some(st), Some(code)) => format!("{op}: HTTP {st} {code}: {}", e.message().unwrap_or("")),
        (Some(st), None) => format!("{op}: HTTP {st}"),
        _ => format!("{op}: {}", DisplayErrorContext(&e)),
    };
    DriverError::Io {
        path: key.to_string(),
        source: std::io::Error::other(detail),
    }
}

/// An error of ours while talking to the store (a malformed answer).
pub fn other(key: &str, detail: impl Into<String>) -> DriverError {
    DriverError::Io {
        path: key.to_string(),
        source: std::io::Error::other(detail.into()),
    }
}

/// Why the bucket cannot be used, naming the `storage.s3` key to fix: the
/// one line an operator sees when the daemon refuses to start.
pub fn explain_check<E>(bucket: &str, e: SdkError<E>) -> DriverError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().unwrap_or("").to_string();
    let detail = match status {
        None => format!(
            "cannot reach the store (storage.s3.regionendpoint): {}",
            innermost(&e)
        ),
        Some(404) => format!("bucket {bucket:?} does not exist (storage.s3.bucket)"),
        Some(401 | 403) => format!(
            "the store refuses the credentials (storage.s3.accesskey, storage.s3.secretkey): HTTP {} {code}",
            status.unwrap_or_default()
        ),
        Some(301 | 400) => format!(
            "the store refuses the request; check storage.s3.region and storage.s3.forcepathstyle: HTTP {} {code}",
            status.unwrap_or_default()
        ),
        Some(st) => format!("HeadBucket: HTTP {st} {code}"),
    };
    other(bucket, detail)
}

/// The root cause of a transport error ("Connection refused"), which is
/// what an operator needs from the SDK's long chain.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
