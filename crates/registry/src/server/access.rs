//! Who may do what in `--auth token` mode: the grant a token carries is the intersection of
//! the scopes asked for and what this policy allows the user.
//!
//! Without an access file every authenticated user may pull and push every repository
//! (and delete, when deletes are enabled); anonymous clients get nothing, or pull
//! everywhere with `--anonymous-pull`. An access file (`--access`) replaces the first part:
//!
//! ```text
//! # <user|*> <repository glob> <actions>
//! alice   team/*     pull,push,delete
//! *       public/*   pull
//! ```
//!
//! `*` as the user is every authenticated user; in a glob `*` matches any run of
//! characters, slashes included. A user gets the union of the lines that match. The file
//! is checked whole at start: a line that is not understood, or that names a user the
//! htpasswd file does not have, stops the server (fail closed) with the line's number.
//! `--read-only` takes push and delete out of every grant; so does a registry without
//! `--delete-enabled` for delete.

use super::auth::Htpasswd;
use super::token::{AccessEntry, Actions, Resource, Scope};

/// One line of the access file.
#[derive(Debug, PartialEq, Eq)]
struct Rule {
    /// `None`: every authenticated user.
    user: Option<String>,
    glob: String,
    actions: Actions,
}

/// What each user may do.
#[derive(Debug, Default)]
pub struct Policy {
    /// `None`: no access file, every authenticated user may do everything.
    rules: Option<Vec<Rule>>,
    pub anonymous_pull: bool,
    pub read_only: bool,
    pub delete_enabled: bool,
}

impl Policy {
    /// A policy without an access file.
    pub fn open_to_users(anonymous_pull: bool, read_only: bool, delete_enabled: bool) -> Policy {
        Policy {
            rules: None,
            anonymous_pull,
            read_only,
            delete_enabled,
        }
    }

    /// Reads an access file's text; every user it names must be in `htpasswd`.
    pub fn with_access_file(mut self, text: &str, htpasswd: &Htpasswd) -> Result<Policy, String> {
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let shown: String = line.chars().take(100).collect();
            let fail = |why: &str| format!("access file line {} ({shown:?}): {why}", n + 1);
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [user, glob, actions] = fields[..] else {
                return Err(fail(
                    "expected <user|*> <repository glob> <pull,push,delete>",
                ));
            };
            let user = match user {
                "*" => None,
                u if htpasswd.has_user(u) => Some(u.to_string()),
                _ => return Err(fail("no such user in the htpasswd file")),
            };
            if !valid_glob(glob) {
                return Err(fail(
                    "a repository glob is lowercase letters, digits, . _ - / and *",
                ));
            }
            let actions = parse_actions(actions)
                .ok_or_else(|| fail("actions are pull, push and delete, comma-separated"))?;
            rules.push(Rule {
                user,
                glob: glob.to_string(),
                actions,
            });
        }
        if rules.is_empty() {
            return Err("access file: no rules (nobody could do anything)".into());
        }
        self.rules = Some(rules);
        Ok(self)
    }

    /// What `user` (`None`: anonymous) may do to repository `name`.
    pub fn allowed(&self, user: Option<&str>, name: &str) -> Actions {
        let mut a = match (user, &self.rules) {
            (None, _) => Actions::NONE,
            (Some(_), None) => Actions::ALL,
            (Some(u), Some(rules)) => rules
                .iter()
                .filter(|r| r.user.as_deref().is_none_or(|ru| ru == u))
                .filter(|r| glob_matches(&r.glob, name))
                .fold(Actions::NONE, |a, r| a.union(r.actions)),
        };
        if self.anonymous_pull {
            a = a.union(Actions::PULL);
        }
        if self.read_only {
            a = a.without(Actions::PUSH).without(Actions::DELETE);
        }
        if !self.delete_enabled {
            a = a.without(Actions::DELETE);
        }
        a
    }

    /// Whether `user` may list every repository: the catalog names them all, so it takes
    /// pull on all of them (a rule with the glob `*`).
    pub fn catalog_allowed(&self, user: Option<&str>) -> bool {
        if self.anonymous_pull {
            return true;
        }
        match (user, &self.rules) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(u), Some(rules)) => rules.iter().any(|r| {
                r.user.as_deref().is_none_or(|ru| ru == u)
                    && r.glob == "*"
                    && r.actions.contains(Actions::PULL)
            }),
        }
    }

    /// The access a token for `user` carries for these requested scopes: each scope's
    /// actions narrowed to what is allowed, the scopes granted nothing left out.
    pub fn grant(&self, user: Option<&str>, scopes: &[Scope]) -> Vec<AccessEntry> {
        let mut out: Vec<AccessEntry> = Vec::new();
        for s in scopes {
            let entry = match &s.resource {
                Resource::Repository(name) => {
                    let a = s.actions.intersect(self.allowed(user, name));
                    if a.is_empty() {
                        continue;
                    }
                    AccessEntry::from_grant(&s.resource, a)
                }
                Resource::Catalog => {
                    if !self.catalog_allowed(user) {
                        continue;
                    }
                    AccessEntry::from_grant(&s.resource, Actions::ALL)
                }
            };
            if !out.contains(&entry) {
                out.push(entry);
            }
        }
        out
    }
}

/// `pull,push,delete` with nothing unknown (an access file is not a client's request:
/// a typo is an error, not a silent nothing).
fn parse_actions(list: &str) -> Option<Actions> {
    list.split(',').try_fold(Actions::NONE, |a, w| {
        Some(a.union(match w {
            "pull" => Actions::PULL,
            "push" => Actions::PUSH,
            "delete" => Actions::DELETE,
            _ => return None,
        }))
    })
}

fn valid_glob(glob: &str) -> bool {
    !glob.is_empty()
        && glob
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/*".contains(&b))
}

/// `*` matches any run of characters (slashes too); everything else matches itself.
fn glob_matches(glob: &str, name: &str) -> bool {
    let (g, n) = (glob.as_bytes(), name.as_bytes());
    // The classic two-pointer match with one backtrack point: linear in practice, no
    // recursion for a hostile pattern to exploit (the patterns are the operator's anyway).
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() && g[gi] == b'*' {
            star = Some((gi, ni));
            gi += 1;
        } else if gi < g.len() && g[gi] == n[ni] {
            gi += 1;
            ni += 1;
        } else if let Some((sg, sn)) = star {
            gi = sg + 1;
            ni = sn + 1;
            star = Some((sg, sn + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Htpasswd {
        let hash = bcrypt::hash("pw", 4).unwrap();
        Htpasswd::parse(&format!("alice:{hash}\nbob:{hash}\n")).unwrap()
    }

    fn repo(name: &str, a: Actions) -> Scope {
        Scope {
            resource: Resource::Repository(name.into()),
            actions: a,
        }
    }

    const PULL_PUSH: Actions = Actions::PULL.union(Actions::PUSH);

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_matches("*", "a/b/c"));
        assert!(glob_matches("team/*", "team/app"));
        assert!(glob_matches("team/*", "team/a/b"));
        assert!(!glob_matches("team/*", "teams/app"));
        assert!(!glob_matches("team/*", "team"));
        assert!(glob_matches("*-dev", "app-dev"));
        assert!(glob_matches("a*b*c", "aXbYc"));
        assert!(!glob_matches("a*b*c", "aXbY"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exactly"));
    }

    #[test]
    fn without_a_file_users_pull_and_push_and_anonymous_gets_nothing() {
        let p = Policy::open_to_users(false, false, false);
        assert_eq!(p.allowed(Some("alice"), "x"), PULL_PUSH);
        assert_eq!(p.allowed(None, "x"), Actions::NONE);
        assert!(p.catalog_allowed(Some("alice")));
        assert!(!p.catalog_allowed(None));
        assert!(p.grant(None, &[repo("x", Actions::PULL)]).is_empty());
        let p = Policy::open_to_users(true, false, true);
        assert_eq!(p.allowed(None, "x"), Actions::PULL);
        assert_eq!(p.allowed(Some("bob"), "x"), Actions::ALL);
    }

    #[test]
    fn read_only_grants_no_push() {
        let p = Policy::open_to_users(false, true, true);
        let g = p.grant(Some("alice"), &[repo("x", PULL_PUSH)]);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].actions, vec!["pull"]);
    }

    #[test]
    fn an_access_file_grants_the_union_of_matching_lines() {
        let text = "# who may do what\nalice team/* pull,push\n* public/* pull\nbob * pull\n";
        let p = Policy::open_to_users(false, false, true)
            .with_access_file(text, &users())
            .unwrap();
        assert_eq!(p.allowed(Some("alice"), "team/app"), PULL_PUSH);
        assert_eq!(p.allowed(Some("alice"), "public/x"), Actions::PULL);
        assert_eq!(p.allowed(Some("alice"), "other"), Actions::NONE);
        assert_eq!(p.allowed(Some("bob"), "team/app"), Actions::PULL);
        assert_eq!(p.allowed(None, "public/x"), Actions::NONE);
        assert!(p.catalog_allowed(Some("bob")));
        assert!(!p.catalog_allowed(Some("alice")));
        let g = p.grant(
            Some("alice"),
            &[
                repo("team/app", Actions::ALL),
                repo("other", Actions::PULL),
                Scope {
                    resource: Resource::Catalog,
                    actions: Actions::ALL,
                },
            ],
        );
        assert_eq!(g.len(), 1, "{g:?}");
        assert_eq!(g[0].name, "team/app");
        assert_eq!(g[0].actions, vec!["pull", "push"]);
    }

    #[test]
    fn a_malformed_access_file_is_refused_naming_the_line() {
        let u = users();
        let p = || Policy::open_to_users(false, false, false);
        for (text, line, why) in [
            ("alice * pull\nalice team\n", "line 2", "expected"),
            ("carol * pull\n", "line 1", "no such user"),
            ("# c\n\nalice Team/* pull\n", "line 3", "glob"),
            ("alice * pull,write\n", "line 1", "actions"),
            ("alice * pull,\n", "line 1", "actions"),
            ("alice * pull extra\n", "line 1", "expected"),
        ] {
            let e = p().with_access_file(text, &u).unwrap_err();
            assert!(e.contains(line) && e.contains(why), "{text:?}: {e}");
        }
        assert!(p().with_access_file("# nothing\n", &u).is_err());
    }
}
