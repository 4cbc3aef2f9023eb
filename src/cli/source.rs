//! Where a command's configuration comes from: `--config PATH` or `--dev`.
//! Every command that reads the configuration takes both, as `serve` does,
//! so the operator commands work on the data a `serve --dev` writes.

use crate::config::{self, Config, ConfigError, Loaded};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (distribution's config.yml format).
    #[arg(long, short, global = true, default_value = config::DEFAULT_PATH, conflicts_with = "dev")]
    pub config: PathBuf,
    /// Use the built-in developer configuration: data in ./data, plain HTTP on 127.0.0.1:5000, metrics on 127.0.0.1:5001.
    #[arg(long, global = true)]
    pub dev: bool,
}

impl ConfigArgs {
    /// The configuration, `REGISTRY_*` overrides applied, validated.
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        load(&self.config, self.dev)
    }

    /// Loads and logs the warnings, for commands that go on despite them.
    pub fn load_warning(&self) -> Result<Config, ConfigError> {
        let loaded = self.load()?;
        for w in &loaded.warnings {
            log::warn!("config: {w}");
        }
        Ok(loaded.config)
    }
}

pub fn load(path: &std::path::Path, dev: bool) -> Result<Loaded, ConfigError> {
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
