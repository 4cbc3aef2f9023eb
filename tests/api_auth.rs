//! Authentication and authorisation against the real server: the Basic
//! challenge on every route, credentials, throttling, htpasswd reloads and
//! the access rules.

mod common;

use common::*;
use std::path::PathBuf;

const REALM: &str = "test-realm";

/// A server with htpasswd auth over `users` and `extra` YAML under `privateregistry:`.
fn start(users: &[(&str, &str)], ours: &str) -> (Server, PathBuf, TempDir) {
    let dir = TempDir::new("auth");
    let htpasswd = dir.0.join("htpasswd");
    write_htpasswd(&htpasswd, users);
    let extra = format!(
        "auth:\n  htpasswd:\n    realm: {REALM}\n    path: {}\nprivateregistry:\n  auth:\n    cachettl: 1h\n{ours}",
        htpasswd.display()
    );
    let s = Server::start_with(&extra);
    (s, htpasswd, dir)
}

fn as_user(s: &mut Server, user: &str, password: &str) {
    s.credentials = Some((user.to_string(), password.to_string()));
}

fn assert_challenged(r: &Resp, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text());
    let challenges: Vec<_> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("WWW-Authenticate"))
        .collect();
    assert_eq!(challenges.len(), 1, "{what}: {:?}", r.headers);
    assert_eq!(
        challenges[0].1,
        format!("Basic realm=\"{REALM}\""),
        "{what}"
    );
}

/// Every route, known or not, with every method a client might use.
fn every_route(repo: &str, digest: &str) -> Vec<(&'static str, String)> {
    let mut routes = vec![];
    let paths = [
        "/".to_string(),
        "/v2".into(),
        "/v2/".into(),
        "/v2/_catalog".into(),
        "/v2/_catalog?n=1".into(),
        format!("/v2/{repo}/tags/list"),
        format!("/v2/{repo}/manifests/latest"),
        format!("/v2/{repo}/manifests/{digest}"),
        format!("/v2/{repo}/blobs/{digest}"),
        format!("/v2/{repo}/blobs/uploads/"),
        format!("/v2/{repo}/blobs/uploads/some-id"),
        format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={repo}"),
        format!("/v2/{repo}/referrers/{digest}"),
        "/v2/nosuch/manifests/latest".into(),
        "/v2/INVALID..NAME/manifests/x".into(),
        "/v2/a/unknown/endpoint".into(),
        "/v1/search?q=a".into(),
        "/v2/_ext/usage".into(),
        format!("/v2/_ext/usage/{repo}"),
        "/v1/_ping".into(),
        "/ui/".into(),
        "/metrics".into(),
        "/ca.crt".into(),
        "/debug/health".into(),
        "/../../etc/passwd".into(),
    ];
    for p in paths {
        for m in ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"] {
            routes.push((m, p.clone()));
        }
    }
    routes
}

#[test]
fn every_route_challenges_callers_without_valid_credentials() {
    let (mut s, _, _dir) = start(&[("alice", "s3cret")], "    maxfailures: 100000\n");
    as_user(&mut s, "alice", "s3cret");
    let digest = push_image(&s, "team/app", "latest", "x");
    for creds in [None, Some(("alice", "wrong")), Some(("mallory", "s3cret"))] {
        s.credentials = creds.map(|(u, p)| (u.to_string(), p.to_string()));
        for (method, path) in every_route("team/app", &digest) {
            let r = s.req(method, &path).send();
            let what = format!("{method} {path} as {creds:?}");
            assert_challenged(&r, &what);
            if method != "HEAD" {
                assert_eq!(r.code(), "UNAUTHORIZED", "{what}");
                assert!(!r.text().contains("sha256:"), "{what} leaked: {}", r.text());
            }
        }
        // A malformed header is a failed login, not a server error.
        let r = s
            .req("GET", "/v2/")
            .header("Authorization", "Basic !!!not-base64")
            .send();
        assert_challenged(&r, "malformed header");
    }
    as_user(&mut s, "alice", "s3cret");
    assert_eq!(get_manifest(&s, "team/app", &digest).status, 200);
    s.expect_log(" alice GET /v2/team/app/manifests/");
}

/// The health check is the one path open to all, and tells nothing else.
#[test]
fn health_check_is_the_only_open_path() {
    let (s, _, _dir) = start(&[("alice", "s3cret")], "");
    for method in ["GET", "HEAD"] {
        let r = s.req(method, "/healthz").send();
        assert_eq!(r.status, 200, "{method}");
        assert_eq!(r.header("WWW-Authenticate"), None);
        let body = if method == "GET" { "ok\n" } else { "" };
        assert_eq!(r.text(), body);
    }
    let r = s.req("GET", "/healthz?verbose=1").send();
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    for path in ["/healthz/", "/healthz/x", "/v2/healthz", "/HEALTHZ"] {
        assert_challenged(&s.req("GET", path).send(), path);
    }
    assert_eq!(s.req("PUT", "/healthz").send().status, 405);
}

#[test]
fn failed_logins_are_throttled_per_user_and_address() {
    let ours = "    maxfailures: 3\n    maxaddressfailures: 7\n    failurewindow: 1h\n";
    let (mut s, _, _dir) = start(&[("alice", "s3cret"), ("bob", "b0b")], ours);
    as_user(&mut s, "alice", "guess");
    for _ in 0..3 {
        assert_challenged(&s.req("GET", "/v2/").send(), "wrong password");
    }
    as_user(&mut s, "alice", "s3cret");
    let r = s.req("GET", "/v2/").send();
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.code(), "TOOMANYREQUESTS");
    let wait: u64 = r.header("Retry-After").unwrap().parse().unwrap();
    assert!(wait > 3000 && wait <= 3600, "{wait}");
    // Requests without credentials are not logins and are not throttled.
    s.credentials = None;
    assert_challenged(&s.req("GET", "/v2/").send(), "anonymous");
    s.expect_log("3 failed logins for user \"alice\" from 127.0.0.1");
    // Behind the same address (a NAT, a CI farm), another user still logs
    // in, and the refused client adds nothing to the address's count.
    as_user(&mut s, "bob", "b0b");
    assert_eq!(s.req("GET", "/v2/").send().status, 200, "bob locked out");
    as_user(&mut s, "alice", "guess");
    for _ in 0..5 {
        assert_eq!(s.req("GET", "/v2/").send().status, 429);
    }
    // One password tried on many users: the address as a whole stops.
    for user in ["carol", "dave", "erin", "frank"] {
        as_user(&mut s, user, "guess");
        assert_challenged(&s.req("GET", "/v2/").send(), user);
    }
    s.expect_log("7 failed logins from 127.0.0.1; answering 429 to every login");
    as_user(&mut s, "bob", "b0b");
    assert_eq!(s.req("GET", "/v2/").send().status, 429, "address limit");
}

#[test]
fn htpasswd_changes_apply_without_restart() {
    let (mut s, htpasswd, _dir) = start(&[("alice", "one")], "");
    as_user(&mut s, "alice", "one");
    assert_eq!(s.req("GET", "/v2/").send().status, 200);
    // A new user, and a changed password: the cached old one stops working.
    write_htpasswd(&htpasswd, &[("bob", "two"), ("alice", "changed")]);
    assert!(wait_for(20, || s.log_text().contains("2 users loaded")));
    as_user(&mut s, "bob", "two");
    assert_eq!(s.req("GET", "/v2/").send().status, 200);
    as_user(&mut s, "alice", "one");
    assert_challenged(&s.req("GET", "/v2/").send(), "old password");
    as_user(&mut s, "alice", "changed");
    assert_eq!(s.req("GET", "/v2/").send().status, 200);
    // Removing the file locks everybody out, and the log says how to add a user.
    std::fs::remove_file(&htpasswd).unwrap();
    assert!(wait_for(20, || s.log_text().contains("0 users loaded")));
    assert_challenged(&s.req("GET", "/v2/").send(), "after removal");
    s.expect_log("private-registry htpasswd add USER");
}

#[test]
fn non_bcrypt_entries_are_refused_by_name_and_line() {
    let dir = TempDir::new("auth");
    let htpasswd = dir.0.join("htpasswd");
    write_htpasswd(&htpasswd, &[("alice", "s3cret")]);
    let mut text = std::fs::read_to_string(&htpasswd).unwrap();
    text.push_str("sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nplain:password\n");
    std::fs::write(&htpasswd, text).unwrap();
    let extra = format!(
        "auth:\n  htpasswd:\n    realm: {REALM}\n    path: {}\n",
        htpasswd.display()
    );
    let mut s = Server::start_with(&extra);
    let log = s.log_text();
    assert!(log.contains("line 2") && log.contains("\"sha\""), "{log}");
    assert!(log.contains("line 3") && log.contains("\"plain\""), "{log}");
    as_user(&mut s, "plain", "password");
    assert_challenged(&s.req("GET", "/v2/").send(), "plaintext entry");
    as_user(&mut s, "alice", "s3cret");
    assert_eq!(s.req("GET", "/v2/").send().status, 200);
}

const RULES: &str = "  access:
    groups:
      writers: [wanda]
    rules:
      - {repositories: ['*'], users: ['*'], allow: [pull]}
      - {repositories: ['team/*'], groups: [writers], allow: [pull, push]}
      - {repositories: ['*'], users: [root], allow: [pull, push, delete]}
      - {repositories: ['public/*'], anonymous: true, allow: [pull]}
";

#[test]
fn access_rules_decide_per_user_and_repository() {
    let users = [("root", "r"), ("wanda", "w"), ("reader", "x")];
    let (mut s, _, _dir) = start(&users, RULES);
    as_user(&mut s, "root", "r");
    let team = push_image(&s, "team/app", "1", "team");
    let public = push_image(&s, "public/base", "1", "public");
    push_image(&s, "secret/keys", "1", "secret");

    // Browse-only: pulls everything it may see, pushes nothing.
    as_user(&mut s, "reader", "x");
    assert_eq!(get_manifest(&s, "team/app", &team).status, 200);
    let r = s.req("POST", "/v2/team/app/blobs/uploads/").send();
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "DENIED"),
        "{}",
        r.text()
    );
    let r = s
        .req("DELETE", &format!("/v2/team/app/manifests/{team}"))
        .send();
    assert_eq!(r.status, 403);

    // A writer pushes where a rule lets it, nowhere else, and deletes nothing.
    as_user(&mut s, "wanda", "w");
    push_image(&s, "team/other", "1", "wanda");
    let r = s.req("POST", "/v2/public/base/blobs/uploads/").send();
    assert_eq!(r.status, 403);
    let r = s
        .req("DELETE", &format!("/v2/team/app/manifests/{team}"))
        .send();
    assert_eq!(r.status, 403);
    // The catalog shows only what the caller may pull.
    s.credentials = None;
    let r = s.req("GET", "/v2/_catalog").send();
    assert_eq!(r.json()["repositories"], serde_json::json!(["public/base"]));
    as_user(&mut s, "wanda", "w");
    let r = s.req("GET", "/v2/_catalog").send();
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["public/base", "secret/keys", "team/app", "team/other"]),
        "the '*' pull rule covers every repository"
    );

    // Anonymous: pulls public/*, is asked to log in for anything else. An
    // empty Basic login (what skopeo and podman send without credentials)
    // is anonymous too, and never counts as a failed login.
    s.credentials = None;
    assert_eq!(get_manifest(&s, "public/base", &public).status, 200);
    for _ in 0..20 {
        let r = s
            .req("GET", &format!("/v2/public/base/manifests/{public}"))
            .header("Authorization", "Basic Og==")
            .header("Accept", ACCEPT_ALL_MANIFESTS)
            .send();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_challenged(&get_manifest(&s, "team/app", &team), "anonymous team pull");
    assert_challenged(&s.req("GET", "/v2/").send(), "anonymous base");
    assert_challenged(
        &s.req("GET", "/v2/x/unknown").send(),
        "anonymous unknown path",
    );
    assert_challenged(
        &s.req("POST", "/v2/public/base/blobs/uploads/").send(),
        "anonymous push",
    );

    // Root deletes in team/*.
    as_user(&mut s, "root", "r");
    let r = s
        .req("DELETE", &format!("/v2/team/app/manifests/{team}"))
        .send();
    assert_eq!(r.status, 202, "{}", r.text());
}

#[test]
fn mounting_needs_pull_on_the_source() {
    let users = [("root", "r"), ("wanda", "w")];
    let rules = "  access:
    rules:
      - {repositories: ['*'], users: [root], allow: [pull, push]}
      - {repositories: ['team/*'], users: [wanda], allow: [pull, push]}
";
    let (mut s, _, _dir) = start(&users, rules);
    as_user(&mut s, "root", "r");
    let blob = push_blob(&s, "secret/keys", b"private layer");
    push_blob(&s, "team/shared", b"shared layer");
    as_user(&mut s, "wanda", "w");
    let mount = |from: &str, d: &str| {
        s.req(
            "POST",
            &format!("/v2/team/app/blobs/uploads/?mount={d}&from={from}"),
        )
        .send()
    };
    let r = mount("secret/keys", &blob);
    assert_eq!(r.status, 202, "an unreadable source is a plain upload");
    let shared = sha256(b"shared layer");
    assert_eq!(mount("team/shared", &shared).status, 201);
    let r = s.req("HEAD", &format!("/v2/team/app/blobs/{blob}")).send();
    assert_eq!(r.status, 404, "the secret blob was not linked");
}

#[test]
fn a_listener_with_auth_off_serves_the_host_without_a_login() {
    let dir = TempDir::new("auth");
    let htpasswd = dir.0.join("htpasswd");
    write_htpasswd(&htpasswd, &[("alice", "pw")]);
    let extra = format!(
        "auth:\n  htpasswd:\n    realm: {REALM}\n    path: {}\nprivateregistry:\n  listeners:\n    - {{name: local, addr: '127.0.0.1:0', auth: false}}\n    - {{name: other, addr: '127.0.0.1:0'}}\n",
        htpasswd.display()
    );
    let s = Server::start_with(&extra);
    let (local, other) = (s.listeners[0].0, s.listeners[1].0);
    assert_eq!(req_to(local, "GET", "/v2/").send().status, 200);
    push_image(&s, "host/app", "1", "local");
    assert_challenged(
        &req_to(other, "GET", "/v2/").send(),
        "authenticated listener",
    );
    let r = req_to(other, "GET", "/v2/host/app/tags/list")
        .header("Authorization", &basic_auth("alice", "pw"))
        .send();
    assert_eq!(r.json()["tags"], serde_json::json!(["1"]));
}

#[test]
fn sighup_applies_new_access_rules_and_keeps_serving_on_a_bad_file() {
    let rules = |allow: &str| {
        format!(
            "  access:\n    rules:\n      - {{repositories: ['*'], users: [rita], allow: [{allow}]}}\n"
        )
    };
    let (mut s, _, _dir) = start(&[("rita", "pw")], &rules("pull"));
    as_user(&mut s, "rita", "pw");
    let push = |s: &Server| s.req("POST", "/v2/team/app/blobs/uploads/").send().status;
    assert_eq!(push(&s), 403);
    let original = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        original.replace("allow: [pull]", "allow: [pull, push]"),
    )
    .unwrap();
    let hup = |s: &Server| {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &s.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    hup(&s);
    assert!(wait_for(10, || s
        .log_text()
        .contains("reloaded configuration")));
    assert_eq!(push(&s), 202, "the new rule applies without a restart");
    // A broken file is reported and the running configuration stays.
    std::fs::write(&s.config, "version: 0.1\nhttp: [broken\n").unwrap();
    hup(&s);
    assert!(wait_for(10, || s
        .log_text()
        .contains("reload failed, keeping the running configuration")));
    assert_eq!(push(&s), 202);
}
