use super::file::Change;
use super::*;

/// Cost 4 keeps the tests fast; the format is the same at any cost.
fn quick_hash(password: &str) -> String {
    hash(password, 4).unwrap()
}

#[test]
fn accepts_every_bcrypt_prefix() {
    let h = quick_hash("pw");
    let body = &h[4..];
    let text = format!("a:$2y${body}\nb:$2a${body}\n\n# note\nc:$2b${body}\n");
    let (entries, problems) = parse(&text);
    assert_eq!(problems, vec![]);
    let users: Vec<_> = entries.iter().map(|e| e.user.as_str()).collect();
    assert_eq!(users, ["a", "b", "c"]);
    for e in &entries {
        assert!(verify(&e.hash, "pw"), "{}", e.hash);
    }
}

#[test]
fn reports_other_formats_by_line_without_quoting_them() {
    let good = quick_hash("pw");
    let body = &good[4..];
    let text = format!(
        "# users\nok:{good}\nmd5:$apr1$abcdefgh$0123456789abcdefghijkl\n\
         sha:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nplain:hunter2hunter2\n\
         des:abJnggxhB/yWI\nx:$2x${body}\nshort:$2y$10$tooShort\n\
         cost:$2y$99${}\njustapassword\nok:{good}\n   \n",
        &body[3..]
    );
    let (entries, problems) = parse(&text);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].user, "ok");
    let found: Vec<_> = problems.iter().map(|p| (p.line, p.user.as_str())).collect();
    assert_eq!(
        found,
        [
            (3, "md5"),
            (4, "sha"),
            (5, "plain"),
            (6, "des"),
            (7, "x"),
            (8, "short"),
            (9, "cost"),
            (10, ""),
            (11, "ok"),
        ]
    );
    let says = |line: usize, what: &str| {
        let p = problems.iter().find(|p| p.line == line).unwrap();
        assert!(p.message.contains(what), "{p}");
    };
    says(3, "Apache MD5");
    says(4, "SHA-1");
    says(5, "plaintext");
    says(6, "DES");
    says(7, "$2x$");
    says(8, "malformed");
    says(9, "malformed");
    says(10, "no ':'");
    says(11, "only line 2 counts");
    for p in &problems[..7] {
        assert!(p.message.contains("only bcrypt"), "{p}");
        assert!(
            p.message
                .contains(&format!("private-registry htpasswd add {}", p.user)),
            "{p}"
        );
    }
    let all: String = problems.iter().map(|p| format!("{p}\n")).collect();
    for secret in ["hunter2", "abJnggxhB", "W6ph5", "justapassword", body] {
        assert!(!all.contains(secret), "{secret} leaked into: {all}");
    }
}

#[test]
fn crlf_lines_parse_and_survive_a_rewrite() {
    let h = quick_hash("pw");
    let text = format!("a:{h}\r\nb:$apr1$x$y\r\n");
    let (entries, problems) = parse(&text);
    assert_eq!(entries[0].hash, h);
    assert_eq!(problems[0].user, "b");
    let mut doc = Document::new(&text);
    assert_eq!(doc.set("c", &h).unwrap(), Change::Added);
    assert_eq!(doc.text(), format!("{text}c:{h}\n"));
}

#[test]
fn hash_verify_round_trip() {
    let h = quick_hash("correct horse");
    assert!(h.starts_with("$2y$04$"), "{h}");
    assert_eq!(h.len(), 60);
    assert_eq!(bcrypt_cost(&h), Some(4));
    assert!(verify(&h, "correct horse"));
    assert!(!verify(&h, "correct horsf"));
    assert!(!verify("$apr1$abcdefgh$0123456789abcdefghijkl", "x"));
    assert!(!verify("", ""));
}

#[test]
fn refuses_passwords_bcrypt_would_truncate_or_that_are_empty() {
    let exactly = "p".repeat(MAX_PASSWORD_BYTES);
    assert!(verify(&quick_hash(&exactly), &exactly));
    let too_long = "p".repeat(MAX_PASSWORD_BYTES + 1);
    let err = hash(&too_long, 4).unwrap_err();
    assert!(matches!(err, HtpasswdError::PasswordTooLong(73)));
    assert!(err.to_string().contains("72 bytes"), "{err}");
    assert!(matches!(hash("", 4), Err(HtpasswdError::EmptyPassword)));
}

#[test]
fn refuses_costs_bcrypt_cannot_do() {
    assert!(matches!(hash("pw", 3), Err(HtpasswdError::Cost(3))));
    assert!(matches!(hash("pw", 32), Err(HtpasswdError::Cost(32))));
}

#[test]
fn user_names() {
    assert!(validate_user("alice").is_ok());
    assert!(validate_user("ci-bot@example.com").is_ok());
    assert!(validate_user(&"u".repeat(255)).is_ok());
    for bad in ["", "a:b", "a b", "a\tb", "a\u{7f}", &"u".repeat(256)] {
        assert!(validate_user(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn set_and_remove_touch_only_the_named_user() {
    let text = "# keep me\ncarol:$apr1$x$y\n\nalice:{SHA}abc\nnocolon\nalice:second\n";
    let mut doc = Document::new(text);
    assert_eq!(doc.set("alice", "H1").unwrap(), Change::Updated);
    assert_eq!(
        doc.text(),
        "# keep me\ncarol:$apr1$x$y\n\nalice:H1\nnocolon\n"
    );
    assert_eq!(doc.set("dave", "H2").unwrap(), Change::Added);
    assert!(doc.set("e:f", "H3").is_err());
    assert!(doc.remove("carol"));
    assert!(!doc.remove("carol"));
    assert_eq!(doc.text(), "# keep me\n\nalice:H1\nnocolon\ndave:H2\n");
}
