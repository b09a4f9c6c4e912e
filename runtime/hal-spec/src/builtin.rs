//! Helps and agents compiled into the binary. A home repo overrides one by committing a file of the same
//! name on `main` (`helps/<name>.yaml`, `agents/<name>.yaml`).

/// Built-in helps: name and YAML text.
pub const HELPS: &[(&str, &str)] = &[
    ("assessor", include_str!("../../../helps/assessor.yaml")),
    ("goalie", include_str!("../../../helps/goalie.yaml")),
    ("hal", include_str!("../../../helps/hal.yaml")),
    ("help-author", include_str!("../../../helps/help-author.yaml")),
    ("plugin-author", include_str!("../../../helps/plugin-author.yaml")),
    ("stuck-finder", include_str!("../../../helps/stuck-finder.yaml")),
];

/// Built-in agents: name and YAML text.
pub const AGENTS: &[(&str, &str)] = &[("hal", include_str!("../../../agents/hal.yaml"))];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_is_valid() {
        for (name, text) in HELPS {
            crate::Help::parse(&format!("helps/{name}.yaml"), text).unwrap_or_else(|e| panic!("{e}"));
        }
        for (name, text) in AGENTS {
            crate::Agent::parse(&format!("agents/{name}.yaml"), text).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
