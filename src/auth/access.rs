//! Who may do what to which repository. Without an access section every
//! authenticated user may do everything, as with distribution's htpasswd;
//! with one, a caller gets exactly what the rules naming them allow.

use super::Caller;
use crate::config::security::{Access, Action};
use std::collections::BTreeSet;

struct Rule {
    patterns: Vec<String>,
    users: BTreeSet<String>,
    any_user: bool,
    anonymous: bool,
    allow: Vec<Action>,
}

pub struct Policy {
    /// `None`: no access section, authenticated users may do anything.
    rules: Option<Vec<Rule>>,
}

impl Policy {
    pub fn from_config(access: Option<&Access>) -> Policy {
        let rules = access.map(|a| {
            a.rules
                .iter()
                .map(|r| {
                    let mut users: BTreeSet<String> = r.users.iter().cloned().collect();
                    for g in &r.groups {
                        users.extend(a.groups.get(g).into_iter().flatten().cloned());
                    }
                    Rule {
                        patterns: r.repositories.clone(),
                        any_user: users.remove("*"),
                        users,
                        anonymous: r.anonymous,
                        allow: r.allow.clone(),
                    }
                })
                .collect()
        });
        Policy { rules }
    }

    /// Whether `caller` may perform `action` on repository `repo`.
    pub fn allows(&self, caller: &Caller, action: Action, repo: &str) -> bool {
        match (caller, &self.rules) {
            (Caller::Open, _) => true,
            (Caller::User(_), None) => true,
            (Caller::Anonymous, None) => false,
            (_, Some(rules)) => rules.iter().any(|r| {
                r.names(caller)
                    && r.allow.contains(&action)
                    && r.patterns.iter().any(|p| glob(p, repo))
            }),
        }
    }

    /// Whether any rule grants anonymous callers anything; if none does, an
    /// anonymous request is challenged before it is even routed.
    pub fn anonymous_access(&self) -> bool {
        self.rules
            .as_ref()
            .is_some_and(|rules| rules.iter().any(|r| r.anonymous))
    }
}

impl Rule {
    fn names(&self, caller: &Caller) -> bool {
        match caller {
            Caller::Open => true,
            Caller::Anonymous => self.anonymous,
            Caller::User(u) => self.any_user || self.users.contains(u),
        }
    }
}

/// `*` matches any run of characters, `/` included; everything else literally.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::security::Rule as RuleConfig;

    fn user(u: &str) -> Caller {
        Caller::User(u.into())
    }

    #[test]
    fn globs() {
        assert!(glob("*", "a/b"));
        assert!(glob("team/*", "team/app"));
        assert!(glob("team/*", "team/a/b"));
        assert!(!glob("team/*", "team"));
        assert!(!glob("team/*", "teams/app"));
        assert!(glob("*/app", "x/y/app"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXbY"));
        assert!(glob("exact", "exact"));
    }

    #[test]
    fn rules_grant_per_user_group_and_anonymous() {
        let access = Access {
            groups: [("ops".to_string(), vec!["olga".to_string()])].into(),
            rules: vec![
                RuleConfig {
                    repositories: vec!["*".into()],
                    users: vec!["*".into()],
                    allow: vec![Action::Pull],
                    ..Default::default()
                },
                RuleConfig {
                    repositories: vec!["team/*".into()],
                    users: vec!["alice".into()],
                    groups: vec!["ops".into()],
                    allow: vec![Action::Pull, Action::Push],
                    ..Default::default()
                },
                RuleConfig {
                    repositories: vec!["public/*".into()],
                    anonymous: true,
                    allow: vec![Action::Pull],
                    ..Default::default()
                },
            ],
        };
        let p = Policy::from_config(Some(&access));
        assert!(p.allows(&user("bob"), Action::Pull, "team/app"));
        assert!(!p.allows(&user("bob"), Action::Push, "team/app"));
        assert!(p.allows(&user("alice"), Action::Push, "team/app"));
        assert!(p.allows(&user("olga"), Action::Push, "team/x/y"));
        assert!(!p.allows(&user("alice"), Action::Push, "other/app"));
        assert!(!p.allows(&user("alice"), Action::Delete, "team/app"));
        assert!(p.allows(&Caller::Anonymous, Action::Pull, "public/base"));
        assert!(!p.allows(&Caller::Anonymous, Action::Pull, "team/app"));
        assert!(!p.allows(&Caller::Anonymous, Action::Push, "public/base"));
        assert!(p.anonymous_access());
    }

    #[test]
    fn without_rules_users_may_do_anything_and_anonymous_nothing() {
        let p = Policy::from_config(None);
        assert!(p.allows(&user("x"), Action::Delete, "a"));
        assert!(!p.allows(&Caller::Anonymous, Action::Pull, "a"));
        assert!(!p.anonymous_access());
        assert!(p.allows(&Caller::Open, Action::Delete, "a"));
    }
}
