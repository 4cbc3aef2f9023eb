//! End to end with a real Docker engine: each test starts its own `dockerd`
//! (vfs storage, no networking set-up, private data/exec roots and socket),
//! builds an image without any registry (`docker import`, `docker commit`),
//! pushes it to our server over plain HTTP on 127.0.0.1, removes it locally,
//! pulls it back, and checks the engine ends up with the very same image.
//!
//! Needs root (dockerd) and Debian's docker.io package; see `common/docker.rs`.

mod common;

use common::docker::*;
use common::*;
use std::path::Path;
use std::process::Command;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Checks what the registry holds for `repo:tag` against the engine's view of
/// the image: manifest digest, config = image id, layers that decompress to
/// the image's diff ids. Returns the manifest.
fn check_registry_image(
    s: &Server,
    repo: &str,
    tag: &str,
    digest: &str,
    image: &serde_json::Value,
    work: &Path,
) -> serde_json::Value {
    let r = s
        .req("GET", &format!("/v2/{repo}/manifests/{tag}"))
        .header("Accept", DOCKER_MANIFEST)
        .send();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some(DOCKER_MANIFEST));
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest));
    assert_eq!(sha256(&r.body), digest);
    let by_digest = s
        .req("GET", &format!("/v2/{repo}/manifests/{digest}"))
        .header("Accept", DOCKER_MANIFEST)
        .send();
    assert_eq!(by_digest.status, 200);
    assert!(by_digest.body == r.body);
    let m = r.json();
    assert_eq!(
        m["config"]["digest"], image["Id"],
        "manifest config is not the image id"
    );
    let config = s.get_following(&format!(
        "/v2/{repo}/blobs/{}",
        m["config"]["digest"].as_str().unwrap()
    ));
    assert_eq!(config.status, 200);
    assert_eq!(sha256(&config.body), image["Id"].as_str().unwrap());
    let diff_ids = strings(&image["RootFS"]["Layers"]);
    assert_eq!(strings(&config.json()["rootfs"]["diff_ids"]), diff_ids);
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), diff_ids.len());
    for (l, diff_id) in layers.iter().zip(&diff_ids) {
        let d = l["digest"].as_str().unwrap();
        let r = s.get_following(&format!("/v2/{repo}/blobs/{d}"));
        assert_eq!(r.status, 200, "layer {d}: {}", r.text());
        assert_eq!(r.body.len() as u64, l["size"].as_u64().unwrap());
        assert_eq!(sha256(&r.body), d);
        let gz = work.join("layer.gz");
        std::fs::write(&gz, &r.body).unwrap();
        let tar = Command::new("gzip").arg("-dc").arg(&gz).output().unwrap();
        assert!(tar.status.success(), "layer {d} is not gzip");
        assert_eq!(
            &sha256(&tar.stdout),
            diff_id,
            "layer {d} does not decompress to its diff id"
        );
    }
    m
}

#[test]
fn import_push_rmi_pull_roundtrip() {
    let _one = ONE_DOCKERD.lock().unwrap_or_else(|e| e.into_inner());
    let s = Server::start();
    let dk = Dockerd::start();
    let work = TempDir::new("dkw");
    let (tar, big) = rootfs_tar(&work.0, 1);
    let id = dk
        .docker(&["import", tar.to_str().unwrap(), "e2e/base:src"])
        .trim()
        .to_string();
    let before = dk.inspect(&id);
    assert_eq!(before["Id"], id.as_str());
    let diff_ids = strings(&before["RootFS"]["Layers"]);
    assert_eq!(diff_ids.len(), 1);

    let reference = format!("{}/team/app:1.0", s.addr);
    dk.docker(&["tag", &id, &reference]);
    let out = dk.docker(&["push", &reference]);
    let digest = pushed_digest(&out);

    // The registry's view.
    assert_eq!(tags_of(&s, "team/app"), ["1.0"]);
    let head = s
        .req("HEAD", "/v2/team/app/manifests/1.0")
        .header("Accept", DOCKER_MANIFEST)
        .send();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Docker-Content-Digest"), Some(digest.as_str()));
    check_registry_image(&s, "team/app", "1.0", &digest, &before, &work.0);
    let cat = s.req("GET", "/v2/_catalog").send();
    assert_eq!(strings(&cat.json()["repositories"]), ["team/app"]);

    // Remove it locally; it must really be gone.
    dk.docker(&["rmi", &reference, "e2e/base:src"]);
    assert!(
        !dk.try_docker(&["image", "inspect", &id]).status.success(),
        "image still present after rmi"
    );

    // Pull it back.
    let out = dk.docker(&["pull", &reference]);
    assert!(
        out.contains(&digest),
        "pull output does not name the pushed digest:\n{out}"
    );
    let after = dk.inspect(&reference);
    assert_eq!(after["Id"], before["Id"], "pulled image id differs");
    assert_eq!(after["RootFS"], before["RootFS"], "pulled layers differ");
    let want = format!("{}/team/app@{digest}", s.addr);
    assert!(
        strings(&after["RepoDigests"]).contains(&want),
        "RepoDigests {:?} lacks {want}",
        after["RepoDigests"]
    );

    // By digest too.
    dk.docker(&["rmi", &reference]);
    dk.docker(&["pull", &want]);
    assert_eq!(dk.inspect(&want)["Id"], before["Id"]);

    // And the file inside is the one put in.
    let ctr = dk
        .docker(&["create", &want, "/nonexistent"])
        .trim()
        .to_string();
    let out_file = work.0.join("big.out");
    dk.docker(&[
        "cp",
        &format!("{ctr}:/opt/app/big.bin"),
        out_file.to_str().unwrap(),
    ]);
    dk.docker(&["rm", &ctr]);
    assert!(
        std::fs::read(&out_file).unwrap() == big,
        "file read back from the pulled image differs"
    );
}

#[test]
fn multi_layer_image_second_repo_mounts_and_extra_tags() {
    let _one = ONE_DOCKERD.lock().unwrap_or_else(|e| e.into_inner());
    let s = Server::start();
    let dk = Dockerd::start();
    let work = TempDir::new("dkw");
    let (tar, _) = rootfs_tar(&work.0, 2);
    let base = dk
        .docker(&["import", tar.to_str().unwrap(), "e2e/base:src"])
        .trim()
        .to_string();
    // A second layer on top, without running anything.
    let top = dk.add_layer(&base, &work.0, &random_bytes(1 << 20, 22), &[]);
    let top_img = dk.inspect(&top);
    assert_eq!(strings(&top_img["RootFS"]["Layers"]).len(), 2);

    let base_ref = format!("{}/team/app:base", s.addr);
    dk.docker(&["tag", &base, &base_ref]);
    dk.docker(&["push", &base_ref]);

    // Pushing the layered image to another repository mounts the shared layer.
    let top_ref = format!("{}/team/other:1", s.addr);
    dk.docker(&["tag", &top, &top_ref]);
    let out = dk.docker(&["push", &top_ref]);
    assert!(
        out.contains("Mounted from team/app"),
        "shared layer was not mounted across repositories:\n{out}"
    );
    let digest = pushed_digest(&out);
    check_registry_image(&s, "team/other", "1", &digest, &top_img, &work.0);

    // More tags of the same image: nothing is uploaded again, same digest.
    for t in ["latest", "v1.2.3"] {
        let r = format!("{}/team/other:{t}", s.addr);
        dk.docker(&["tag", &top, &r]);
        let out = dk.docker(&["push", &r]);
        assert!(
            !out.contains("Pushed"),
            "re-push of {t} uploaded layers again:\n{out}"
        );
        assert_eq!(pushed_digest(&out), digest);
    }
    assert_eq!(tags_of(&s, "team/other"), ["1", "latest", "v1.2.3"]);
    let cat = s.req("GET", "/v2/_catalog").send();
    assert_eq!(
        strings(&cat.json()["repositories"]),
        ["team/app", "team/other"]
    );

    // Remove every local image, then pull the layered one back.
    // (The child image first: an image with children cannot be removed.)
    dk.docker(&["rmi", "-f", &top, &base]);
    assert_eq!(
        dk.docker(&["images", "-q"]).trim(),
        "",
        "images left after rmi"
    );
    dk.docker(&["pull", &format!("{}/team/other:v1.2.3", s.addr)]);
    let after = dk.inspect(&format!("{}/team/other:v1.2.3", s.addr));
    assert_eq!(after["Id"], top_img["Id"]);
    assert_eq!(after["RootFS"], top_img["RootFS"]);
}
