//! `storage.s3`: distribution's S3 driver keys, so a `registry:2` file
//! pointing at a bucket works unchanged. Keys we cannot honour are errors
//! that name them; the secret may come from the environment or a systemd
//! credential instead of the file.

use super::{ConfigError, all, invalid};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// distribution's defaults (`registry/storage/driver/s3-aws`).
const MIN_CHUNK: u64 = 5 << 20;
const DEFAULT_CHUNK: u64 = 10 << 20;
const DEFAULT_COPY_CHUNK: u64 = 32 << 20;
const MAX_COPY_CHUNK: u64 = 5 << 30;
const DEFAULT_COPY_CONCURRENCY: u64 = 100;

/// systemd credential names (`LoadCredential=`) the keys may come from.
pub const ACCESS_KEY_CREDENTIAL: &str = "s3-accesskey";
pub const SECRET_KEY_CREDENTIAL: &str = "s3-secretkey";

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct S3 {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accesskey: Option<String>,
    /// Never shown: `check-config` masks it (see [`S3::masked`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secretkey: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessiontoken: Option<String>,
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regionendpoint: Option<String>,
    pub bucket: String,
    pub rootdirectory: String,
    pub forcepathstyle: bool,
    pub secure: bool,
    pub skipverify: bool,
    pub v4auth: bool,
    pub chunksize: u64,
    pub multipartcopychunksize: u64,
    pub multipartcopymaxconcurrency: u64,
    pub multipartcopythresholdsize: u64,
    pub storageclass: String,
    pub encrypt: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    pub objectacl: String,
    /// Accepted for compatibility; the SDK's own logging is not wired up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loglevel: Option<serde_yaml_ng::Value>,
    pub usedualstack: bool,
    pub accelerate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub useragent: Option<String>,
}

impl Default for S3 {
    fn default() -> Self {
        S3 {
            accesskey: None,
            secretkey: None,
            sessiontoken: None,
            region: String::new(),
            regionendpoint: None,
            bucket: String::new(),
            rootdirectory: String::new(),
            forcepathstyle: false,
            secure: true,
            skipverify: false,
            v4auth: true,
            chunksize: DEFAULT_CHUNK,
            multipartcopychunksize: DEFAULT_COPY_CHUNK,
            multipartcopymaxconcurrency: DEFAULT_COPY_CONCURRENCY,
            multipartcopythresholdsize: DEFAULT_COPY_CHUNK,
            storageclass: "STANDARD".into(),
            encrypt: false,
            keyid: None,
            objectacl: "private".into(),
            loglevel: None,
            usedualstack: false,
            accelerate: false,
            useragent: None,
        }
    }
}

/// Credentials as resolved: where from is part of what `check-config` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    pub source: &'static str,
}

fn key(name: &str) -> String {
    format!("storage.s3.{name}")
}

impl S3 {
    pub fn validate(&self, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
        if self.loglevel.is_some() {
            warnings.push(format!(
                "{}: accepted, but the S3 client's own logging is not configurable here",
                key("loglevel")
            ));
        }
        all([
            required("region", &self.region),
            required("bucket", &self.bucket),
            self.validate_endpoint(),
            self.validate_sizes(),
            self.validate_unsupported(),
            self.validate_credentials(warnings),
        ])
    }

    fn validate_endpoint(&self) -> Result<(), ConfigError> {
        match &self.regionendpoint {
            Some(e) if !(e.starts_with("http://") || e.starts_with("https://")) => Err(invalid(
                &key("regionendpoint"),
                format!("expected a URL such as https://s3.example.com:3900, got {e:?}"),
            )),
            Some(e) if e.starts_with("http://") && self.secure && e.contains("amazonaws.com") => {
                Err(invalid(
                    &key("regionendpoint"),
                    "plain http to AWS with secure: true; use https",
                ))
            }
            _ => Ok(()),
        }
    }

    fn validate_sizes(&self) -> Result<(), ConfigError> {
        let range = |name: &str, v: u64, min: u64, max: u64| {
            if (min..=max).contains(&v) {
                Ok(())
            } else {
                Err(invalid(
                    &key(name),
                    format!("expected between {min} and {max} bytes, got {v}"),
                ))
            }
        };
        all([
            range("chunksize", self.chunksize, MIN_CHUNK, MAX_COPY_CHUNK),
            range(
                "multipartcopychunksize",
                self.multipartcopychunksize,
                MIN_CHUNK,
                MAX_COPY_CHUNK,
            ),
            range(
                "multipartcopythresholdsize",
                self.multipartcopythresholdsize,
                0,
                MAX_COPY_CHUNK,
            ),
            range(
                "multipartcopymaxconcurrency",
                self.multipartcopymaxconcurrency,
                1,
                1000,
            ),
        ])
    }

    /// Half a key pair is an error; none at all only a warning here, as a
    /// systemd credential appears only when the service starts (which then
    /// refuses to run without one).
    fn validate_credentials(&self, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
        if self.accesskey.is_some() != self.secretkey.is_some() {
            let missing = if self.accesskey.is_some() {
                "secretkey"
            } else {
                "accesskey"
            };
            return Err(invalid(
                &key(missing),
                "missing: set both accesskey and secretkey, or neither",
            ));
        }
        if let Err(e) = self.credentials() {
            warnings.push(e.to_string());
        }
        Ok(())
    }

    /// Keys whose meaning we do not implement: refused rather than ignored.
    fn validate_unsupported(&self) -> Result<(), ConfigError> {
        let refuse = |name: &str, bad: bool, why: &str| {
            if bad {
                Err(invalid(&key(name), why.to_string()))
            } else {
                Ok(())
            }
        };
        all([
            refuse(
                "v4auth",
                !self.v4auth,
                "signature version 2 is not supported; remove the key or set it to true",
            ),
            refuse(
                "skipverify",
                self.skipverify && self.secure,
                "certificate checks cannot be turned off here; add the store's CA certificate to the system's trust store (update-ca-certificates)",
            ),
            refuse(
                "objectacl",
                self.objectacl != "private",
                "only private objects are supported; grant access with bucket policies",
            ),
            refuse(
                "usedualstack",
                self.usedualstack,
                "dual-stack endpoints are not supported; set regionendpoint instead",
            ),
            refuse(
                "accelerate",
                self.accelerate,
                "transfer acceleration is not supported; set regionendpoint instead",
            ),
            refuse(
                "keyid",
                self.keyid.is_some() && !self.encrypt,
                "a KMS key needs encrypt: true",
            ),
        ])
    }

    /// The access and secret key: from the file, else the standard
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` environment, else systemd
    /// credentials (`LoadCredential=s3-accesskey:…`, `s3-secretkey:…`).
    pub fn credentials(&self) -> Result<Credentials, ConfigError> {
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY");
        self.credentials_from(&|k| std::env::var(k).ok(), dir.as_deref().map(Path::new))
    }

    fn credentials_from(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        credentials_dir: Option<&Path>,
    ) -> Result<Credentials, ConfigError> {
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        if let (Some(a), Some(s)) = (
            nonempty(self.accesskey.clone()),
            nonempty(self.secretkey.clone()),
        ) {
            return Ok(Credentials {
                access_key: a,
                secret_key: s,
                session_token: self.sessiontoken.clone(),
                source: "config",
            });
        }
        if let (Some(a), Some(s)) = (
            nonempty(env("AWS_ACCESS_KEY_ID")),
            nonempty(env("AWS_SECRET_ACCESS_KEY")),
        ) {
            return Ok(Credentials {
                access_key: a,
                secret_key: s,
                session_token: nonempty(env("AWS_SESSION_TOKEN")),
                source: "environment",
            });
        }
        let read = |name: &str| {
            let dir = credentials_dir?;
            let text = std::fs::read_to_string(dir.join(name)).ok()?;
            nonempty(Some(text.trim().to_string()))
        };
        if let (Some(a), Some(s)) = (read(ACCESS_KEY_CREDENTIAL), read(SECRET_KEY_CREDENTIAL)) {
            return Ok(Credentials {
                access_key: a,
                secret_key: s,
                session_token: None,
                source: "systemd credentials",
            });
        }
        Err(invalid(
            &key("accesskey"),
            format!(
                "no credentials: set accesskey and secretkey, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, or systemd credentials {ACCESS_KEY_CREDENTIAL} and {SECRET_KEY_CREDENTIAL}"
            ),
        ))
    }

    /// The store's URL: `regionendpoint`, or AWS's for the region.
    pub fn endpoint(&self) -> String {
        match &self.regionendpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => {
                let scheme = if self.secure { "https" } else { "http" };
                format!("{scheme}://s3.{}.amazonaws.com", self.region)
            }
        }
    }

    /// The key prefix every object lives under, without slashes at either end.
    pub fn prefix(&self) -> String {
        self.rootdirectory.trim_matches('/').to_string()
    }

    /// As `check-config` shows it: every key, the secret masked, and where
    /// the credentials come from.
    pub fn masked(&self) -> serde_yaml_ng::Value {
        let mut v = serde_yaml_ng::to_value(self).unwrap_or_default();
        if self.secretkey.is_some() {
            v["secretkey"] = "********".into();
        }
        if self.sessiontoken.is_some() {
            v["sessiontoken"] = "********".into();
        }
        v["regionendpoint"] = self.endpoint().into();
        if let Ok(c) = self.credentials() {
            v["accesskey"] = c.access_key.into();
            v["credentials"] = format!("from {}", c.source).into();
        }
        v
    }
}

fn required(name: &str, v: &str) -> Result<(), ConfigError> {
    if v.trim().is_empty() {
        Err(invalid(&key(name), "required"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_file_then_the_environment_then_systemd() {
        let dir = std::env::temp_dir().join(format!("pr-s3cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(ACCESS_KEY_CREDENTIAL), "AKSYS\n").unwrap();
        std::fs::write(dir.join(SECRET_KEY_CREDENTIAL), "secret-sys\n").unwrap();
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("AKENV".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret-env".to_string()),
            _ => None,
        };
        let none = |_: &str| None;
        let mut s3 = S3 {
            accesskey: Some("AKFILE".into()),
            secretkey: Some("secret-file".into()),
            ..S3::default()
        };
        let c = s3.credentials_from(&env, Some(&dir)).unwrap();
        assert_eq!((c.access_key.as_str(), c.source), ("AKFILE", "config"));
        s3.accesskey = None;
        s3.secretkey = None;
        let c = s3.credentials_from(&env, Some(&dir)).unwrap();
        assert_eq!(
            (c.secret_key.as_str(), c.source),
            ("secret-env", "environment")
        );
        let c = s3.credentials_from(&none, Some(&dir)).unwrap();
        assert_eq!(
            (c.secret_key.as_str(), c.source),
            ("secret-sys", "systemd credentials")
        );
        let e = s3.credentials_from(&none, None).unwrap_err().to_string();
        assert!(e.starts_with("storage.s3.accesskey: no credentials"), "{e}");
        s3.accesskey = Some("AK".into());
        let e = s3
            .validate_credentials(&mut vec![])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("storage.s3.secretkey: missing"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_secret_is_masked() {
        let s3 = S3 {
            accesskey: Some("AK".into()),
            secretkey: Some("very-secret".into()),
            region: "garage".into(),
            bucket: "b".into(),
            ..S3::default()
        };
        let shown = serde_yaml_ng::to_string(&s3.masked()).unwrap();
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("********"), "{shown}");
    }
}
