//! The driver suite (`testsuite`) on the S3 driver, against the Garage
//! cluster `PRIVATE_REGISTRY_TEST_S3` names (the env file of
//! `tests/garage/cluster`, which `tests/run` starts): each property gets a
//! prefix of its own in the bucket, removed afterwards. Without the
//! variable each property says it was skipped and passes.

use super::{S3Driver, Settings};
use crate::storage::driver::testsuite::Fixture;
use crate::storage::driver::{DriverError, StorageDriver};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The smallest part S3 takes: writes of a few MiB go out as multipart
/// uploads, and moves above it as multipart copies.
const SMALL: u64 = 5 << 20;
/// Where the properties' prefixes are, in the bucket.
const ROOT: &str = "driver-suite";

pub struct Bucket {
    settings: Settings,
    /// The property's prefix, under [`ROOT`].
    name: String,
    driver: Arc<S3Driver>,
}

impl Bucket {
    /// A fresh prefix on the cluster, or `None` (said on stderr, which the
    /// test harness does not capture) without one.
    pub fn from_env() -> Option<Bucket> {
        let Some(env) = std::env::var_os("PRIVATE_REGISTRY_TEST_S3") else {
            let thread = std::thread::current();
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {}: PRIVATE_REGISTRY_TEST_S3 is not set (tests/run sets it to a Garage cluster's env file)",
                thread.name().unwrap_or("the S3 driver suite")
            );
            return None;
        };
        let text = std::fs::read_to_string(&env)
            .unwrap_or_else(|e| panic!("PRIVATE_REGISTRY_TEST_S3 {}: {e}", env.display()));
        let var = |k: &str| {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .find(|(name, _)| name.trim() == k)
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
                .unwrap_or_else(|| panic!("{}: no {k}", env.display()))
        };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let settings = Settings {
            endpoint: var("GARAGE_ENDPOINT"),
            region: var("GARAGE_REGION"),
            bucket: var("GARAGE_BUCKET"),
            prefix: format!("{ROOT}/{name}"),
            path_style: true,
            access_key: var("AWS_ACCESS_KEY_ID"),
            secret_key: var("AWS_SECRET_ACCESS_KEY"),
            session_token: None,
            chunk_size: SMALL,
            copy_chunk_size: SMALL,
            copy_concurrency: 4,
            copy_threshold: SMALL,
            storage_class: None,
            encrypt: false,
            kms_key: None,
        };
        let driver = Arc::new(S3Driver::new(&settings));
        Some(Bucket {
            settings,
            name,
            driver,
        })
    }
}

impl Fixture for Bucket {
    fn driver(&self) -> Arc<dyn StorageDriver> {
        self.driver.clone()
    }
}

impl Drop for Bucket {
    /// Removes the prefix (and aborts uploads left in it) on a runtime of
    /// its own: the test's runtime is the one dropping the fixture.
    fn drop(&mut self) {
        let mut root = self.settings.clone();
        root.prefix = ROOT.to_string();
        let name = self.name.clone();
        let cleaned = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(S3Driver::new(&root).delete(name))
        })
        .join();
        match cleaned {
            Ok(Ok(())) | Ok(Err(DriverError::NotFound(_))) => {}
            Ok(Err(e)) => eprintln!("driver suite: {ROOT}/{} not removed: {e}", self.name),
            Err(_) => eprintln!("driver suite: removing {ROOT}/{} panicked", self.name),
        }
    }
}
