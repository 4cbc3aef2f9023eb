//! End to end with skopeo (containers/image): OCI layouts built on disk are
//! copied into the registry, inspected, listed, copied back byte for byte and
//! deleted, including a multi-architecture index copied with `--all`.

mod common;

use common::oci::*;
use common::*;
use std::process::Command;

fn get_manifest(s: &Server, repo: &str, reference: &str) -> Resp {
    s.req("GET", &format!("/v2/{repo}/manifests/{reference}"))
        .header("Accept", ACCEPT_ALL_MANIFESTS)
        .send()
}

fn tags_of(s: &Server, repo: &str) -> Vec<String> {
    let r = s.req("GET", &format!("/v2/{repo}/tags/list")).send();
    assert_eq!(r.status, 200, "{}", r.text());
    let mut t: Vec<String> = r.json()["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    t.sort();
    t
}

#[test]
fn copy_inspect_list_tags_copy_back_and_delete() {
    let s = Server::start();
    let work = TempDir::new("skopeo");
    let tmp = work.0.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let src = work.0.join("src");
    let mut layout = Layout::new(src.clone());
    let a = layout.image(&work.0, "amd64", 1, 2 << 20);
    let b = layout.image(&work.0, "amd64", 2, 300_000);
    layout.reference(OCI_MANIFEST, &a.digest, "a");
    layout.reference(OCI_MANIFEST, &b.digest, "b");
    let host = s.addr.to_string();
    let dest = |tag: &str| format!("docker://{host}/team/app:{tag}");
    let oci = |name: &str| format!("oci:{}:{name}", src.display());

    for (from, tag) in [("a", "1.0"), ("a", "latest"), ("b", "2.0")] {
        skopeo(
            &tmp,
            &[
                "copy",
                "--dest-tls-verify=false",
                "--dest-no-creds",
                "--preserve-digests",
                &oci(from),
                &dest(tag),
            ],
        );
    }

    // What the registry holds is exactly what was in the layout.
    for (img, tag) in [(&a, "1.0"), (&a, "latest"), (&b, "2.0")] {
        let r = get_manifest(&s, "team/app", tag);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.body == img.manifest,
            "manifest {tag} changed on the way: {}",
            r.text()
        );
        assert_eq!(r.header("Docker-Content-Digest"), Some(img.digest.as_str()));
        assert_eq!(r.header("Content-Type"), Some(OCI_MANIFEST));
        for d in [&img.config, &img.layer] {
            let r = s.get_following(&format!("/v2/team/app/blobs/{d}"));
            assert_eq!(r.status, 200);
            assert!(r.body == layout.blobs[d.as_str()], "blob {d} differs");
        }
    }

    // skopeo inspect: digest, layers, platform, tags.
    let info = json(&skopeo(
        &tmp,
        &["inspect", "--tls-verify=false", "--no-creds", &dest("1.0")],
    ));
    assert_eq!(info["Digest"], a.digest.as_str(), "{info}");
    assert_eq!(info["Layers"], serde_json::json!([a.layer]), "{info}");
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Os"], "linux");
    let mut repo_tags: Vec<String> = info["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    repo_tags.sort();
    assert_eq!(repo_tags, ["1.0", "2.0", "latest"]);
    let raw = skopeo(
        &tmp,
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--no-creds",
            &dest("2.0"),
        ],
    );
    assert!(
        raw.as_bytes() == b.manifest.as_slice(),
        "inspect --raw: {raw}"
    );
    let cfg = json(&skopeo(
        &tmp,
        &[
            "inspect",
            "--config",
            "--raw",
            "--tls-verify=false",
            "--no-creds",
            &dest("2.0"),
        ],
    ));
    assert_eq!(cfg["rootfs"]["diff_ids"], serde_json::json!([b.diff_id]));

    // list-tags.
    let lt = json(&skopeo(
        &tmp,
        &[
            "list-tags",
            "--tls-verify=false",
            "--no-creds",
            &format!("docker://{host}/team/app"),
        ],
    ));
    let mut tags: Vec<String> = lt["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    assert_eq!(tags, ["1.0", "2.0", "latest"], "{lt}");

    // Copy back into a fresh layout: same manifest digest and the same bytes.
    let back = work.0.join("back");
    skopeo(
        &tmp,
        &[
            "copy",
            "--src-tls-verify=false",
            "--src-no-creds",
            "--preserve-digests",
            &dest("1.0"),
            &format!("oci:{}:back", back.display()),
        ],
    );
    assert_eq!(layout_ref(&back, "back"), a.digest);
    for d in [&a.digest, &a.config, &a.layer] {
        assert!(
            layout_blob(&back, d) == layout.blobs[d.as_str()],
            "blob {d} differs after the round trip"
        );
    }

    // A copy that converts to Docker schema 2 on the way (new manifest, same blobs).
    let conv = format!("docker://{host}/team/conv:v2s2");
    skopeo(
        &tmp,
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-no-creds",
            "--format",
            "v2s2",
            &oci("a"),
            &conv,
        ],
    );
    let r = s
        .req("GET", "/v2/team/conv/manifests/v2s2")
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("Content-Type"),
        Some("application/vnd.docker.distribution.manifest.v2+json")
    );
    let m = r.json();
    assert_eq!(m["config"]["digest"], a.config.as_str());
    assert_eq!(m["layers"][0]["digest"], a.layer.as_str());
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let info = json(&skopeo(
        &tmp,
        &["inspect", "--tls-verify=false", "--no-creds", &conv],
    ));
    assert_eq!(info["Digest"], sha256(&r.body).as_str());

    // Delete 2.0: its manifest is gone, the others stay.
    skopeo(
        &tmp,
        &["delete", "--tls-verify=false", "--no-creds", &dest("2.0")],
    );
    let r = get_manifest(&s, "team/app", "2.0");
    assert_eq!(
        r.status,
        404,
        "tag 2.0 still resolves after skopeo delete: {}",
        r.text()
    );
    assert_eq!(r.code(), "MANIFEST_UNKNOWN");
    assert_eq!(
        get_manifest(&s, "team/app", &b.digest).status,
        404,
        "deleted manifest still resolves by digest"
    );
    assert_eq!(get_manifest(&s, "team/app", "1.0").status, 200);
    assert_eq!(tags_of(&s, "team/app"), ["1.0", "latest"]);

    // Delete latest: skopeo deletes by digest, which takes 1.0 along (same manifest).
    skopeo(
        &tmp,
        &[
            "delete",
            "--tls-verify=false",
            "--no-creds",
            &dest("latest"),
        ],
    );
    for r in ["latest", "1.0", a.digest.as_str()] {
        assert_eq!(
            get_manifest(&s, "team/app", r).status,
            404,
            "{r} still resolves"
        );
    }
    assert!(tags_of(&s, "team/app").is_empty());

    // Pushing again after the deletes works.
    skopeo(
        &tmp,
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-no-creds",
            "--preserve-digests",
            &oci("a"),
            &dest("1.0"),
        ],
    );
    let r = get_manifest(&s, "team/app", "1.0");
    assert_eq!(r.status, 200);
    assert!(r.body == a.manifest);
}

#[test]
fn copy_all_multi_arch_index_and_back() {
    let s = Server::start();
    let work = TempDir::new("skopeo-multi");
    let tmp = work.0.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let src = work.0.join("src");
    let mut layout = Layout::new(src.clone());
    let amd = layout.image(&work.0, "amd64", 11, 1 << 20);
    let arm = layout.image(&work.0, "arm64", 12, 700_000);
    let index = index(&[
        (&amd, r#"{"architecture":"amd64","os":"linux"}"#),
        (
            &arm,
            r#"{"architecture":"arm64","os":"linux","variant":"v8"}"#,
        ),
    ]);
    let index_d = layout.blob(index.clone());
    layout.reference(OCI_INDEX, &index_d, "multi");
    let host = s.addr.to_string();
    let dest = format!("docker://{host}/team/multi:1");

    skopeo(
        &tmp,
        &[
            "copy",
            "--all",
            "--dest-tls-verify=false",
            "--dest-no-creds",
            "--preserve-digests",
            &format!("oci:{}:multi", src.display()),
            &dest,
        ],
    );

    let r = get_manifest(&s, "team/multi", "1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body == index, "index changed on the way: {}", r.text());
    assert_eq!(r.header("Content-Type"), Some(OCI_INDEX));
    assert_eq!(r.header("Docker-Content-Digest"), Some(index_d.as_str()));
    for img in [&amd, &arm] {
        let r = get_manifest(&s, "team/multi", &img.digest);
        assert_eq!(r.status, 200, "child {} missing: {}", img.digest, r.text());
        assert!(r.body == img.manifest);
        for d in [&img.config, &img.layer] {
            let r = s.get_following(&format!("/v2/team/multi/blobs/{d}"));
            assert_eq!(r.status, 200);
            assert!(r.body == layout.blobs[d.as_str()], "blob {d} differs");
        }
    }

    let raw = skopeo(
        &tmp,
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--no-creds",
            &dest,
        ],
    );
    assert!(raw.as_bytes() == index.as_slice(), "inspect --raw: {raw}");
    // Resolving the index for a platform picks the right image.
    for (arch, img) in [("amd64", &amd), ("arm64", &arm)] {
        let info = json(&run_ok(
            Command::new(skopeo_bin())
                .args([
                    "--insecure-policy",
                    "--override-arch",
                    arch,
                    "--override-os",
                    "linux",
                ])
                .args(["inspect", "--tls-verify=false", "--no-creds", &dest]),
        ));
        assert_eq!(
            info["Layers"],
            serde_json::json!([img.layer]),
            "{arch}: {info}"
        );
        assert_eq!(info["Architecture"], arch, "{info}");
    }

    // A single-platform copy out of the index pushes just that image.
    let single = format!("docker://{host}/team/single:arm64");
    run_ok(
        Command::new(skopeo_bin())
            .args(["--insecure-policy", "--override-arch", "arm64", "--tmpdir"])
            .arg(&tmp)
            .args([
                "copy",
                "--src-tls-verify=false",
                "--src-no-creds",
                "--dest-tls-verify=false",
                "--dest-no-creds",
                &dest,
                &single,
            ]),
    );
    let r = get_manifest(&s, "team/single", "arm64");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.body == arm.manifest,
        "single-platform copy changed the manifest: {}",
        r.text()
    );

    // Copy everything back.
    let back = work.0.join("back");
    skopeo(
        &tmp,
        &[
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--src-no-creds",
            "--preserve-digests",
            &dest,
            &format!("oci:{}:m", back.display()),
        ],
    );
    assert_eq!(layout_ref(&back, "m"), index_d);
    for (d, bytes) in &layout.blobs {
        assert!(
            &layout_blob(&back, d) == bytes,
            "blob {d} differs after the round trip"
        );
    }
}
