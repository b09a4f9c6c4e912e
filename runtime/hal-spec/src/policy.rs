//! The `policy` section of `hal.yaml`: how far HAL may act on its own, per tool, per help and by default (the
//! autonomy levels of ARCHITECTURE.md §6), and what it never calls.
//!
//! A rule names a tool as a help's command does: an isolate (`http`), one of its functions (`http.fetch`), a
//! plugin or one version of it (`wordcount`, `wordcount@v2`), or a sub-help by name. The most specific rule wins:
//! the help's own rules before the repo's, a function before its isolate. The runner holds a call to the
//! strictest of that and two more: what the rules say of the plugin version the call runs (`wordcount@v2` while
//! `wordcount` is v2), and what the own rules of the helps whose run called this one say ([`Policy::call_level`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An autonomy level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    /// Propose only: the call is recorded, never run; the model hears "proposed, not executed".
    #[serde(rename = "AL0")]
    Propose,
    /// Approve each: the run waits for an owner's signed approval of the exact call before it runs.
    #[serde(rename = "AL1")]
    ApproveEach,
    /// Act and tell: the call runs, and the owner is told in their backchat what ran.
    #[serde(rename = "AL2")]
    ActAndTell,
    /// Autonomous within the limits and budgets.
    #[serde(rename = "AL3")]
    Autonomous,
}

impl Level {
    /// Its name in `hal.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Propose => "AL0",
            Level::ApproveEach => "AL1",
            Level::ActAndTell => "AL2",
            Level::Autonomous => "AL3",
        }
    }
}

/// The `policy` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// The level of a call no rule names (the built-in defaults when absent).
    pub default: Option<Level>,
    /// Levels by tool.
    pub tools: BTreeMap<String, Level>,
    /// Levels by tool for the runs of one help, by help name.
    pub helps: BTreeMap<String, BTreeMap<String, Level>>,
    /// Tools (and helps) never called: not offered to the model, refused if called anyway.
    pub disabled: Vec<String>,
}

/// The level a call gets ([`Policy::call_level`]), the rule that gives it, and which of the call's names that rule
/// names (where an owner's change of it goes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLevel {
    /// The level.
    pub level: Level,
    /// The rule that gives it.
    pub rule: Rule,
    /// The call's name the rule names: the tool's, or the plugin version's.
    pub name: String,
}

/// Which rule gave a call its level, for the step that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `policy.helps.<help>.<pattern>`.
    Help(String, String),
    /// `policy.tools.<pattern>`.
    Tool(String),
    /// `policy.default`.
    Default,
    /// The built-in default for this kind of tool.
    BuiltIn,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Help(help, pattern) => write!(f, "policy.helps.{help}.{pattern} in hal.yaml"),
            Rule::Tool(pattern) => write!(f, "policy.tools.{pattern} in hal.yaml"),
            Rule::Default => write!(f, "policy.default in hal.yaml"),
            Rule::BuiltIn => write!(f, "HAL's default for it (set policy.tools in hal.yaml)"),
        }
    }
}

impl Policy {
    /// The level of a call of `tool` in a run of `help`, and the rule that says so; `built_in` is the level HAL
    /// gives that kind of tool when no rule names it.
    pub fn level(&self, help: &str, tool: &str, built_in: Level) -> (Level, Rule) {
        if let Some(rules) = self.helps.get(help)
            && let Some((pattern, level)) = most_specific(rules, tool)
        {
            return (level, Rule::Help(help.to_owned(), pattern));
        }
        if let Some((pattern, level)) = most_specific(&self.tools, tool) {
            return (level, Rule::Tool(pattern));
        }
        match self.default {
            Some(level) => (level, Rule::Default),
            None => (built_in, Rule::BuiltIn),
        }
    }

    /// The level of a call of `tool` in a run of `help`, as the runner holds it: the strictest of
    /// [`Policy::level`], of a rule naming the plugin version the call runs (`aliases`, such as `wc@v2.count` for
    /// `wc.count`: only rules that name a version count for those, so a broad `wc` rule never overrides a narrower
    /// `wc.count`), and of the own rules of `callers` (the helps whose run called this one) naming either.
    pub fn call_level(
        &self,
        help: &str,
        tool: &str,
        aliases: &[String],
        callers: &[String],
        built_in: Level,
    ) -> CallLevel {
        let (level, rule) = self.level(help, tool, built_in);
        let mut strictest = CallLevel { level, rule, name: tool.to_owned() };
        let mut consider = |found: Option<(String, Level)>, name: &str, rule: &dyn Fn(String) -> Rule| {
            if let Some((pattern, level)) = found
                && level < strictest.level
            {
                strictest = CallLevel { level, rule: rule(pattern), name: name.to_owned() };
            }
        };
        let versioned = |rules: &BTreeMap<String, Level>, alias: &str| {
            most_specific(rules.iter().filter(|(pattern, _)| pattern.contains('@')), alias)
        };
        for alias in aliases {
            // The help's own rules before the repo's, as for the tool's own name.
            let own = self.helps.get(help).and_then(|rules| versioned(rules, alias));
            match own {
                Some(found) => consider(Some(found), alias, &|pattern| Rule::Help(help.to_owned(), pattern)),
                None => consider(versioned(&self.tools, alias), alias, &|pattern| Rule::Tool(pattern)),
            }
        }
        for caller in callers {
            let Some(rules) = self.helps.get(caller) else { continue };
            let by_caller = |pattern| Rule::Help(caller.clone(), pattern);
            consider(most_specific(rules, tool), tool, &by_caller);
            for alias in aliases {
                consider(versioned(rules, alias), alias, &by_caller);
            }
        }
        strictest
    }

    /// Whether `tool` (or its isolate, or the plugin of that version) is disabled.
    pub fn is_disabled(&self, tool: &str) -> bool {
        self.disabled.iter().any(|pattern| specificity(pattern, tool).is_some())
    }
}

/// The rule of `rules` that names `tool` most specifically.
fn most_specific<'a>(rules: impl IntoIterator<Item = (&'a String, &'a Level)>, tool: &str) -> Option<(String, Level)> {
    rules
        .into_iter()
        .filter_map(|(pattern, level)| specificity(pattern, tool).map(|rank| (rank, pattern, *level)))
        .max_by_key(|(rank, _, _)| *rank)
        .map(|(_, pattern, level)| (pattern.clone(), level))
}

/// Whether `pattern` names `tool` as a rule does: the tool, its isolate (of that version), or the plugin.
pub fn names_tool(pattern: &str, tool: &str) -> bool {
    specificity(pattern, tool).is_some()
}

/// How specifically `pattern` names `tool` (`<isolate>[@v<N>].<function>`, or a help's name), if it does: the
/// whole name 3, the isolate of that version 2, the isolate 1.
fn specificity(pattern: &str, tool: &str) -> Option<u8> {
    if pattern == tool {
        return Some(3);
    }
    let isolate = tool.split_once('.').map_or(tool, |(isolate, _)| isolate);
    if pattern == isolate {
        return Some(if isolate.contains('@') { 2 } else { 1 });
    }
    let name = isolate.split_once('@').map_or(isolate, |(name, _)| name);
    (pattern == name).then_some(1)
}

#[cfg(test)]
mod tests {
    use super::{Level, Policy, Rule};

    #[test]
    fn the_most_specific_rule_wins_and_the_helps_own_first() {
        let text = "default: AL3\ntools: {http: AL2, http.fetch: AL0, wc: AL2, wc@v2: AL0}\nhelps: {brief: {http: AL3}}\n\
                    disabled: [git]\n";
        let policy: Policy = parse(text);
        assert_eq!(policy.level("any", "http.fetch", Level::Autonomous).0, Level::Propose);
        assert_eq!(policy.level("any", "http.post", Level::Autonomous).0, Level::ActAndTell);
        assert_eq!(
            policy.level("brief", "http.fetch", Level::Autonomous),
            (Level::Autonomous, Rule::Help("brief".into(), "http".into()))
        );
        assert_eq!(policy.level("any", "wc@v2.count", Level::Autonomous).0, Level::Propose);
        assert_eq!(policy.level("any", "wc@v1.count", Level::Autonomous).0, Level::ActAndTell);
        assert_eq!(policy.level("any", "files.read", Level::ActAndTell), (Level::Autonomous, Rule::Default));
        assert!(policy.is_disabled("git.show") && !policy.is_disabled("gitx.show"));
        let empty = Policy::default();
        assert_eq!(empty.level("any", "files.read", Level::ActAndTell), (Level::ActAndTell, Rule::BuiltIn));
    }

    /// A call's level is the strictest of its own, a rule naming the plugin version it runs, and the callers' own
    /// rules; a broad rule never overrides a narrower one through a version's name.
    #[test]
    fn a_call_is_held_to_the_strictest_of_its_names_and_its_callers_rules() {
        let aliases = ["wc@v2.count".to_owned()];
        let level = |policy: &Policy, callers: &[String]| {
            let found = policy.call_level("inner", "wc.count", &aliases, callers, Level::Autonomous);
            (found.level, found.rule.to_string(), found.name)
        };
        let policy = parse("tools: {wc: AL1, wc.count: AL3}\n");
        assert_eq!(level(&policy, &[]).0, Level::Autonomous, "wc.count is narrower than wc");
        let policy = parse("default: AL0\ntools: {wc.count: AL3}\n");
        assert_eq!(level(&policy, &[]).0, Level::Autonomous, "the default is no version's rule");
        let policy = parse("tools: {wc: AL3, wc@v2: AL0}\n");
        let (found, rule, name) = level(&policy, &[]);
        assert_eq!((found, name.as_str()), (Level::Propose, "wc@v2.count"));
        assert_eq!(rule, "policy.tools.wc@v2 in hal.yaml");
        let policy = parse("helps: {inner: {wc@v2: AL3}}\ntools: {wc@v2: AL0}\n");
        assert_eq!(level(&policy, &[]).0, Level::Autonomous, "the help's own rule first, as for the tool's name");
        let policy = parse("helps: {outer: {wc: AL0}, top: {wc@v2: AL1}}\n");
        let callers = ["top".to_owned(), "outer".to_owned()];
        let (found, rule, _) = level(&policy, &callers);
        assert_eq!((found, rule.as_str()), (Level::Propose, "policy.helps.outer.wc in hal.yaml"));
        assert_eq!(level(&policy, &callers[..1]).0, Level::ApproveEach, "two levels up holds too");
        let looser = parse("tools: {wc: AL1}\nhelps: {outer: {wc: AL3}}\n");
        assert_eq!(level(&looser, &callers).0, Level::ApproveEach, "a caller's rule never loosens");
    }

    /// The section as `hal.yaml` holds it, through the settings' own reader.
    fn parse(text: &str) -> Policy {
        let indented: String = text.lines().map(|line| format!("  {line}\n")).collect();
        crate::Settings::parse("hal.yaml", &format!("version: 1\npolicy:\n{indented}")).expect("valid").policy
    }
}
