//! Subcommands that administer a registry rather than run it.

pub mod du;
pub mod generate;
pub mod htpasswd;
mod prompt;
