//! A repository's links: each must hold the digest its directory names
//! (a tag's `current` names any) and that digest an intact blob; each
//! manifest's references must be there.

use super::super::{Result, StorageError, paths, refs};
use super::Check;
use crate::digest::Digest;
use crate::names::{RepoName, Tag};
use std::collections::HashMap;

impl Check<'_> {
    pub(super) async fn repository(&mut self, repo: &RepoName) -> Result<()> {
        self.lazy = self.reg.is_cached(repo).await?;
        for d in self.reg.layer_links(repo).await? {
            self.digest_link(paths::layer_link(repo, &d), &d).await?;
        }
        let revisions = format!("{}/_manifests/revisions", paths::repo(repo));
        let mut tagged = self.tags_by_target(repo).await?;
        for d in self.reg.list_digests(&revisions).await? {
            let before = self.report.problems.len();
            if self.digest_link(paths::revision_link(repo, &d), &d).await? {
                self.manifest(repo, &d).await?;
            }
            let tags = tagged.remove(&d).unwrap_or_default();
            for f in &mut self.report.problems[before..] {
                f.tags.clone_from(&tags);
            }
        }
        for name in self.reg.list(paths::tags(repo)).await? {
            if let Some(t) = Tag::parse(&name) {
                self.tag(repo, &t).await?;
            }
        }
        let referrers = format!("{}/_manifests/_referrers", paths::repo(repo));
        for subject in self.reg.list_digests(&referrers).await? {
            let dir = paths::referrers(repo, &subject);
            for r in self.reg.list_digests(&dir).await? {
                self.digest_link(paths::referrer_link(repo, &subject, &r), &r)
                    .await?;
            }
        }
        self.tag_leftovers(repo).await
    }

    /// The tags of `repo` by the manifest their `current` link names
    /// (unreadable ones are the tag check's to report).
    async fn tags_by_target(&self, repo: &RepoName) -> Result<HashMap<Digest, Vec<String>>> {
        let mut tagged: HashMap<Digest, Vec<String>> = HashMap::new();
        for name in self.reg.list(paths::tags(repo)).await? {
            let Some(t) = Tag::parse(&name) else {
                continue;
            };
            if let Ok(Some(d)) = self.reg.read_link(paths::tag_current(repo, &t)).await {
                tagged.entry(d).or_default().push(name);
            }
        }
        tagged.values_mut().for_each(|v| v.sort());
        Ok(tagged)
    }

    /// Checks a `<algorithm>/<hex>/link` that must hold `d`. Returns whether
    /// it is sound (after repair, whether it still stands and is sound).
    async fn digest_link(&mut self, link: String, d: &Digest) -> Result<bool> {
        let held = match self.reg.read_link(link.clone()).await {
            Ok(None) => return Ok(false),
            Ok(Some(h)) => Some(h),
            Err(StorageError::CorruptLink { .. }) => None,
            Err(e) => return Err(e),
        };
        self.report.links += 1;
        let ok = self.blob_ok(d).await?;
        if held.as_ref() != Some(d) {
            let what = held.map_or("no digest".to_string(), |h| h.to_string());
            let repaired = match (self.repair, ok) {
                (false, _) => None,
                (true, true) => {
                    self.reg.write_link(link.clone(), d).await?;
                    Some("rewritten".to_string())
                }
                (true, false) => {
                    let removed = self.reg.unlink_unless_back(link.clone(), d).await?;
                    Some(if removed { "removed" } else { "rewritten" }.to_string())
                }
            };
            let problem = format!("link holds {what}, not the digest its directory names");
            self.problem(link, Some(d), problem, repaired);
            return Ok(ok);
        }
        if ok {
            return Ok(true);
        }
        let repaired = if self.repair && self.reg.unlink_unless_back(link.clone(), d).await? {
            Some("removed".to_string())
        } else {
            None
        };
        let problem = format!("dangling link: names a blob {}", self.missing(d));
        self.problem(link, Some(d), problem, repaired);
        Ok(false)
    }

    /// In a cached repository: whether `d` was simply never pulled (neither
    /// linked here nor stored), as opposed to stored with the wrong bytes.
    async fn not_fetched(&self, repo: &RepoName, d: &Digest) -> Result<bool> {
        let linked = self.reg.exists(paths::layer_link(repo, d)).await?
            || self.reg.exists(paths::revision_link(repo, d)).await?;
        Ok(!linked && !self.corrupt.contains(d))
    }

    /// A manifest's configs, layers and children must be there, readable
    /// in this repository (in a cache, once fetched); a missing subject is
    /// only a note.
    async fn manifest(&mut self, repo: &RepoName, d: &Digest) -> Result<()> {
        self.report.manifests += 1;
        let link = paths::revision_link(repo, d);
        let bytes = self.reg.blob_content(d).await?.unwrap_or_default();
        let Some(r) = refs::references(&bytes) else {
            let problem = "manifest is not a JSON object".to_string();
            self.problem(link, Some(d), problem, None);
            return Ok(());
        };
        for b in r.blobs.iter().filter(|b| !r.foreign.contains(b)) {
            if self.lazy && self.not_fetched(repo, b).await? {
                continue;
            }
            let problem = if !self.blob_ok(b).await? {
                format!("manifest references blob {b}, {}", self.missing(b))
            } else if !self.reg.exists(paths::layer_link(repo, b)).await?
                && !self.reg.exists(paths::revision_link(repo, b)).await?
            {
                format!("manifest references blob {b}, which is not linked in this repository")
            } else {
                continue;
            };
            self.problem(link.clone(), Some(d), problem, None);
        }
        for c in &r.children {
            if self.lazy && self.not_fetched(repo, c).await? {
                continue;
            }
            if !self.reg.exists(paths::revision_link(repo, c)).await? || !self.blob_ok(c).await? {
                let problem = format!("index names manifest {c}, which this repository lacks");
                self.problem(link.clone(), Some(d), problem, None);
            }
        }
        if let Some(s) = &r.subject
            && !self.reg.exists(paths::revision_link(repo, s)).await?
        {
            self.report.notes.push(super::Finding {
                path: link,
                digest: Some(d.clone()),
                problem: format!("subject {s} is not in this repository (allowed by OCI 1.1)"),
                tags: vec![],
                repaired: None,
            });
        }
        Ok(())
    }

    /// A tag's `current` link must name a manifest of this repository; its
    /// `index/` entries are checked as links. Repair removes a tag that
    /// names nothing (one rename, as a tag delete does).
    async fn tag(&mut self, repo: &RepoName, t: &Tag) -> Result<()> {
        let current = paths::tag_current(repo, t);
        let index = format!("{}/index", paths::tag(repo, t));
        for d in self.reg.list_digests(&index).await? {
            self.digest_link(paths::tag_index(repo, t, &d), &d).await?;
        }
        let problem = match self.reg.read_link(current.clone()).await {
            Ok(Some(d)) => {
                self.report.links += 1;
                if self.reg.exists(paths::revision_link(repo, &d)).await?
                    && self.blob_ok(&d).await?
                {
                    return Ok(());
                }
                (
                    Some(d),
                    "tag names a manifest this repository lacks".to_string(),
                )
            }
            Ok(None) => (None, "tag has no current link".to_string()),
            Err(StorageError::CorruptLink { detail, .. }) => {
                (None, format!("tag link unreadable: {detail}"))
            }
            Err(e) => return Err(e),
        };
        let repaired = if self.repair && self.still_dangling(repo, t, problem.0.as_ref()).await? {
            self.reg.untag(repo, t).await?;
            Some(format!("tag {t} removed"))
        } else {
            None
        };
        self.problem(current, problem.0.as_ref(), problem.1, repaired);
        Ok(())
    }

    /// Read again just before removing a tag: a push may have repointed it.
    async fn still_dangling(
        &self,
        repo: &RepoName,
        t: &Tag,
        seen: Option<&Digest>,
    ) -> Result<bool> {
        let now = self
            .reg
            .read_link(paths::tag_current(repo, t))
            .await
            .ok()
            .flatten();
        Ok(now.as_ref() == seen
            && match &now {
                Some(d) => {
                    !self.reg.exists(paths::revision_link(repo, d)).await?
                        || !self.blob_ok(d).await?
                }
                None => true,
            })
    }
}
