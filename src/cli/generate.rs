//! `private-registry generate`: man pages and shell completion from the
//! command-line definition itself, so the packaged documentation can never
//! describe options the binary does not have. Hidden: only the package build
//! runs it.

use clap::{Args, Subcommand};
use clap_complete::Shell;
use clap_mangen::Man;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Man pages (section 8) for the command and each subcommand, written to DIR.
    Man { dir: PathBuf },
    /// Bash completion, written to DIR/private-registry.
    Completions { dir: PathBuf },
}

/// Administrators run every form of the command, mostly as root.
const SECTION: &str = "8";

/// What the options cannot say: how the packaged daemon is wired to the
/// system. Kept in step with packaging/ and the daemon's signal handling.
const OPERATION: &str = r#".SH OPERATION
Under systemd the package runs
.B private-registry serve
as the unprivileged user
.I private-registry
from
.BR private-registry.service ,
which takes its listening sockets from two socket units:
.B private-registry.socket
(127.0.0.1:5000, plain HTTP without login, for this host; descriptor name
.IR local )
and
.B private-registry-network.socket
(port 443 on every address, TLS and a login; descriptor name
.IR network ).
Each descriptor name selects the configured listener of that name in
.BR privateregistry.listeners .
The TLS listener waits, without failing the service, until a certificate is
installed; see
.BR private-registry-certgen (8).
.PP
Users are added with
.BR "private-registry htpasswd add" " USER."
Clients fetch the registry's CA certificate from
.BI https:// HOST /ca.crt
(with a login) and install it with
.BR private-registry-trust (8).
.SH SIGNALS
.TP
.B SIGHUP
Re-read the configuration, the htpasswd file and the certificates; open
connections continue.
.RB ( "systemctl reload private-registry" )
.TP
.B SIGUSR1
Reopen the access log, after it has been rotated.
.TP
.BR SIGTERM ", " SIGINT
Stop accepting connections, let requests in flight finish for at most
.B http.draintimeout
(30 s by default), then exit.
.SH ENVIRONMENT
.TP
.BI REGISTRY_ SECTION _ KEY
Overrides a configuration key, as in CNCF distribution:
.B REGISTRY_STORAGE_DELETE_ENABLED=true
sets
.BR storage.delete.enabled .
.TP
.BR LISTEN_FDS ", " LISTEN_PID ", " LISTEN_FDNAMES
Sockets passed by systemd; without them the daemon binds the configured
addresses itself.
.TP
.B NOTIFY_SOCKET
Where readiness, status and watchdog messages go under systemd.
.SH FILES
.TP
.I /etc/private-registry/config.yml
The configuration (CNCF distribution's format).
.TP
.I /etc/private-registry/htpasswd
Users and their bcrypt password hashes.
.TP
.I /etc/private-registry/tls/
The server certificate and key, and the local CA made by
.BR private-registry-certgen (8).
.TP
.I /var/lib/private-registry/
Image data, in distribution's filesystem layout. Purging the package leaves it
in place.
.TP
.I /var/log/private-registry/access.log
One line per request; rotated by logrotate.
.SH SEE ALSO
.BR private-registry-certgen (8),
.BR private-registry-trust (8),
.BR systemctl (1),
.BR systemd.socket (5)
"#;

pub fn run(args: &GenerateArgs, cmd: clap::Command) -> ExitCode {
    let cmd = visible(cmd);
    let result = match &args.what {
        What::Man { dir } => man_pages(cmd, dir),
        What::Completions { dir } => completions(cmd, dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("private-registry generate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The command without its hidden subcommands, which completion would
/// otherwise offer. clap cannot remove a subcommand, so this copies the rest.
fn visible(cmd: clap::Command) -> clap::Command {
    let mut copy = clap::Command::new(env!("CARGO_PKG_NAME"))
        .version(env!("CARGO_PKG_VERSION"))
        .args(cmd.get_arguments().cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
        .disable_help_subcommand(true);
    if let Some(a) = cmd.get_about() {
        copy = copy.about(a.clone());
    }
    copy
}

fn man_pages(mut cmd: clap::Command, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    cmd.build();
    let mut pages = Vec::new();
    collect(&cmd, &mut pages);
    for page in pages {
        let name = page
            .get_display_name()
            .unwrap_or(page.get_name())
            .to_string();
        let is_top = name == cmd.get_name();
        let has_version = page.get_version().is_some();
        let man = Man::new(page)
            .title(name.to_uppercase())
            .section(SECTION)
            .manual("private-registry");
        let mut out = Vec::new();
        man.render_title(&mut out)?;
        man.render_name_section(&mut out)?;
        man.render_synopsis_section(&mut out)?;
        man.render_description_section(&mut out)?;
        man.render_options_section(&mut out)?;
        if is_top {
            man.render_subcommands_section(&mut out)?;
            out.write_all(OPERATION.as_bytes())?;
        } else {
            writeln!(out, ".SH SEE ALSO\n.BR {} ({SECTION})", cmd.get_name())?;
        }
        if has_version {
            man.render_version_section(&mut out)?;
        }
        let out = once_prelude(&String::from_utf8_lossy(&out));
        std::fs::write(dir.join(format!("{name}.{SECTION}")), out)?;
    }
    Ok(())
}

/// clap_mangen starts every section it renders with the title's prelude
/// (the definition of the apostrophe string); one is enough.
fn once_prelude(page: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut out = String::with_capacity(page.len());
    for line in page.lines() {
        let prelude = line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq");
        if !prelude || seen.insert(line) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Every command that does something: the top one and each subcommand at any
/// depth.
fn collect(cmd: &clap::Command, out: &mut Vec<clap::Command>) {
    out.push(cmd.clone());
    for sub in cmd.get_subcommands() {
        collect(sub, out);
    }
}

fn completions(mut cmd: clap::Command, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = cmd.get_name().to_string();
    // bash-completion loads completions/NAME when NAME is first completed.
    let mut file = std::fs::File::create(dir.join(&name))?;
    clap_complete::generate(Shell::Bash, &mut cmd, name, &mut file);
    file.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pr-generate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_page_per_visible_command_and_none_for_generate() {
        let dir = scratch("man");
        man_pages(visible(crate::Cli::command()), &dir).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for want in [
            "private-registry.8",
            "private-registry-serve.8",
            "private-registry-check-config.8",
            "private-registry-htpasswd-add.8",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("generate")), "{names:?}");
        let top = std::fs::read_to_string(dir.join("private-registry.8")).unwrap();
        assert!(top.contains("\n.TH PRIVATE-REGISTRY 8 "), "{top}");
        assert_eq!(top.matches(".ds Aq").count(), 2, "one prelude: {top}");
        assert!(
            top.contains(".SH SIGNALS") && top.contains("htpasswd"),
            "{top}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn completion_offers_the_visible_subcommands_only() {
        let dir = scratch("completion");
        completions(visible(crate::Cli::command()), &dir).unwrap();
        let script = std::fs::read_to_string(dir.join("private-registry")).unwrap();
        assert!(script.contains("complete -F") && script.contains("check-config"));
        assert!(!script.contains("generate"), "{script}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
