//! Tests on object storage: a Garage cluster started by `tests/garage/cluster`
//! (as `tests/run` does), named by `PRIVATE_REGISTRY_TEST_S3`, the path of
//! its env file. Every data directory gets its own key prefix in the bucket.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

pub struct Cluster {
    pub vars: HashMap<String, String>,
}

/// The cluster the tests run on, if any.
pub fn cluster() -> Option<Cluster> {
    let path = std::env::var_os("PRIVATE_REGISTRY_TEST_S3")?;
    Some(Cluster::load(Path::new(&path)))
}

impl Cluster {
    /// Reads a cluster's env file.
    pub fn load(path: &Path) -> Cluster {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("garage env file {}: {e}", path.display()));
        let vars = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            .collect();
        Cluster { vars }
    }
}

/// A three-node Garage cluster of a test's own (`tests/garage/cluster`),
/// stopped when dropped: for tests that kill its nodes.
pub struct Garage {
    pub dir: super::TempDir,
    pub cluster: Cluster,
}

impl Garage {
    pub fn start() -> Garage {
        let dir = super::TempDir::new("garage");
        let out = super::run_ok(Command::new(script()).arg("start").arg(&dir.0));
        let env = out.lines().last().unwrap_or_default().trim().to_string();
        let cluster = Cluster::load(Path::new(&env));
        Garage { dir, cluster }
    }

    /// Runs `tests/garage/cluster ACTION DIR NODE` (kill, restart).
    pub fn node(&self, action: &str, n: u32) {
        super::run_ok(
            Command::new(script())
                .arg(action)
                .arg(&self.dir.0)
                .arg(n.to_string()),
        );
    }
}

impl Garage {
    /// SIGKILLs node `n` and waits until the others have noticed, so that
    /// requests no longer stall on it.
    pub fn kill_settled(&self, n: u32) {
        super::run_ok(
            Command::new(script())
                .arg("kill")
                .arg(&self.dir.0)
                .arg(n.to_string())
                .arg("--settle"),
        );
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir.0).output();
    }
}

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/garage/cluster")
}

/// `aws s3api ARGS` against the cluster (Debian's awscli), JSON out.
pub fn s3api(c: &Cluster, args: &[&str]) -> serde_json::Value {
    let out = Command::new("aws")
        .args(["--endpoint-url", c.var("GARAGE_ENDPOINT"), "--region"])
        .arg(c.var("GARAGE_REGION"))
        .arg("s3api")
        .args(args)
        .args(["--output", "json"])
        .env("AWS_ACCESS_KEY_ID", c.var("AWS_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", c.var("AWS_SECRET_ACCESS_KEY"))
        .output()
        .expect("aws (Debian's awscli) runs");
    assert!(
        out.status.success(),
        "aws s3api {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Whether the tests run on object storage (checks that read a data
/// directory on disk do not apply there).
pub fn on_s3() -> bool {
    cluster().is_some()
}

/// Waits out the store's time stamp resolution before a collection with
/// `--grace 0s` that must find what was just written unreferenced: S3 shows
/// times in whole seconds, and the collector takes a write as late as its
/// stamp allows (s3/copy.rs), so anything from the last second is young.
pub fn settle_times() {
    if on_s3() {
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
}

/// Environment for a server that redirects blob GETs to the store, as the
/// S3 driver does by default: the test config turns redirects off, since
/// most tests check the registry's own answers (ranges, headers) with a
/// client that does not follow them. For tests whose clients follow
/// redirects (Docker, skopeo, the conformance suite, and
/// [`super::Server::get_following`]). No effect on the filesystem, which
/// never redirects.
pub const REDIRECTS: (&str, &str) = ("REGISTRY_STORAGE_REDIRECT_DISABLE", "false");

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

    /// The `s3` section, and redirects off (see [`REDIRECTS`]).
    pub fn storage_yaml(&self, root: &Path) -> String {
        let s3 = self.storage_yaml_at(&Self::prefix(root));
        format!("{s3}  redirect:\n    disable: true\n")
    }

    /// The `storage.s3` section for objects under `rootdirectory`.
    pub fn storage_yaml_at(&self, rootdirectory: &str) -> String {
        format!(
            "  s3:\n    accesskey: {}\n    secretkey: {}\n    region: {}\n    regionendpoint: {}\n    bucket: {}\n    rootdirectory: /{}\n    forcepathstyle: true\n    secure: false\n",
            self.var("AWS_ACCESS_KEY_ID"),
            self.var("AWS_SECRET_ACCESS_KEY"),
            self.var("GARAGE_REGION"),
            self.var("GARAGE_ENDPOINT"),
            self.var("GARAGE_BUCKET"),
            rootdirectory,
        )
    }
}

/// Replaces an object in the cluster's bucket, as a fault would.
pub fn put_object(c: &Cluster, key: &str, bytes: &[u8]) {
    let file = std::env::temp_dir().join(format!("pr-put-{}", std::process::id()));
    std::fs::write(&file, bytes).unwrap();
    s3api(
        c,
        &[
            "put-object",
            "--bucket",
            c.var("GARAGE_BUCKET"),
            "--key",
            key,
            "--body",
            &file.to_string_lossy(),
        ],
    );
    let _ = std::fs::remove_file(file);
}

/// Reads an object of the cluster's bucket.
pub fn get_object(c: &Cluster, key: &str) -> Vec<u8> {
    let out = Command::new("aws")
        .args(["--endpoint-url", c.var("GARAGE_ENDPOINT"), "--region"])
        .arg(c.var("GARAGE_REGION"))
        .args([
            "s3",
            "cp",
            &format!("s3://{}/{key}", c.var("GARAGE_BUCKET")),
            "-",
        ])
        .env("AWS_ACCESS_KEY_ID", c.var("AWS_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", c.var("AWS_SECRET_ACCESS_KEY"))
        .output()
        .expect("aws (Debian's awscli) runs");
    assert!(out.status.success(), "aws s3 cp {key}");
    out.stdout
}

/// Keys of the cluster's bucket under `prefix`.
pub fn keys(c: &Cluster, prefix: &str) -> Vec<String> {
    let v = s3api(
        c,
        &[
            "list-objects-v2",
            "--bucket",
            c.var("GARAGE_BUCKET"),
            "--prefix",
            prefix,
        ],
    );
    v["Contents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["Key"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
