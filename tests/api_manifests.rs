//! Manifests, tags, catalog and referrers against a real server.

mod common;
use common::*;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

fn put_manifest(s: &Server, repo: &str, reference: &str, media_type: &str, body: &str) -> Resp {
    s.req("PUT", &format!("/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .body(body.as_bytes().to_vec())
        .send()
}

fn docker_image(s: &Server, repo: &str, seed: &str) -> String {
    let c = push_blob(s, repo, seed.as_bytes());
    let l = push_blob(s, repo, format!("L{seed}").as_bytes());
    image_manifest(DOCKER_MANIFEST, (&c, seed.len()), &[(&l, seed.len() + 1)])
}

#[test]
fn exact_bytes_by_tag_and_digest_with_headers() {
    let s = Server::start();
    // Unusual whitespace must survive: the registry serves what was pushed.
    let m = docker_image(&s, "team/app", "cfg1").replace(",", ",\n   ");
    let r = put_manifest(&s, "team/app", "1.0", DOCKER_MANIFEST, &m);
    assert_eq!(r.status, 201, "{}", r.text());
    let d = sha256(m.as_bytes());
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    assert_eq!(r.location_path(), format!("/v2/team/app/manifests/{d}"));
    for reference in ["1.0", d.as_str()] {
        let r = s
            .req("GET", &format!("/v2/team/app/manifests/{reference}"))
            .header("Accept", DOCKER_MANIFEST)
            .send();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, m.as_bytes());
        assert_eq!(r.header("Content-Type"), Some(DOCKER_MANIFEST));
        assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
        let h = s
            .req("HEAD", &format!("/v2/team/app/manifests/{reference}"))
            .send();
        assert_eq!(h.status, 200);
        assert_eq!(
            h.header("Content-Length"),
            Some(m.len().to_string().as_str())
        );
        assert_eq!(h.header("Docker-Content-Digest"), Some(d.as_str()));
    }
    // Manifests are readable through the blob endpoint too, as distribution allows.
    assert_eq!(
        s.req("GET", &format!("/v2/team/app/blobs/{d}")).send().body,
        m.as_bytes()
    );
}

#[test]
fn put_by_digest_verifies_it() {
    let s = Server::start();
    let m = docker_image(&s, "a", "c");
    let d = sha256(m.as_bytes());
    assert_eq!(put_manifest(&s, "a", &d, DOCKER_MANIFEST, &m).status, 201);
    let wrong = sha256(b"other");
    let r = put_manifest(&s, "a", &wrong, DOCKER_MANIFEST, &m);
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
}

#[test]
fn missing_references_are_refused() {
    let s = Server::start();
    let c = push_blob(&s, "a", b"cfg");
    let missing = sha256(b"not pushed");
    let m = image_manifest(OCI_MANIFEST, (&c, 3), &[(&missing, 10)]);
    let r = put_manifest(&s, "a", "t", OCI_MANIFEST, &m);
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    assert_eq!(r.json()["errors"][0]["detail"]["digest"], missing.as_str());
    // A blob in another repository does not count.
    let other = push_blob(&s, "b", b"layer in b");
    let m = image_manifest(OCI_MANIFEST, (&c, 3), &[(&other, 10)]);
    assert_eq!(
        put_manifest(&s, "a", "t", OCI_MANIFEST, &m).code(),
        "MANIFEST_BLOB_UNKNOWN"
    );
    // An index whose child manifest is absent.
    let idx = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{missing}","size":5}}]}}"#
    );
    assert_eq!(
        put_manifest(&s, "a", "i", OCI_INDEX, &idx).code(),
        "MANIFEST_BLOB_UNKNOWN"
    );
    assert_eq!(
        s.req("GET", "/v2/a/manifests/t").send().code(),
        "MANIFEST_UNKNOWN"
    );
}

#[test]
fn invalid_manifests_and_references() {
    let s = Server::start();
    let r = put_manifest(&s, "a", "t", OCI_MANIFEST, "{not json");
    assert_eq!((r.status, r.code().as_str()), (400, "MANIFEST_INVALID"));
    let m = docker_image(&s, "a", "x");
    let r = put_manifest(&s, "a", "t", OCI_MANIFEST, &m);
    assert_eq!(
        r.code(),
        "MANIFEST_INVALID",
        "Content-Type contradicting mediaType"
    );
    let r = put_manifest(&s, "a", "bad:tag:x", DOCKER_MANIFEST, &m);
    assert_eq!(r.status, 400);
    let r = put_manifest(&s, "a", ".hidden", DOCKER_MANIFEST, &m);
    assert_eq!((r.status, r.code().as_str()), (400, "TAG_INVALID"));
    // Reading an invalid reference finds nothing; only storing one is a
    // bad request (the OCI conformance suite's ".INVALID_MANIFEST_NAME").
    for method in ["GET", "HEAD", "DELETE"] {
        let r = s
            .req(method, "/v2/a/manifests/.INVALID_MANIFEST_NAME")
            .send();
        assert_eq!(r.status, 404, "{method}");
        if method != "HEAD" {
            assert_eq!(r.code(), "MANIFEST_UNKNOWN", "{method}");
        }
    }
    let r = s.req("GET", "/v2/a/manifests/nosuchtag").send();
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = s.req("GET", "/v2/never/pushed/manifests/latest").send();
    assert_eq!(r.status, 404);
}

#[test]
fn oversized_manifest_is_413() {
    let s = Server::start_with("privateregistry:\n  manifestmaxbytes: 1000\n");
    let big = format!(
        r#"{{"schemaVersion":2,"annotations":{{"x":"{}"}}}}"#,
        "a".repeat(2000)
    );
    let r = put_manifest(&s, "a", "t", OCI_MANIFEST, &big);
    assert_eq!(r.status, 413);
    assert_eq!(r.code(), "MANIFEST_INVALID");
    // Same with no Content-Length (chunked): the limit holds while reading.
    let r = s
        .req("PUT", "/v2/a/manifests/t")
        .header("Content-Type", OCI_MANIFEST)
        .header("Transfer-Encoding", "chunked")
        .body(big.into_bytes())
        .send();
    assert_eq!(r.status, 413);
}

#[test]
fn index_and_accept_negotiation() {
    let s = Server::start();
    let amd = docker_image(&s, "multi", "amd64");
    let arm = docker_image(&s, "multi", "arm64");
    let (da, db) = (sha256(amd.as_bytes()), sha256(arm.as_bytes()));
    assert_eq!(
        put_manifest(&s, "multi", &da, DOCKER_MANIFEST, &amd).status,
        201
    );
    assert_eq!(
        put_manifest(&s, "multi", &db, DOCKER_MANIFEST, &arm).status,
        201
    );
    let list = format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
        {{"mediaType":"{DOCKER_MANIFEST}","digest":"{db}","size":{},"platform":{{"architecture":"arm64","os":"linux"}}}},
        {{"mediaType":"{DOCKER_MANIFEST}","digest":"{da}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        arm.len(),
        amd.len()
    );
    assert_eq!(
        put_manifest(&s, "multi", "latest", DOCKER_LIST, &list).status,
        201
    );
    let r = s
        .req("GET", "/v2/multi/manifests/latest")
        .header("Accept", &format!("{DOCKER_MANIFEST}, {DOCKER_LIST}"))
        .send();
    assert_eq!(r.header("Content-Type"), Some(DOCKER_LIST));
    assert_eq!(r.body, list.as_bytes());
    // A client that cannot read lists gets the linux/amd64 image.
    let r = s
        .req("GET", "/v2/multi/manifests/latest")
        .header("Accept", DOCKER_MANIFEST)
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Docker-Content-Digest"), Some(da.as_str()));
    // An OCI manifest is not served to a client that accepts only Docker types.
    let c = push_blob(&s, "o", b"c");
    let m = image_manifest(OCI_MANIFEST, (&c, 1), &[]);
    put_manifest(&s, "o", "t", OCI_MANIFEST, &m);
    let r = s
        .req("GET", "/v2/o/manifests/t")
        .header("Accept", DOCKER_MANIFEST)
        .send();
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = s
        .req("GET", "/v2/o/manifests/t")
        .header("Accept", "*/*")
        .send();
    assert_eq!(r.status, 200);
}

#[test]
fn tags_list_sorted_and_paginated() {
    let s = Server::start();
    let m = docker_image(&s, "t", "c");
    for tag in ["b", "a", "d", "c", "e"] {
        assert_eq!(put_manifest(&s, "t", tag, DOCKER_MANIFEST, &m).status, 201);
    }
    let r = s.req("GET", "/v2/t/tags/list").send();
    assert_eq!(
        r.json()["tags"],
        serde_json::json!(["a", "b", "c", "d", "e"])
    );
    assert_eq!(r.json()["name"], "t");
    assert!(r.header("Link").is_none());
    let r = s.req("GET", "/v2/t/tags/list?n=2").send();
    assert_eq!(r.json()["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        r.header("Link"),
        Some(r#"</v2/t/tags/list?last=b&n=2>; rel="next""#)
    );
    let r = s.req("GET", "/v2/t/tags/list?n=2&last=d").send();
    assert_eq!(r.json()["tags"], serde_json::json!(["e"]));
    assert!(r.header("Link").is_none());
    let r = s.req("GET", "/v2/t/tags/list?n=0").send();
    assert_eq!(r.json()["tags"], serde_json::json!([]));
    let r = s.req("GET", "/v2/t/tags/list?n=-1").send();
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "PAGINATION_NUMBER_INVALID")
    );
    let r = s.req("GET", "/v2/unknown/tags/list").send();
    assert_eq!((r.status, r.code().as_str()), (404, "NAME_UNKNOWN"));
}

#[test]
fn page_size_is_capped() {
    let s = Server::start_with("privateregistry:\n  maxpagesize: 3\n");
    let m = docker_image(&s, "t", "c");
    for tag in ["1", "2", "3", "4", "5"] {
        put_manifest(&s, "t", tag, DOCKER_MANIFEST, &m);
    }
    let r = s.req("GET", "/v2/t/tags/list?n=100000").send();
    assert_eq!(r.json()["tags"].as_array().unwrap().len(), 3);
    assert!(r.header("Link").is_some());
    // Without `n`, every tag, as distribution answers (clients that never
    // follow `Link` rely on it); the catalog still comes in pages.
    let r = s.req("GET", "/v2/t/tags/list").send();
    assert_eq!(
        r.json()["tags"],
        serde_json::json!(["1", "2", "3", "4", "5"])
    );
    assert!(r.header("Link").is_none());
    for repo in ["u", "v", "w"] {
        push_image(&s, repo, "1", repo);
    }
    let r = s.req("GET", "/v2/_catalog").send();
    assert_eq!(r.json()["repositories"], serde_json::json!(["t", "u", "v"]));
    assert!(r.header("Link").is_some());
}

#[test]
fn catalog_sorted_and_paginated() {
    let s = Server::start();
    for repo in ["b", "a/b", "a-c", "a", "z/y/x"] {
        push_image(&s, repo, "1", repo);
    }
    let r = s.req("GET", "/v2/_catalog").send();
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["a", "a/b", "a-c", "b", "z/y/x"])
    );
    let r = s.req("GET", "/v2/_catalog?n=2").send();
    assert_eq!(r.json()["repositories"], serde_json::json!(["a", "a/b"]));
    assert_eq!(
        r.header("Link"),
        Some(r#"</v2/_catalog?last=a/b&n=2>; rel="next""#)
    );
    let r = s.req("GET", "/v2/_catalog?n=2&last=a/b").send();
    assert_eq!(r.json()["repositories"], serde_json::json!(["a-c", "b"]));
    let r = s.req("GET", "/v2/_catalog?n=2&last=b").send();
    assert_eq!(r.json()["repositories"], serde_json::json!(["z/y/x"]));
    assert!(r.header("Link").is_none());
}

#[test]
fn delete_manifest_by_digest_removes_its_tags() {
    let s = Server::start();
    let d = push_image(&s, "a", "one", "x");
    let m = s.req("GET", "/v2/a/manifests/one").send().body;
    put_manifest(
        &s,
        "a",
        "two",
        OCI_MANIFEST,
        std::str::from_utf8(&m).unwrap(),
    );
    let keep = push_image(&s, "a", "other", "y");
    assert_eq!(
        s.req("DELETE", &format!("/v2/a/manifests/{d}"))
            .send()
            .status,
        202
    );
    assert_eq!(
        s.req("GET", &format!("/v2/a/manifests/{d}")).send().code(),
        "MANIFEST_UNKNOWN"
    );
    let tags = s.req("GET", "/v2/a/tags/list").send().json()["tags"].clone();
    assert_eq!(tags, serde_json::json!(["other"]));
    assert_eq!(
        s.req("GET", &format!("/v2/a/manifests/{keep}"))
            .send()
            .status,
        200
    );
    let r = s.req("DELETE", &format!("/v2/a/manifests/{d}")).send();
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
}

#[test]
fn delete_tag_keeps_manifest() {
    let s = Server::start();
    let d = push_image(&s, "a", "t1", "x");
    assert_eq!(s.req("DELETE", "/v2/a/manifests/t1").send().status, 202);
    assert_eq!(s.req("GET", "/v2/a/manifests/t1").send().status, 404);
    assert_eq!(
        s.req("GET", &format!("/v2/a/manifests/{d}")).send().status,
        200
    );
    let r = s.req("DELETE", "/v2/a/manifests/t1").send();
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = s.req("DELETE", "/v2/nowhere/manifests/t1").send();
    assert_eq!(r.status, 404);
}

#[test]
fn every_delete_is_refused_when_disabled_and_removes_nothing() {
    let dir = TempDir::new("nodel-manifests");
    let off = Server::start_on(
        &dir.0.join("data"),
        "",
        &[("REGISTRY_STORAGE_DELETE_ENABLED", "false")],
    );
    let d = push_image(&off, "a", "t1", "x");
    let layer = get_manifest(&off, "a", "t1").json()["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let before = walk_files(&off.root);
    for path in [
        format!("/v2/a/manifests/{d}"),
        "/v2/a/manifests/t1".to_string(),
        format!("/v2/a/blobs/{layer}"),
        // Absent ones too: refused before anything is looked up.
        "/v2/a/manifests/nosuchtag".to_string(),
        format!("/v2/b/blobs/{layer}"),
    ] {
        let r = off.req("DELETE", &path).send();
        assert_eq!(
            (r.status, r.code().as_str()),
            (405, "UNSUPPORTED"),
            "{path}"
        );
    }
    assert_eq!(walk_files(&off.root), before);
    assert_eq!(get_manifest(&off, "a", "t1").status, 200);
}

#[test]
fn referrers_with_artifact_type_filter() {
    let s = Server::start();
    let subject = push_image(&s, "app", "1.0", "base");
    let subject_len = s.req("GET", "/v2/app/manifests/1.0").send().body.len();
    let empty = push_blob(&s, "app", b"{}");
    let mut referrers = vec![];
    for (kind, note) in [
        ("application/vnd.example.sbom", "sbom"),
        ("application/vnd.example.sig", "sig"),
    ] {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{kind}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":{subject_len}}},"annotations":{{"note":"{note}"}}}}"#
        );
        let d = sha256(m.as_bytes());
        let r = put_manifest(&s, "app", &d, OCI_MANIFEST, &m);
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.header("OCI-Subject"), Some(subject.as_str()));
        referrers.push(d);
    }
    let r = s.req("GET", &format!("/v2/app/referrers/{subject}")).send();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some(OCI_INDEX));
    let list = r.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|m| m["annotations"]["note"] == "sbom"));
    let r = s
        .req(
            "GET",
            &format!("/v2/app/referrers/{subject}?artifactType=application/vnd.example.sig"),
        )
        .send();
    assert_eq!(r.header("OCI-Filters-Applied"), Some("artifactType"));
    let list = r.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["artifactType"], "application/vnd.example.sig");
    assert_eq!(list[0]["digest"], referrers[1].as_str());
    // Deleting a referrer removes it from the list.
    assert_eq!(
        s.req("DELETE", &format!("/v2/app/manifests/{}", referrers[1]))
            .send()
            .status,
        202
    );
    let r = s.req("GET", &format!("/v2/app/referrers/{subject}")).send();
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
    // Unknown subjects have no referrers; bad digests are refused.
    let r = s
        .req("GET", &format!("/v2/app/referrers/{}", sha256(b"none")))
        .send();
    assert_eq!(
        (r.status, r.json()["manifests"].as_array().unwrap().len()),
        (200, 0)
    );
    assert_eq!(
        s.req("GET", "/v2/app/referrers/sha256:zz").send().code(),
        "DIGEST_INVALID"
    );
}

/// `storage.maintenance.readonly`: what was pushed is served, every write
/// is refused as distribution refuses it (405, `Allow: GET, HEAD`) with the
/// spec's `UNSUPPORTED` code, on whichever storage the tests run.
#[test]
fn read_only_mode_serves_pulls_and_refuses_writes() {
    let dir = TempDir::new("ro");
    let root = dir.0.join("data");
    let s = Server::start_on(&root, "", &[]);
    let digest = push_image(&s, "frozen/app", "v1", "frozen");
    drop(s);
    let env = [("REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED", "true")];
    let s = Server::start_on(&root, "", &env);
    let r = get_manifest(&s, "frozen/app", "v1");
    assert_eq!((r.status, sha256(&r.body)), (200, digest.clone()));
    for (m, path) in [
        ("POST", "/v2/frozen/app/blobs/uploads/".to_string()),
        ("PUT", "/v2/frozen/app/manifests/v2".to_string()),
        ("DELETE", format!("/v2/frozen/app/manifests/{digest}")),
        ("PATCH", "/v2/frozen/app/blobs/uploads/x".to_string()),
    ] {
        let r = s.req(m, &path).send();
        assert_eq!(r.status, 405, "{m} {path}: {}", r.text());
        assert_eq!(r.code(), "UNSUPPORTED", "{m} {path}");
        assert_eq!(r.header("Allow"), Some("GET, HEAD"), "{m} {path}");
    }
    assert_eq!(
        probe(s.addr, "/healthz"),
        Some(200),
        "healthy, writing nothing"
    );
}
