//! Scale-out: three registry nodes on one Garage bucket behind Debian's
//! HAProxy balancing round robin (`common::nodes`), so the requests of one
//! push land on different nodes. Every client works through it, every node
//! answers with what another was told at once, and faults (a node
//! SIGKILLed, a rolling restart, a Garage node down, collectors killed
//! mid-run) lose nothing acknowledged and fail no request.
//!
//! Needs haproxy and garage (the Docker checks also dockerd, docker and
//! skopeo); skipped without them.

mod common;

use common::docker::*;
use common::images::{pulls_completely, push_sharing};
use common::nodes::{Nodes, USER};
use common::*;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// One cluster at a time: the machine has two cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// The nodes, or `None` (the test is skipped) without the tools.
fn start(test: &str, tools: &[&str], extra: &str) -> Option<(MutexGuard<'static, ()>, Nodes)> {
    let mut all = vec!["haproxy", "garage"];
    all.extend_from_slice(tools);
    if lacks_tools(test, &all) {
        return None;
    }
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Some((serial, Nodes::start(3, extra, &[])))
}

/// How many lines of each node's log hold `needle`.
fn counts(n: &Nodes, needle: &str) -> Vec<usize> {
    n.nodes
        .iter()
        .map(|node| {
            node.server
                .as_ref()
                .map_or(0, |s| s.log_text().matches(needle).count())
        })
        .collect()
}

/// Sends `method target` through HAProxy and returns the answer with the
/// node whose access log then shows it.
fn through_front(
    n: &Nodes,
    method: &str,
    target: &str,
    build: impl FnOnce(Req) -> Req,
) -> (Resp, usize) {
    let needle = format!(" {method} {target} ");
    let before = counts(n, &needle);
    let r = build(n.req(method, target)).send();
    let mut node = None;
    let seen = wait_for(10, || {
        let now = counts(n, &needle);
        node = (0..now.len()).find(|&i| now[i] > before[i]);
        node.is_some()
    });
    assert!(seen, "no node logged {needle:?}");
    (r, node.unwrap())
}

#[test]
fn one_push_spreads_over_the_nodes_and_every_node_sees_its_result_at_once() {
    let Some((_serial, n)) = start(
        "one_push_spreads_over_the_nodes_and_every_node_sees_its_result_at_once",
        &[],
        "",
    ) else {
        return;
    };
    let all = 0..n.nodes.len();

    // A chunked upload: POST, two PATCHes and the PUT, each on the next node.
    let data = random_bytes(300_000, 7);
    let d = sha256(&data);
    let (r, post) = through_front(&n, "POST", "/v2/spread/chunked/blobs/uploads/", |r| r);
    assert_eq!(r.status, 202, "{}", r.text());
    let mut loc = r.location_path();
    let mut served = vec![post];
    for (i, chunk) in data.chunks(150_000).enumerate() {
        let from = i * 150_000;
        let range = format!("{from}-{}", from + chunk.len() - 1);
        let (r, node) = through_front(&n, "PATCH", &loc, |r| {
            r.header("Content-Type", "application/octet-stream")
                .header("Content-Range", &range)
                .body(chunk.to_vec())
        });
        assert_eq!(r.status, 202, "PATCH {i} on node {node}: {}", r.text());
        loc = r.location_path();
        served.push(node);
    }
    let sep = if loc.contains('?') { '&' } else { '?' };
    let (r, put) = through_front(&n, "PUT", &format!("{loc}{sep}digest={d}"), |r| r);
    assert_eq!(r.status, 201, "PUT on node {put}: {}", r.text());
    served.push(put);
    eprintln!("POST, PATCH, PATCH, PUT served by nodes {served:?}");
    assert!(
        served.windows(2).all(|w| w[0] != w[1]),
        "consecutive requests on one node: {served:?}"
    );
    for i in all.clone() {
        assert!(served.contains(&i), "node {i} served none of {served:?}");
        let r = n
            .node_req(i, "GET", &format!("/v2/spread/chunked/blobs/{d}"))
            .send();
        assert_eq!(r.status, 200, "node {i}");
        assert_eq!(sha256(&r.body), d, "node {i}");
    }

    // A cross-repository mount through the balancer, seen by every node.
    let (r, _) = through_front(
        &n,
        "POST",
        &format!("/v2/spread/mounted/blobs/uploads/?mount={d}&from=spread/chunked"),
        |r| r,
    );
    assert_eq!(r.status, 201, "mount: {}", r.text());
    for i in all.clone() {
        let r = n
            .node_req(i, "HEAD", &format!("/v2/spread/mounted/blobs/{d}"))
            .send();
        assert_eq!(r.status, 200, "mounted blob on node {i}");
    }

    // A manifest naming it, tagged; every node answers with it.
    let front = n.front_server();
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = push_blob(&front, "spread/chunked", config);
    let m = image_manifest(OCI_MANIFEST, (&c, config.len()), &[(&d, data.len())]);
    let md = sha256(m.as_bytes());
    let r = n
        .req("PUT", "/v2/spread/chunked/manifests/1")
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    for i in all.clone() {
        let r = get_manifest(n.server(i), "spread/chunked", "1");
        assert_eq!(r.status, 200, "node {i}");
        assert_eq!(sha256(&r.body), md, "node {i}");
    }

    // Deletes through one node are answered at once by the others, even
    // right after those answered the old state (whatever they keep): one
    // repository per node asked, each linking the blob.
    for i in all.clone() {
        let (asked, deleter) = (i, (i + 1) % n.nodes.len());
        let repo = format!("spread/del{i}");
        let mount = format!("/v2/{repo}/blobs/uploads/?mount={d}&from=spread/chunked");
        let r = n.node_req(deleter, "POST", &mount).send();
        assert_eq!(r.status, 201, "mount: {}", r.text());
        let blob = format!("/v2/{repo}/blobs/{d}");
        assert_eq!(n.node_req(asked, "HEAD", &blob).send().status, 200);
        assert_eq!(n.node_req(deleter, "DELETE", &blob).send().status, 202);
        let r = n.node_req(asked, "HEAD", &blob).send();
        assert_eq!(
            r.status, 404,
            "blob deleted on node {deleter}, HEAD on node {asked}"
        );
        let r = n.node_req(asked, "GET", &blob).send();
        assert_eq!(
            r.status, 404,
            "blob deleted on node {deleter}, GET on node {asked}"
        );
    }
    let blob = format!("/v2/spread/mounted/blobs/{d}");
    assert_eq!(n.node_req(0, "DELETE", &blob).send().status, 202);
    let r = n
        .node_req(
            1,
            "POST",
            &format!("/v2/spread/other/blobs/uploads/?mount={d}&from=spread/mounted"),
        )
        .send();
    assert_eq!(
        r.status, 202,
        "a mount from where the blob was deleted is an upload"
    );
    push_blob(&front, "spread/chunked", b"tagged twice");
    let r = n
        .req("PUT", "/v2/spread/chunked/manifests/2")
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send();
    assert_eq!(r.status, 201);
    for i in all.clone() {
        assert_eq!(
            tags_of(n.server(i), "spread/chunked"),
            ["1", "2"],
            "node {i}"
        );
    }
    assert_eq!(
        n.node_req(1, "DELETE", "/v2/spread/chunked/manifests/2")
            .send()
            .status,
        202
    );
    for i in all.clone() {
        assert_eq!(tags_of(n.server(i), "spread/chunked"), ["1"], "node {i}");
        assert_eq!(get_manifest(n.server(i), "spread/chunked", "2").status, 404);
    }
    let by_digest = format!("/v2/spread/chunked/manifests/{md}");
    assert_eq!(n.node_req(2, "DELETE", &by_digest).send().status, 202);
    for i in all.clone() {
        for reference in [md.as_str(), "1"] {
            let r = get_manifest(n.server(i), "spread/chunked", reference);
            assert_eq!(
                r.status, 404,
                "manifest deleted on node 2, {reference} on node {i}"
            );
        }
    }

    // The UI's delete: the confirmation from one node, the POST to another
    // (its token is keyed by the shared http.secret).
    push_image(&front, "spread/ui", "2.0", "ui-a");
    push_image(&front, "spread/ui", "3.0", "ui-b");
    let path = "/ui/r/spread/ui/-/delete/2.0";
    let (confirm, shown_by) = through_front(&n, "GET", path, |r| r);
    assert_eq!(confirm.status, 200, "{}", confirm.text());
    let token = common::ui::form_token(&confirm.text());
    // Round robin: the POST goes to the next node.
    let (r, posted_by) = through_front(&n, "POST", path, |r| {
        r.header("Content-Type", "application/x-www-form-urlencoded")
            .header("Origin", &format!("http://{}", n.addr))
            .body(format!("token={token}"))
    });
    assert_eq!(r.status, 303, "UI delete on node {posted_by}: {}", r.text());
    assert_ne!(
        posted_by, shown_by,
        "the confirmation and the POST on one node"
    );
    for i in all.clone() {
        assert_eq!(tags_of(n.server(i), "spread/ui"), ["3.0"], "node {i}");
    }
}

/// One writer's share of the read-your-writes check: `rounds` updates of
/// tag `tag`, each read back at once on the next node; the stale answers.
fn updates_read_back(
    n: &Nodes,
    tag: &str,
    rounds: usize,
    images: &[(String, Vec<u8>)],
) -> Vec<String> {
    let nodes = n.nodes.len();
    let mut stale = vec![];
    let target = format!("/v2/rw/app/manifests/{tag}");
    for i in 0..rounds {
        // The updates cycle through "points at a", "points at b", "gone".
        let (writer, reader) = (i % nodes, (i + 1) % nodes);
        let want = images.get(i % 3);
        let r = match want {
            Some((_, body)) => n
                .node_req(writer, "PUT", &target)
                .header("Content-Type", OCI_MANIFEST)
                .body(body.clone())
                .send(),
            None => n.node_req(writer, "DELETE", &target).send(),
        };
        assert!(
            matches!(r.status, 201 | 202),
            "{tag} update {i}: {} {}",
            r.status,
            r.text()
        );
        let got = get_manifest(n.server(reader), "rw/app", tag);
        let answered = (got.status == 200).then(|| sha256(&got.body));
        if answered.as_ref() != want.map(|(d, _)| d) {
            stale.push(format!(
                "{tag} round {i}: node {reader} answered {}",
                got.status
            ));
        }
        // The tag list too, now and then (it lists the whole repository).
        if i % 20 == 0 {
            let listed = tags_of(n.server(reader), "rw/app").contains(&tag.to_string());
            if listed != want.is_some() {
                stale.push(format!("{tag} round {i}: node {reader} lists it: {listed}"));
            }
        }
    }
    stale
}

#[test]
fn read_your_writes_across_nodes_over_a_thousand_requests() {
    let Some((_serial, n)) = start(
        "read_your_writes_across_nodes_over_a_thousand_requests",
        &[],
        "",
    ) else {
        return;
    };
    let front = n.front_server();
    let images: Vec<(String, Vec<u8>)> = ["a", "b"]
        .iter()
        .map(|seed| {
            let d = push_image(&front, "rw/app", &format!("seed-{seed}"), seed);
            (
                d,
                get_manifest(&front, "rw/app", &format!("seed-{seed}")).body,
            )
        })
        .collect();
    // A thousand requests, updates and reads alternating: five writers on
    // five tags at once, 100 updates each, every one read back.
    let started = Instant::now();
    let n = &n;
    let stale: Vec<String> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..5)
            .map(|w| {
                let images = &images;
                scope.spawn(move || updates_read_back(n, &format!("t{w}"), 100, images))
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    eprintln!(
        "1000 updates, each read back on another node: {:?}",
        started.elapsed()
    );
    assert!(stale.is_empty(), "stale answers: {stale:#?}");
}

#[test]
fn the_oci_conformance_suite_passes_through_the_balancer() {
    let Some((_serial, n)) = start(
        "the_oci_conformance_suite_passes_through_the_balancer",
        &[],
        "",
    ) else {
        return;
    };
    common::conformance::conform(&format!("http://{}", n.addr), Some(USER), &[]);
    let spread = (0..n.nodes.len())
        .filter(|&i| n.server(i).log_text().contains(" PUT /v2/"))
        .count();
    assert_eq!(spread, n.nodes.len(), "every node took pushes of the suite");
}

#[test]
fn docker_skopeo_and_docker_search_work_through_the_balancer() {
    let Some((_serial, n)) = start(
        "docker_skopeo_and_docker_search_work_through_the_balancer",
        &[&dockerd_bin(), &docker_bin(), &common::oci::skopeo_bin()],
        "",
    ) else {
        return;
    };
    let _one = ONE_DOCKERD.lock().unwrap_or_else(|e| e.into_inner());
    let dk = Dockerd::start();
    let work = TempDir::new("scale-dk");
    let host = n.addr.to_string();
    dk.docker_stdin(&["login", "-u", USER.0, "--password-stdin", &host], USER.1);

    // Three layers: an imported root filesystem and two added on top.
    let (tar, _) = rootfs_tar(&work.0, 3);
    let base = dk
        .docker(&["import", tar.to_str().unwrap(), "scale/base:src"])
        .trim()
        .to_string();
    let second = dk.add_layer(&base, &work.0, &random_bytes(2 << 20, 4), &[]);
    let third = dk.add_layer(&second, &work.0, &random_bytes(1 << 20, 5), &[]);
    let before = dk.inspect(&third);
    assert_eq!(strings(&before["RootFS"]["Layers"]).len(), 3);
    let reference = format!("{host}/team/app:1");
    dk.docker(&["tag", &third, &reference]);
    let digest = pushed_digest(&dk.docker(&["push", &reference]));
    let uploads = counts(&n, " PUT /v2/team/app/blobs/uploads/");
    eprintln!("blob uploads finished per node: {uploads:?}");
    assert!(
        uploads.iter().filter(|&&c| c > 0).count() >= 2,
        "one push's uploads all on one node: {uploads:?}"
    );
    dk.docker(&["rmi", &reference, "scale/base:src"]);
    assert!(
        !dk.try_docker(&["image", "inspect", &third])
            .status
            .success(),
        "the image is still there after rmi"
    );
    let out = dk.docker(&["pull", &reference]);
    assert!(out.contains(&digest), "{out}");
    let after = dk.inspect(&reference);
    assert_eq!(after["Id"], before["Id"]);
    assert_eq!(after["RootFS"], before["RootFS"]);

    // skopeo copies it within the registry, through the balancer both ways.
    let tmp = work.0.join("skopeo");
    std::fs::create_dir_all(&tmp).unwrap();
    let creds = format!("{}:{}", USER.0, USER.1);
    common::oci::skopeo(
        &tmp,
        &[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            &creds,
            "--dest-creds",
            &creds,
            "--preserve-digests",
            &format!("docker://{reference}"),
            &format!("docker://{host}/team/copy:1"),
        ],
    );
    for i in 0..n.nodes.len() {
        let r = n
            .node_req(i, "GET", "/v2/team/copy/manifests/1")
            .header("Accept", ACCEPT_ALL_MANIFESTS)
            .send();
        assert_eq!(r.status, 200, "node {i}: {}", r.text());
        assert_eq!(sha256(&r.body), digest, "node {i}");
    }

    // docker search sees both, whichever node answers.
    for _ in 0..n.nodes.len() {
        let out = dk.docker(&["search", "--format", "{{.Name}}", &format!("{host}/team")]);
        let mut names: Vec<&str> = out.lines().collect();
        names.sort();
        assert_eq!(names, ["team/app", "team/copy"]);
    }
}

/// A small image (two ~40 KB layers, larger than HAProxy's buffer, so only
/// the client can retry their uploads) pushed through `front`; the first
/// failure ends the attempt.
fn try_push(front: &Server, repo: &str, tag: &str, seed: u64) -> Result<String, String> {
    let blob = |data: &[u8]| -> Result<(String, usize), String> {
        let d = sha256(data);
        let r = front
            .req("POST", &format!("/v2/{repo}/blobs/uploads/?digest={d}"))
            .body(data.to_vec())
            .try_send()
            .map_err(|e| format!("blob: {e}"))?;
        match r.status {
            201 => Ok((d, data.len())),
            s => Err(format!("blob: {s} {}", r.text())),
        }
    };
    let l1 = blob(&random_bytes(40_000, seed))?;
    let l2 = blob(&random_bytes(41_000, seed ^ 0xffff))?;
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
    let c = blob(config.as_bytes())?;
    let m = image_manifest(OCI_MANIFEST, (&c.0, c.1), &[(&l1.0, l1.1), (&l2.0, l2.1)]);
    let r = front
        .req("PUT", &format!("/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .try_send()
        .map_err(|e| format!("manifest: {e}"))?;
    match r.status {
        201 => Ok(sha256(m.as_bytes())),
        s => Err(format!("manifest: {s} {}", r.text())),
    }
}

#[test]
fn a_node_killed_mid_push_loses_nothing_acknowledged_nor_does_a_garage_node() {
    let Some((_serial, mut n)) = start(
        "a_node_killed_mid_push_loses_nothing_acknowledged_nor_does_a_garage_node",
        &[],
        "",
    ) else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let retries = Arc::new(AtomicU64::new(0));
    let acked_so_far = Arc::new(AtomicU64::new(0));
    let pushers: Vec<_> = (0..3u64)
        .map(|t| {
            let (front, stop) = (n.front_server(), stop.clone());
            let (retries, count) = (retries.clone(), acked_so_far.clone());
            std::thread::spawn(move || {
                let mut acked = vec![];
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let tag = format!("t{t}-{i}");
                    let mut attempt = 0;
                    let d = loop {
                        attempt += 1;
                        match try_push(&front, "kill/app", &tag, t * 10_000 + i) {
                            Ok(d) => break d,
                            Err(e) if attempt < 10 => {
                                eprintln!("{tag} attempt {attempt}: {e}; retrying");
                                retries.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(200));
                            }
                            Err(e) => panic!("{tag}: gave up after {attempt} attempts: {e}"),
                        }
                    };
                    acked.push((tag, d));
                    count.fetch_add(1, Ordering::SeqCst);
                }
                acked
            })
        })
        .collect();
    // The kill comes with pushes under way, and as many are acknowledged
    // after it as before.
    let acked_by = |k: u64| wait_for(120, || acked_so_far.load(Ordering::SeqCst) >= k);
    assert!(acked_by(4), "no pushes before the kill");
    n.kill(1);
    let before = acked_so_far.load(Ordering::SeqCst);
    assert!(acked_by(before + 6), "pushes stopped after the kill");
    stop.store(true, Ordering::SeqCst);
    let acked: Vec<(String, String)> = pushers
        .into_iter()
        .flat_map(|p| p.join().expect("a pusher gave up"))
        .collect();
    eprintln!(
        "{} pushes acknowledged ({before} before the kill), {} attempts retried",
        acked.len(),
        retries.load(Ordering::SeqCst)
    );
    assert!(
        wait_for(10, || n.front.log_text().contains("node1 is DOWN")),
        "HAProxy did not take node 1 out:\n{}",
        n.front.log_text()
    );
    assert!(
        acked.len() >= 6,
        "too few pushes to mean anything: {acked:?}"
    );
    let front = n.front_server();
    for (tag, d) in &acked {
        for s in [&front, n.server(0), n.server(2)] {
            pulls_completely(s, "kill/app", tag, d);
        }
    }

    // One Garage node of three down: pushes and pulls go on.
    n.garage.kill_settled(3);
    for i in 0..3 {
        let tag = format!("garage-down-{i}");
        let d =
            try_push(&front, "kill/app", &tag, 99_000 + i).expect("push with a Garage node down");
        for s in [&front, n.server(0), n.server(2)] {
            pulls_completely(s, "kill/app", &tag, &d);
        }
    }
    let (tag, d) = &acked[0];
    pulls_completely(&front, "kill/app", tag, d);
}

/// Uploads `count` new blobs of 64 KiB (more than HAProxy buffers, so it
/// cannot retry them itself) to `repo` through `front` with curl, one after
/// the other on one keep-alive connection; the status codes.
fn curl_uploads(
    front: std::net::SocketAddr,
    repo: &str,
    work: &std::path::Path,
    seed: u64,
) -> Vec<String> {
    let mut cmd = Command::new("curl");
    for k in 0..4 {
        let data = random_bytes(64 << 10, seed * 4 + k);
        let file = work.join(format!("upload-{k}"));
        std::fs::write(&file, &data).unwrap();
        if k > 0 {
            cmd.arg("--next");
        }
        cmd.args(["-s", "-u", &format!("{}:{}", USER.0, USER.1)])
            .args(["-H", "Content-Type: application/octet-stream"])
            .args(["--data-binary", &format!("@{}", file.display())])
            .args(["-o", "/dev/null", "-w", "%{http_code}\\n"])
            .arg(format!(
                "http://{front}/v2/{repo}/blobs/uploads/?digest={}",
                sha256(&data)
            ));
    }
    let out = cmd.stderr(Stdio::null()).output().expect("curl runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Pulls `repo:tag` through `front` with curl, several requests on one
/// keep-alive connection (as a client's pool does); the status codes.
fn curl_pull(front: std::net::SocketAddr, repo: &str, tag: &str, blobs: &[String]) -> Vec<String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-u", &format!("{}:{}", USER.0, USER.1)])
        .args(["-H", &format!("Accept: {ACCEPT_ALL_MANIFESTS}")]);
    let mut urls = vec![format!("http://{front}/v2/{repo}/manifests/{tag}")];
    urls.extend(
        blobs
            .iter()
            .map(|d| format!("http://{front}/v2/{repo}/blobs/{d}")),
    );
    for u in &urls {
        cmd.args(["-o", "/dev/null", "-w", "%{http_code}\\n", u]);
    }
    let out = cmd.stderr(Stdio::null()).output().expect("curl runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_rolling_restart_under_load_fails_no_request() {
    let Some((_serial, mut n)) = start(
        "a_rolling_restart_under_load_fails_no_request",
        &["curl"],
        "privateregistry:\n  shutdowndelay: 1s\n",
    ) else {
        return;
    };
    let front = n.front_server();
    let d = push_image(&front, "load/app", "1", "load");
    let m = get_manifest(&front, "load/app", "1").json();
    let blobs: Vec<String> = std::iter::once(&m["config"])
        .chain(m["layers"].as_array().unwrap())
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(vec![]));
    let done = Arc::new(AtomicU64::new(0));
    // Two pullers, each several requests per keep-alive connection.
    let pullers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, failures, done) = (stop.clone(), failures.clone(), done.clone());
            let (addr, blobs) = (n.addr, blobs.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let codes = curl_pull(addr, "load/app", "1", &blobs);
                    done.fetch_add(codes.len() as u64, Ordering::SeqCst);
                    if codes.len() != blobs.len() + 1 || codes.iter().any(|c| c != "200") {
                        failures.lock().unwrap().push(format!("pull: {codes:?}"));
                    }
                }
            })
        })
        .collect();
    let pusher = {
        let (stop, failures, done, front) = (
            stop.clone(),
            failures.clone(),
            done.clone(),
            n.front_server(),
        );
        std::thread::spawn(move || {
            let mut acked = vec![];
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let tag = format!("p{i}");
                match try_push(&front, "load/app", &tag, 50_000 + i) {
                    Ok(d) => acked.push((tag, d)),
                    Err(e) => failures.lock().unwrap().push(format!("push {tag}: {e}")),
                }
                done.fetch_add(4, Ordering::SeqCst);
            }
            acked
        })
    };
    // And uploads on keep-alive connections.
    let uploader = {
        let (stop, failures, done, addr) = (stop.clone(), failures.clone(), done.clone(), n.addr);
        std::thread::spawn(move || {
            let work = TempDir::new("uploads");
            let mut round = 0;
            while !stop.load(Ordering::SeqCst) {
                round += 1;
                let codes = curl_uploads(addr, "load/uploads", &work.0, round);
                done.fetch_add(codes.len() as u64, Ordering::SeqCst);
                if codes.len() != 4 || codes.iter().any(|c| c != "201") {
                    failures.lock().unwrap().push(format!("uploads: {codes:?}"));
                }
            }
        })
    };
    for i in 0..n.nodes.len() {
        let before = done.load(Ordering::SeqCst);
        let (status, log) = n.terminate(i);
        assert!(status.success(), "node {i}: {status:?}\n{log}");
        assert!(
            log.contains("/healthz fails now"),
            "node {i} did not wait for HAProxy:\n{log}"
        );
        n.restart(i);
        let during = done.load(Ordering::SeqCst) - before;
        eprintln!("node {i} restarted; {during} requests meanwhile");
        assert!(during > 0, "no load while node {i} restarted");
    }
    stop.store(true, Ordering::SeqCst);
    for p in pullers {
        p.join().unwrap();
    }
    uploader.join().unwrap();
    let acked = pusher.join().unwrap();
    let failures = failures.lock().unwrap().clone();
    eprintln!(
        "{} requests, {} pushes acknowledged",
        done.load(Ordering::SeqCst),
        acked.len()
    );
    assert!(
        failures.is_empty(),
        "failed under a rolling restart: {failures:#?}"
    );
    pulls_completely(&front, "load/app", "1", &d);
    for (tag, d) in &acked {
        pulls_completely(&front, "load/app", tag, d);
    }
}

#[test]
fn collection_on_one_node_with_killed_collectors_loses_no_blob_of_a_pushed_image() {
    let Some((_serial, n)) = start(
        "collection_on_one_node_with_killed_collectors_loses_no_blob_of_a_pushed_image",
        &[],
        "",
    ) else {
        return;
    };
    let seed = time_seed();
    eprintln!("TEST_SEED={seed}");
    let pool: Vec<Vec<u8>> = (0..4)
        .map(|i| random_bytes(30_000 + i * 11, seed ^ i as u64))
        .collect();
    // Collectors with node 0's configuration, killed at random moments.
    let stop = Arc::new(AtomicBool::new(false));
    let said = Arc::new(Mutex::new(String::new()));
    let killer = {
        let (stop, said) = (stop.clone(), said.clone());
        let config = n.config_path(0);
        std::thread::spawn(move || {
            let mut rng = Rng::new(seed);
            let (mut killed, mut finished) = (0, 0);
            while !stop.load(Ordering::SeqCst) {
                let child = collector(&config)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let after = Duration::from_millis(20 + rng.below(1000));
                let (was_killed, out) = kill_after(child, after);
                if was_killed {
                    killed += 1;
                } else {
                    finished += 1;
                }
                let mut said = said.lock().unwrap();
                said.push_str(&String::from_utf8_lossy(&out.stdout));
                said.push_str(&String::from_utf8_lossy(&out.stderr));
            }
            (killed, finished)
        })
    };
    // Pushes through nodes 1 and 2; most images deleted again (through the
    // other one) so the collections have something to take.
    let mut kept = vec![];
    let (mut acked, mut i) = (0, 0u64);
    while acked < 9 {
        i += 1;
        assert!(i < 40, "pushes refused again and again");
        let (pusher, deleter) = if i % 2 == 0 { (1, 2) } else { (2, 1) };
        let tag = format!("gc-{i}");
        let Some(d) = push_sharing(n.server(pusher), "busy", &tag, seed + i, &pool) else {
            continue;
        };
        acked += 1;
        explained(&n, &said, || {
            pulls_completely(n.server(deleter), "busy", &tag, &d)
        });
        if acked % 3 == 0 {
            kept.push((tag, d));
        } else {
            let r = n
                .node_req(deleter, "DELETE", &format!("/v2/busy/manifests/{d}"))
                .send();
            assert_eq!(r.status, 202, "{}", r.text());
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (killed, finished) = killer.join().unwrap();
    eprintln!(
        "{killed} collections killed, {finished} finished; {} images kept",
        kept.len()
    );
    assert!(killed > 0, "no collector was killed mid-run");
    let front = n.front_server();
    for (tag, d) in &kept {
        explained(&n, &said, || pulls_completely(&front, "busy", tag, d));
    }
    // A killed collector's marker counts for 10 s in a bucket
    // (src/storage/condemn.rs); then a full collection, and still nothing
    // of a kept image is missing on any node.
    std::thread::sleep(Duration::from_secs(11));
    let out = collector(&n.config_path(0)).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (tag, d) in &kept {
        for i in 0..n.nodes.len() {
            explained(&n, &said, || pulls_completely(n.server(i), "busy", tag, d));
        }
    }
}

/// Runs `check`; should it fail, prints what the collectors and the nodes
/// said about the digests named in its message first.
fn explained(n: &Nodes, said: &Mutex<String>, check: impl FnOnce()) {
    let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) else {
        return;
    };
    let message = e.downcast_ref::<String>().cloned().unwrap_or_default();
    let said = said.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for d in message
        .split_whitespace()
        .filter(|w| w.starts_with("sha256:"))
    {
        let hex = d.trim_start_matches("sha256:");
        eprintln!("--- collectors on {d}:");
        said.lines()
            .filter(|l| l.contains(hex))
            .for_each(|l| eprintln!("{l}"));
        for (i, node) in n.nodes.iter().enumerate() {
            let log = node
                .server
                .as_ref()
                .map(Server::log_text)
                .unwrap_or_default();
            eprintln!("--- node {i} on {d}:");
            log.lines()
                .filter(|l| l.contains(hex))
                .for_each(|l| eprintln!("{l}"));
        }
    }
    std::panic::resume_unwind(e);
}

/// `private-registry garbage-collect --delete-untagged --grace 1s` on `config`.
fn collector(config: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "garbage-collect",
        "--delete-untagged",
        "--grace",
        "1s",
        "--config",
    ])
    .arg(config);
    c
}
