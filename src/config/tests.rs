use super::*;

fn parse(text: &str) -> Result<Loaded, ConfigError> {
    Config::parse(text, "test.yml", Vec::<(String, String)>::new())
}

#[test]
fn accepts_debians_registry_config_shape() {
    let text = "version: 0.1\nlog:\n  fields:\n    service: registry\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: /tmp/x\n  delete:\n    enabled: true\nhttp:\n  addr: :5000\n  headers:\n    X-Content-Type-Options: [nosniff]\nhealth:\n  storagedriver:\n    enabled: true\n";
    // Debian's file listens on every interface without TLS or auth: refused
    // with a message naming the way out, accepted with the explicit opt-in.
    let e = parse(text).err().unwrap().to_string();
    assert!(e.starts_with("http.addr:"), "{e}");
    assert!(e.contains("privateregistry.insecurenetwork"), "{e}");
    let vars = [(
        "REGISTRY_PRIVATEREGISTRY_INSECURENETWORK".to_string(),
        "true".to_string(),
    )];
    let l = Config::parse(text, "t", vars).unwrap();
    assert!(l.config.storage.delete.enabled);
    assert_eq!(l.config.root_directory(), PathBuf::from("/tmp/x"));
    assert_eq!(l.config.listeners().unwrap()[0].addr.port(), 5000);
    assert!(l.warnings.iter().any(|w| w.starts_with("health:")));
    assert!(
        l.warnings.iter().any(|w| w.contains("INSECURE")),
        "{:?}",
        l.warnings
    );
}

#[test]
fn unknown_keys_warn_with_their_path() {
    let l = parse("version: 0.1\nhttp:\n  adr: x\n  colour: blue\n").unwrap();
    assert_eq!(
        l.warnings,
        [
            "http.adr: unknown key, ignored; did you mean http.addr?",
            "http.colour: unknown key, ignored"
        ]
    );
    assert_eq!(l.unknown, l.warnings);
}

/// The key each error in `text` names, in order.
fn error_keys(text: &str) -> Vec<String> {
    let e = parse(text).err().unwrap();
    e.each()
        .iter()
        .map(|e| e.to_string().split(':').next().unwrap().to_string())
        .collect()
}

#[test]
fn every_wrong_value_is_reported_not_only_the_first() {
    let text = "version: 0.1\nstorage:\n  delete:\n    enabled: maybe\nprivateregistry:\n  maxpagesize: abc\n  auth:\n    bcryptcost: 5\n  limits:\n    maxheaderbytes: 10\n    maxurlbytes: 1\n";
    let keys = error_keys(text);
    assert_eq!(
        keys,
        [
            "storage.delete.enabled",
            "privateregistry.maxpagesize",
            "privateregistry.auth.bcryptcost",
            "privateregistry.limits.maxheaderbytes",
            "privateregistry.limits.maxurlbytes",
        ]
    );
}

#[test]
fn a_dropped_wrong_value_is_not_reported_again_as_missing() {
    let text = "version: 0.1\nhttp:\n  tls:\n    certificate: [a]\n    key: /k.pem\n";
    let e = parse(text).err().unwrap();
    let all: Vec<String> = e.each().iter().map(|e| e.to_string()).collect();
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(
        all[0].starts_with("http.tls.certificate: invalid type"),
        "{all:?}"
    );
}

#[test]
fn errors_carry_the_unknown_keys_that_may_explain_them() {
    let text = "version: 0.1\nhttp:\n  tls:\n    certficate: /c.pem\n    key: /k.pem\n";
    let e = parse(text).err().unwrap();
    assert!(
        e.to_string().starts_with("http.tls.certificate: missing"),
        "{e}"
    );
    assert_eq!(
        e.unknown(),
        ["http.tls.certficate: unknown key, ignored; did you mean http.tls.certificate?"]
    );
}

#[test]
fn effective_configuration_shows_defaults_not_null() {
    let yaml = parse("").unwrap().config.to_yaml();
    assert!(!yaml.contains("null"), "{yaml}");
    assert!(yaml.starts_with("version: 0.1\n"), "{yaml}");
    assert!(yaml.contains("  level: info\n"), "{yaml}");
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
    let e = parse("version: 0.1\nstorage:\n  azure:\n    accountname: a\n")
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("storage.azure:"), "{e}");
    let e = parse("version: 0.1\nstorage:\n  s3:\n    bucket: b\n")
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("storage.s3.region:"), "{e}");
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

const TLS_AUTH: &str = "version: 0.1\nhttp:\n  addr: :443\n  tls:\n    certificate: /c.pem\n    key: /k.pem\nauth:\n  htpasswd:\n    realm: r\n    path: /h\n";

#[test]
fn network_listeners_need_tls_and_auth() {
    let l = parse(TLS_AUTH).unwrap();
    let ls = l.config.listeners().unwrap();
    assert!(ls[0].tls && !ls[0].addr.ip().is_loopback());
    let no_auth =
        "version: 0.1\nhttp:\n  addr: 0.0.0.0:443\n  tls:\n    certificate: /c\n    key: /k\n";
    let e = parse(no_auth).err().unwrap().to_string();
    assert!(
        e.starts_with("http.addr:") && e.contains("without authentication"),
        "{e}"
    );
    let plain_auth =
        "version: 0.1\nhttp:\n  addr: :5000\nauth:\n  htpasswd:\n    realm: r\n    path: /h\n";
    let e = parse(plain_auth).err().unwrap().to_string();
    assert!(e.contains("without TLS"), "{e}");
    let mixed = "version: 0.1\nprivateregistry:\n  listeners:\n    - {name: local, addr: '127.0.0.1:5000'}\n    - {name: net, addr: ':5001'}\n";
    let e = parse(mixed).err().unwrap().to_string();
    assert!(e.starts_with("privateregistry.listeners[1]:"), "{e}");
    let open_network = "version: 0.1\nauth:\n  htpasswd: {realm: r, path: /h}\nhttp:\n  tls: {certificate: /c, key: /k}\nprivateregistry:\n  listeners:\n    - {addr: ':443', tls: true, auth: false}\n";
    let e = parse(open_network).err().unwrap().to_string();
    assert!(
        e.starts_with("privateregistry.listeners[0]:") && e.contains("without authentication"),
        "{e}"
    );
    let auth =
        "auth:\n  htpasswd: {realm: r, path: /h}\nhttp:\n  tls: {certificate: /c, key: /k}\n";
    let anonymous = format!(
        "version: 0.1\n{auth}privateregistry:\n  listeners:\n    - {{addr: ':5443', tls: true, anonymous: true}}\n"
    );
    assert!(
        parse(&anonymous).is_ok(),
        "an anonymous TLS listener is the operator's explicit choice"
    );
    let contradiction = anonymous.replace("anonymous: true", "anonymous: true, auth: false");
    let e = parse(&contradiction).err().unwrap().to_string();
    assert!(
        e.starts_with("privateregistry.listeners[0].anonymous:"),
        "{e}"
    );
    let no_auth = "version: 0.1\nprivateregistry:\n  listeners:\n    - {addr: '127.0.0.1:5000', anonymous: true}\n";
    let e = parse(no_auth).err().unwrap().to_string();
    assert!(
        e.starts_with("privateregistry.listeners[0].anonymous:"),
        "{e}"
    );
    let tls_without_cert =
        "version: 0.1\nprivateregistry:\n  listeners:\n    - {addr: '127.0.0.1:5000', tls: true}\n";
    let e = parse(tls_without_cert).err().unwrap().to_string();
    assert!(e.starts_with("privateregistry.listeners[0].tls:"), "{e}");
}

#[test]
fn security_mistakes_name_the_key() {
    let cases = [
        ("auth:\n  token:\n    realm: x\n", "auth.token:"),
        ("auth:\n  htpasswd:\n    realm: r\n", "auth.htpasswd.path:"),
        ("http:\n  tls:\n    certificate: /c\n", "http.tls.key:"),
        (
            "http:\n  tls:\n    certificate: /c\n    key: /k\n    minimumtls: tls1.0\n",
            "http.tls.minimumtls:",
        ),
        (
            "privateregistry:\n  access:\n    rules: []\n",
            "privateregistry.access:",
        ),
        (
            "auth:\n  htpasswd: {realm: r, path: /h}\nprivateregistry:\n  access:\n    rules:\n      - {repositories: ['*'], allow: [pull]}\n",
            "privateregistry.access.rules[0].users:",
        ),
        (
            "auth:\n  htpasswd: {realm: r, path: /h}\nprivateregistry:\n  access:\n    rules:\n      - {repositories: ['*'], groups: [ops], allow: [pull]}\n",
            "privateregistry.access.rules[0].groups:",
        ),
        (
            "auth:\n  htpasswd: {realm: r, path: /h}\nprivateregistry:\n  access:\n    rules:\n      - {repositories: ['*'], users: [a], allow: [write]}\n",
            "privateregistry.access.rules[0].allow[0]:",
        ),
        (
            "privateregistry:\n  auth:\n    bcryptcost: 4\n",
            "privateregistry.auth.bcryptcost:",
        ),
        (
            "privateregistry:\n  limits:\n    headertimeout: 0s\n",
            "privateregistry.limits.headertimeout:",
        ),
    ];
    for (yaml, key) in cases {
        let e = parse(&format!("version: 0.1\n{yaml}"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with(key), "{yaml}: {e}");
    }
}

#[test]
fn dev_config_is_valid() {
    let l = parse(DEV_CONFIG).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    // The README names this port.
    let d = l.config.debug_listener(&mut vec![]).unwrap().unwrap();
    assert_eq!(d.addr.to_string(), "127.0.0.1:5001");
    assert_eq!(d.metrics_path.as_deref(), Some("/metrics"));
}

#[test]
fn packaged_config_is_valid_and_secure() {
    let l = parse(include_str!("../../etc/config.yml")).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let ls = l.config.listeners().unwrap();
    assert!(
        ls.iter()
            .all(|l| l.addr.ip().is_loopback() || (l.tls && l.auth))
    );
}

#[test]
fn scheduled_gc_is_off_by_default_and_mistakes_name_the_key() {
    let l = parse("version: 0.1\n").unwrap();
    assert!(!l.config.privateregistry.gc.enabled);
    let l = parse("version: 0.1\nprivateregistry:\n  gc:\n    enabled: true\n    interval: 30m\n    deleteuntagged: true\n").unwrap();
    let gc = &l.config.privateregistry.gc;
    assert!(gc.enabled && gc.deleteuntagged);
    assert_eq!(gc.interval.0, Duration::from_secs(1800));
    assert_eq!(gc.grace.0, Duration::from_secs(3600));
    for (yaml, key) in [
        ("interval: 3 days", "privateregistry.gc.interval:"),
        ("interval: 0s", "privateregistry.gc.interval:"),
        ("grace: 0s", "privateregistry.gc.grace:"),
        ("enabled: sometimes", "privateregistry.gc.enabled:"),
    ] {
        let e = parse(&format!(
            "version: 0.1\nprivateregistry:\n  gc:\n    {yaml}\n"
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(e.starts_with(key), "{yaml}: {e}");
    }
}

#[test]
fn debug_listener_is_loopback_unless_opted_in() {
    let debug = |addr: &str, ours: &str| {
        let text = format!(
            "version: 0.1\nhttp:\n  debug:\n    addr: {addr}\n    prometheus:\n      enabled: true\n{ours}"
        );
        parse(&text).and_then(|l| {
            let mut w = vec![];
            let d = l.config.debug_listener(&mut w)?;
            Ok((d, w))
        })
    };
    let (d, w) = debug("localhost:5001", "").unwrap();
    let d = d.unwrap();
    assert_eq!(d.addr.to_string(), "127.0.0.1:5001");
    assert_eq!(d.metrics_path.as_deref(), Some("/metrics"));
    assert!(w.is_empty(), "{w:?}");
    let e = debug("':5001'", "").err().unwrap().to_string();
    assert!(e.starts_with("http.debug.addr:"), "{e}");
    let (_, w) = debug(
        "0.0.0.0:5001",
        "privateregistry:\n  insecurenetwork: true\n",
    )
    .unwrap();
    assert!(w.iter().any(|w| w.contains("INSECURE")), "{w:?}");
    let (d, _) = debug("''", "").unwrap();
    assert!(d.is_none(), "an empty address means no debug listener");
}

#[test]
fn every_listener_and_tls_file_mistake_is_reported() {
    let text = "version: 0.1\nhttp:\n  tls: {minimumtls: tls1.2}\nprivateregistry:\n  listeners:\n    - {addr: 'nowhere'}\n    - {addr: ':5001'}\n    - {addr: '127.0.0.1:5002'}\n";
    let keys = error_keys(text);
    assert_eq!(
        keys,
        [
            "http.tls.certificate",
            "http.tls.key",
            "privateregistry.listeners[0].addr",
            "privateregistry.listeners[1]",
        ]
    );
}

const S3: &str = "version: 0.1\nstorage:\n  s3:\n    accesskey: AK\n    secretkey: SK\n    region: garage\n    regionendpoint: http://127.0.0.1:3900\n    bucket: registry\n    rootdirectory: /reg\nhttp:\n  addr: 127.0.0.1:5000\n";

#[test]
fn a_registry2_s3_section_loads_and_overrides_apply() {
    let vars = [
        (
            "REGISTRY_STORAGE_S3_BUCKET".to_string(),
            "other".to_string(),
        ),
        (
            "REGISTRY_STORAGE_S3_CHUNKSIZE".to_string(),
            "5242880".to_string(),
        ),
    ];
    let l = Config::parse(S3, "t", vars).unwrap();
    let s3 = l.config.storage.s3.as_ref().unwrap();
    assert_eq!((s3.bucket.as_str(), s3.chunksize), ("other", 5 << 20));
    assert_eq!(s3.prefix(), "reg");
    assert!(s3.secure && s3.v4auth, "distribution's defaults");
    assert!(matches!(l.config.backend(), Backend::S3(_)));
    let shown = l.config.to_yaml();
    assert!(
        !shown.contains("SK") && shown.contains("********"),
        "{shown}"
    );
    assert!(!shown.contains("filesystem"), "{shown}");
}

#[test]
fn s3_keys_we_cannot_honour_are_errors_naming_them() {
    let bad = S3.replace(
        "    rootdirectory: /reg\n",
        "    rootdirectory: /reg\n    v4auth: false\n    chunksize: 1000\n    objectacl: public-read\n    skipverify: true\n",
    );
    assert_eq!(
        error_keys(&bad),
        [
            "storage.s3.chunksize",
            "storage.s3.v4auth",
            "storage.s3.skipverify",
            "storage.s3.objectacl"
        ]
    );
    let both = S3.replace(
        "storage:\n",
        "storage:\n  filesystem:\n    rootdirectory: /x\n",
    );
    assert_eq!(error_keys(&both), ["storage"]);
    let no_bucket = S3.replace("    bucket: registry\n", "");
    assert_eq!(error_keys(&no_bucket), ["storage.s3.bucket"]);
    let l = parse(&S3.replace("    rootdirectory", "    rootdirektory")).unwrap();
    assert!(
        l.warnings
            .iter()
            .any(|w| w.contains("storage.s3.rootdirektory") && w.contains("rootdirectory")),
        "{:?}",
        l.warnings
    );
}

#[test]
fn read_only_mode_is_accepted() {
    let text = "version: 0.1\nstorage:\n  maintenance:\n    readonly:\n      enabled: true\n";
    assert!(
        parse(text)
            .unwrap()
            .config
            .storage
            .maintenance
            .readonly
            .enabled
    );
}

#[test]
fn trusted_proxies_are_none_by_default_and_mistakes_name_the_entry() {
    let l = parse("version: 0.1\n").unwrap();
    assert!(l.config.trusted_proxies().unwrap().is_empty());
    assert!(l.config.to_yaml().contains("trustedproxies: []"));
    let l =
        parse("version: 0.1\nprivateregistry:\n  trustedproxies: [127.0.0.1, 10.0.0.0/8, '::1']\n")
            .unwrap();
    let t = l.config.trusted_proxies().unwrap();
    assert!(t.trusts("10.9.8.7".parse().unwrap()) && !t.trusts("127.0.0.2".parse().unwrap()));
    let e = parse("version: 0.1\nprivateregistry:\n  trustedproxies: [127.0.0.1, lb.local]\n")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("privateregistry.trustedproxies[1]: expected an address or a CIDR block"),
        "{e}"
    );
    assert_eq!(
        error_keys("version: 0.1\nprivateregistry:\n  trustedproxies: 10.0.0.0/8\n"),
        ["privateregistry.trustedproxies"]
    );
    let vars = [(
        "REGISTRY_PRIVATEREGISTRY_TRUSTEDPROXIES".to_string(),
        "[192.0.2.0/24]".to_string(),
    )];
    let l = Config::parse("version: 0.1\n", "t", vars).unwrap();
    assert!(
        l.config
            .trusted_proxies()
            .unwrap()
            .trusts("192.0.2.9".parse().unwrap())
    );
}

#[test]
fn a_bucket_without_http_secret_warns_what_breaks() {
    let secret_warning = |l: &Loaded| {
        l.warnings
            .iter()
            .find(|w| w.starts_with("http.secret:"))
            .cloned()
    };
    let w = secret_warning(&parse(S3).unwrap()).expect("a warning");
    assert!(
        w.contains("delete confirmations") && w.contains("same http.secret on every node"),
        "{w}"
    );
    let with_secret = S3.replace("http:\n", "http:\n  secret: shared-by-all-nodes\n");
    let shown = parse(&with_secret).unwrap().config.to_yaml();
    assert!(
        !shown.contains("shared-by-all-nodes") && shown.contains("secret: '********'"),
        "{shown}"
    );
    assert_eq!(secret_warning(&parse(&with_secret).unwrap()), None);
    let number = S3.replace("http:\n", "http:\n  secret: 123456789\n");
    let l = parse(&number).unwrap();
    assert_eq!(secret_warning(&l), None);
    assert_eq!(l.config.secret().as_deref(), Some("123456789"));
    let empty = S3.replace("http:\n", "http:\n  secret: ''\n");
    assert!(secret_warning(&parse(&empty).unwrap()).is_some());
    assert_eq!(
        secret_warning(&parse("version: 0.1\n").unwrap()),
        None,
        "one node's disk"
    );
}

#[test]
fn blob_lookups_are_cached_only_with_distributions_inmemory_descriptor_cache() {
    let cached = |text: &str| parse(text).unwrap().config.storage.blob_descriptor_cache();
    assert!(
        !cached("version: 0.1\n"),
        "several nodes may share the store"
    );
    assert!(cached(
        "version: 0.1\nstorage:\n  cache:\n    blobdescriptor: inmemory\n"
    ));
    let l = parse("version: 0.1\nstorage:\n  cache:\n    blobdescriptor: redis\n").unwrap();
    assert!(!l.config.storage.blob_descriptor_cache());
    assert!(
        l.warnings
            .iter()
            .any(|w| w.starts_with("storage.cache.blobdescriptor: \"redis\" is not supported")),
        "{:?}",
        l.warnings
    );
}

#[test]
fn the_shutdown_delay_defaults_to_haproxys_default_check_and_may_be_off() {
    let delay = |text: &str| parse(text).unwrap().config.privateregistry.shutdowndelay.0;
    assert_eq!(delay("version: 0.1\n"), std::time::Duration::from_secs(6));
    assert!(delay("version: 0.1\nprivateregistry:\n  shutdowndelay: 0s\n").is_zero());
    let e = parse("version: 0.1\nprivateregistry:\n  shutdowndelay: soon\n")
        .err()
        .unwrap();
    assert!(
        e.to_string().starts_with("privateregistry.shutdowndelay:"),
        "{e}"
    );
}
