//! Subcommands that administer a registry rather than run it.

pub mod du;
pub mod fsck;
pub mod generate;
pub mod htpasswd;
pub mod offline;
mod prompt;
pub mod repository;
pub mod source;

/// `1 tag`, `2 tags`: counts as the operator reads them.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
