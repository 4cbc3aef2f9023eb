//! The pull-through cache (`privateregistry.mirrors`, distribution's
//! `proxy:`) against real registries on loopback as upstreams: Debian's
//! `docker-registry` (CNCF distribution 2.8) anonymous, behind htpasswd, and
//! behind a bearer-token challenge from an issuer run here
//! (`common::token`); and our own server, alone or behind nginx (a CDN
//! redirect, 503/429 answers, a slow link). Pulled by real clients: a Docker
//! engine through `registry-mirrors`, skopeo by the prefixed name, a private
//! containerd through a hosts.toml mirror (`?ns=docker.io`), curl and the
//! harness's raw HTTP client.
//!
//! What the upstream saw comes from its access log; what the cache did from
//! ours and from the debug listener's `registry_mirror_*` metrics. Nothing
//! here reads the cache's data directory, so the tests run on S3 as well;
//! the one upstream a test alters on disk is always on the filesystem.

mod common;

use common::containerd::Containerd;
use common::distribution::Distribution;
use common::docker::*;
use common::front::{Front, Kind};
use common::images::pulls_completely;
use common::images::push_sharing;
use common::mirror::*;
use common::oci::{Image, Layout, OCI_INDEX, OCI_MANIFEST, index, skopeo};
use common::tls::{KeyType, Pki, http_tls_yaml};
use common::token::{Grant, TokenIssuer};
use common::upstream::*;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

// ---------------------------------------------------------------------------
// Real clients: Docker, skopeo, containerd.
// ---------------------------------------------------------------------------

/// Docker's `registry-mirrors` asks for Docker Hub names unprefixed
/// (`library/app`); the mirror that has `unprefixed: true` serves them from
/// its upstream's `library/app`, cached as `docker.io/library/app`. The
/// second pull, after `docker rmi`, is served from the cache.
#[test]
fn docker_pulls_through_registry_mirrors_cold_then_warm() {
    if lacks_tools(
        "docker_pulls_through_registry_mirrors",
        &["dockerd", "docker-registry"],
    ) {
        return;
    }
    let _one = ONE_DOCKERD.lock().unwrap_or_else(|e| e.into_inner());
    let updir = TempDir::new("mirror-up");
    let up = Distribution::start(&updir.0.join("data"));
    let (_work, _layout, img) = pushed(&Target::anonymous(up.addr), "library/app", "1", 1, 3 << 20);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &["unprefixed: true", "ttl: 10m"],
        }],
        "",
    );
    let dk = Dockerd::start_with_config(&format!(
        r#"{{"registry-mirrors":["http://{a}"],"insecure-registries":["{a}"]}}"#,
        a = s.addr
    ));
    let layer = format!("/v2/library/app/blobs/{}", img.layer);
    let log = || up.log_text();

    dk.docker(&["pull", "app:1"]);
    assert_eq!(dk.inspect("app:1")["Id"], img.config.as_str(), "cold pull");
    assert_eq!(upstream_requests(log, "GET", &layer, 1), 1, "{}", log());
    assert!(
        misses(&s, PREFIX, "blob") >= 2.0,
        "config and layer were misses"
    );
    // Cached under the prefixed name.
    let r = get_manifest(&s, "docker.io/library/app", "1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sha256(&r.body), img.digest);

    dk.docker(&["rmi", "app:1"]);
    assert!(
        !dk.try_docker(&["image", "inspect", "app:1"])
            .status
            .success()
    );
    let blob_hits = hits(&s, PREFIX, "blob");
    dk.docker(&["pull", "app:1"]);
    assert_eq!(dk.inspect("app:1")["Id"], img.config.as_str(), "warm pull");
    assert!(
        hits(&s, PREFIX, "blob") >= blob_hits + 2.0,
        "the warm pull's config and layer came from the cache"
    );
    assert_eq!(
        requests(&log(), "GET", &layer),
        1,
        "layer fetched again:\n{}",
        log()
    );
    assert_eq!(
        requests(&log(), "GET", "/v2/library/app/manifests/1"),
        1,
        "tag fetched again within its ttl:\n{}",
        log()
    );
}

/// The usual site: a registry that wants a login, its Docker Hub cache open
/// to anonymous pulls, and engines that know it only as a registry mirror
/// (which they never log in to): they use a listener with `anonymous:
/// true`, where `/v2/` does not challenge; the other listener still asks
/// for a login, and local repositories stay closed to anonymous pulls.
#[test]
fn docker_pulls_anonymously_through_a_cache_on_a_registry_with_logins() {
    if lacks_tools("docker_pulls_anonymously_through_a_cache", &["dockerd"]) {
        return;
    }
    let _one = ONE_DOCKERD.lock().unwrap_or_else(|e| e.into_inner());
    let updir = TempDir::new("mirror-up");
    let up = fs_server(&updir.0);
    let (_work, _layout, img) =
        pushed(&Target::anonymous(up.addr), "library/app", "2", 28, 1 << 20);
    let htpasswd = updir.0.join("htpasswd");
    write_htpasswd(&htpasswd, &[("admin", "admin-pw")]);
    let mut s = start_mirror(
        &format!(
            "auth:\n  htpasswd:\n    realm: mirror\n    path: {}\n",
            htpasswd.display()
        ),
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &["unprefixed: true"],
        }],
        "  listeners:\n    - {name: main, addr: '127.0.0.1:0'}\n    - {name: mirrors, addr: '127.0.0.1:0', anonymous: true}\n  access:\n    rules:\n      - {repositories: [\"docker.io/*\"], anonymous: true, allow: [pull]}\n      - {repositories: [\"*\"], users: [admin], allow: [pull, push]}\n",
    );
    let (main, open) = (s.listeners[0].0, s.listeners[1].0);
    s.expect_log(&format!(
        "serving on {open} (plain) for listener \"mirrors\""
    ));
    assert_eq!(req_to(main, "GET", "/v2/").send().status, 401);
    assert_eq!(req_to(open, "GET", "/v2/").send().status, 200);
    s.credentials = Some(("admin".into(), "admin-pw".into()));
    push_image(&s, "local/app", "1", "local");
    let r = req_to(open, "GET", "/v2/local/app/manifests/1").send();
    assert!(
        matches!(r.status, 401 | 403),
        "anonymous pull of a local repository: {}",
        r.status
    );
    let dk = Dockerd::start_with_config(&format!(
        r#"{{"registry-mirrors":["http://{open}"],"insecure-registries":["{open}"]}}"#
    ));
    dk.docker(&["pull", "app:2"]);
    assert_eq!(dk.inspect("app:2")["Id"], img.config.as_str());
}

/// registry:2's pull-through cache setup, distribution's `proxy:` section
/// as it is: the whole registry caches one upstream, and Docker uses it as
/// its registry mirror.
#[test]
fn docker_pulls_through_a_proxy_mode_registry() {
    if lacks_tools("docker_pulls_through_a_proxy_mode_registry", &["dockerd"]) {
        return;
    }
    let _one = ONE_DOCKERD.lock().unwrap_or_else(|e| e.into_inner());
    let updir = TempDir::new("mirror-up");
    let up = fs_server(&updir.0);
    let (_work, _layout, img) =
        pushed(&Target::anonymous(up.addr), "library/app", "3", 32, 1 << 20);
    let s = Server::start_with(&format!("{DEBUG}proxy:\n  remoteurl: http://{}\n", up.addr));
    let dk = Dockerd::start_with_config(&format!(
        r#"{{"registry-mirrors":["http://{a}"],"insecure-registries":["{a}"]}}"#,
        a = s.addr
    ));
    dk.docker(&["pull", "app:3"]);
    assert_eq!(dk.inspect("app:3")["Id"], img.config.as_str());
    assert!(misses(&s, "", "blob") >= 2.0);
    assert_eq!(tags_of(&s, "library/app"), ["3"]);
}

/// skopeo copies `OURS/docker.io/team/app:1` to a directory twice: the
/// first fills the cache from our own server as the upstream, the second
/// is served from it.
#[test]
fn skopeo_copies_a_prefixed_name_cold_then_warm() {
    if lacks_tools("skopeo_copies_a_prefixed_name", &["skopeo"]) {
        return;
    }
    let (_updir, up, (work, _layout, img)) = app_upstream(2, 2 << 20);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &[],
        }],
        "",
    );
    let src = format!("docker://{}/docker.io/team/app:1", s.addr);
    let layer = format!("/v2/team/app/blobs/{}", img.layer);
    let log = || up.log_text();
    let copy = |n: u32| {
        let dest = work.0.join(format!("copy-{n}"));
        skopeo(
            &work.0,
            &[
                "copy",
                "--src-tls-verify=false",
                &src,
                &format!("dir:{}", dest.display()),
            ],
        );
        let manifest = std::fs::read(dest.join("manifest.json")).unwrap();
        assert_eq!(sha256(&manifest), img.digest, "copy {n}");
        let layer_file = dest.join(img.layer.trim_start_matches("sha256:"));
        assert_eq!(sha256_file(&layer_file), img.layer, "copy {n}");
    };

    let bytes = || {
        metric(
            &s,
            "registry_mirror_upstream_bytes_total",
            &[("upstream", PREFIX)],
        )
    };
    copy(1);
    assert_eq!(upstream_requests(log, "GET", &layer, 1), 1, "{}", log());
    let fetched = bytes();
    assert!(
        fetched >= (img.manifest.len() + (2 << 20)) as f64,
        "{fetched} bytes from upstream"
    );
    assert!(
        misses(&s, PREFIX, "manifest") >= 1.0,
        "the cold copy's manifest"
    );
    let (blob_hits, manifest_hits) = (hits(&s, PREFIX, "blob"), hits(&s, PREFIX, "manifest"));
    copy(2);
    assert!(hits(&s, PREFIX, "blob") >= blob_hits + 2.0, "warm copy");
    assert!(
        hits(&s, PREFIX, "manifest") > manifest_hits,
        "warm copy's manifest"
    );
    assert_eq!(bytes(), fetched, "the warm copy fetched bytes");
    assert_eq!(
        requests(&log(), "GET", &layer),
        1,
        "fetched again:\n{}",
        log()
    );
}

/// A multi-platform index, what Docker Hub mostly serves: `skopeo copy
/// --all` through the mirror gets the index by tag and each image by
/// digest, each fetched from the upstream once; a second copy is served
/// from the cache.
#[test]
fn an_index_and_its_images_are_mirrored() {
    if lacks_tools("an_index_and_its_images_are_mirrored", &["skopeo"]) {
        return;
    }
    let updir = TempDir::new("mirror-up");
    let up = fs_server(&updir.0);
    let work = TempDir::new("mirror-multi");
    let mut layout = Layout::new(work.0.join("layout"));
    let amd = layout.image(&work.0, "amd64", 16, 512 << 10);
    let arm = layout.image(&work.0, "arm64", 17, 256 << 10);
    let target = Target::anonymous(up.addr);
    for img in [&amd, &arm] {
        target.push(&layout, img, "team/multi", &img.digest);
    }
    let idx = index(&[
        (&amd, r#"{"architecture":"amd64","os":"linux"}"#),
        (&arm, r#"{"architecture":"arm64","os":"linux"}"#),
    ]);
    target.put_manifest("team/multi", "1", OCI_INDEX, &idx);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &[],
        }],
        "",
    );
    let src = format!("docker://{}/docker.io/team/multi:1", s.addr);
    let log = || up.log_text();
    let fetched = || {
        let mut paths = vec!["/v2/team/multi/manifests/1".to_string()];
        for img in [&amd, &arm] {
            paths.push(format!("/v2/team/multi/manifests/{}", img.digest));
            paths.push(format!("/v2/team/multi/blobs/{}", img.layer));
            paths.push(format!("/v2/team/multi/blobs/{}", img.config));
        }
        paths
            .iter()
            .map(|p| (p.clone(), requests(&log(), "GET", p)))
            .collect::<Vec<_>>()
    };
    for n in 1..=2 {
        let dest = work.0.join(format!("copy-{n}"));
        skopeo(
            &work.0,
            &[
                "copy",
                "--all",
                "--src-tls-verify=false",
                &src,
                &format!("dir:{}", dest.display()),
            ],
        );
        let copied = std::fs::read(dest.join("manifest.json")).unwrap();
        assert!(copied == idx, "copy {n}: not the upstream's index");
        wait_for(10, || fetched().iter().all(|(_, c)| *c >= 1));
        for (path, count) in fetched() {
            assert_eq!(count, 1, "copy {n}: GET {path} upstream:\n{}", log());
        }
    }
    for img in [&amd, &arm] {
        pulls_completely(&s, "docker.io/team/multi", &img.digest, &img.digest);
    }
}

/// With `unprefixed`, a client pushing a new local repository under a name
/// the upstream also has (asking HEAD for each blob first, as Docker does,
/// and here reusing the upstream's layer) gets its image stored; from then
/// on the local repository has that name, the mirror `docker.io/...` only.
#[test]
fn a_local_push_under_a_name_the_upstream_has_takes_it_over() {
    let updir = TempDir::new("mirror-up");
    let up = fs_server(&updir.0);
    let (_work, layout, img) = pushed(&Target::anonymous(up.addr), "library/app", "1", 18, 4096);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &["unprefixed: true"],
        }],
        "",
    );
    let r = get_manifest(&s, "library/app", "1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sha256(&r.body), img.digest);

    let pool = vec![layout.blobs[&img.layer].clone()];
    let local = push_sharing(&s, "library/app", "2", 99, &pool).expect(
        "the local push's manifest was refused: a blob it was told exists is not in the repository",
    );
    pulls_completely(&s, "library/app", "2", &local);
    let r = get_manifest(&s, "library/app", "1");
    assert_eq!(
        r.status,
        404,
        "a local repository's name still served from the upstream: {}",
        r.text()
    );
    pulls_completely(&s, "docker.io/library/app", "1", &img.digest);
}

/// containerd's hosts.toml mirror asks `GET /v2/team/app/manifests/1?ns=docker.io`:
/// the mirror whose prefix is `docker.io` serves it (it does not serve
/// unprefixed names, so only `ns` can route the request there).
#[test]
fn containerd_pulls_through_a_hosts_toml_mirror() {
    if lacks_tools(
        "containerd_pulls_through_a_hosts_toml_mirror",
        &["containerd", "ctr", "docker-registry"],
    ) {
        return;
    }
    let updir = TempDir::new("mirror-up");
    let up = Distribution::start(&updir.0.join("data"));
    let (_work, _layout, img) = pushed(&Target::anonymous(up.addr), "team/app", "1", 3, 1 << 20);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &[],
        }],
        "",
    );
    let ctd = Containerd::start();
    let hosts = ctd.work("hosts");
    std::fs::create_dir_all(hosts.join("docker.io")).unwrap();
    std::fs::write(
        hosts.join("docker.io/hosts.toml"),
        format!(
            "server = \"https://registry-1.docker.io\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            s.addr
        ),
    )
    .unwrap();
    let hosts_dir = hosts.to_str().unwrap();
    ctd.ctr_ok(&[
        "images",
        "pull",
        "--hosts-dir",
        hosts_dir,
        "--snapshotter",
        "native",
        "docker.io/team/app:1",
    ]);
    let listed = ctd.ctr_ok(&["images", "ls"]);
    let line = listed
        .lines()
        .find(|l| l.starts_with("docker.io/team/app:1 "))
        .unwrap_or_else(|| panic!("not listed:\n{listed}"));
    assert!(line.contains(&img.digest), "{line}");
    s.expect_log("ns=docker.io");
    assert_eq!(
        upstream_requests(
            || up.log_text(),
            "GET",
            &format!("/v2/team/app/blobs/{}", img.layer),
            1
        ),
        1
    );
    assert!(misses(&s, PREFIX, "blob") >= 2.0);
    // What containerd pulled is cached under the prefixed name.
    pulls_completely(&s, "docker.io/team/app", "1", &img.digest);
}

// ---------------------------------------------------------------------------
// Cache behaviour, over plain HTTP.
// ---------------------------------------------------------------------------

/// With the upstream gone, a tag past its ttl is served from the cache
/// (with a warning), as are its blobs and the repository's tags; what was
/// never cached is an error.
#[test]
fn a_stopped_upstream_leaves_cached_content_served() {
    let (_updir, up, (_work, layout, img)) = app_upstream(4, 64 << 10);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &["ttl: 1s"],
        }],
        "",
    );
    // HEADs of what is not cached yet answer as for what is.
    let r = s
        .req("HEAD", "/v2/docker.io/team/app/manifests/1")
        .header("Accept", ACCEPT_ALL_MANIFESTS)
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Docker-Content-Digest"), Some(img.digest.as_str()));
    let size = img.manifest.len().to_string();
    assert_eq!(r.header("Content-Length"), Some(size.as_str()));
    let r = s
        .req(
            "HEAD",
            &format!("/v2/docker.io/team/app/blobs/{}", img.layer),
        )
        .send();
    assert_eq!(r.status, 200);
    let size = layout.blobs[&img.layer].len().to_string();
    assert_eq!(r.header("Content-Length"), Some(size.as_str()));
    pulls_completely(&s, "docker.io/team/app", "1", &img.digest);
    // While the upstream is up, what it does not have is unknown here too.
    let r = get_manifest(&s, "docker.io/team/app", "nope");
    assert_eq!(
        (r.status, r.code()),
        (404, "MANIFEST_UNKNOWN".into()),
        "{}",
        r.text()
    );
    let absent = sha256(b"not on the upstream");
    let r = s
        .req("GET", &format!("/v2/docker.io/team/app/blobs/{absent}"))
        .send();
    assert_eq!(
        (r.status, r.code()),
        (404, "BLOB_UNKNOWN".into()),
        "{}",
        r.text()
    );
    drop(up);
    // Past the ttl, so the tag is asked of the (dead) upstream again.
    std::thread::sleep(Duration::from_millis(1500));
    pulls_completely(&s, "docker.io/team/app", "1", &img.digest);
    s.expect_log("serving cached");
    assert_eq!(tags_of(&s, "docker.io/team/app"), ["1"]);
    let r = get_manifest(&s, "docker.io/team/other", "1");
    assert_ne!(r.status, 200, "never cached, upstream down: {}", r.text());
    assert!(
        r.status >= 500 || r.code() == "MANIFEST_UNKNOWN",
        "{} {}",
        r.status,
        r.text()
    );
    assert!(
        metric(
            &s,
            "registry_mirror_upstream_errors_total",
            &[("upstream", PREFIX)]
        ) >= 1.0
    );
}

/// An upstream answering 503, then 429 (here nginx in front of it, told
/// by a file to refuse): tags past their ttl are served from the cache,
/// with a warning, and the errors are counted.
#[test]
fn an_upstream_answering_503_or_429_leaves_cached_tags_served() {
    if lacks_tools("an_upstream_answering_503_or_429", &["nginx"]) {
        return;
    }
    let (updir, up, (_work, _layout, img)) = app_upstream(23, 4096);
    let flags = updir.0.join("flags");
    std::fs::create_dir_all(&flags).unwrap();
    let port = free_port();
    let config = format!(
        "events {{}}\nhttp {{\n  access_log access.log;\n  client_body_temp_path body;\n  proxy_temp_path proxy;\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      if (-f {f}/503) {{ return 503; }}\n      if (-f {f}/429) {{ return 429; }}\n      proxy_pass http://{up};\n    }}\n  }}\n}}\n",
        f = flags.display(),
        up = up.addr
    );
    let front: SocketAddr = ([127, 0, 0, 1], port).into();
    let _nginx = Front::start(Kind::Nginx, &config, &[front]);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(front),
            keys: &["ttl: 1s"],
        }],
        "",
    );
    pulls_completely(&s, "docker.io/team/app", "1", &img.digest);
    let errors = || {
        metric(
            &s,
            "registry_mirror_upstream_errors_total",
            &[("upstream", PREFIX)],
        )
    };
    let warned = || s.log_text().matches("serving cached").count();
    for status in ["503", "429"] {
        let _ = std::fs::remove_file(flags.join("503"));
        std::fs::write(flags.join(status), "").unwrap();
        let before = (errors(), warned());
        std::thread::sleep(Duration::from_millis(1500));
        pulls_completely(&s, "docker.io/team/app", "1", &img.digest);
        assert!(
            errors() > before.0,
            "{status} not counted as an upstream error"
        );
        assert!(
            wait_for(10, || warned() > before.1),
            "no warning for {status}:\n{}",
            s.log_text()
        );
    }
}

/// Twenty clients at once ask for one uncached manifest, then twenty for
/// one uncached blob: the upstream serves each once.
#[test]
fn parallel_pulls_of_uncached_content_fetch_it_once() {
    if lacks_tools(
        "parallel_pulls_of_uncached_content",
        &["curl", "docker-registry"],
    ) {
        return;
    }
    let updir = TempDir::new("mirror-up");
    let up = Distribution::start(&updir.0.join("data"));
    let (work, _layout, img) = pushed(&Target::anonymous(up.addr), "team/app", "1", 5, 8 << 20);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &[],
        }],
        "",
    );
    let log = || up.log_text();

    let manifests = parallel_curls(
        &s.url("/v2/docker.io/team/app/manifests/1"),
        Some(ACCEPT_ALL_MANIFESTS),
        20,
        &work.0,
    );
    for (code, status, body) in &manifests {
        assert_eq!((*code, status.as_str()), (0, "200"), "manifest");
        assert_eq!(sha256(body), img.digest);
    }
    let manifest_gets = || {
        requests(&log(), "GET", "/v2/team/app/manifests/1")
            + requests(
                &log(),
                "GET",
                &format!("/v2/team/app/manifests/{}", img.digest),
            )
    };
    wait_for(10, || manifest_gets() >= 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(manifest_gets(), 1, "manifest GETs upstream:\n{}", log());

    let blobs = parallel_curls(
        &s.url(&format!("/v2/docker.io/team/app/blobs/{}", img.layer)),
        None,
        20,
        &work.0,
    );
    for (code, status, body) in &blobs {
        assert_eq!((*code, status.as_str()), (0, "200"), "blob");
        assert_eq!(sha256(body), img.layer);
    }
    let layer = format!("/v2/team/app/blobs/{}", img.layer);
    assert_eq!(upstream_requests(log, "GET", &layer, 1), 1, "{}", log());
    // Settled: no late second fetch either.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(requests(&log(), "GET", &layer), 1, "{}", log());
}

/// A client that leaves in the middle of an uncached blob does not stop
/// its fetch: the next client gets the blob from that same fetch (the
/// upstream, behind nginx limited to 1 MiB/s, is still sending it).
#[test]
fn a_client_leaving_mid_blob_does_not_stop_the_fetch() {
    if lacks_tools("a_client_leaving_mid_blob", &["nginx", "curl"]) {
        return;
    }
    let (_updir, up, (work, _layout, img)) = app_upstream(26, 3 << 20);
    let port = free_port();
    let config = format!(
        "events {{}}\nhttp {{\n  access_log access.log;\n  client_body_temp_path body;\n  proxy_temp_path proxy;\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      limit_rate 1m;\n      proxy_pass http://{};\n    }}\n  }}\n}}\n",
        up.addr
    );
    let front: SocketAddr = ([127, 0, 0, 1], port).into();
    let _nginx = Front::start(Kind::Nginx, &config, &[front]);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(front),
            keys: &[],
        }],
        "",
    );
    let path = format!("/v2/docker.io/team/app/blobs/{}", img.layer);
    {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: mirror\r\n\r\n").unwrap();
        let mut got = 0;
        let mut buf = [0u8; 16 << 10];
        while got < 64 << 10 {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        assert!(got >= 64 << 10, "the first client got only {got} bytes");
    }
    let (code, status, body) = parallel_curls(&s.url(&path), None, 1, &work.0).remove(0);
    assert_eq!((code, status.as_str()), (0, "200"));
    assert_eq!(sha256(&body), img.layer);
    let layer = format!("/v2/team/app/blobs/{}", img.layer);
    let log = || up.log_text();
    assert_eq!(upstream_requests(log, "GET", &layer, 1), 1, "{}", log());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        requests(&log(), "GET", &layer),
        1,
        "fetched twice:\n{}",
        log()
    );
}

/// A ranged GET of an uncached blob (containerd resumes downloads so) gets
/// those bytes or the whole blob, and does not leave a part of it cached.
#[test]
fn a_range_request_for_an_uncached_blob() {
    let (_updir, up, (_work, layout, img)) = app_upstream(30, 256 << 10);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &[],
        }],
        "",
    );
    let whole = &layout.blobs[&img.layer];
    let path = format!("/v2/docker.io/team/app/blobs/{}", img.layer);
    let r = s
        .req("GET", &path)
        .header("Range", "bytes=1000-1999")
        .send();
    match r.status {
        206 => {
            assert!(r.body == whole[1000..2000], "206 with other bytes");
            assert_eq!(
                r.header("Content-Range"),
                Some(format!("bytes 1000-1999/{}", whole.len()).as_str())
            );
        }
        200 => assert!(r.body == *whole, "200 without the whole blob"),
        other => panic!("ranged GET of an uncached blob: {other} {}", r.text()),
    }
    for _ in 0..2 {
        let r = s.req("GET", &path).send();
        assert_eq!(r.status, 200);
        assert_eq!(sha256(&r.body), img.layer);
    }
    let r = s
        .req("GET", &path)
        .header("Range", "bytes=1000-1999")
        .send();
    assert_eq!(r.status, 206, "a ranged GET of a cached blob");
    assert!(r.body == whole[1000..2000]);
}

/// An upstream that serves wrong bytes for a blob: the client never gets
/// the whole blob with a 200, nothing is cached, and once the upstream is
/// right again the blob is fetched anew and served.
#[test]
fn a_corrupt_upstream_blob_is_cut_short_and_not_cached() {
    if lacks_tools("a_corrupt_upstream_blob_is_cut_short", &["curl"]) {
        return;
    }
    let (_updir, up, (work, layout, img)) = app_upstream(6, 4 << 20);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &[],
        }],
        "",
    );
    let good = layout.blobs[&img.layer].clone();
    let file = blob_file(&up.root, &img.layer);
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 64] {
        *b ^= 0xff;
    }
    std::fs::write(&file, &bad).unwrap();
    let url = s.url(&format!("/v2/docker.io/team/app/blobs/{}", img.layer));
    let layer = format!("/v2/team/app/blobs/{}", img.layer);
    let log = || up.log_text();

    let (code, status, body) = parallel_curls(&url, None, 1, &work.0).remove(0);
    let complete = code == 0 && status == "200" && body.len() == good.len();
    assert!(
        !complete,
        "a whole corrupt blob was served with 200 (curl exit {code}, {} bytes, digest {})",
        body.len(),
        sha256(&body)
    );
    s.expect_log("failed verification");
    let fetched = upstream_requests(log, "GET", &layer, 1);
    assert!(fetched >= 1);
    let missed = misses(&s, PREFIX, "blob");

    std::fs::write(&file, &good).unwrap();
    let (code, status, body) = parallel_curls(&url, None, 1, &work.0).remove(0);
    assert_eq!((code, status.as_str()), (0, "200"));
    assert_eq!(sha256(&body), img.layer);
    assert!(
        upstream_requests(log, "GET", &layer, fetched + 1) > fetched,
        "not fetched again: the bad bytes were cached?\n{}",
        log()
    );
    assert!(misses(&s, PREFIX, "blob") > missed);
    // Now it is cached.
    let now = requests(&log(), "GET", &layer);
    let r = s
        .req(
            "GET",
            &format!("/v2/docker.io/team/app/blobs/{}", img.layer),
        )
        .send();
    assert_eq!(sha256(&r.body), img.layer);
    assert_eq!(requests(&log(), "GET", &layer), now);
}

/// A cached tag is believed for its ttl; then a HEAD asks the upstream,
/// which for an unchanged tag is all; a tag moved upstream is served anew
/// once its ttl is over.
#[test]
fn a_cached_tag_is_revalidated_after_its_ttl() {
    if lacks_tools("a_cached_tag_is_revalidated", &["docker-registry"]) {
        return;
    }
    let updir = TempDir::new("mirror-up");
    let up = Distribution::start(&updir.0.join("data"));
    let target = Target::anonymous(up.addr);
    let (_w1, _l1, one) = pushed(&target, "team/app", "1", 7, 1024);
    let (_w2, _l2, two) = pushed(&target, "team/app", "2", 8, 1024);
    let ttl = Duration::from_secs(5);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &["ttl: 5s"],
        }],
        "",
    );
    let log = || up.log_text();
    let tag = "/v2/team/app/manifests/1";
    // A GET of the tag or of the manifest it names.
    let gets = |img: &Image| {
        requests(&log(), "GET", tag)
            + requests(
                &log(),
                "GET",
                &format!("/v2/team/app/manifests/{}", img.digest),
            )
    };
    let served = || sha256(&get_manifest(&s, "docker.io/team/app", "1").body);

    assert_eq!(served(), one.digest);
    // The tag list is the upstream's, "2" never pulled through here.
    assert_eq!(tags_of(&s, "docker.io/team/app"), ["1", "2"]);
    wait_for(10, || gets(&one) >= 1);
    let (fetched, heads) = (gets(&one), requests(&log(), "HEAD", tag));
    assert!(fetched >= 1, "{}", log());
    std::thread::sleep(ttl + Duration::from_secs(1));
    assert_eq!(served(), one.digest);
    assert!(
        upstream_requests(log, "HEAD", tag, heads + 1) > heads,
        "no HEAD after the ttl:\n{}",
        log()
    );
    assert_eq!(
        gets(&one),
        fetched,
        "a GET for an unchanged tag:\n{}",
        log()
    );

    // Moved upstream just after the revalidation: still within the ttl.
    target.put_manifest("team/app", "1", OCI_MANIFEST, &two.manifest);
    assert_eq!(served(), one.digest, "served anew within the ttl");
    std::thread::sleep(ttl + Duration::from_secs(1));
    assert_eq!(served(), two.digest, "the moved tag after the ttl");
    pulls_completely(&s, "docker.io/team/app", "1", &two.digest);
}

// ---------------------------------------------------------------------------
// Upstream authentication.
// ---------------------------------------------------------------------------

/// An upstream behind htpasswd: the mirror with its credentials pulls, one
/// with a wrong password does not.
#[test]
fn a_basic_auth_upstream_is_pulled_with_its_credentials() {
    if lacks_tools("a_basic_auth_upstream", &["docker-registry"]) {
        return;
    }
    let updir = TempDir::new("mirror-up");
    let htpasswd = updir.0.join("htpasswd");
    write_htpasswd(&htpasswd, &[("alice", "alice-pw")]);
    let up = Distribution::start_with(
        &updir.0.join("data"),
        &format!(
            "auth:\n  htpasswd:\n    realm: upstream\n    path: {}\n",
            htpasswd.display()
        ),
    );
    let target = Target::with(up.addr, basic_auth("alice", "alice-pw"));
    let (_work, _layout, img) = pushed(&target, "team/app", "1", 9, 64 << 10);
    let s = start_mirror(
        "",
        &[
            Mirror {
                prefix: PREFIX,
                upstream: http(up.addr),
                keys: &["username: alice", "password: alice-pw"],
            },
            Mirror {
                prefix: "wrong",
                upstream: http(up.addr),
                keys: &["username: alice", "password: not-it"],
            },
        ],
        "",
    );
    pulls_completely(&s, "docker.io/team/app", "1", &img.digest);
    let r = get_manifest(&s, "wrong/team/app", "1");
    assert_ne!(r.status, 200, "pulled with a wrong password: {}", r.text());
}

/// An upstream behind distribution's token auth: the mirror answers the
/// challenge with a token from the issuer (Basic credentials to it) and
/// keeps using it: fewer tokens than requests the upstream served.
#[test]
fn a_token_upstream_is_pulled_with_a_reused_token() {
    if lacks_tools("a_token_upstream", &["docker-registry", "openssl"]) {
        return;
    }
    let issuer = TokenIssuer::start("alice", "alice-pw");
    let updir = TempDir::new("mirror-up");
    let up = Distribution::start_with(&updir.0.join("data"), &issuer.registry_auth_yaml());
    let push = issuer.token(
        "tester",
        &[Grant::parse("repository:team/app:pull,push").unwrap()],
    );
    let target = Target::with(up.addr, format!("Bearer {push}"));
    let (_w1, _l1, one) = pushed(&target, "team/app", "1", 10, 64 << 10);
    let (_w2, _l2, two) = pushed(&target, "team/app", "2", 11, 64 << 10);
    // Anonymous requests are challenged: the upstream really wants a token.
    assert_eq!(
        req_to(up.addr, "GET", "/v2/team/app/tags/list")
            .send()
            .status,
        401
    );
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &["username: alice", "password: alice-pw"],
        }],
        "",
    );
    pulls_completely(&s, "docker.io/team/app", "1", &one.digest);
    pulls_completely(&s, "docker.io/team/app", "2", &two.digest);
    let served = answered(&up.log_text(), "/v2/team/app/", 200);
    let issued = issuer.issued();
    assert!(issued >= 1, "no token was asked for");
    assert!(
        served >= 6 && issued < served,
        "{issued} tokens for {served} upstream requests:\n{}",
        up.log_text()
    );
}

/// An upstream over HTTPS is verified against the system's trust store
/// (here `SSL_CERT_FILE`, which stands for it): with the upstream's CA
/// trusted the pull works; without, nothing is fetched.
#[test]
fn an_https_upstream_is_verified() {
    let updir = TempDir::new("mirror-up");
    let img = {
        let plain = fs_server(&updir.0);
        pushed(&Target::anonymous(plain.addr), "team/app", "1", 31, 4096).2
    };
    let pki = Pki::new(&updir.0.join("pki"));
    let cert = pki.server("upstream", KeyType::EcdsaP256, &["127.0.0.1"]);
    let up = fs_server_with(&updir.0, &http_tls_yaml(&cert, &[]));
    let mirrors = [Mirror {
        prefix: PREFIX,
        upstream: format!("https://127.0.0.1:{}", up.addr.port()),
        keys: &[],
    }];
    let ca = pki.ca_pem().to_str().unwrap();
    let trusting = start_mirror_env("", &mirrors, "", &[("SSL_CERT_FILE", ca)]);
    pulls_completely(&trusting, "docker.io/team/app", "1", &img.digest);
    let other = start_mirror("", &mirrors, "");
    let r = get_manifest(&other, "docker.io/team/app", "1");
    assert!(
        r.status >= 500,
        "an upstream whose certificate is not trusted: {} {}",
        r.status,
        r.text()
    );
    let r = other
        .req(
            "GET",
            &format!("/v2/docker.io/team/app/blobs/{}", img.layer),
        )
        .send();
    assert!(r.status >= 500, "blob: {} {}", r.status, r.text());
    other.expect_log("invalid peer certificate");
}

/// Docker Hub answers blob GETs with a redirect to a CDN, another host:
/// here nginx in front of the upstream does, to a second nginx server
/// serving the upstream's blob files. The mirror follows the redirect and
/// keeps the upstream's credentials to the upstream: a storage URL that
/// got them would leak them (and S3 refuses a presigned request carrying
/// an Authorization header).
#[test]
fn blob_redirects_are_followed_without_the_upstream_credentials() {
    if lacks_tools("blob_redirects_are_followed", &["nginx"]) {
        return;
    }
    let updir = TempDir::new("mirror-up");
    let htpasswd = updir.0.join("htpasswd");
    write_htpasswd(&htpasswd, &[("alice", "alice-pw")]);
    let up = fs_server_with(
        &updir.0,
        &format!(
            "auth:\n  htpasswd:\n    realm: upstream\n    path: {}\n",
            htpasswd.display()
        ),
    );
    let target = Target::with(up.addr, basic_auth("alice", "alice-pw"));
    let (_work, _layout, img) = pushed(&target, "team/app", "1", 22, 1 << 20);
    let (front, cdn) = (free_port(), free_port());
    let config = format!(
        r#"events {{}}
http {{
  log_format cdn '$request_method $uri auth=[$http_authorization]'; # - when absent
  access_log access.log;
  client_body_temp_path body;
  proxy_temp_path proxy;
  server {{
    listen 127.0.0.1:{front};
    location ~ ^/v2/.+/blobs/sha256:(..)(.+)$ {{
      if ($request_method = GET) {{
        return 307 http://127.0.0.1:{cdn}/cdn/sha256/$1/$1$2/data;
      }}
      proxy_pass http://{up};
    }}
    location / {{
      proxy_pass http://{up};
    }}
  }}
  server {{
    listen 127.0.0.1:{cdn};
    access_log cdn.log cdn;
    location /cdn/ {{
      alias {blobs}/;
    }}
  }}
}}
"#,
        up = up.addr,
        blobs = up.root.join("docker/registry/v2/blobs").display()
    );
    let addrs: [SocketAddr; 2] = [([127, 0, 0, 1], front).into(), ([127, 0, 0, 1], cdn).into()];
    let nginx = Front::start(Kind::Nginx, &config, &addrs);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(addrs[0]),
            keys: &["username: alice", "password: alice-pw"],
        }],
        "",
    );
    pulls_completely(&s, "docker.io/team/app", "1", &img.digest);
    let cdn_log = || std::fs::read_to_string(nginx.dir.join("cdn.log")).unwrap_or_default();
    let hex = img.layer.trim_start_matches("sha256:");
    let layer = format!("GET /cdn/sha256/{}/{hex}/data ", &hex[..2]);
    assert!(
        wait_for(10, || cdn_log().contains(&layer)),
        "the layer did not come from the redirect's target:\n{}",
        cdn_log()
    );
    assert!(
        cdn_log().lines().all(|l| l.ends_with("auth=[-]")),
        "credentials sent to the redirect's target:\n{}",
        cdn_log()
    );
}

/// A token is not used past its `expires_in` (its `exp` is later, so the
/// upstream would take it): after that, the mirror asks for a new one.
#[test]
fn a_token_is_renewed_after_its_expires_in() {
    if lacks_tools("a_token_is_renewed", &["docker-registry", "openssl"]) {
        return;
    }
    let issuer = TokenIssuer::start_telling("alice", "alice-pw", 3);
    let updir = TempDir::new("mirror-up");
    let up = Distribution::start_with(&updir.0.join("data"), &issuer.registry_auth_yaml());
    let push = issuer.token(
        "tester",
        &[Grant::parse("repository:team/app:pull,push").unwrap()],
    );
    let target = Target::with(up.addr, format!("Bearer {push}"));
    let (_w1, _l1, one) = pushed(&target, "team/app", "1", 33, 1024);
    let (_w2, _l2, two) = pushed(&target, "team/app", "2", 34, 1024);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &["username: alice", "password: alice-pw"],
        }],
        "",
    );
    pulls_completely(&s, "docker.io/team/app", "1", &one.digest);
    let first = issuer.issued();
    assert!(first >= 1);
    std::thread::sleep(Duration::from_secs(4));
    pulls_completely(&s, "docker.io/team/app", "2", &two.digest);
    assert!(
        issuer.issued() > first,
        "a token used past its expires_in ({first} issued in all)"
    );
}

// ---------------------------------------------------------------------------
// Access rules, pushes, expiry, conformance.
// ---------------------------------------------------------------------------

/// Access rules apply to the cached name `docker.io/...`, however the
/// request named it; a denied request never reaches the upstream.
#[test]
fn access_rules_apply_to_the_cached_name() {
    let (updir, up, (_work, _layout, img)) = app_upstream(12, 1024);
    let htpasswd = updir.0.join("htpasswd");
    write_htpasswd(&htpasswd, &[("alice", "alice-pw"), ("bob", "bob-pw")]);
    let mut s = start_mirror(
        &format!(
            "auth:\n  htpasswd:\n    realm: mirror\n    path: {}\n",
            htpasswd.display()
        ),
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &["unprefixed: true"],
        }],
        "  access:\n    rules:\n      - {repositories: [\"docker.io/*\"], users: [alice], allow: [pull]}\n      - {repositories: [\"local/*\"], users: [bob], allow: [pull, push]}\n",
    );
    s.credentials = Some(("bob".into(), "bob-pw".into()));
    let accesses = || {
        up.log_text()
            .lines()
            .filter(|l| l.contains(" access: "))
            .count()
    };
    let before = accesses();
    for path in [
        "/v2/docker.io/team/app/manifests/1".to_string(),
        "/v2/team/app/manifests/1".to_string(),
        "/v2/team/app/manifests/1?ns=docker.io".to_string(),
        format!("/v2/docker.io/team/app/blobs/{}", img.layer),
        "/v2/docker.io/team/app/tags/list".to_string(),
    ] {
        let r = s.req("GET", &path).send();
        assert_eq!(
            (r.status, r.code()),
            (403, "DENIED".to_string()),
            "bob {path}"
        );
    }
    push_image(&s, "local/app", "1", "bob's own");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        accesses(),
        before,
        "denied requests reached the upstream:\n{}",
        up.log_text()
    );
    s.credentials = Some(("alice".into(), "alice-pw".into()));
    pulls_completely(&s, "docker.io/team/app", "1", &img.digest);
    assert!(
        upstream_requests(
            || up.log_text(),
            "GET",
            &format!("/v2/team/app/blobs/{}", img.layer),
            1
        ) == 1
    );
}

/// A cache open to anonymous pulls on a registry that otherwise wants a
/// login (`anonymous: true` on `docker.io/*`): Docker's registry-mirrors
/// sends no credentials, nor does containerd; unprefixed and `?ns=` names
/// are the cached name for the rules too. Local repositories still want
/// the login.
#[test]
fn anonymous_pulls_of_the_cache_on_a_registry_with_logins() {
    let updir = TempDir::new("mirror-up");
    let up = fs_server(&updir.0);
    let (_work, _layout, img) = pushed(&Target::anonymous(up.addr), "library/app", "1", 27, 4096);
    let htpasswd = updir.0.join("htpasswd");
    write_htpasswd(&htpasswd, &[("admin", "admin-pw")]);
    let mut s = start_mirror(
        &format!(
            "auth:\n  htpasswd:\n    realm: mirror\n    path: {}\n",
            htpasswd.display()
        ),
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &["unprefixed: true"],
        }],
        "  access:\n    rules:\n      - {repositories: [\"docker.io/*\"], anonymous: true, allow: [pull]}\n      - {repositories: [\"*\"], users: [admin], allow: [pull, push]}\n",
    );
    for (repo, query) in [
        ("library/app", ""),
        ("library/app", "?ns=docker.io"),
        ("docker.io/library/app", ""),
    ] {
        let r = s
            .req("GET", &format!("/v2/{repo}/manifests/1{query}"))
            .header("Accept", ACCEPT_ALL_MANIFESTS)
            .send();
        assert_eq!(r.status, 200, "anonymous {repo}{query}: {}", r.text());
        assert_eq!(sha256(&r.body), img.digest);
        let r = s
            .req("GET", &format!("/v2/{repo}/blobs/{}{query}", img.layer))
            .send();
        assert_eq!(r.status, 200, "anonymous blob {repo}{query}");
    }
    s.credentials = Some(("admin".into(), "admin-pw".into()));
    push_image(&s, "local/app", "1", "local");
    s.credentials = None;
    let r = get_manifest(&s, "local/app", "1");
    assert_eq!(r.status, 401, "anonymous pull of a local repository");
}

/// Images sharing a base layer (most of Docker Hub's): the layer cached for
/// one repository is served in another once the upstream confirms that
/// repository has it, without its bytes fetched again; with the upstream
/// down, a cached manifest of the repository naming it is confirmation
/// enough.
#[test]
fn a_layer_shared_by_cached_repositories_is_fetched_once() {
    let updir = TempDir::new("mirror-up");
    let up = fs_server(&updir.0);
    let target = Target::anonymous(up.addr);
    let (_work, layout, a) = pushed(&target, "team/a", "1", 29, 1 << 20);
    let layer = &layout.blobs[&a.layer];
    // Other images on the same layer: only their configs differ.
    let on_the_same_layer = |repo: &str| {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}},"repo":"{repo}"}}"#,
            a.diff_id
        );
        let c = target.push_blob(repo, config.as_bytes());
        assert_eq!(target.push_blob(repo, layer), a.layer);
        let m = image_manifest(OCI_MANIFEST, (&c, config.len()), &[(&a.layer, layer.len())]);
        target.put_manifest(repo, "1", OCI_MANIFEST, m.as_bytes());
        sha256(m.as_bytes())
    };
    let (b, c) = (on_the_same_layer("team/b"), on_the_same_layer("team/c"));
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &[],
        }],
        "",
    );
    let log = || up.log_text();
    let gets = |repo: &str| requests(&log(), "GET", &format!("/v2/{repo}/blobs/{}", a.layer));

    pulls_completely(&s, "docker.io/team/a", "1", &a.digest);
    assert_eq!(
        upstream_requests(log, "GET", &format!("/v2/team/a/blobs/{}", a.layer), 1),
        1
    );
    pulls_completely(&s, "docker.io/team/b", "1", &b);
    assert_eq!(
        gets("team/b"),
        0,
        "the shared layer fetched again:\n{}",
        log()
    );

    let r = get_manifest(&s, "docker.io/team/c", "1");
    assert_eq!(sha256(&r.body), c);
    drop(up);
    let r = s
        .req("GET", &format!("/v2/docker.io/team/c/blobs/{}", a.layer))
        .send();
    assert_eq!(r.status, 200, "with the upstream down: {}", r.text());
    assert_eq!(sha256(&r.body), a.layer);
}

/// A blob is served in a cached repository only if the upstream has it
/// there, as a local repository serves only the blobs linked into it: a
/// user who may pull through the mirror but not from `local/secret` does
/// not get local/secret's blobs or manifests by asking for their digests
/// under `docker.io/...`, nor another cached repository's blobs.
#[test]
fn cached_repositories_do_not_serve_blobs_the_upstream_lacks_there() {
    let updir = TempDir::new("mirror-up");
    let up = fs_server(&updir.0);
    let target = Target::anonymous(up.addr);
    let (_wa, _la, app) = pushed(&target, "team/app", "1", 24, 4096);
    let (_wo, _lo, other) = pushed(&target, "team/other", "1", 25, 4096);
    let htpasswd = updir.0.join("htpasswd");
    write_htpasswd(&htpasswd, &[("alice", "alice-pw"), ("admin", "admin-pw")]);
    let mut s = start_mirror(
        &format!(
            "auth:\n  htpasswd:\n    realm: mirror\n    path: {}\n",
            htpasswd.display()
        ),
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &[],
        }],
        "  access:\n    rules:\n      - {repositories: [\"docker.io/*\"], users: [\"*\"], allow: [pull]}\n      - {repositories: [\"*\"], users: [admin], allow: [pull, push]}\n",
    );
    s.credentials = Some(("admin".into(), "admin-pw".into()));
    let secret = push_blob(
        &s,
        "local/secret",
        b"the secret layer of a local repository",
    );
    let secret_manifest = push_image(&s, "local/secret", "1", "secret");
    s.credentials = Some(("alice".into(), "alice-pw".into()));
    let r = s
        .req("GET", &format!("/v2/local/secret/blobs/{secret}"))
        .send();
    assert_eq!(r.status, 403, "alice may not pull local/secret");
    pulls_completely(&s, "docker.io/team/other", "1", &other.digest);
    let mut served = vec![];
    for (d, what) in [
        (&secret, "local/secret's blob"),
        (&other.layer, "team/other's layer"),
    ] {
        for repo in ["docker.io/team/app", "docker.io/no/such/repo"] {
            for method in ["HEAD", "GET"] {
                let r = s.req(method, &format!("/v2/{repo}/blobs/{d}")).send();
                if r.status != 404 {
                    let whole = method == "GET" && sha256(&r.body) == *d;
                    served.push(format!(
                        "{method} {what} through {repo}: {}{}",
                        r.status,
                        if whole { ", the whole blob" } else { "" }
                    ));
                }
            }
        }
    }
    for repo in ["docker.io/team/app", "docker.io/no/such/repo"] {
        let r = get_manifest(&s, repo, &secret_manifest);
        if r.status != 404 {
            served.push(format!(
                "GET local/secret's manifest through {repo}: {}",
                r.status
            ));
        }
    }
    assert!(served.is_empty(), "served:\n{}", served.join("\n"));
    pulls_completely(&s, "docker.io/team/app", "1", &app.digest);
}

/// Pushes into a mirrored repository, and any push in `proxy:` mode, are
/// refused with 405 UNSUPPORTED; local repositories beside mirrors take
/// pushes; `proxy:` mode pulls every repository from its upstream.
#[test]
fn pushes_to_mirrored_repositories_are_unsupported() {
    let (_updir, up, (_work, _layout, img)) = app_upstream(13, 1024);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &[],
        }],
        "",
    );
    refuses_pushes(&s, "docker.io/team/app", &img);
    push_image(&s, "local/app", "1", "local");
    pulls_completely(&s, "docker.io/team/app", "1", &img.digest);

    let p = Server::start_with(&format!("{DEBUG}proxy:\n  remoteurl: http://{}\n", up.addr));
    refuses_pushes(&p, "team/app", &img);
    refuses_pushes(&p, "brand/new", &img);
    pulls_completely(&p, "team/app", "1", &img.digest);
    assert!(misses(&p, "", "blob") >= 2.0);
}

/// Every way of pushing into `repo` gets 405 UNSUPPORTED.
fn refuses_pushes(s: &Server, repo: &str, img: &Image) {
    let unsupported = |what: &str, r: Resp| {
        assert_eq!(
            (r.status, r.code()),
            (405, "UNSUPPORTED".to_string()),
            "{what} to {repo}: {}",
            r.text()
        );
    };
    let body = b"some bytes".to_vec();
    let d = sha256(&body);
    unsupported(
        "POST upload",
        s.req("POST", &format!("/v2/{repo}/blobs/uploads/")).send(),
    );
    unsupported(
        "monolithic POST",
        s.req("POST", &format!("/v2/{repo}/blobs/uploads/?digest={d}"))
            .body(body.clone())
            .send(),
    );
    unsupported(
        "mount",
        s.req(
            "POST",
            &format!(
                "/v2/{repo}/blobs/uploads/?mount={}&from=local/app",
                img.layer
            ),
        )
        .send(),
    );
    let upload = format!("/v2/{repo}/blobs/uploads/0b4c1f3e-5bd6-4a0e-9c5e-7d0c1f0a2b3c");
    unsupported("PATCH", s.req("PATCH", &upload).body(body.clone()).send());
    unsupported(
        "PUT upload",
        s.req("PUT", &format!("{upload}?digest={d}"))
            .body(body)
            .send(),
    );
    unsupported(
        "PUT manifest",
        s.req("PUT", &format!("/v2/{repo}/manifests/2"))
            .header("Content-Type", OCI_MANIFEST)
            .body(img.manifest.clone())
            .send(),
    );
}

fn catalog(s: &Server) -> Vec<String> {
    strings(&s.req("GET", "/v2/_catalog").send().json()["repositories"])
}

/// Waits (up to 60 s) until `repo` has left the catalog.
fn leaves_catalog(s: &Server, repo: &str) -> bool {
    wait_for(60, || !catalog(s).iter().any(|r| r == repo))
}

/// `mirrorcache.expiry`: a cached repository not pulled for that long is
/// removed, local ones stay; pulled again, it is cached again and expires
/// again. With the upstream gone, an expired repository is not served.
#[test]
fn expired_cached_repositories_are_removed() {
    let (_updir, up, (_work, _layout, img)) = app_upstream(14, 1024);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &[],
        }],
        "  mirrorcache:\n    expiry: 4s\n",
    );
    push_image(&s, "local/app", "1", "stays");
    for round in 1..=2 {
        pulls_completely(&s, "docker.io/team/app", "1", &img.digest);
        assert!(catalog(&s).contains(&"docker.io/team/app".to_string()));
        assert!(
            leaves_catalog(&s, "docker.io/team/app"),
            "round {round}: still cached: {:?}\n{}",
            catalog(&s),
            s.log_text()
        );
        assert_eq!(catalog(&s), ["local/app"], "a local repository expired too");
    }
    drop(up);
    let r = get_manifest(&s, "docker.io/team/app", "1");
    assert_ne!(r.status, 200, "served after expiry: {}", r.text());
}

/// `mirrorcache.maxsize`: past it, the least recently pulled cached
/// repository is evicted, the more recent one stays; an evicted one pulled
/// again counts again.
#[test]
fn the_size_cap_evicts_the_least_recently_pulled() {
    let updir = TempDir::new("mirror-up");
    let up = fs_server(&updir.0);
    let target = Target::anonymous(up.addr);
    let (_wb, _lb, b) = pushed(&target, "team/b", "1", 19, 1 << 20);
    let (_wa, _la, a) = pushed(&target, "team/a", "1", 20, 1 << 20);
    // The expiry only sets how often the cache is reclaimed (a quarter of it).
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &[],
        }],
        "  mirrorcache:\n    expiry: 40s\n    maxsize: 1600KiB\n",
    );
    pulls_completely(&s, "docker.io/team/b", "1", &b.digest);
    // Pull records have a granularity of a second on some stores.
    std::thread::sleep(Duration::from_millis(1100));
    pulls_completely(&s, "docker.io/team/a", "1", &a.digest);
    assert!(
        leaves_catalog(&s, "docker.io/team/b"),
        "nothing evicted: {:?}\n{}",
        catalog(&s),
        s.log_text()
    );
    assert_eq!(catalog(&s), ["docker.io/team/a"], "{}", s.log_text());
    s.expect_log("evicted docker.io/team/b");
    // Pulled again, b is the most recent: now a goes, evicted for size
    // long before its expiry would remove it.
    std::thread::sleep(Duration::from_millis(1100));
    pulls_completely(&s, "docker.io/team/b", "1", &b.digest);
    let gone = |how: &str| s.log_text().contains(&format!("{how} docker.io/team/a,"));
    wait_for(60, || gone("evicted") || gone("removed"));
    assert!(
        gone("evicted"),
        "over the cap with b pulled again, a was not evicted: {:?}\n{}",
        catalog(&s),
        s.log_text()
    );
    assert_eq!(catalog(&s), ["docker.io/team/b"], "{}", s.log_text());
}

/// A cached manifest whose blobs nobody pulled yet is no damage for
/// `fsck`: the cache fetches them when asked.
#[test]
fn fsck_accepts_cached_manifests_whose_blobs_were_never_pulled() {
    let (_updir, up, (_work, _layout, img)) = app_upstream(21, 4096);
    let s = start_mirror(
        "",
        &[Mirror {
            prefix: PREFIX,
            upstream: http(up.addr),
            keys: &[],
        }],
        "",
    );
    let r = get_manifest(&s, "docker.io/team/app", "1");
    assert_eq!(sha256(&r.body), img.digest);
    let fsck = || {
        let o = common::store::storage_cmd(&s, &["fsck"]);
        (o.status.code(), common::store::stdout(&o))
    };
    let (code, out) = fsck();
    assert_eq!(code, Some(0), "fsck on a cache:\n{out}");
    // It did look at the cached manifest.
    assert!(
        out.contains(" 1 manifest: 0 problems"),
        "fsck on a cache:\n{out}"
    );
}

/// The OCI conformance suite, which pushes, against a registry with
/// mirrors configured (one of them serving unprefixed names): its local
/// repositories behave as without them. The mirrors still serve afterwards.
#[test]
fn conformance_passes_on_a_registry_with_mirrors() {
    let (_updir, up, (_work, _layout, img)) = app_upstream(15, 1024);
    let s = start_mirror(
        "",
        &[
            Mirror {
                prefix: PREFIX,
                upstream: http(up.addr),
                keys: &["unprefixed: true"],
            },
            Mirror {
                prefix: "ghcr.io",
                upstream: http(up.addr),
                keys: &[],
            },
        ],
        "",
    );
    common::conformance::conform(&format!("http://{}", s.addr), None, &[]);
    pulls_completely(&s, "docker.io/team/app", "1", &img.digest);
    pulls_completely(&s, "ghcr.io/team/app", "1", &img.digest);
}
