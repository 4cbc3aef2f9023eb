//! Subcommands that administer a registry rather than run it.

pub mod du;
pub mod fsck;
pub mod generate;
pub mod htpasswd;
pub mod offline;
mod prompt;
pub mod repository;
