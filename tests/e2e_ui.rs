//! The web UI end to end in a real browser: an image pushed by the Docker
//! engine (logged in as a user), then `tests/ui/browse.js` drives Debian's
//! headless Chromium through Playwright: log in, browse to the image, read
//! its layers, delete a tag through the confirmation page, and check that a
//! browse-only user has no delete button and is refused a forged delete.
//! Screenshots (laptop and phone) land in `<target>/ui-artifacts/`.
//! Finally the engine pulls with the exact command the page showed.
//!
//! Needs root (dockerd), Debian's docker.io, chromium, nodejs and npm.

mod common;

use common::docker::*;
use common::ui::{ALICE, BOB, push_referrer, start};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = "team/web-app";
const SIGNATURE: &str = "application/vnd.example.signature.v1+json";

/// `<target>/ui-artifacts`, next to the `release` directory running this test.
fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    target.join("ui-artifacts")
}

/// `tests/ui` with its npm packages installed from the lock file.
fn npm_project() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !dir.join("node_modules/playwright-core").exists() {
        run_ok(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
        );
    }
    dir
}

/// A two-layer image with labels, env and an entrypoint, made without a registry.
fn build_image(dk: &Dockerd, work: &Path) -> String {
    let (tar, _) = rootfs_tar(work, 8);
    let base = dk
        .docker(&["import", tar.to_str().unwrap(), "ui/base:src"])
        .trim()
        .to_string();
    dk.add_layer(
        &base,
        work,
        &random_bytes(300 << 10, 81),
        &[
            "--change",
            "LABEL org.example.team=web org.example.note=\"<b>not bold</b>\"",
            "--change",
            "ENV APP_MODE=production",
            "--change",
            "ENTRYPOINT [\"/opt/app/run\", \"--serve\"]",
        ],
    )
}

#[test]
fn browse_read_layers_delete_and_refuse_a_browse_only_user() {
    if lacks_tools(
        "browse_read_layers_delete_and_refuse_a_browse_only_user",
        &["chromium", "node", "npm"],
    ) {
        return;
    }
    let _one = ONE_DOCKERD.lock().unwrap_or_else(|e| e.into_inner());
    let npm = npm_project();
    let (mut s, _dir) = start("", &[]);
    let dk = Dockerd::start();
    let work = TempDir::new("uiw");
    let image = build_image(&dk, &work.0);

    let host = s.addr.to_string();
    dk.docker_stdin(
        &["login", "-u", ALICE.0, "--password-stdin", &host],
        ALICE.1,
    );
    let mut digest = String::new();
    for tag in ["1.0", "2.0"] {
        let reference = format!("{host}/{REPO}:{tag}");
        dk.docker(&["tag", &image, &reference]);
        digest = pushed_digest(&dk.docker(&["push", &reference]));
    }
    s.credentials = Some((ALICE.0.into(), ALICE.1.into()));
    let raw = get_manifest(&s, REPO, &digest);
    let manifest = raw.json();
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(layers.len(), 2);
    // A signature referring to the image, as cosign or notation push them.
    push_referrer(
        &s,
        REPO,
        (&digest, raw.body.len()),
        SIGNATURE,
        serde_json::json!({ "org.example.signer": "release-bot" }),
    );

    let artifacts = artifacts_dir();
    let _ = std::fs::remove_dir_all(&artifacts);
    let out = Command::new("node")
        .arg("browse.js")
        .current_dir(&npm)
        .env("UI_URL", format!("http://{host}"))
        .env("UI_REPO", REPO)
        .env("UI_DELETE_TAG", "1.0")
        .env("UI_KEEP_TAG", "2.0")
        .env("UI_LAYERS", layers.join(","))
        .env("UI_REFERRER_TYPE", SIGNATURE)
        .env("UI_ADMIN_USER", ALICE.0)
        .env("UI_ADMIN_PASSWORD", ALICE.1)
        .env("UI_READER_USER", BOB.0)
        .env("UI_READER_PASSWORD", BOB.1)
        .env("UI_ARTIFACTS", &artifacts)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ui-e2e: ok"),
        "browser run failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        out.status,
        s.log_text()
    );
    // Visible in `cargo test -- --nocapture`, and in the failure above.
    println!("UI screenshots: {}", artifacts.display());
    let shots = std::fs::read_dir(&artifacts).unwrap().count();
    assert!(
        shots >= 12,
        "expected laptop and phone screenshots, found {shots}"
    );

    // What the browser did is what the registry now holds.
    let tags = s.req("GET", &format!("/v2/{REPO}/tags/list")).send().json();
    assert_eq!(strings(&tags["tags"]), ["2.0"]);
    // Both forgeries (a form and a direct request) reached the server as bob's.
    let refused = format!("{} POST /ui/r/{REPO}/-/delete/2.0 403", BOB.0);
    assert!(
        wait_for(10, || s.log_text().matches(&refused).count() == 2),
        "{}",
        s.log_text()
    );

    // The pull command the page showed works as shown.
    let pull = stdout
        .lines()
        .find_map(|l| l.strip_prefix("pull-command "))
        .expect("the page's pull command");
    let args: Vec<&str> = pull.split_whitespace().skip(1).collect();
    dk.docker(&[
        "rmi",
        &format!("{host}/{REPO}:1.0"),
        &format!("{host}/{REPO}:2.0"),
    ]);
    dk.docker(&args);
    assert_eq!(
        dk.inspect(&format!("{host}/{REPO}:2.0"))["Id"],
        image.as_str()
    );
}
