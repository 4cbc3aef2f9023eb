//! `private-registry htpasswd` as an operator runs it: the real binary on a
//! file in a scratch directory, and Apache's own `htpasswd` (apache2-utils)
//! reading what it writes and writing what it reads.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The lowest cost the command takes; the tests hash a lot.
const COST: &str = "10";

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `private-registry htpasswd ARGS --file FILE` with `stdin` as its
/// standard input (`None`: no input at all, not a terminal).
fn htp(file: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("htpasswd")
        .args(args)
        .arg("--file")
        .arg(file)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        // A command that fails before it reads its input closes the pipe.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    }
    let o = child.wait_with_output().unwrap();
    Output {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn add(file: &Path, user: &str, password: &str) -> Output {
    htp(
        file,
        &["add", user, "--password-stdin", "--cost", COST],
        Some(&format!("{password}\n")),
    )
}

fn verify(file: &Path, user: &str, password: &str) -> Output {
    htp(
        file,
        &["verify", user, "--password-stdin"],
        Some(&format!("{password}\n")),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Everything in `dir`, so a test sees a temp file left behind.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn apache_bin() -> String {
    std::env::var("HTPASSWD_BIN").unwrap_or_else(|_| "htpasswd".to_string())
}

/// Runs Apache's `htpasswd`; its exit code and stdout.
fn apache(args: &[&str]) -> (i32, String) {
    let o = Command::new(apache_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run htpasswd ({e}); tests/run installs apache2-utils"));
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn scratch() -> (TempDir, PathBuf) {
    let dir = TempDir::new("htpasswd");
    let file = dir.0.join("htpasswd");
    (dir, file)
}

#[test]
fn add_update_list_verify_delete() {
    let (dir, file) = scratch();

    let o = add(&file, "alice", "first secret");
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "added user alice\n"),
        "{}",
        o.stderr
    );
    assert_eq!(mode(&file), 0o640);
    let o = add(&file, "bob", "bobs secret");
    assert_eq!(o.stdout, "added user bob\n", "{}", o.stderr);
    let o = add(&file, "alice", "second secret");
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "updated user alice\n"),
        "{}",
        o.stderr
    );
    assert_eq!(mode(&file), 0o640);
    assert_eq!(names(&dir.0), ["htpasswd"]);

    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("alice:$2y$10$"), "{text}");
    assert!(lines[1].starts_with("bob:$2y$10$"), "{text}");
    assert!(!text.contains("secret"), "{text}");

    let o = htp(&file, &["list"], None);
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (0, "alice\nbob\n", "")
    );

    let o = verify(&file, "alice", "second secret");
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "password correct\n"),
        "{}",
        o.stderr
    );
    let o = verify(&file, "alice", "first secret");
    assert_eq!(o.code, 1);
    assert_eq!(o.stdout, "");
    assert!(o.stderr.contains("password incorrect"), "{}", o.stderr);
    assert!(!o.stderr.contains("secret"), "{}", o.stderr);

    let o = htp(&file, &["delete", "alice"], None);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "deleted user alice\n"),
        "{}",
        o.stderr
    );
    assert_eq!(mode(&file), 0o640);
    let o = htp(&file, &["list"], None);
    assert_eq!(o.stdout, "bob\n");
    let o = htp(&file, &["delete", "alice"], None);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("no such user"), "{}", o.stderr);
    let o = verify(&file, "alice", "second secret");
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("no such user"), "{}", o.stderr);
    assert_eq!(names(&dir.0), ["htpasswd"]);
}

#[test]
fn default_cost_is_12_and_low_costs_are_usage_errors() {
    let (_dir, file) = scratch();
    let o = htp(&file, &["add", "alice", "--password-stdin"], Some("pw\n"));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("alice:$2y$12$"), "{text}");
    let o = htp(
        &file,
        &["add", "bob", "--password-stdin", "--cost", "9"],
        Some("pw\n"),
    );
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn rewrite_keeps_a_stricter_mode_and_narrows_a_looser_one() {
    let (dir, file) = scratch();
    assert_eq!(add(&file, "alice", "pw").code, 0);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(add(&file, "bob", "pw").code, 0);
    assert_eq!(mode(&file), 0o600);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(htp(&file, &["delete", "bob"], None).code, 0);
    assert_eq!(mode(&file), 0o640);
    assert_eq!(names(&dir.0), ["htpasswd"]);
}

/// An administrator editing as root must not take the file away from the
/// registry's user.
#[test]
fn rewrite_keeps_owner_and_group() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: only root can give a file to another user");
        return;
    }
    let (_dir, file) = scratch();
    assert_eq!(add(&file, "alice", "pw").code, 0);
    std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
    assert_eq!(add(&file, "bob", "pw").code, 0);
    let m = std::fs::metadata(&file).unwrap();
    assert_eq!((m.uid(), m.gid()), (65534, 65534));
}

/// A link (say into a secrets directory) stays a link; the file it points
/// to is the one replaced.
#[test]
fn rewrite_through_a_symlink_replaces_its_target() {
    let (dir, file) = scratch();
    let secrets = dir.0.join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let real = secrets.join("users");
    std::fs::write(&real, "").unwrap();
    std::os::unix::fs::symlink(&real, &file).unwrap();
    assert_eq!(add(&file, "alice", "pw").code, 0);
    assert!(
        std::fs::symlink_metadata(&file)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&real)
            .unwrap()
            .starts_with("alice:$2y$")
    );
    assert_eq!(names(&dir.0), ["htpasswd", "secrets"]);
    assert_eq!(names(&secrets), ["users"]);
}

#[test]
fn password_from_stdin_is_its_first_line_without_the_line_ending() {
    let (_dir, file) = scratch();
    let o = htp(
        &file,
        &["add", "alice", "--password-stdin", "--cost", COST],
        Some("pass word\r\nignored\n"),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(verify(&file, "alice", "pass word").code, 0);
    assert_eq!(verify(&file, "alice", "pass word\r").code, 0);
    assert_eq!(verify(&file, "alice", "pass wor").code, 1);
}

#[test]
fn refuses_bad_user_names_and_long_passwords_without_touching_the_file() {
    let (dir, file) = scratch();
    for user in ["a:b", "a b", ""] {
        let o = add(&file, user, "pw");
        assert_eq!(o.code, 1, "{user:?}");
        assert!(
            o.stderr.starts_with("private-registry htpasswd: "),
            "{}",
            o.stderr
        );
        assert!(o.stderr.contains("invalid user name"), "{}", o.stderr);
    }
    assert!(add(&file, "a:b", "pw").stderr.contains("contains ':'"));
    let o = add(&file, "alice", &"p".repeat(73));
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("72 bytes"), "{}", o.stderr);
    assert_eq!(names(&dir.0), Vec::<String>::new());
}

#[test]
fn add_refuses_a_missing_directory() {
    let (dir, _) = scratch();
    let file = dir.0.join("missing").join("htpasswd");
    let o = add(&file, "alice", "pw");
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("is not an existing directory"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("missing"), "{}", o.stderr);
}

#[test]
fn without_a_terminal_the_password_must_come_from_stdin() {
    let (_dir, file) = scratch();
    assert_eq!(add(&file, "alice", "pw").code, 0);
    let before = std::fs::read_to_string(&file).unwrap();
    for args in [["add", "bob"], ["add", "alice"], ["verify", "alice"]] {
        let o = htp(&file, &args, None);
        assert_eq!(o.code, 1, "{args:?}");
        assert_eq!(
            o.stderr, "private-registry htpasswd: no terminal to prompt on; use --password-stdin\n",
            "{args:?}"
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
}

#[test]
fn add_keeps_other_users_lines_it_cannot_use() {
    let (dir, file) = scratch();
    let original = "# managed by hand\ncarol:$apr1$Y0ttBaXf$hgAkVjTK7WMpQaHMXnSeC1\n\n\
                    dave:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nnot a user line\n";
    std::fs::write(&file, original).unwrap();
    let o = add(&file, "erin", "pw");
    assert_eq!(o.code, 0, "{}", o.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(original), "{text}");
    assert!(text[original.len()..].starts_with("erin:$2y$"), "{text}");

    let o = htp(&file, &["list"], None);
    assert_eq!(o.code, 0);
    assert_eq!(o.stdout, "erin\n");
    let problems: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(problems.len(), 3, "{}", o.stderr);
    assert!(problems[0].contains("line 2") && problems[0].contains("carol"));
    assert!(problems[0].contains("Apache MD5") && problems[0].contains("only bcrypt"));
    assert!(problems[1].contains("line 4") && problems[1].contains("SHA-1"));
    assert!(problems[2].contains("line 5") && !problems[2].contains("not a user"));

    let o = verify(&file, "carol", "whatever");
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("Apache MD5"), "{}", o.stderr);

    // Giving carol a password replaces her line where it is.
    let o = add(&file, "carol", "new");
    assert_eq!(o.stdout, "updated user carol\n", "{}", o.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# managed by hand");
    assert!(lines[1].starts_with("carol:$2y$"), "{text}");
    assert_eq!(
        &lines[2..5],
        [
            "",
            "dave:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
            "not a user line"
        ]
    );
    assert_eq!(verify(&file, "carol", "new").code, 0);
    assert_eq!(htp(&file, &["delete", "dave"], None).code, 0);
    assert_eq!(names(&dir.0), ["htpasswd"]);
}

#[test]
fn apache_hashes_verify_here() {
    let (_dir, file) = scratch();
    let (code, out) = apache(&["-nbB", "-C", COST, "carol", "apache secret"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("carol:$2y$10$"), "{out}");
    std::fs::write(&file, &out).unwrap();
    let o = verify(&file, "carol", "apache secret");
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "password correct\n"),
        "{}",
        o.stderr
    );
    assert_eq!(verify(&file, "carol", "apache secreT").code, 1);
}

#[test]
fn apache_verifies_what_we_write() {
    let (_dir, file) = scratch();
    assert_eq!(add(&file, "erin", "our secret").code, 0);
    assert_eq!(add(&file, "frank", "other").code, 0);
    let path = file.to_str().unwrap();
    assert_eq!(apache(&["-vb", path, "erin", "our secret"]).0, 0);
    assert_ne!(apache(&["-vb", path, "erin", "our secreT"]).0, 0);
    assert_eq!(apache(&["-vb", path, "frank", "other"]).0, 0);
}

/// A file Apache's tool wrote in every format it knows: we name each one,
/// and a rewrite leaves the users we cannot use working for Apache.
#[test]
fn apache_formats_are_named_and_survive_our_rewrite() {
    let (_dir, file) = scratch();
    let path = file.to_str().unwrap();
    // Flag, user, what `list` should call the format.
    let refused = [
        ("m", "md5", "Apache MD5"),
        ("s", "sha1", "SHA-1"),
        ("2", "sha256", "SHA-256-crypt"),
        ("5", "sha512", "SHA-512-crypt"),
        ("d", "des", "DES crypt"),
        ("p", "plain", "plaintext"),
    ];
    assert_eq!(apache(&["-cbB", path, "bcrypt", "pw12345"]).0, 0);
    for (flag, user, _) in refused {
        assert_eq!(
            apache(&[&format!("-b{flag}"), path, user, "pw12345"]).0,
            0,
            "-{flag}"
        );
    }
    let o = htp(&file, &["list"], None);
    assert_eq!(o.stdout, "bcrypt\n");
    let problems: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(problems.len(), refused.len(), "{}", o.stderr);
    for ((_, user, format), problem) in refused.iter().zip(&problems) {
        let says = format!("user \"{user}\": the hash looks like {format}");
        assert!(problem.contains(&says), "{problem}");
    }

    assert_eq!(add(&file, "ours", "pw12345").code, 0);
    // Apache itself cannot check plaintext on Unix, so that one is left out.
    for user in ["bcrypt", "md5", "sha1", "sha256", "sha512", "des", "ours"] {
        assert_eq!(apache(&["-vb", path, user, "pw12345"]).0, 0, "{user}");
    }
}

/// Runs the command on a pseudo-terminal (util-linux `script`), answering each
/// prompt only once it appears, since turning echo off discards type-ahead.
/// Returns the exit code and everything the terminal showed, which ends with
/// `stty -a` as the shell found the terminal afterwards.
fn on_terminal(args: &str, answers: &[&str]) -> (i32, String) {
    let command = format!("{BIN} htpasswd {args}; code=$?; stty -a; exit $code");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("util-linux script");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut seen = Vec::new();
    let prompts = ["Password: ", "Retype password: "];
    for (answer, prompt) in answers.iter().zip(prompts) {
        wait_for(&rx, prompt, &mut seen);
        stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    }
    // stdin stays open until the command is done: `script` may end the
    // session when its input ends.
    let code = child.wait().unwrap().code().unwrap_or(-1);
    drop(stdin);
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(20)) {
        seen.extend(chunk);
    }
    (code, String::from_utf8_lossy(&seen).into_owned())
}

fn wait_for(rx: &mpsc::Receiver<Vec<u8>>, want: &str, seen: &mut Vec<u8>) {
    while !String::from_utf8_lossy(seen).contains(want) {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(chunk) => seen.extend(chunk),
            Err(_) => panic!(
                "waiting for {want:?}, the terminal showed: {}",
                String::from_utf8_lossy(seen)
            ),
        }
    }
}

fn echo_is_on(stty: &str) -> bool {
    stty.split_whitespace().any(|w| w == "echo")
}

#[test]
fn prompts_on_the_terminal_without_echo_and_restores_it() {
    let (_dir, file) = scratch();
    let f = file.to_str().unwrap();
    let (code, shown) = on_terminal(
        &format!("add alice --cost {COST} --file {f}"),
        &["typed secret", "typed secret"],
    );
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("added user alice"), "{shown}");
    assert!(
        !shown.contains("typed secret"),
        "the password was echoed: {shown}"
    );
    assert!(echo_is_on(&shown), "echo left off: {shown}");

    let (code, shown) = on_terminal(
        &format!("add alice --cost {COST} --file {f}"),
        &["one secret", "another secret"],
    );
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("the passwords do not match"), "{shown}");
    assert!(echo_is_on(&shown), "echo left off after an error: {shown}");

    let (code, shown) = on_terminal(&format!("verify alice --file {f}"), &["typed secret"]);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("password correct"), "{shown}");
    assert!(!shown.contains("Retype"), "{shown}");
}

/// Runs `private-registry htpasswd ARGS` as given, with no input.
fn htp_bare(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("htpasswd")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let o = child.wait_with_output().unwrap();
    Output {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[test]
fn config_names_the_file_and_its_cost() {
    let (dir, file) = scratch();
    let config = dir.0.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nauth:\n  htpasswd:\n    realm: r\n    path: {}\nprivateregistry:\n  auth:\n    bcryptcost: 10\n",
            file.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let o = htp_bare(
        &["add", "alice", "--password-stdin", "--config", config],
        "pw\n",
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("alice:$2y$10$"), "{text}");
    let o = htp_bare(&["list", "-c", config], "");
    assert_eq!((o.code, o.stdout.as_str()), (0, "alice\n"), "{}", o.stderr);
    let help = htp_bare(&["--help"], "").stdout;
    assert!(!help.contains("not supported"), "{help}");
}

#[test]
fn a_missing_configuration_fails_as_a_missing_file_does() {
    let (dir, file) = scratch();
    let config = dir.0.join("config.yml");
    let via_config = htp_bare(&["list", "--config", config.to_str().unwrap()], "");
    let via_file = htp(&file, &["list"], None);
    assert_eq!((via_config.code, via_file.code), (1, 1));
    assert_eq!(
        via_config.stderr,
        format!(
            "private-registry htpasswd: cannot read {}: No such file or directory (os error 2); or pass --file PATH\n",
            config.display()
        )
    );
    assert_eq!(
        via_file.stderr,
        format!(
            "private-registry htpasswd: cannot read {}: No such file or directory (os error 2)\n",
            file.display()
        )
    );
    std::fs::write(&config, "version: 0.1\n").unwrap();
    let o = htp_bare(&["list", "--config", config.to_str().unwrap()], "");
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr,
        format!(
            "private-registry htpasswd: {}: no auth.htpasswd.path configured; pass --file PATH\n",
            config.display()
        )
    );
}
