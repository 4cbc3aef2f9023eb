use super::*;

fn parse(text: &str) -> Result<Loaded, ConfigError> {
    Config::parse(text, "test.yml", Vec::<(String, String)>::new())
}

#[test]
fn accepts_debians_registry_config_shape() {
    let text = "version: 0.1\nlog:\n  fields:\n    service: registry\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: /tmp/x\n  delete:\n    enabled: true\nhttp:\n  addr: :5000\n  headers:\n    X-Content-Type-Options: [nosniff]\nhealth:\n  storagedriver:\n    enabled: true\n";
    let l = parse(text).unwrap();
    assert!(l.config.storage.delete.enabled);
    assert_eq!(l.config.root_directory(), PathBuf::from("/tmp/x"));
    assert_eq!(l.config.listen_addr().unwrap().port(), 5000);
    assert!(l.warnings.iter().any(|w| w.starts_with("health:")));
}

#[test]
fn unknown_keys_warn_with_their_path() {
    let l = parse("version: 0.1\nhttp:\n  adr: x\n").unwrap();
    assert_eq!(l.warnings, ["http.adr: unknown key, ignored"]);
}

#[test]
fn wrong_values_name_the_key() {
    let e = parse("version: 0.1\nstorage:\n  delete:\n    enabled: maybe\n")
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("storage.delete.enabled:"), "{e}");
    let e = parse("version: 0.1\nhttp:\n  addr: nonsense\n")
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("http.addr:"), "{e}");
    let e =
        parse("version: 0.1\nstorage:\n  maintenance:\n    uploadpurging:\n      age: 3 weeks\n")
            .err()
            .unwrap();
    assert!(
        e.to_string()
            .starts_with("storage.maintenance.uploadpurging.age:"),
        "{e}"
    );
    let e = parse("version: 0.1\nstorage:\n  s3:\n    bucket: b\n")
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("storage.s3:"), "{e}");
}

#[test]
fn environment_overrides_apply() {
    let vars = [
        (
            "REGISTRY_HTTP_ADDR".to_string(),
            "127.0.0.1:7000".to_string(),
        ),
        (
            "REGISTRY_STORAGE_DELETE_ENABLED".to_string(),
            "true".to_string(),
        ),
    ];
    let l = Config::parse("version: 0.1\n", "t", vars).unwrap();
    assert_eq!(l.config.http.addr, "127.0.0.1:7000");
    assert!(l.config.storage.delete.enabled);
}

#[test]
fn refuses_auth_it_cannot_enforce() {
    let e = parse("version: 0.1\nauth:\n  htpasswd:\n    realm: r\n    path: /x\n")
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("auth.htpasswd:"), "{e}");
}

#[test]
fn dev_config_is_valid() {
    let l = parse(DEV_CONFIG).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}
