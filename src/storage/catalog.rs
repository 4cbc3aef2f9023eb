//! The repository catalog: a walk of `repositories/`, where a directory that
//! holds `_layers` or `_manifests` is a repository, in distribution's order.

use super::{Registry, Result, paths};
use crate::names::path_order;
use std::cmp::Ordering;

impl Registry {
    /// Up to `n` repository names after `last` that `keep` accepts, sorted
    /// component-wise. Subtrees that sort entirely before `last` are not
    /// descended into.
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
        let mut stack = vec![String::new()];
        while let Some(prefix) = stack.pop() {
            let dir = if prefix.is_empty() {
                paths::repositories()
            } else {
                format!("{}/{prefix}", paths::repositories())
            };
            let mut children = self.list(dir).await?;
            let is_repo = children.iter().any(|c| c == "_layers" || c == "_manifests");
            if is_repo
                && !prefix.is_empty()
                && keep(&prefix)
                && last.is_none_or(|l| path_order(&prefix, l) == Ordering::Greater)
            {
                out.push(prefix.clone());
                if out.len() >= n {
                    break;
                }
            }
            children.retain(|c| !c.starts_with('_') && !c.starts_with('.'));
            children.sort_by(|a, b| b.cmp(a));
            for c in children {
                let child = if prefix.is_empty() {
                    c
                } else {
                    format!("{prefix}/{c}")
                };
                // Skip subtrees that cannot contain anything after `last`.
                if let Some(l) = last
                    && path_order(&child, l) == Ordering::Less
                    && !l.starts_with(&format!("{child}/"))
                {
                    continue;
                }
                stack.push(child);
            }
        }
        Ok(out)
    }
}
