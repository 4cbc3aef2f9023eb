//! Subcommands that administer a registry rather than run it.

pub mod generate;
pub mod htpasswd;
pub mod offline;
mod prompt;
