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
use cli::htpasswd::HtpasswdArgs;
use config::{Config, ConfigError, Loaded};
use std::path::{Path, PathBuf};
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
    Serve {
        /// Configuration file (distribution's config.yml format).
        #[arg(long, short, default_value = config::DEFAULT_PATH, conflicts_with = "dev")]
        config: PathBuf,
        /// Use the built-in developer configuration: data in ./data, plain HTTP on 127.0.0.1:5000, metrics on 127.0.0.1:5001.
        #[arg(long)]
        dev: bool,
    },
    /// Validate a configuration and print it as it takes effect, with REGISTRY_* overrides applied.
    CheckConfig {
        #[arg(long, short, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Manage users in the htpasswd file.
    Htpasswd(HtpasswdArgs),
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

fn load(path: &Path, dev: bool) -> Result<Loaded, ConfigError> {
    if dev {
        Config::parse(
            config::DEV_CONFIG,
            "built-in developer configuration",
            std::env::vars(),
        )
    } else {
        Config::load(path, std::env::vars())
    }
}

/// Which file `htpasswd` edits and at what bcrypt cost.
/// The htpasswd file and bcrypt cost: `--file`/`--cost` if given, else the
/// configuration's `auth.htpasswd.path` and `privateregistry.auth.bcryptcost`.
/// Without a configuration file at the default path, the packaged default file.
fn htpasswd_target(args: &HtpasswdArgs) -> Result<(PathBuf, u32), String> {
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let configured = if args.file.is_some() || (args.config.is_none() && !config_path.exists()) {
        None
    } else {
        let c = Config::load(&config_path, std::env::vars())
            .map_err(|e| format!("{e} (or pass --file PATH)"))?
            .config;
        let path = c
            .auth
            .as_ref()
            .and_then(|a| a.htpasswd.as_ref())
            .map(|h| h.path.clone());
        let path = path.ok_or_else(|| {
            format!(
                "{}: no auth.htpasswd.path configured; pass --file PATH",
                config_path.display()
            )
        })?;
        Some((path, c.privateregistry.auth.bcryptcost))
    };
    let (file, cost) = match (&args.file, configured) {
        (Some(f), _) => (f.clone(), cli::htpasswd::DEFAULT_COST),
        (None, Some(c)) => c,
        (None, None) => (
            PathBuf::from(cli::htpasswd::DEFAULT_FILE),
            cli::htpasswd::DEFAULT_COST,
        ),
    };
    Ok((file, args.cost.unwrap_or(cost)))
}

fn load_reporting(path: &Path, dev: bool) -> Option<Config> {
    match load(path, dev) {
        Ok(l) => {
            for w in &l.warnings {
                log::warn!("config: {w}");
            }
            Some(l.config)
        }
        Err(e) => {
            log::error!("config: {e}");
            None
        }
    }
}

fn main() -> ExitCode {
    metrics::process::started();
    let cli = Cli::parse();
    logging::init(log::LevelFilter::Info);
    match cli.command {
        Command::Generate(args) => cli::generate::run(&args, Cli::command()),
        Command::Htpasswd(args) => match htpasswd_target(&args) {
            Ok((file, cost)) => cli::htpasswd::run(&args, &file, cost),
            Err(e) => {
                eprintln!("private-registry htpasswd: {e}");
                ExitCode::from(2)
            }
        },
        Command::CheckConfig { config } => match load_reporting(&config, false) {
            Some(c) => {
                print!("{}", c.to_yaml());
                ExitCode::SUCCESS
            }
            None => ExitCode::FAILURE,
        },
        Command::Serve { config, dev } => serve(config, dev),
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

fn serve(config: PathBuf, dev: bool) -> ExitCode {
    // Before any thread exists: taking the sockets clears LISTEN_* from the environment.
    let passed = match systemd::activation::take() {
        Ok(p) => p,
        Err(e) => {
            log::error!("socket activation: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(c) = load_reporting(&config, dev) else {
        return ExitCode::FAILURE;
    };
    apply_logging(&c);
    let reload: server::Reload = Box::new(move || {
        let l = load(&config, dev).map_err(|e| e.to_string())?;
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
