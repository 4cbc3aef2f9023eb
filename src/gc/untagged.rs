//! Which manifests `--delete-untagged` keeps in one repository, and in what
//! order the rest are removed. Kept: every tagged manifest and every
//! manifest touched within the grace period, then, transitively, the
//! children of a kept index or list (the per-platform images of a multi-arch
//! tag, which distribution's collector wrongly deletes) and the referrers of
//! a kept manifest (signatures, SBOMs, whose `subject` it is).

use crate::digest::Digest;
use crate::storage::refs::References;
use std::collections::{HashMap, HashSet};

/// A repository's revisions and what each references (`None`: unreadable).
pub type Graph = HashMap<Digest, Option<References>>;

/// Manifests of `graph` one must keep if `d` is kept: its children and its referrers.
fn dependents<'a>(
    graph: &'a Graph,
    referrers: &'a HashMap<&Digest, Vec<&Digest>>,
    d: &Digest,
) -> Vec<&'a Digest> {
    let mut out: Vec<&Digest> = vec![];
    if let Some(Some(r)) = graph.get(d) {
        out.extend(
            r.children
                .iter()
                .filter_map(|c| graph.get_key_value(c).map(|(k, _)| k)),
        );
    }
    if let Some(rs) = referrers.get(d) {
        out.extend(rs.iter().copied());
    }
    out
}

fn referrer_map(graph: &Graph) -> HashMap<&Digest, Vec<&Digest>> {
    let mut m: HashMap<&Digest, Vec<&Digest>> = HashMap::new();
    for (d, r) in graph {
        if let Some(s) = r.as_ref().and_then(|r| r.subject.as_ref()) {
            m.entry(s).or_default().push(d);
        }
    }
    m
}

/// Adds to `kept` everything that must be kept along with `roots`.
pub fn keep_closure<'a>(
    graph: &Graph,
    roots: impl IntoIterator<Item = &'a Digest>,
    kept: &mut HashSet<Digest>,
) {
    let referrers = referrer_map(graph);
    let mut stack: Vec<Digest> = roots
        .into_iter()
        .filter(|d| graph.contains_key(*d))
        .cloned()
        .collect();
    while let Some(d) = stack.pop() {
        if kept.insert(d.clone()) {
            stack.extend(dependents(graph, &referrers, &d).into_iter().cloned());
        }
    }
}

/// The manifests not in `kept`, each before its children and referrers, so
/// that if one turns out to have been touched (and stays, with its
/// dependents) none of those has been removed yet.
pub fn deletion_order(graph: &Graph, kept: &HashSet<Digest>) -> Vec<Digest> {
    let referrers = referrer_map(graph);
    let mut candidates: Vec<&Digest> = graph.keys().filter(|d| !kept.contains(*d)).collect();
    candidates.sort();
    let mut visited = HashSet::new();
    let mut post = vec![];
    for c in candidates {
        // Iterative depth-first search; reverse post-order is a topological order.
        let mut stack = vec![(c, false)];
        while let Some((d, done)) = stack.pop() {
            if done {
                post.push(d.clone());
                continue;
            }
            if kept.contains(d) || !visited.insert(d) {
                continue;
            }
            stack.push((d, true));
            for n in dependents(graph, &referrers, d) {
                stack.push((n, false));
            }
        }
    }
    post.reverse();
    post
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    fn node(children: &[char], subject: Option<char>) -> Option<References> {
        Some(References {
            blobs: vec![],
            foreign: vec![],
            children: children.iter().map(|c| d(*c)).collect(),
            subject: subject.map(d),
        })
    }

    #[test]
    fn index_children_and_referrers_stay_with_a_tag() {
        // i (tagged index) -> a, b; s signs i; t signs s; u is untagged with child c.
        let g: Graph = [
            (d('1'), node(&['a', 'b'], None)),
            (d('a'), node(&[], None)),
            (d('b'), node(&[], None)),
            (d('5'), node(&[], Some('1'))),
            (d('7'), node(&[], Some('5'))),
            (d('9'), node(&['c'], None)),
            (d('c'), node(&[], None)),
            (d('e'), None),
        ]
        .into_iter()
        .collect();
        let mut kept = HashSet::new();
        keep_closure(&g, [&d('1')], &mut kept);
        let want: HashSet<Digest> = ['1', 'a', 'b', '5', '7'].into_iter().map(d).collect();
        assert_eq!(kept, want);
        let order = deletion_order(&g, &kept);
        assert_eq!(order.len(), 3);
        let pos = |x: char| order.iter().position(|o| *o == d(x)).unwrap();
        assert!(pos('9') < pos('c'), "parent before child: {order:?}");
    }
}
