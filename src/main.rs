//! `private-registry`: a private container registry (OCI distribution /
//! Docker Registry HTTP API V2) for on-premise data centres.

mod alloc;
mod api;
mod auth;
mod cli;
mod config;
mod crashpoint;
mod digest;
mod gc;
mod logging;
mod manifest;
mod metrics;
mod mirror;
mod names;
mod server;
mod storage;
mod systemd;
mod timefmt;
mod tls;
mod ui;
mod usage;
mod watch;

use clap::{CommandFactory, Parser, Subcommand};
use cli::source::ConfigArgs;
use config::{Config, Loaded};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    version,
    about = "A private container registry: OCI distribution and Docker Registry HTTP API V2"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry.
    Serve(ConfigArgs),
    /// Validate a configuration and print it as it takes effect, with REGISTRY_* overrides applied.
    CheckConfig {
        #[command(flatten)]
        source: ConfigArgs,
        /// Fail on keys this registry does not read, as well as on errors (for CI;
        /// `serve`, like distribution, only warns).
        #[arg(long)]
        strict: bool,
    },
    /// Manage users in the htpasswd file.
    Htpasswd(cli::htpasswd::HtpasswdArgs),
    /// Remove blobs (and, if asked, untagged manifests) nothing references; safe while serving.
    GarbageCollect(gc::GcArgs),
    /// List repositories, or delete one whole (its blobs go at the next garbage collection).
    Repository(cli::repository::RepositoryArgs),
    /// Check every blob's digest and every link, manifest reference and tag; --repair fixes what it safely can.
    #[command(after_help = cli::fsck::EXIT_STATUS)]
    Fsck(cli::fsck::FsckArgs),
    /// Show storage usage per repository: tags, manifests, bytes referenced and unique.
    Du(cli::du::DuArgs),
    /// Write man pages or shell completion (for packaging).
    #[command(hide = true)]
    Generate(cli::generate::GenerateArgs),
}

/// The configuration with its warnings logged, or `None` with every error logged.
fn load_reporting(source: &ConfigArgs) -> Option<Loaded> {
    match source.load() {
        Ok(l) => {
            for w in &l.warnings {
                log::warn!("config: {w}");
            }
            Some(l)
        }
        Err(e) => {
            for each in e.each() {
                log::error!("config: {each}");
            }
            for w in e.unknown() {
                log::warn!("config: {w}");
            }
            None
        }
    }
}

/// `check-config`: prints the effective configuration; exit 1 on errors,
/// and with `--strict` on unknown keys too.
fn check_config(source: &ConfigArgs, strict: bool) -> ExitCode {
    let Some(l) = load_reporting(source) else {
        return ExitCode::FAILURE;
    };
    print!("{}", l.config.to_yaml());
    if strict && !l.unknown.is_empty() {
        log::error!(
            "config: --strict: {}",
            cli::count(l.unknown.len(), "unknown key", "unknown keys")
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    metrics::process::started();
    let cli = Cli::parse();
    logging::init(log::LevelFilter::Info);
    match cli.command {
        Command::Generate(args) => cli::generate::run(&args, Cli::command()),
        Command::Htpasswd(args) => cli::htpasswd::run(&args),
        Command::CheckConfig { source, strict } => check_config(&source, strict),
        Command::Serve(source) => serve(source),
        Command::GarbageCollect(args) => gc::run_command(&args),
        Command::Repository(args) => cli::repository::run(&args),
        Command::Fsck(args) => cli::fsck::run(&args),
        Command::Du(args) => cli::du::run(&args),
    }
}

/// Applies the logging settings of `c`: level, syslog, access log file.
pub fn apply_logging(c: &Config) {
    log::set_max_level(c.log_level().filter());
    let ours = &c.privateregistry;
    logging::use_syslog(ours.syslog);
    if let Err(e) = logging::access_file(ours.accesslog.as_deref()) {
        log::error!(
            "access log {:?}: {e}; logging requests with the messages",
            ours.accesslog
        );
    }
}

fn serve(source: ConfigArgs) -> ExitCode {
    // Before any thread exists: taking the sockets clears LISTEN_* from the environment.
    let passed = match systemd::activation::take() {
        Ok(p) => p,
        Err(e) => {
            log::error!("socket activation: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(Loaded { config: c, .. }) = load_reporting(&source) else {
        return ExitCode::FAILURE;
    };
    apply_logging(&c);
    let reload: server::Reload = Box::new(move || {
        let l = source.load().map_err(|e| e.to_string())?;
        for w in &l.warnings {
            log::warn!("config: {w}");
        }
        Ok(l.config)
    });
    alloc::tune();
    // Connections run on threads of their own (`server::threads`); this
    // runtime only accepts, handles signals and runs maintenance.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build();
    let result = match rt {
        Ok(rt) => rt
            .block_on(server::run(c, passed, reload))
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("cannot start the async runtime: {e}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
