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
    pub fn check_tree(&self, access: TreeAccess) -> Result<(), String> {
        if self.tree >= access {
            return Ok(());
        }
        let word = if access == TreeAccess::Write { "write" } else { "read" };
        if self.asked.tree < access {
            return Err(format!(
                "isolate `{}` may not {word} the thread's files: its isolate.yaml does not ask for `tree: {word}`",
                self.isolate
            ));
        }
        Err(format!(
            "isolate `{}` may not {word} the thread's files: grant it with `sandbox.isolates.{}.tree: {word}` in \
             hal.yaml on main",
            self.isolate, self.isolate
        ))
    }

    /// Whether `host` may be fetched from, or why not.
    pub fn check_host(&self, host: &str) -> Result<(), String> {
        if self.hosts.iter().any(|h| h == host) {
            return Ok(());
        }
        if !self.asked.http.iter().any(|h| h == host || h == "*") {
            return Err(format!(
                "isolate `{}` may not fetch from {host}: its isolate.yaml does not list that host under \
                 `capabilities.http`",
                self.isolate
            ));
        }
        Err(format!(
            "isolate `{}` may not fetch from {host}: add it to `sandbox.isolates.{}.http` in hal.yaml on main",
            self.isolate, self.isolate
        ))
    }

    /// Whether secret `name` may be read, or why not.
    pub fn check_secret(&self, name: &str) -> Result<(), String> {
        if self.secrets.iter().any(|s| s == name) {
            return Ok(());
        }
        if !self.asked.secrets.iter().any(|s| s == name) {
            return Err(format!(
                "isolate `{}` may not read the secret {name}: its isolate.yaml does not declare it under \
                 `capabilities.secrets`",
                self.isolate
            ));
        }
        Err(format!(
            "isolate `{}` may not read the secret {name}: add it to `sandbox.isolates.{}.secrets` in hal.yaml on main",
            self.isolate, self.isolate
        ))
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
        assert!(granted.check_host("a.example").expect_err("not granted").contains("sandbox.isolates.w.http"));
        assert!(granted.check_host("c.example").expect_err("not asked").contains("isolate.yaml"));
        assert!(granted.check_tree(TreeAccess::Write).expect_err("read only").contains("tree: write"));
        assert!(granted.check_secret("KEY").expect_err("not granted").contains("sandbox.isolates.w.secrets"));
        assert!(granted.check_secret("OTHER").expect_err("undeclared").contains("does not declare"));
        let builtin =
            Granted::new("files", &Capabilities { tree: TreeAccess::Write, ..Default::default() }, None, true);
        assert_eq!(builtin.tree, TreeAccess::Write, "built-ins get the tree access they ask for");
        let wildcard =
            Granted::new("http", &Capabilities { http: vec!["*".into()], ..Default::default() }, Some(&policy), true);
        assert_eq!(wildcard.hosts, ["b.example", "c.example"]);
    }
}
