//! What a help's `commands` may name: a tool (`files.read`), a group of tools (`files`: every `files.*`), or a
//! help. One answer for `hal help validate` (from the daemon's catalogue) and `helps.check` (from a run's
//! toolbox), with the closest names when a command names nothing.

/// The tools and helps a help's commands may name.
pub struct Callable<'a> {
    tools: &'a [String],
    helps: Vec<&'a str>,
}

impl<'a> Callable<'a> {
    /// What `tools` (full names) and `helps` offer.
    pub fn new(tools: &'a [String], helps: impl IntoIterator<Item = &'a str>) -> Callable<'a> {
        Callable { tools, helps: helps.into_iter().collect() }
    }

    /// Whether `command` names a tool, a group of tools or a help.
    pub fn names(&self, command: &str) -> bool {
        let group = format!("{command}.");
        self.tools.iter().any(|tool| tool == command || tool.starts_with(&group)) || self.helps.contains(&command)
    }

    /// Up to three names (tools, groups, helps) close to `command`, closest first: what was likely meant.
    pub fn closest(&self, command: &str) -> Vec<&'a str> {
        let groups = self.tools.iter().filter_map(|tool| tool.split_once('.').map(|(group, _)| group));
        let mut candidates: Vec<&'a str> =
            self.tools.iter().map(String::as_str).chain(groups).chain(self.helps.iter().copied()).collect();
        candidates.sort_unstable();
        candidates.dedup();
        let mut close: Vec<(f64, &'a str)> = candidates
            .into_iter()
            .map(|name| (strsim::jaro_winkler(command, name), name))
            .filter(|(score, _)| *score >= 0.8)
            .collect();
        close.sort_by(|a, b| b.0.total_cmp(&a.0));
        close.into_iter().take(3).map(|(_, name)| name).collect()
    }
}

/// `names` as a person reads them in a hint: `` `a` or `b` ``.
pub fn either(names: &[&str]) -> String {
    names.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_names_a_tool_a_group_or_a_help_and_a_near_miss_gets_the_closest() {
        let tools = ["files.read".to_owned(), "files.write".to_owned(), "http.get".to_owned()];
        let callable = Callable::new(&tools, ["summary"]);
        for command in ["files.read", "files", "http", "summary"] {
            assert!(callable.names(command), "{command}");
        }
        for command in ["file", "files.re", "fil", "summaries", "files.read.x"] {
            assert!(!callable.names(command), "{command}");
        }
        assert_eq!(callable.closest("file")[0], "files");
        assert_eq!(callable.closest("files.raed")[0], "files.read");
        assert_eq!(callable.closest("sumary"), ["summary"]);
        assert!(callable.closest("zzz").is_empty());
        assert_eq!(either(&["a", "b"]), "`a` or `b`");
    }
}
