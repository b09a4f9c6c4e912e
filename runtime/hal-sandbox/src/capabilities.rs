//! What an isolate may do: what its manifest asks for, as far as `hal.yaml` grants it.

use hal_spec::{Capabilities, IsolatePolicy, TreeAccess};

/// The capabilities one isolate has, and enough of what it asked for to explain a refusal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Granted {
    /// The isolate's name.
    pub isolate: String,
    /// Access to the thread's tree.
    pub tree: TreeAccess,
    /// Hosts it may fetch from.
    pub hosts: Vec<String>,
    /// Secrets it may read.
    pub secrets: Vec<String>,
    /// What its manifest asked for.
    pub asked: Capabilities,
}

impl Granted {
    /// Grant `asked` as far as `policy` allows. A built-in isolate gets the tree access it asks for unless
    /// the policy says otherwise; any other isolate gets only what the policy grants.
    pub fn new(isolate: &str, asked: &Capabilities, policy: Option<&IsolatePolicy>, builtin: bool) -> Granted {
        let policy_tree = policy.and_then(|p| p.tree).unwrap_or(if builtin { asked.tree } else { TreeAccess::None });
        let granted_hosts: &[String] = policy.map_or(&[], |p| &p.http);
        let hosts = if asked.http.iter().any(|h| h == "*") {
            granted_hosts.to_vec()
        } else {
            asked.http.iter().filter(|h| granted_hosts.contains(h)).cloned().collect()
        };
        let granted_secrets: &[String] = policy.map_or(&[], |p| &p.secrets);
        Granted {
            isolate: isolate.to_owned(),
            tree: asked.tree.min(policy_tree),
            hosts,
            secrets: asked.secrets.iter().filter(|s| granted_secrets.contains(s)).cloned().collect(),
            asked: asked.clone(),
        }
    }

    /// Whether the tree may be used as `access`, or why not.
    pub fn check_tree(&self, access: TreeAccess) -> Result<(), Denied> {
        if self.tree >= access {
            return Ok(());
        }
        let word = if access == TreeAccess::Write { "write" } else { "read" };
        Err(Denied {
            isolate: self.isolate.clone(),
            what: format!("{word} the thread's files"),
            fix: if self.asked.tree < access {
                Fix::Ask(format!("its isolate.yaml does not ask for `tree: {word}`"))
            } else {
                Fix::Grant(format!(
                    "grant it with `sandbox.isolates.{}.tree: {word}` in hal.yaml on main",
                    self.isolate
                ))
            },
        })
    }

    /// Whether `host` may be fetched from, or why not.
    pub fn check_host(&self, host: &str) -> Result<(), Denied> {
        if self.hosts.iter().any(|h| h == host) {
            return Ok(());
        }
        Err(Denied {
            isolate: self.isolate.clone(),
            what: format!("fetch from {host}"),
            fix: if !self.asked.http.iter().any(|h| h == host || h == "*") {
                Fix::Ask("its isolate.yaml does not list that host under `capabilities.http`".to_owned())
            } else {
                Fix::Grant(format!("add it to `sandbox.isolates.{}.http` in hal.yaml on main", self.isolate))
            },
        })
    }

    /// Whether secret `name` may be read, or why not.
    pub fn check_secret(&self, name: &str) -> Result<(), Denied> {
        if self.secrets.iter().any(|s| s == name) {
            return Ok(());
        }
        Err(Denied {
            isolate: self.isolate.clone(),
            what: format!("read the secret {name}"),
            fix: if !self.asked.secrets.iter().any(|s| s == name) {
                Fix::Ask("its isolate.yaml does not declare it under `capabilities.secrets`".to_owned())
            } else {
                Fix::Grant(format!("add it to `sandbox.isolates.{}.secrets` in hal.yaml on main", self.isolate))
            },
        })
    }
}

/// An isolate asked for something it may not do, and how that would change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("isolate `{isolate}` may not {what}: {fix}")]
pub struct Denied {
    /// The isolate.
    pub isolate: String,
    /// What it may not do (`fetch from example.com`).
    pub what: String,
    /// Who could change that.
    pub fix: Fix,
}

/// Who could let an isolate do what it was denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fix {
    /// Its author: the isolate's manifest does not ask for it (the owner cannot grant what is not asked).
    #[error("{0}")]
    Ask(String),
    /// The repo's owner: `hal.yaml` does not grant it.
    #[error("{0}")]
    Grant(String),
}

/// The guest sees a denial as the text of its error.
impl From<Denied> for String {
    fn from(denied: Denied) -> String {
        denied.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_the_intersection_and_refusals_say_how_to_grant() {
        let asked = Capabilities {
            tree: TreeAccess::Write,
            http: vec!["a.example".into(), "b.example".into()],
            secrets: vec!["KEY".into()],
        };
        let policy = IsolatePolicy {
            tree: Some(TreeAccess::Read),
            http: vec!["b.example".into(), "c.example".into()],
            secrets: vec![],
            limits: Default::default(),
        };
        let granted = Granted::new("w", &asked, Some(&policy), false);
        assert_eq!(granted.tree, TreeAccess::Read);
        assert_eq!(granted.hosts, ["b.example"]);
        assert!(granted.check_host("b.example").is_ok());
        let refusal = |denied: Result<(), Denied>| denied.expect_err("refused").to_string();
        assert!(refusal(granted.check_host("a.example")).contains("sandbox.isolates.w.http"));
        assert!(matches!(granted.check_host("c.example"), Err(Denied { fix: Fix::Ask(_), .. })), "not asked");
        assert!(refusal(granted.check_host("c.example")).contains("isolate.yaml"));
        assert!(refusal(granted.check_tree(TreeAccess::Write)).contains("tree: write"));
        assert!(refusal(granted.check_secret("KEY")).contains("sandbox.isolates.w.secrets"));
        assert!(refusal(granted.check_secret("OTHER")).contains("does not declare"));
        let builtin =
            Granted::new("files", &Capabilities { tree: TreeAccess::Write, ..Default::default() }, None, true);
        assert_eq!(builtin.tree, TreeAccess::Write, "built-ins get the tree access they ask for");
        let wildcard =
            Granted::new("http", &Capabilities { http: vec!["*".into()], ..Default::default() }, Some(&policy), true);
        assert_eq!(wildcard.hosts, ["b.example", "c.example"]);
    }
}
