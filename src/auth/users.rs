//! The htpasswd file as the daemon sees it: loaded at start, re-read when
//! it changes, each version numbered so cached verifications of an older
//! version stop counting.

use super::htpasswd;
use crate::watch::Watched;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Cost for the dummy hash when the file has no users to copy it from.
const DEFAULT_COST: u32 = 12;

pub struct Table {
    hashes: HashMap<String, String>,
    /// Checked for unknown users, at the file's usual cost, so a wrong user
    /// name takes as long as a wrong password.
    dummy: String,
    pub generation: u64,
}

impl Table {
    /// The hash to check `user` against, and whether the user exists.
    pub fn lookup(&self, user: &str) -> (&str, bool) {
        match self.hashes.get(user) {
            Some(h) => (h, true),
            None => (&self.dummy, false),
        }
    }
}

pub struct Users {
    path: PathBuf,
    table: RwLock<Arc<Table>>,
    watched: Mutex<Watched>,
    generations: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot read the htpasswd file: {source}")]
pub struct UsersError {
    path: String,
    source: std::io::Error,
}

fn read(path: &Path) -> Result<String, UsersError> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        r => r.map_err(|source| UsersError {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn usual_cost(hashes: &HashMap<String, String>) -> u32 {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for c in hashes.values().filter_map(|h| htpasswd::bcrypt_cost(h)) {
        *counts.entry(c).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|&(cost, n)| (n, cost))
        .map_or(DEFAULT_COST, |(c, _)| c)
}

/// Parses `text`, logging every refused line and how to add users.
fn build(path: &Path, text: &str, generation: u64, previous: Option<&Table>) -> Table {
    let (entries, problems) = htpasswd::parse(text);
    for p in &problems {
        log::warn!(
            "auth: {} line {}: user {:?} cannot log in: {}",
            path.display(),
            p.line,
            p.user,
            p.message
        );
    }
    for e in entries
        .iter()
        .filter(|e| htpasswd::bcrypt_cost(&e.hash).is_some_and(|c| c < 10))
    {
        log::warn!(
            "auth: {}: user {:?} has a weak bcrypt cost; re-add with: private-registry htpasswd add {}",
            path.display(),
            e.user,
            e.user
        );
    }
    let hashes: HashMap<String, String> = entries.into_iter().map(|e| (e.user, e.hash)).collect();
    if hashes.is_empty() {
        log::warn!(
            "auth: {} has no usable users, so nobody can log in; add one with: private-registry htpasswd add USER --file {}",
            path.display(),
            path.display()
        );
    }
    let cost = usual_cost(&hashes);
    let dummy = match previous {
        Some(t) if htpasswd::bcrypt_cost(&t.dummy) == Some(cost) => t.dummy.clone(),
        _ => bcrypt::hash("not a password of anyone", cost).unwrap_or_default(),
    };
    log::info!(
        "auth: {} loaded from {}",
        crate::cli::count(hashes.len(), "user", "users"),
        path.display()
    );
    Table {
        hashes,
        dummy,
        generation,
    }
}

impl Users {
    /// Loads the file; a missing or empty file is a warning (nobody can log
    /// in), an unreadable one an error.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let watched = Watched::new(vec![path.to_path_buf()]);
        let table = build(path, &read(path)?, 1, None);
        Ok(Users {
            path: path.to_path_buf(),
            table: RwLock::new(Arc::new(table)),
            watched: Mutex::new(watched),
            generations: AtomicU64::new(1),
        })
    }

    pub fn table(&self) -> Arc<Table> {
        self.table.read().expect("users lock").clone()
    }

    /// Re-reads the file if it changed. Runs bcrypt for the dummy hash, so
    /// call it off the async workers.
    pub fn reload_if_changed(&self) {
        if self.watched.lock().expect("users lock").changed() {
            self.reload();
        }
    }

    /// Re-reads the file; an unreadable file keeps the users in service.
    pub fn reload(&self) {
        let mut watched = self.watched.lock().expect("users lock");
        let snapshot = watched.snapshot();
        match read(&self.path) {
            Ok(text) => {
                let generation = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
                let table = build(&self.path, &text, generation, Some(&self.table()));
                *self.table.write().expect("users lock") = Arc::new(table);
                watched.mark_seen(snapshot);
            }
            Err(e) => {
                // Not retried until the file changes again or SIGHUP, to keep the log quiet.
                watched.mark_seen(snapshot);
                log::error!("auth: keeping the current users: {e}");
            }
        }
    }
}
