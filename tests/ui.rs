//! The web UI over real sockets: escaping of what pushers control, the
//! delete form's CSRF protection, who sees what, pagination, the `/`
//! redirect, the login challenge, `privateregistry.ui.enabled: false`.
//! The browser itself is driven in `e2e_ui.rs`.

mod common;

use common::ui::{
    ALICE, BOB, REALM, attr_after, auth, form_token, next_link, push_referrer, start,
};
use common::*;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Closes the element it lands in, opens a script, breaks out of quotes.
const HOSTILE: &str = r#"</code></td><script>alert("x")</script><img src=x onerror='y'>&amp;"#;

fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A request as `user` (never with the server's default credentials, which
/// `as_alice` sets for pushes through the API).
fn req_as(s: &Server, user: (&str, &str), method: &str, path: &str) -> Req {
    req_to(s.addr, method, path).header("Authorization", &auth(user))
}

fn get(s: &Server, user: (&str, &str), path: &str) -> Resp {
    req_as(s, user, "GET", path).send()
}

fn page(s: &Server, user: (&str, &str), path: &str) -> String {
    let r = get(s, user, path);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    r.text()
}

fn as_alice(s: &mut Server) {
    s.credentials = Some((ALICE.0.into(), ALICE.1.into()));
}

/// Pushes an image whose config and manifest annotations are hostile, and
/// a referrer to it with a hostile annotation; returns the image's digest.
fn push_hostile(s: &Server, repo: &str, tag: &str) -> String {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2026-01-02T03:04:05Z",
        "author": HOSTILE,
        "config": {
            "Env": [format!("EVIL={HOSTILE}")],
            "Labels": { "evil": HOSTILE, HOSTILE: "key" },
            "Entrypoint": [HOSTILE], "Cmd": ["run", HOSTILE],
            "WorkingDir": HOSTILE, "User": HOSTILE,
        },
        "history": [{ "created": "2026-01-02T03:04:05Z", "created_by": format!("/bin/sh -c {HOSTILE}") }],
    })
    .to_string();
    let c = push_blob(s, repo, config.as_bytes());
    let l = push_blob(s, repo, b"hostile layer");
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l, "size": 13 }],
        "annotations": { "org.example.note": HOSTILE },
    })
    .to_string();
    let r = s
        .req("PUT", &format!("/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest.clone())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    let digest = sha256(manifest.as_bytes());
    push_referrer(
        s,
        repo,
        (&digest, manifest.len()),
        "application/vnd.example.signature",
        serde_json::json!({ "signer": HOSTILE }),
    );
    digest
}

/// Nothing a pusher wrote comes out as markup: the only script element is
/// our own, and every hostile value shows escaped.
fn assert_inert(html: &str, what: &str) {
    assert!(!html.contains(HOSTILE), "{what}: raw hostile text");
    assert_eq!(html.matches("<script").count(), 1, "{what}: {html}");
    assert!(html.contains("<script src=\"/ui/assets/ui."), "{what}");
    assert!(!html.contains("<img"), "{what}");
    assert!(!html.contains("</td><script"), "{what}");
}

#[test]
fn pushed_values_are_escaped_everywhere() {
    let (mut s, _dir) = start("", &[]);
    as_alice(&mut s);
    let digest = push_hostile(&s, "team/app", "1.0");

    let detail = page(&s, ALICE, "/ui/r/team/app/-/m/1.0");
    assert_inert(&detail, "manifest page");
    let e = escaped(HOSTILE);
    // Labels (key and value), env, entrypoint, cmd, working dir, user,
    // author, history, manifest annotations.
    assert!(detail.matches(e.as_str()).count() >= 8, "{detail}");
    assert!(detail.contains(&format!("EVIL</code></td><td class=\"wrap\"><code>{e}")));
    assert!(
        detail.contains("application/vnd.example.signature"),
        "referrer listed"
    );
    assert!(
        detail.contains(&format!("signer={e}")),
        "referrer annotation"
    );
    assert!(detail.contains(&format!("docker pull {}/team/app:1.0", s.addr)));
    assert!(detail.contains(&digest));

    // The referrer's own page names the image it refers to.
    let referrers = s
        .req("GET", &format!("/v2/team/app/referrers/{digest}"))
        .send()
        .json();
    let sig = referrers["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let sig_page = page(&s, ALICE, &format!("/ui/r/team/app/-/m/{sig}"));
    assert_inert(&sig_page, "referrer page");
    assert!(sig_page.contains(&format!("team/app@{sig}")));

    let tags = page(&s, ALICE, "/ui/r/team/app");
    assert_inert(&tags, "tags page");
    assert!(tags.contains("linux/amd64") && tags.contains("2026-01-02 03:04:05 UTC"));

    // A hostile filter is reflected escaped, in the input and in the pager.
    let q = "%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    let list = page(&s, ALICE, &format!("/ui/?q={q}"));
    assert_inert(&list, "filtered list");
    assert!(list.contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""));
    let notice = page(&s, ALICE, &format!("/ui/r/team/app?deleted={q}"));
    assert_inert(&notice, "deleted notice");
}

#[test]
fn pages_carry_security_headers_and_assets_are_cached_by_hash() {
    let (mut s, _dir) = start("", &[]);
    as_alice(&mut s);
    push_image(&s, "team/app", "1.0", "a");
    let r = get(&s, ALICE, "/ui/");
    assert_eq!(r.status, 200);
    let csp = r.header("Content-Security-Policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    assert!(r.header("Referrer-Policy").is_some());
    let html = r.text();
    assert!(
        !html.contains("style=") && !html.contains("onclick"),
        "inline style or script"
    );
    for marker in ["rel=\"stylesheet\"", "<script"] {
        let url = attr_after(
            &html,
            marker,
            if marker.contains("rel") {
                "href"
            } else {
                "src"
            },
        )
        .unwrap();
        let a = get(&s, ALICE, &url);
        assert_eq!(a.status, 200, "{url}");
        assert!(
            a.header("Cache-Control").unwrap().contains("immutable"),
            "{url}"
        );
        assert!(!a.body.is_empty());
        // Any other hash is not ours (an old page's asset is gone, not stale).
        let stale = url.replacen('.', ".0", 1);
        assert_eq!(get(&s, ALICE, &stale).status, 404, "{stale}");
        // Assets are behind the login like everything else.
        assert_eq!(req_to(s.addr, "GET", &url).send().status, 401);
    }
}

#[test]
fn root_redirects_and_the_ui_asks_for_a_login() {
    let (s, _dir) = start("", &[]);
    for path in [
        "/",
        "/ui",
        "/ui/",
        "/ui/r/team/app",
        "/ui/r/team/app/-/m/1.0",
        "/ui/nowhere",
    ] {
        let r = s.req("GET", path).send();
        assert_eq!(r.status, 401, "{path}: {}", r.text());
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some(format!("Basic realm=\"{REALM}\"").as_str()),
            "{path}"
        );
    }
    let r = s
        .req("GET", "/ui/")
        .header("Authorization", &basic_auth("alice", "wrong"))
        .send();
    assert_eq!(r.status, 401);
    let r = get(&s, ALICE, "/");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("Location"), Some("/ui/"));
    assert_eq!(get(&s, ALICE, "/ui").status, 200);
    assert_eq!(get(&s, ALICE, "/ui/nowhere").status, 404);
    assert_eq!(get(&s, ALICE, "/ui/r/Bad_Name").status, 404);
}

#[test]
fn ui_disabled_is_not_found_and_the_api_still_serves() {
    let (mut s, _dir) = start("  ui:\n    enabled: false\n", &[]);
    as_alice(&mut s);
    push_image(&s, "team/app", "1.0", "a");
    for path in ["/", "/ui/", "/ui/r/team/app"] {
        let r = get(&s, ALICE, path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.header("Content-Type"), Some("application/json"), "{path}");
    }
    assert_eq!(s.req("GET", "/v2/team/app/tags/list").send().status, 200);
}

#[test]
fn a_bad_ui_setting_names_its_key() {
    let dir = TempDir::new("uicfg");
    let config = dir.0.join("c.yml");
    std::fs::write(
        &config,
        config_yaml(
            &dir.0.join("data"),
            "privateregistry:\n  ui:\n    enabled: maybe\n",
        ),
    )
    .unwrap();
    let o = std::process::Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("privateregistry.ui.enabled"), "{err}");
}

#[test]
fn users_see_only_what_they_may_pull_and_delete_only_with_permission() {
    let (mut s, _dir) = start("", &[]);
    as_alice(&mut s);
    push_image(&s, "team/app", "1.0", "a");
    push_image(&s, "secret/db", "1.0", "b");
    let alice = page(&s, ALICE, "/ui/");
    assert!(alice.contains("/ui/r/team/app") && alice.contains("/ui/r/secret/db"));
    let bob = page(&s, BOB, "/ui/");
    assert!(bob.contains("/ui/r/team/app"), "{bob}");
    assert!(!bob.contains("secret"), "{bob}");
    for path in ["/ui/r/secret/db", "/ui/r/secret/db/-/m/1.0"] {
        let r = get(&s, BOB, path);
        assert_eq!(r.status, 403, "{path}");
        assert!(!r.text().contains("1.0"), "{path}: leaks content");
    }
    // The delete controls are absent for bob, present for alice.
    for path in ["/ui/r/team/app", "/ui/r/team/app/-/m/1.0"] {
        assert!(!page(&s, BOB, path).contains("/-/delete/"), "{path}");
        assert!(page(&s, ALICE, path).contains("/-/delete/1.0"), "{path}");
    }
    assert_eq!(get(&s, BOB, "/ui/r/team/app/-/delete/1.0").status, 403);
}

#[test]
fn delete_buttons_are_absent_when_deletes_are_disabled() {
    let (mut s, _dir) = start("", &[("REGISTRY_STORAGE_DELETE_ENABLED", "false")]);
    as_alice(&mut s);
    push_image(&s, "team/app", "1.0", "a");
    for path in ["/ui/r/team/app", "/ui/r/team/app/-/m/1.0"] {
        assert!(!page(&s, ALICE, path).contains("/-/delete/"), "{path}");
    }
    assert_eq!(get(&s, ALICE, "/ui/r/team/app/-/delete/1.0").status, 403);
    let r = s
        .req("POST", "/ui/r/team/app/-/delete/1.0")
        .header("Origin", &format!("http://{}", s.addr))
        .body("token=00")
        .send();
    assert_eq!(r.status, 403);
    assert!(r.text().contains("storage.delete.enabled"));
}

fn post_delete(
    s: &Server,
    user: (&str, &str),
    path: &str,
    token: &str,
    origin: Option<&str>,
) -> Resp {
    let mut r =
        req_as(s, user, "POST", path).header("Content-Type", "application/x-www-form-urlencoded");
    if let Some(o) = origin {
        r = r.header("Origin", o);
    }
    r.body(format!("token={token}")).send()
}

fn tags(s: &Server, repo: &str) -> Vec<String> {
    let r = s.req("GET", &format!("/v2/{repo}/tags/list")).send();
    docker_tags(&r)
}

fn docker_tags(r: &Resp) -> Vec<String> {
    let mut t: Vec<String> = r.json()["tags"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    t.sort();
    t
}

#[test]
fn deletes_need_this_origin_and_the_token_for_this_user_and_target() {
    let (mut s, _dir) = start("", &[]);
    as_alice(&mut s);
    let d1 = push_image(&s, "team/app", "1.0", "a");
    push_image(&s, "team/app", "2.0", "b");
    let ours = format!("http://{}", s.addr);
    let path = "/ui/r/team/app/-/delete/1.0";

    // The confirmation page changes nothing and carries the token.
    let confirm = page(&s, ALICE, path);
    assert_eq!(tags(&s, "team/app"), ["1.0", "2.0"]);
    assert!(confirm.contains("method=\"post\""));
    let token = form_token(&confirm);
    let other = form_token(&page(&s, ALICE, "/ui/r/team/app/-/delete/2.0"));
    assert_ne!(token, other, "tokens are bound to their target");

    let refused = [
        ("no token", "", Some(ours.as_str())),
        ("wrong token", "00ff", Some(ours.as_str())),
        (
            "another target's token",
            other.as_str(),
            Some(ours.as_str()),
        ),
        (
            "foreign origin",
            token.as_str(),
            Some("http://evil.example"),
        ),
        ("no origin or referer", token.as_str(), None),
    ];
    for (what, t, origin) in refused {
        let r = post_delete(&s, ALICE, path, t, origin);
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        assert_eq!(tags(&s, "team/app"), ["1.0", "2.0"], "{what}");
    }
    // A foreign Referer does not help, ours does.
    let r = req_as(&s, ALICE, "POST", path)
        .header("Referer", "http://evil.example/ui/")
        .body(format!("token={token}"))
        .send();
    assert_eq!(r.status, 403);
    // A GET with the token in the query is still only the confirmation page.
    assert_eq!(get(&s, ALICE, &format!("{path}?token={token}")).status, 200);
    assert_eq!(tags(&s, "team/app"), ["1.0", "2.0"]);

    // Browse-only bob: refused with his own forged token or with alice's.
    for t in [token.as_str(), "00"] {
        let r = post_delete(&s, BOB, path, t, Some(&ours));
        assert_eq!(r.status, 403, "{}", r.text());
    }
    assert_eq!(tags(&s, "team/app"), ["1.0", "2.0"]);

    let r = post_delete(&s, ALICE, path, &token, Some(&ours));
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("Location"),
        Some("/ui/r/team/app?deleted=tag%201.0")
    );
    assert_eq!(tags(&s, "team/app"), ["2.0"]);
    // The tag's manifest stays, reachable by digest.
    assert_eq!(get_manifest(&s, "team/app", &d1).status, 200);
    // Replaying the token for a target that no longer exists is a 404.
    assert_eq!(
        post_delete(&s, ALICE, path, &token, Some(&ours)).status,
        404
    );

    // A manifest delete, with Referer instead of Origin, takes its tags along.
    let d2 = get_manifest(&s, "team/app", "2.0")
        .header("Docker-Content-Digest")
        .unwrap()
        .to_string();
    let mpath = format!("/ui/r/team/app/-/delete/{d2}");
    let confirm = page(&s, ALICE, &mpath);
    assert!(confirm.contains("every tag that names it"));
    let r = req_as(&s, ALICE, "POST", &mpath)
        .header("Referer", &format!("{ours}{mpath}"))
        .body(format!("token={}", form_token(&confirm)))
        .send();
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(tags(&s, "team/app").is_empty());
    assert_eq!(get_manifest(&s, "team/app", &d2).status, 404);
}

/// Follows `rel="next"` links from `first`, returning each page's row links.
fn walk(s: &Server, first: &str, row_marker: &str) -> Vec<Vec<String>> {
    let mut pages = vec![];
    let mut next = Some(first.to_string());
    while let Some(path) = next {
        let html = page(s, ALICE, &path);
        let rows: Vec<String> = html
            .split(row_marker)
            .skip(1)
            .map(|r| r[..r.find('"').unwrap()].to_string())
            .collect();
        if !pages.is_empty() {
            assert!(html.contains("First page"), "{path}");
        }
        pages.push(rows);
        next = next_link(&html);
        assert!(pages.len() < 20, "pager loops");
    }
    pages
}

#[test]
fn lists_are_paged_with_a_cursor_keeping_the_filter() {
    let (mut s, _dir) = start("", &[]);
    as_alice(&mut s);
    for i in 0..7 {
        push_image(&s, &format!("pg/r{i}"), "1.0", &format!("r{i}"));
    }
    push_image(&s, "other/x", "1.0", "x");
    let pages = walk(&s, "/ui/?q=pg&n=3", "<tr><td><a href=\"/ui/r/");
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1], "{pages:?}");
    let all: Vec<String> = pages.concat();
    let want: Vec<String> = (0..7).map(|i| format!("pg/r{i}")).collect();
    assert_eq!(all, want);

    for i in 0..5 {
        push_image(&s, "pg/r0", &format!("t{i}"), &format!("t{i}"));
    }
    let pages = walk(
        &s,
        "/ui/r/pg/r0?n=2&q=t",
        "<tr><td><a href=\"/ui/r/pg/r0/-/m/",
    );
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1], "{pages:?}");
    assert_eq!(pages.concat(), ["t0", "t1", "t2", "t3", "t4"]);
    // The page size is capped by privateregistry.maxpagesize, never zero.
    let one = page(&s, ALICE, "/ui/?q=pg&n=0");
    assert_eq!(one.matches("<tr><td><a href=\"/ui/r/").count(), 1);
}

#[test]
fn an_index_shows_its_platforms_and_links_its_images() {
    let (mut s, _dir) = start("", &[]);
    as_alice(&mut s);
    let mut entries = vec![];
    for (arch, seed) in [("amd64", "x"), ("arm64", "y")] {
        let d = push_image(&s, "team/multi", &format!("only-{arch}"), seed);
        let size = get_manifest(&s, "team/multi", &d).body.len();
        entries.push(serde_json::json!({
            "mediaType": OCI_MANIFEST, "digest": d, "size": size,
            "platform": { "os": "linux", "architecture": arch },
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    })
    .to_string();
    let r = s
        .req("PUT", "/v2/team/multi/manifests/latest")
        .header("Content-Type", "application/vnd.oci.image.index.v1+json")
        .body(index)
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    let tags = page(&s, ALICE, "/ui/r/team/multi");
    let row = &tags[tags.find("/-/m/latest").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("OCI index") && row.contains("linux/amd64, linux/arm64"),
        "{row}"
    );
    let detail = page(&s, ALICE, "/ui/r/team/multi/-/m/latest");
    assert!(detail.contains("<h2>Manifests</h2>"));
    for e in &entries {
        let d = e["digest"].as_str().unwrap();
        assert!(
            detail.contains(&format!("href=\"/ui/r/team/multi/-/m/{d}?index=latest\"")),
            "{d}"
        );
    }
    assert!(
        !detail.contains("<h2>Layers"),
        "an index has no layers of its own"
    );
}

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A decimal size as the pages write it (the sizes here are all kilobytes).
fn kb(bytes: usize) -> String {
    format!("{:.1} kB", bytes as f64 / 1000.0)
}

/// Pushes one entry of an index: a manifest whose config has `config_type`
/// and `config`, with a layer of `layer_len` bytes. Returns the index entry
/// and the entry's own size (manifest, config and layer).
fn push_entry(
    s: &Server,
    repo: &str,
    config_type: &str,
    config: serde_json::Value,
    layer_len: usize,
) -> (serde_json::Value, usize) {
    let config = config.to_string();
    let c = push_blob(s, repo, config.as_bytes());
    let layer = random_bytes(layer_len, layer_len as u64);
    let l = push_blob(s, repo, &layer);
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": config_type, "digest": c, "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l, "size": layer_len }],
    })
    .to_string();
    let d = sha256(manifest.as_bytes());
    let r = s
        .req("PUT", &format!("/v2/{repo}/manifests/{d}"))
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest.clone())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    let entry =
        serde_json::json!({ "mediaType": OCI_MANIFEST, "digest": d, "size": manifest.len() });
    (entry, manifest.len() + config.len() + layer_len)
}

/// Pushes `team/multi:latest`: linux/amd64 built 2026-01-02 (100 kB layer),
/// linux/arm64 built 2026-03-04 (250 kB layer), and an attestation entry
/// as buildx adds (5 kB layer). Returns the two images' digests and sizes.
fn push_multi_platform(s: &Server) -> Vec<(String, usize)> {
    let config_type = "application/vnd.oci.image.config.v1+json";
    let mut entries = vec![];
    let mut images = vec![];
    for (arch, created, len) in [
        ("amd64", "2026-01-02T03:04:05Z", 100_000),
        ("arm64", "2026-03-04T05:06:07Z", 250_000),
    ] {
        let config = serde_json::json!({ "architecture": arch, "os": "linux", "created": created });
        let (mut e, size) = push_entry(s, "team/multi", config_type, config, len);
        e["platform"] = serde_json::json!({ "os": "linux", "architecture": arch });
        images.push((e["digest"].as_str().unwrap().to_string(), size));
        entries.push(e);
    }
    let statement = serde_json::json!({ "_type": "https://in-toto.io/Statement/v0.1" });
    let (mut e, _) = push_entry(
        s,
        "team/multi",
        "application/vnd.in-toto+json",
        statement,
        5_000,
    );
    e["platform"] = serde_json::json!({ "os": "unknown", "architecture": "unknown" });
    e["annotations"] = serde_json::json!({ "vnd.docker.reference.type": "attestation-manifest" });
    entries.push(e);
    let index =
        serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries });
    let r = s
        .req("PUT", "/v2/team/multi/manifests/latest")
        .header("Content-Type", OCI_INDEX)
        .body(index.to_string())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    images
}

/// The `<tr>` of the tags page whose first link goes to `tag`.
fn tag_row(html: &str, repo: &str, tag: &str) -> String {
    let start = html
        .find(&format!("/ui/r/{repo}/-/m/{tag}\""))
        .unwrap_or_else(|| panic!("no row for {tag}: {html}"));
    let row = &html[start..];
    row[..row.find("</tr>").unwrap()].to_string()
}

#[test]
fn a_multi_platform_image_shows_its_platforms_sizes_and_newest_build() {
    let (mut s, _dir) = start("", &[]);
    as_alice(&mut s);
    let images = push_multi_platform(&s);
    let total: usize = images.iter().map(|(_, n)| n).sum();

    // The tags page: the sum over the platform images (not the manifests'
    // bytes, not the attestation), and the newest platform's build, labelled.
    let row = tag_row(&page(&s, ALICE, "/ui/r/team/multi"), "team/multi", "latest");
    assert!(
        row.contains(&format!(">{}<", kb(total))),
        "{} in {row}",
        kb(total)
    );
    assert!(
        row.contains("2026-03-04 05:06:07 UTC <span class=\"meta\">(newest platform)</span>"),
        "{row}"
    );
    assert!(!row.contains("2026-01-02"), "{row}");

    // The index's page: the same, and each platform with its own size and build.
    let detail = page(&s, ALICE, "/ui/r/team/multi/-/m/latest");
    assert!(
        detail.contains(&format!(
            "<dt>Total size (all platforms)</dt><dd>{}</dd>",
            kb(total)
        )),
        "{detail}"
    );
    assert!(detail.contains(
        "<dt>Built</dt><dd>2026-03-04 05:06:07 UTC <span class=\"meta\">(newest platform)</span>"
    ));
    for ((d, size), built) in images
        .iter()
        .zip(["2026-01-02 03:04:05 UTC", "2026-03-04 05:06:07 UTC"])
    {
        let link = format!("href=\"/ui/r/team/multi/-/m/{d}?index=latest\"");
        let row = &detail[detail
            .find(&link)
            .unwrap_or_else(|| panic!("{link}: {detail}"))..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(row.contains(&format!(">{}<", kb(*size))), "{row}");
        assert!(row.contains(built), "{row}");
    }
}

#[test]
fn a_platform_image_links_back_to_the_index_it_was_reached_from() {
    let (mut s, _dir) = start("", &[]);
    as_alice(&mut s);
    let images = push_multi_platform(&s);
    let other = push_image(&s, "team/multi", "single", "s");
    let (d, _) = &images[1];
    let child = page(&s, ALICE, &format!("/ui/r/team/multi/-/m/{d}?index=latest"));
    let back =
        "<dt>Platform of</dt><dd><a href=\"/ui/r/team/multi/-/m/latest\">team/multi:latest</a>";
    assert!(child.contains(back), "{child}");
    // The breadcrumbs lead through the index too.
    assert!(child.contains("<li><a href=\"/ui/r/team/multi/-/m/latest\">latest</a></li>"));

    // Only an index that lists the image is named: not some other tag,
    // not one that does not exist, not without being asked.
    for query in ["?index=single", "?index=nosuch", "?index=%3Cb%3E", ""] {
        let html = page(&s, ALICE, &format!("/ui/r/team/multi/-/m/{d}{query}"));
        assert!(!html.contains("Platform of"), "{query}: {html}");
    }
    let single = page(
        &s,
        ALICE,
        &format!("/ui/r/team/multi/-/m/{other}?index=latest"),
    );
    assert!(!single.contains("Platform of"), "{single}");
}

/// Sets the modification time of `tag`'s current link in `team/app`.
fn set_pushed(dir: &TempDir, tag: &str, at: std::time::SystemTime) {
    let link = dir.0.join(format!(
        "data/docker/registry/v2/repositories/team/app/_manifests/tags/{tag}/current/link"
    ));
    std::fs::File::open(&link)
        .unwrap_or_else(|e| panic!("{}: {e}", link.display()))
        .set_modified(at)
        .unwrap();
}

#[test]
fn each_tag_shows_when_it_was_pushed_beside_when_it_was_built() {
    if common::s3::on_s3() {
        eprintln!("skipped on S3: backdates a tag's link file on disk");
        return;
    }
    let (mut s, dir) = start("", &[]);
    as_alice(&mut s);
    push_hostile(&s, "team/app", "1.0");
    push_image(&s, "team/app", "2.0", "b");
    let then = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    set_pushed(&dir, "1.0", then);
    let shown = "2020-09-13 12:26:40 UTC";

    let tags = page(&s, ALICE, "/ui/r/team/app");
    assert!(
        tags.contains("<th class=\"wide\">Built</th><th>Pushed</th>"),
        "{tags}"
    );
    let row = tag_row(&tags, "team/app", "1.0");
    assert!(
        row.contains("2026-01-02 03:04:05 UTC</td><td>2020-09-13 12:26:40 UTC</td>"),
        "{row}"
    );
    assert!(!tag_row(&tags, "team/app", "2.0").contains(shown));
    let detail = page(&s, ALICE, "/ui/r/team/app/-/m/1.0");
    assert!(
        detail.contains(&format!("<dt>Pushed</dt><dd>{shown}</dd>")),
        "{detail}"
    );

    // Pushing the tag again, even to the same manifest, is a new push time.
    let m = get_manifest(&s, "team/app", "1.0");
    let r = s
        .req("PUT", "/v2/team/app/manifests/1.0")
        .header("Content-Type", OCI_MANIFEST)
        .body(m.body.clone())
        .send();
    assert_eq!(r.status, 201);
    let again = page(&s, ALICE, "/ui/r/team/app/-/m/1.0");
    assert!(
        again.contains("<dt>Pushed</dt><dd>20") && !again.contains(shown),
        "{again}"
    );
    // A manifest reached by digest has no tag, so no push time.
    let by_digest = page(
        &s,
        ALICE,
        &format!("/ui/r/team/app/-/m/{}", sha256(&m.body)),
    );
    assert!(!by_digest.contains("<dt>Pushed</dt>"));
}

const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";

#[test]
fn a_browser_without_a_login_gets_a_login_page_and_clients_keep_json() {
    let (s, _dir) = start("", &[]);
    let challenge = format!("Basic realm=\"{REALM}\"");
    for path in ["/ui/", "/ui/r/team/app", "/", "/v2/", "/ca.crt"] {
        let r = s.req("GET", path).header("Accept", BROWSER_ACCEPT).send();
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some(challenge.as_str()),
            "{path}"
        );
        assert_eq!(
            r.header("Content-Type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        assert!(r.header("Content-Security-Policy").is_some(), "{path}");
        let html = r.text();
        assert!(
            html.contains("<h1>Log in</h1>") && html.contains("needs a login"),
            "{path}: {html}"
        );
        // Nothing on it needs a login itself, or the dialog would come back.
        assert!(
            !html.contains("<link") && !html.contains("<script"),
            "{html}"
        );
    }
    let wrong = s
        .req("GET", "/ui/")
        .header("Accept", BROWSER_ACCEPT)
        .header("Authorization", &basic_auth("alice", "wrong"))
        .send();
    assert_eq!(wrong.status, 401);
    assert!(wrong.text().contains("not accepted"), "{}", wrong.text());

    // Registry clients and curl ask for no HTML and get the spec's JSON.
    for accept in [None, Some("*/*"), Some("application/json")] {
        let mut r = s.req("GET", "/ui/");
        if let Some(a) = accept {
            r = r.header("Accept", a);
        }
        let r = r.send();
        assert_eq!(r.status, 401, "{accept:?}");
        assert_eq!(r.header("WWW-Authenticate"), Some(challenge.as_str()));
        assert_eq!(
            r.header("Content-Type"),
            Some("application/json"),
            "{accept:?}"
        );
        assert_eq!(r.code(), "UNAUTHORIZED");
    }
    let head = s
        .req("HEAD", "/v2/")
        .header("Accept", BROWSER_ACCEPT)
        .send();
    assert_eq!(head.status, 401);
    assert!(head.body.is_empty());
}
