//! TLS termination with rustls: loads `http.tls` into a server
//! configuration (TLS 1.2 and 1.3 only, ALPN `h2` and `http/1.1`, optional
//! client certificates) and keeps it current as the files are renewed.

pub mod reload;
pub mod suites;
pub mod x509;

use crate::config::security::{MinTls, Tls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: String },
    #[error("{path}: no PEM private key found (expected PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{key}: this key does not belong to the certificate in {cert}")]
    KeyMismatch { key: String, cert: String },
}

/// The files a listener's certificate comes from, and its policy.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub clientcas: Vec<PathBuf>,
    pub min: MinTls,
}

impl TlsFiles {
    pub fn from_config(tls: &Tls, min: MinTls) -> TlsFiles {
        TlsFiles {
            certificate: tls.certificate.clone(),
            key: tls.key.clone(),
            clientcas: tls.clientcas.clone(),
            min,
        }
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        let mut p = vec![self.certificate.clone(), self.key.clone()];
        p.extend(self.clientcas.iter().cloned());
        p
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

pub(crate) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            path: path.display().to_string(),
            message: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::NoKey {
        path: path.display().to_string(),
    })
}

/// Loads and checks everything; the warnings (expiry) are for the log.
pub fn load(files: &TlsFiles) -> Result<(Arc<suites::Configs>, Vec<String>), TlsError> {
    let provider = Arc::new(suites::provider());
    let chain = certificates(&files.certificate)?;
    let warnings = expiry_warnings(&files.certificate, &chain[0]);
    let key = private_key(&files.key)?;
    let certified =
        rustls::sign::CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                key: files.key.display().to_string(),
                cert: files.certificate.display().to_string(),
            },
            e => TlsError::Invalid {
                path: files.key.display().to_string(),
                message: e.to_string(),
            },
        })?;
    let versions: &[&rustls::SupportedProtocolVersion] = match files.min {
        MinTls::V12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinTls::V13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Invalid {
            path: files.certificate.display().to_string(),
            message: e.to_string(),
        })?;
    let builder = if files.clientcas.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_verifier(client_verifier(&files.clientcas, provider)?)
    };
    let mut config =
        builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(suites::Configs::new(config)), warnings))
}

fn client_verifier(
    cas: &[PathBuf],
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for path in cas {
        for cert in certificates(path)? {
            roots.add(cert).map_err(|e| TlsError::Invalid {
                path: path.display().to_string(),
                message: format!("not a usable CA certificate: {e}"),
            })?;
        }
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::Invalid {
            path: cas[0].display().to_string(),
            message: e.to_string(),
        })
}

/// Serving an expired certificate is the operator's call (clients will
/// refuse it), so it is a loud warning rather than a refusal to start.
pub(crate) fn expiry_warnings(path: &Path, leaf: &CertificateDer) -> Vec<String> {
    let Some(v) = x509::validity(leaf) else {
        return vec![format!(
            "{}: cannot read the validity period",
            path.display()
        )];
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let date = |s: i64| {
        crate::timefmt::rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(s.max(0) as u64))
    };
    if now > v.not_after {
        vec![format!(
            "{}: certificate EXPIRED on {}; clients will refuse it",
            path.display(),
            date(v.not_after)
        )]
    } else if now < v.not_before {
        vec![format!(
            "{}: certificate is not valid before {}",
            path.display(),
            date(v.not_before)
        )]
    } else if v.not_after - now < 14 * 86400 {
        vec![format!(
            "{}: certificate expires on {}",
            path.display(),
            date(v.not_after)
        )]
    } else {
        vec![]
    }
}
