//! `private-registry du [REPO]`: storage usage computed from the storage
//! itself (no daemon needed), as a table or, with `--json`, in the format of
//! `GET /v2/_ext/usage`.

use super::source::ConfigArgs;
use crate::names::RepoName;
use crate::storage::Registry;
use crate::storage::usage::{Inventory, RepoUsage, Snapshot};
/// Sizes as the web UI and `docker images` show them.
use crate::ui::html::size as human;
use serde_json::json;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct DuArgs {
    #[command(flatten)]
    source: ConfigArgs,
    /// Print JSON, as GET /v2/_ext/usage answers.
    #[arg(long)]
    json: bool,
    /// Only this repository.
    repo: Option<String>,
}

pub fn run(args: &DuArgs) -> ExitCode {
    match compute(args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("private-registry du: {e}");
            ExitCode::FAILURE
        }
    }
}

fn compute(args: &DuArgs) -> Result<String, String> {
    let repo = match &args.repo {
        Some(r) => Some(RepoName::parse(r).ok_or(format!("{r:?}: not a repository name"))?),
        None => None,
    };
    let config = args.source.load_warning().map_err(|e| e.to_string())?;
    let registry = Registry::new(crate::storage::driver::open(&config.backend())?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let mut inv = Inventory::default();
    rt.block_on(registry.rescan_all(&mut inv))
        .map_err(|e| e.to_string())?;
    let s = inv.snapshot();
    let rows: Vec<&RepoUsage> = match &repo {
        Some(r) => vec![
            s.repository(r.as_str())
                .ok_or(format!("{r}: no such repository"))?,
        ],
        None => s.repositories.iter().collect(),
    };
    Ok(if args.json {
        json_text(&s, &rows, repo.is_some())
    } else {
        table(&s, &rows, repo.is_none())
    })
}

fn json_text(s: &Snapshot, rows: &[&RepoUsage], one: bool) -> String {
    let at = crate::timefmt::rfc3339(s.computed_at);
    let v = if one {
        let mut v = serde_json::to_value(rows[0]).unwrap_or_default();
        v["computedAt"] = at.into();
        v
    } else {
        json!({
            "computedAt": at,
            "repositories": rows,
            "registry": {
                "blobs": s.blobs,
                "totalBytes": s.total_bytes,
                "reclaimableBytes": s.reclaimable_bytes,
            },
        })
    };
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

fn table(s: &Snapshot, rows: &[&RepoUsage], totals: bool) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(10);
    let mut out = format!(
        "{:<width$}  {:>6}  {:>9}  {:>10}  {:>10}\n",
        "REPOSITORY", "TAGS", "MANIFESTS", "REFERENCED", "UNIQUE"
    );
    for r in rows {
        out += &format!(
            "{:<width$}  {:>6}  {:>9}  {:>10}  {:>10}\n",
            r.name,
            r.tags,
            r.manifests,
            human(r.referenced_bytes),
            human(r.unique_bytes)
        );
    }
    if totals {
        out += &format!(
            "\n{}, {} in storage, {} reclaimable by garbage collection\n",
            super::count(s.blobs, "blob", "blobs"),
            human(s.total_bytes),
            human(s.reclaimable_bytes)
        );
    }
    out
}
