//! The binary's command line, configuration handling and lifecycle.

mod common;
use common::*;
use std::process::Command;

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(BIN);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn write_config(dir: &TempDir, text: &str) -> String {
    let p = dir.0.join("config.yml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn help_and_version() {
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("serve") && out.contains("check-config"),
        "{out}"
    );
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("private-registry "), "{out}");
    let (code, out, _) = run(&["serve", "--help"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("/etc/private-registry/config.yml"), "{out}");
}

#[test]
fn check_config_prints_effective_config_with_overrides() {
    let dir = TempDir::new("cfg");
    let p = write_config(
        &dir,
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /srv/reg\nhttp:\n  addr: :5000\n",
    );
    // Every interface, no TLS, no auth: refused unless explicitly accepted.
    let (code, _, err) = run(&["check-config", "--config", &p], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("privateregistry.insecurenetwork"), "{err}");
    let (code, out, err) = run(
        &["check-config", "--config", &p],
        &[
            ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
            ("REGISTRY_PRIVATEREGISTRY_INSECURENETWORK", "true"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("INSECURE"), "{err}");
    assert!(out.contains("rootdirectory: /srv/reg"), "{out}");
    assert!(out.contains("enabled: true"), "{out}");
}

#[test]
fn config_mistakes_name_the_key() {
    let dir = TempDir::new("cfg");
    let cases = [
        ("version: 0.1\nhttp:\n  addr: 12345\n", "http.addr"),
        (
            "version: 0.1\nstorage:\n  delete:\n    enabled: sometimes\n",
            "storage.delete.enabled",
        ),
        ("version: 0.1\nlog:\n  level: loud\n", "log.level"),
        (
            "version: 0.1\nstorage:\n  s3:\n    bucket: x\n",
            "storage.s3.region: required",
        ),
        ("version: 2\n", "version"),
        ("version: 0.1\nhttp: [1, 2\n", "not valid YAML"),
    ];
    for (text, key) in cases {
        let p = write_config(&dir, text);
        let (code, _, err) = run(&["check-config", "--config", &p], &[]);
        assert_eq!(code, 1, "{text}");
        assert!(err.contains(key), "expected {key} in: {err}");
    }
    let (code, _, err) = run(
        &["check-config", "--config", "/nonexistent/config.yml"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/config.yml"), "{err}");
}

#[test]
fn unknown_keys_are_warnings() {
    let dir = TempDir::new("cfg");
    let p = write_config(
        &dir,
        "version: 0.1\nhttp:\n  addr: 127.0.0.1:5000\n  colour: blue\nnotifications:\n  endpoints: []\n",
    );
    let (code, _, err) = run(&["check-config", "--config", &p], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("http.colour: unknown key"), "{err}");
    assert!(err.contains("notifications"), "{err}");
}

#[test]
fn a_misspelt_key_names_the_key_meant_and_fails_check_config_strict() {
    let dir = TempDir::new("cfg");
    let p = write_config(
        &dir,
        "version: 0.1\nstorage:\n  delete:\n    enabeld: true\nhttp:\n  addr: 127.0.0.1:5000\n",
    );
    let (code, out, err) = run(&["check-config", "--config", &p], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "storage.delete.enabeld: unknown key, ignored; did you mean storage.delete.enabled?"
        ),
        "{err}"
    );
    assert!(out.contains("delete:\n    enabled: false"), "{out}");
    let (code, out, err) = run(&["check-config", "--strict", "--config", &p], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("did you mean storage.delete.enabled?"),
        "{err}"
    );
    assert!(err.contains("--strict: 1 unknown key\n"), "{err}");
    assert!(out.contains("storage:"), "{out}");
    // --strict passes a file without unknown keys.
    let p = write_config(&dir, "version: 0.1\nhttp:\n  addr: 127.0.0.1:5000\n");
    let (code, _, err) = run(&["check-config", "--strict", "--config", &p], &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn serve_warns_about_a_misspelt_key_and_goes_on_as_distribution_does() {
    let s = Server::start_with("  relativeurl: true\n");
    s.expect_log("http.relativeurl: unknown key, ignored; did you mean http.relativeurls?");
    assert_eq!(s.req("GET", "/v2/").send().status, 200);
}

#[test]
fn check_config_reports_every_error_in_the_file() {
    let dir = TempDir::new("cfg");
    let p = write_config(
        &dir,
        "version: 0.1\nhttp:\n  addr: 127.0.0.1:5000\n  net: unix\nlog:\n  level: loud\nprivateregistry:\n  auth:\n    bcryptcost: 5\n",
    );
    let (code, out, err) = run(&["check-config", "--config", &p], &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "");
    for key in [
        "log.level:",
        "http.net:",
        "privateregistry.auth.bcryptcost:",
    ] {
        assert!(
            err.contains(&format!("config: {key}")),
            "{key} missing from: {err}"
        );
    }
    assert_eq!(err.lines().count(), 3, "one line per error: {err}");
}

#[test]
fn check_config_prints_unset_values_as_their_defaults() {
    let dir = TempDir::new("cfg");
    let p = write_config(&dir, "http:\n  addr: 127.0.0.1:5000\n");
    let (code, out, err) = run(&["check-config", "--config", &p], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("null"), "{out}");
    assert!(
        out.starts_with("version: 0.1\nlog:\n  level: info\n"),
        "{out}"
    );
    assert!(
        out.contains("  filesystem:\n    rootdirectory: /var/lib/private-registry\n"),
        "{out}"
    );
    assert!(out.contains("  draintimeout: 30s\n"), "{out}");
}

#[test]
fn bad_config_refuses_to_serve_before_binding() {
    let dir = TempDir::new("cfg");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let p = write_config(
        &dir,
        &format!(
            "version: 0.1\nhttp:\n  addr: 127.0.0.1:{port}\nstorage:\n  delete:\n    enabled: 7\n"
        ),
    );
    let (code, _, err) = run(&["serve", "--config", &p], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("storage.delete.enabled"), "{err}");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port was left bound"
    );
}

#[test]
fn environment_override_changes_listen_address() {
    let dir = TempDir::new("env");
    let root = dir.0.join("data");
    let s = Server::start_on(&root, "", &[("REGISTRY_HTTP_ADDR", "127.0.0.2:0")]);
    assert_eq!(s.addr.ip().to_string(), "127.0.0.2");
    assert_eq!(s.req("GET", "/v2/").send().status, 200);
}

#[test]
fn one_log_line_per_request() {
    let s = Server::start();
    s.req("GET", "/v2/some/repo/tags/list").send();
    s.expect_log("GET /v2/some/repo/tags/list 404");
}

#[test]
fn sigterm_drains_in_flight_requests() {
    let debug = "  debug:\n    addr: 127.0.0.1:0\n    prometheus:\n      enabled: true\n";
    let mut s = Server::start_with(debug);
    let metrics = s.debug_addr();
    let loc = s.req("POST", "/v2/a/blobs/uploads/").send().location_path();
    // Start a PATCH whose body is still arriving when SIGTERM lands.
    let addr = s.addr;
    let path = loc.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let client = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let head = format!(
            "PATCH {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 20000\r\n\r\n"
        );
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(&[7u8; 10000]).unwrap();
        tx.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        c.write_all(&[7u8; 10000]).unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    });
    rx.recv().unwrap();
    // SIGTERM only once the server is inside the PATCH, however busy the box.
    let uploading = || {
        req_to(metrics, "GET", "/metrics")
            .send()
            .text()
            .contains("\nregistry_uploads_in_progress 1\n")
    };
    assert!(wait_for(10, uploading), "the PATCH never started");
    let status = s.signal_and_wait("TERM");
    let response = client.join().unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        response.starts_with("HTTP/1.1 202"),
        "in-flight request was cut: {response:?}"
    );
    assert!(response.contains("0-19999"), "{response}");
}

#[test]
fn unusable_storage_is_a_clear_error() {
    let dir = TempDir::new("ro");
    let file = dir.0.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let p = write_config(
        &dir,
        &format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:0\n",
            file.display()
        ),
    );
    let (code, _, err) = run(&["serve", "--config", &p], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("not usable") && err.contains("not-a-dir"),
        "{err}"
    );
}

/// The node configuration shipped for running behind a reverse proxy checks
/// clean as installed, shows its trusted proxies, and the checks it exists
/// to satisfy speak up when their keys go.
#[test]
fn the_behind_a_proxy_example_checks_and_its_safeguards_speak_up() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/examples/behind-a-proxy.yml"
    );
    let (code, out, err) = run(&["check-config", "--config", example], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("trustedproxies:\n  - 10.0.0.2\n"), "{out}");
    assert!(!err.contains("http.secret"), "{err}");
    let (code, _, err) = run(
        &["check-config", "--config", example],
        &[("REGISTRY_HTTP_SECRET", "")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("http.secret: not set, and storage.s3 lets several nodes serve one bucket"),
        "{err}"
    );
    let (code, _, err) = run(
        &["check-config", "--config", example],
        &[(
            "REGISTRY_PRIVATEREGISTRY_TRUSTEDPROXIES",
            "[10.0.0.2, 10.0.0.0/33]",
        )],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("privateregistry.trustedproxies[1]: expected an address or a CIDR block"),
        "{err}"
    );
}
