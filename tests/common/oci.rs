//! OCI image layouts written by hand, the way the skopeo and podman tests
//! make images without any registry, and a skopeo runner.

use super::{random_bytes, run_ok, sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub fn skopeo_bin() -> String {
    std::env::var("SKOPEO_BIN").unwrap_or_else(|_| "skopeo".to_string())
}

/// Runs skopeo with a policy that accepts anything and a private temp dir.
pub fn skopeo(tmp: &Path, args: &[&str]) -> String {
    run_ok(&mut skopeo_cmd(tmp, args))
}

/// Like [`skopeo`], for a run that may fail.
pub fn try_skopeo(tmp: &Path, args: &[&str]) -> Output {
    skopeo_cmd(tmp, args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e})", skopeo_bin()))
}

fn skopeo_cmd(tmp: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(skopeo_bin());
    cmd.arg("--insecure-policy")
        .arg("--tmpdir")
        .arg(tmp)
        .args(args);
    cmd
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// An OCI image layout being written by hand.
pub struct Layout {
    pub dir: PathBuf,
    pub blobs: BTreeMap<String, Vec<u8>>,
    pub refs: Vec<String>,
}

pub struct Image {
    pub manifest: Vec<u8>,
    pub digest: String,
    pub config: String,
    pub layer: String,
    pub diff_id: String,
}

impl Layout {
    pub fn new(dir: PathBuf) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir,
            blobs: BTreeMap::new(),
            refs: vec![],
        }
    }

    pub fn blob(&mut self, bytes: Vec<u8>) -> String {
        let d = sha256(&bytes);
        std::fs::write(
            self.dir
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
            &bytes,
        )
        .unwrap();
        self.blobs.insert(d.clone(), bytes);
        d
    }

    /// A real gzip'd tar layer of a few files, one of them `big` random bytes.
    pub fn layer(&mut self, work: &Path, seed: u64, big: usize) -> (String, usize, String) {
        let root = work.join(format!("rootfs-{seed}"));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(
            root.join("etc/hello.txt"),
            format!("hello from layer {seed}\n"),
        )
        .unwrap();
        std::fs::write(root.join("data/random.bin"), random_bytes(big, seed)).unwrap();
        let tar = work.join(format!("layer-{seed}.tar"));
        let plain = reproducible_tar(&root);
        std::fs::write(&tar, &plain).unwrap();
        let gz = run_ok_bytes(Command::new("gzip").args(["-n", "-c"]).arg(&tar));
        let n = gz.len();
        (self.blob(gz), n, sha256(&plain))
    }

    pub fn image(&mut self, work: &Path, arch: &str, seed: u64, big: usize) -> Image {
        let (layer, layer_n, diff_id) = self.layer(work, seed, big);
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","config":{{"Env":["PATH=/usr/bin","SEED={seed}"]}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}},"history":[{{"created_by":"e2e_skopeo test"}}]}}"#
        )
        .into_bytes();
        let config_n = config.len();
        let config = self.blob(config);
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{config}","size":{config_n}}},"layers":[{{"mediaType":"{OCI_LAYER}","digest":"{layer}","size":{layer_n}}}]}}"#
        )
        .into_bytes();
        let digest = self.blob(manifest.clone());
        Image {
            manifest,
            digest,
            config,
            layer,
            diff_id,
        }
    }

    /// Names a manifest in index.json under `name`.
    pub fn reference(&mut self, media_type: &str, digest: &str, name: &str) {
        let size = self.blobs[digest].len();
        self.refs.push(format!(
            r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size},"annotations":{{"org.opencontainers.image.ref.name":"{name}"}}}}"#
        ));
        std::fs::write(
            self.dir.join("index.json"),
            format!(
                r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
                self.refs.join(",")
            ),
        )
        .unwrap();
    }
}

/// An OCI index of `images`, each with its platform (a JSON object such
/// as `{"architecture":"amd64","os":"linux"}`).
pub fn index(images: &[(&Image, &str)]) -> Vec<u8> {
    let entries: Vec<String> = images
        .iter()
        .map(|(img, platform)| {
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{platform}}}"#,
                img.digest,
                img.manifest.len()
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entries.join(",")
    )
    .into_bytes()
}

/// A tar of `dir`'s contents that depends only on them: sorted, root-owned,
/// timestamps at the epoch, so the same files always give the same digest.
pub fn reproducible_tar(dir: &Path) -> Vec<u8> {
    run_ok_bytes(
        Command::new("tar")
            .args([
                "--sort=name",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "--mtime=@0",
                "-C",
            ])
            .arg(dir)
            .args(["-cf", "-", "."]),
    )
}

pub fn run_ok_bytes(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The digest index.json of a layout gives for `name`.
pub fn layout_ref(dir: &Path, name: &str) -> String {
    let idx = json(&std::fs::read_to_string(dir.join("index.json")).unwrap());
    idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {idx}"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    let p = dir
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
