//! The repository catalog: a walk of `repositories/`, where a directory that
//! holds `_layers` or `_manifests` is a repository, in distribution's order.
//!
//! On a bucket a page is one listing of every repository name (with the
//! delimiter `/_`), not a walk. On disk a page costs one listing per
//! directory it passes, fetched in batches (one
//! driver call, one blocking-pool hop, for up to [`BATCH`] sibling
//! directories), and subtrees sorting entirely before `last` are skipped
//! unlisted. Profiling the old walk (one hop per directory, every sibling
//! pushed on a stack per page) showed the hops and the allocations, not the
//! filesystem, as the cost. Nothing is cached: repositories come and go by
//! other processes (`repository delete`, other nodes).

use super::{Registry, Result, paths};
use crate::names::path_order;
use std::cmp::Ordering;
use std::collections::VecDeque;

/// Most sibling directories listed in one driver call.
const BATCH: usize = 256;

/// A directory being walked: its sorted subdirectories still to visit, and
/// the listings of the next few of them, already fetched.
struct Frame {
    prefix: String,
    children: Vec<String>,
    next: usize,
    fetched: VecDeque<Vec<String>>,
}

fn join(prefix: &str, child: &str) -> String {
    if prefix.is_empty() {
        child.to_string()
    } else {
        format!("{prefix}/{child}")
    }
}

impl Frame {
    /// The directory's subdirectories that may hold repositories after `last`, sorted.
    fn new(prefix: String, mut listing: Vec<String>, last: Option<&str>) -> Frame {
        // Where `last` lies inside this directory, the component it descends
        // into: children sorting before that one hold nothing after `last`.
        let bound = last.and_then(|l| {
            let rest = if prefix.is_empty() {
                l
            } else {
                l.strip_prefix(prefix.as_str())?.strip_prefix('/')?
            };
            rest.split('/').next()
        });
        listing.retain(|c| {
            !c.starts_with('_') && !c.starts_with('.') && bound.is_none_or(|b| c.as_str() >= b)
        });
        listing.sort_unstable();
        Frame {
            prefix,
            children: listing,
            next: 0,
            fetched: VecDeque::new(),
        }
    }
}

impl Registry {
    /// Up to `n` repository names after `last` that `keep` accepts, sorted
    /// component-wise.
    pub async fn catalog(
        &self,
        n: usize,
        last: Option<&str>,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Vec<String>> {
        let mut out = vec![];
        if n == 0 {
            return Ok(out);
        }
        let listed = self.driver.list_prefixes(paths::repositories(), "/_");
        if let Some(mut names) = listed.await? {
            // A bucket names every repository in one listing (a name
            // component never starts with `_`, so `/_` ends a repository's
            // name): sorted here into distribution's order. A repository
            // whose first push is still uploading is listed too.
            names.retain(|name| crate::names::RepoName::parse(name).is_some());
            names.sort_by(|a, b| path_order(a, b));
            names.dedup();
            let after =
                |name: &String| last.is_none_or(|l| path_order(name, l) == Ordering::Greater);
            out.extend(
                names
                    .into_iter()
                    .filter(|name| after(name) && keep(name))
                    .take(n),
            );
            return Ok(out);
        }
        let root = self.list(paths::repositories()).await?;
        let mut stack = vec![Frame::new(String::new(), root, last)];
        while let Some(frame) = stack.last_mut() {
            if frame.next == frame.children.len() {
                stack.pop();
                continue;
            }
            if frame.fetched.is_empty() {
                let want = (n - out.len()).clamp(1, BATCH);
                let end = (frame.next + want).min(frame.children.len());
                let dirs = frame.children[frame.next..end]
                    .iter()
                    .map(|c| format!("{}/{}", paths::repositories(), join(&frame.prefix, c)))
                    .collect();
                frame.fetched = self.list_many(dirs).await?.into();
            }
            let listing = frame.fetched.pop_front().unwrap_or_default();
            let name = join(&frame.prefix, &frame.children[frame.next]);
            frame.next += 1;
            let is_repo = listing.iter().any(|c| c == "_layers" || c == "_manifests");
            if is_repo
                && keep(&name)
                && last.is_none_or(|l| path_order(&name, l) == Ordering::Greater)
            {
                out.push(name.clone());
                if out.len() >= n {
                    break;
                }
            }
            let sub = Frame::new(name, listing, last);
            if !sub.children.is_empty() {
                stack.push(sub);
            }
        }
        Ok(out)
    }
}
