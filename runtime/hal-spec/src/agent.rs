//! Agents: who works on a thread.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::problem::SpecError;
use crate::validate::Schema;

/// The schema every agent is validated against (`schemas/agent.schema.json`).
pub const AGENT_SCHEMA: &str = include_str!("../../../schemas/agent.schema.json");

/// A validated agent. The fields mirror `schemas/agent.schema.json`, which documents them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Agent {
    /// What the agent is for.
    pub description: String,
    /// Paragraphs of its system prompt.
    pub persona: Vec<String>,
    /// The helps it may run (a help it runs may call only these as sub-helps); every help when absent.
    pub helps: Option<Vec<String>>,
    /// The isolates, isolate functions and plugins it may call (`files`, `files.write`, `wordcount@v2`); every
    /// one `hal.yaml` grants when absent.
    pub isolates: Option<Vec<String>>,
    /// A model named in `hal.yaml`.
    pub model: Option<String>,
    /// A task class routed to a model by `hal.yaml`.
    pub task: Option<String>,
}

impl Agent {
    /// Whether the agent may run help `name`.
    pub fn may_run(&self, name: &str) -> bool {
        self.helps.as_ref().is_none_or(|helps| helps.iter().any(|help| help == name))
    }

    /// Whether the agent may call the tool `tool` (`<isolate>[@v<N>].<function>`): its list names the isolate
    /// (any version, or that one) or the function.
    pub fn may_call(&self, tool: &str) -> bool {
        let Some(isolates) = &self.isolates else { return true };
        let (isolate, function) = tool.split_once('.').unwrap_or((tool, ""));
        let (name, version) = isolate.split_once('@').map_or((isolate, None), |(n, v)| (n, Some(v)));
        isolates.iter().any(|entry| {
            let (entry, entry_version) = entry.split_once('@').map_or((entry.as_str(), None), |(e, v)| (e, Some(v)));
            let (entry_name, entry_function) = entry.split_once('.').map_or((entry, None), |(n, f)| (n, Some(f)));
            entry_name == name
                && entry_function.is_none_or(|f| f == function)
                && entry_version.is_none_or(|v| Some(v) == version)
        })
    }

    /// Parse and validate an agent file. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Agent, SpecError> {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::new(AGENT_SCHEMA)).load(file, text)
    }
}

#[cfg(test)]
mod tests {
    use super::Agent;

    #[test]
    fn an_agent_calls_what_its_lists_name_and_everything_without_them() {
        let open = Agent::parse("agents/open.yaml", "description: any\n").expect("valid");
        assert!(open.may_run("anything") && open.may_call("threads.start") && open.may_call("wc@v3.count"));
        let text = "description: narrow\nhelps: [summary]\nisolates: [files.read, git, wc@v2]\n";
        let narrow = Agent::parse("agents/narrow.yaml", text).expect("valid");
        assert!(narrow.may_run("summary") && !narrow.may_run("hal"));
        assert!(narrow.may_call("files.read") && !narrow.may_call("files.write") && !narrow.may_call("filesx.read"));
        assert!(narrow.may_call("git.show") && narrow.may_call("git.read"));
        assert!(narrow.may_call("wc@v2.count") && !narrow.may_call("wc@v1.count") && !narrow.may_call("wc.count"));
        let none = Agent::parse("agents/none.yaml", "description: none\nhelps: []\nisolates: []\n").expect("valid");
        assert!(!none.may_run("hal") && !none.may_call("files.read"));
    }
}
