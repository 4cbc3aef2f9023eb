//! The OCI distribution spec's own conformance suite (`common::conformance`)
//! against the real server: plain HTTP, and TLS with basic auth. Every spec
//! that runs must pass.

mod common;

use common::conformance::conform;
use common::tls::*;
use common::*;

#[test]
fn the_oci_conformance_suite_passes_over_plain_http() {
    let s = Server::start_with_env("", &[s3::REDIRECTS]);
    conform(&format!("http://{}", s.addr), None, &[]);
}

#[test]
fn the_oci_conformance_suite_passes_over_tls_with_basic_auth() {
    let dir = TempDir::new("conformance");
    let pki = Pki::new(&dir.0.join("pki"));
    let cert = pki.server("localhost", KeyType::EcdsaP256, &["localhost", "127.0.0.1"]);
    let htpasswd = dir.0.join("htpasswd");
    write_htpasswd(&htpasswd, &[("conformance", "s3cret")]);
    let s = Server::start_with_env(
        &format!(
            "{}auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
            http_tls_yaml(&cert, &[]),
            htpasswd.display()
        ),
        &[s3::REDIRECTS],
    );
    let url = format!("https://localhost:{}", s.addr.port());
    conform(
        &url,
        Some(("conformance", "s3cret")),
        &[("SSL_CERT_FILE", pki.ca_pem())],
    );
    // The suite really went through the login: anonymous requests were refused.
    let r = req_to(s.addr, "GET", "/v2/");
    let config = client_config(pki.ca_pem(), &ClientOpts::default());
    assert_eq!(r.tls("localhost", &config).send().status, 401);
}
