//! Upstream registries for the pull-through cache tests: images pushed to
//! any registry on loopback (ours or distribution, with or without
//! credentials), and the requests an upstream's access log shows.

use super::oci::{Image, Layout, OCI_MANIFEST};
use super::{Req, Server, req_to, sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A registry to push to, with the `Authorization` it wants, if any.
pub struct Target {
    pub addr: SocketAddr,
    pub authorization: Option<String>,
}

impl Target {
    pub fn anonymous(addr: SocketAddr) -> Target {
        Target {
            addr,
            authorization: None,
        }
    }

    pub fn with(addr: SocketAddr, authorization: String) -> Target {
        Target {
            addr,
            authorization: Some(authorization),
        }
    }

    pub fn req(&self, method: &str, path: &str) -> Req {
        let r = req_to(self.addr, method, path);
        match &self.authorization {
            Some(a) => r.header("Authorization", a),
            None => r,
        }
    }

    /// POST, then a PUT with the whole body: what both registries take.
    pub fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let d = sha256(data);
        let r = self
            .req("POST", &format!("/v2/{repo}/blobs/uploads/"))
            .send();
        assert_eq!(r.status, 202, "POST upload to {repo}: {}", r.text());
        let loc = r.location_path();
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = self
            .req("PUT", &format!("{loc}{sep}digest={d}"))
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send();
        assert_eq!(r.status, 201, "PUT blob to {repo}: {}", r.text());
        d
    }

    pub fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, manifest: &[u8]) {
        let r = self
            .req("PUT", &format!("/v2/{repo}/manifests/{reference}"))
            .header("Content-Type", media_type)
            .body(manifest.to_vec())
            .send();
        assert_eq!(
            r.status,
            201,
            "PUT manifest {repo}:{reference}: {}",
            r.text()
        );
    }

    /// Pushes `image` (built in `layout`) as `repo:tag`.
    pub fn push(&self, layout: &Layout, image: &Image, repo: &str, tag: &str) {
        for d in [&image.layer, &image.config] {
            assert_eq!(&self.push_blob(repo, &layout.blobs[d]), d);
        }
        self.put_manifest(repo, tag, OCI_MANIFEST, &image.manifest);
    }
}

/// A real image (one gzip'd tar layer holding `big` random bytes from
/// `seed`) in a layout under `work`.
pub fn image(work: &Path, seed: u64, big: usize) -> (Layout, Image) {
    let mut layout = Layout::new(work.join(format!("layout-{seed}")));
    let image = layout.image(work, "amd64", seed, big);
    (layout, image)
}

/// How many `method path` requests an access log shows: ours on standard
/// error (`access: CLIENT USER METHOD TARGET STATUS ...`) or distribution's
/// Combined Log Format (`"METHOD TARGET HTTP/1.1" STATUS ...`).
pub fn requests(log: &str, method: &str, path: &str) -> usize {
    let ours = format!(" {method} {path} ");
    let theirs = format!("\"{method} {path} HTTP/");
    log.lines()
        .filter(|l| (l.contains(" access: ") && l.contains(&ours)) || l.contains(&theirs))
        .count()
}

/// Access log lines, ours or distribution's, of requests whose target
/// starts with `prefix` and that were answered `status`.
pub fn answered(log: &str, prefix: &str, status: u16) -> usize {
    let status = status.to_string();
    log.lines()
        .filter(|l| {
            let Some((_, rest)) = l.split_once(&format!(" {prefix}")) else {
                return false;
            };
            // After the target: ours has the status, distribution the protocol first.
            let mut words = rest.split_whitespace().skip(1);
            let word = words.next();
            let code = match word {
                Some(w) if w.starts_with("HTTP/") => words.next(),
                w => w,
            };
            code == Some(status.as_str())
        })
        .count()
}

/// Our server as an upstream, always on the filesystem (a test alters its
/// blobs on disk), logging its requests; its data is under `dir/data`.
pub fn fs_server(dir: &Path) -> Server {
    fs_server_with(dir, "")
}

/// [`fs_server`] with `extra` top-level YAML, such as `auth:`.
pub fn fs_server_with(dir: &Path, extra: &str) -> Server {
    let yaml = format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n{extra}",
        dir.join("data").display()
    );
    Server::start_config(dir, &yaml, &[])
}

/// Where a filesystem store under `root` keeps the bytes of `digest`.
pub fn blob_file(root: &Path, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    root.join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}
