//! Tests on object storage: a Garage cluster started by `tests/garage/cluster`
//! (as `tests/run` does), named by `PRIVATE_REGISTRY_TEST_S3`, the path of
//! its env file. Every data directory gets its own key prefix in the bucket.

use std::collections::HashMap;
use std::path::Path;

pub struct Cluster {
    pub vars: HashMap<String, String>,
}

/// The cluster the tests run on, if any.
pub fn cluster() -> Option<Cluster> {
    let path = std::env::var_os("PRIVATE_REGISTRY_TEST_S3")?;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "PRIVATE_REGISTRY_TEST_S3: {}: {e}",
            Path::new(&path).display()
        )
    });
    let vars = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect();
    Some(Cluster { vars })
}

/// Whether the tests run on object storage (checks that read a data
/// directory on disk do not apply there).
pub fn on_s3() -> bool {
    cluster().is_some()
}

impl Cluster {
    pub fn var(&self, k: &str) -> &str {
        self.vars
            .get(k)
            .unwrap_or_else(|| panic!("garage env file has no {k}"))
    }

    /// The prefix a data directory maps to: unique per test process and directory.
    pub fn prefix(root: &Path) -> String {
        let name: String = root
            .to_string_lossy()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("tests/{}", name.trim_matches('-'))
    }

    pub fn storage_yaml(&self, root: &Path) -> String {
        format!(
            "  s3:\n    accesskey: {}\n    secretkey: {}\n    region: {}\n    regionendpoint: {}\n    bucket: {}\n    rootdirectory: /{}\n    forcepathstyle: true\n    secure: false\n",
            self.var("AWS_ACCESS_KEY_ID"),
            self.var("AWS_SECRET_ACCESS_KEY"),
            self.var("GARAGE_REGION"),
            self.var("GARAGE_ENDPOINT"),
            self.var("GARAGE_BUCKET"),
            Self::prefix(root),
        )
    }
}
