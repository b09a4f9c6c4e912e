//! Changing one rule of `hal.yaml`'s `policy` as text, keeping every comment and line of the owner's file: what
//! `hal approve --scope always` commits. Block mappings are followed key by key; a one-line flow mapping
//! (`writer: {files.write: AL1}`) at the end of the path is edited in place. Anything else (anchors, multi-line
//! flow, a key that is not plain) is refused with the rule to add by hand: the edit is checked by reading the
//! result back, and a file it cannot edit with certainty is never written.

use crate::policy::{Level, Rule};
use crate::settings::Settings;

/// Where a rule lives in `policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// `policy.tools`.
    Tools,
    /// `policy.helps.<help>`.
    Help(String),
}

impl Place {
    /// The place of a new rule that overrides `rule` for one tool: a help's rules come before the repo's, so a
    /// help's rule is overridden in that help's own rules.
    pub fn overriding(rule: &Rule) -> Place {
        match rule {
            Rule::Help(help, _) => Place::Help(help.clone()),
            Rule::Tool(_) | Rule::Default | Rule::BuiltIn => Place::Tools,
        }
    }
}

/// `text` (a valid `hal.yaml`) with `tool` set to `level` at `place`, checked by reading it back: the level of
/// `tool` in runs of `help` is then `level`, and nothing else of the settings changed.
pub fn set_level(text: &str, place: &Place, help: &str, tool: &str, level: Level) -> Result<String, String> {
    let before = Settings::parse("hal.yaml", text).map_err(|e| format!("hal.yaml does not read: {e}"))?;
    let path: Vec<&str> = match place {
        Place::Tools => vec!["policy", "tools", tool],
        Place::Help(name) => vec!["policy", "helps", name, tool],
    };
    let by_hand = |why: String| format!("{why}; add `{}: {}` by hand", path.join("."), level.as_str());
    if path.iter().any(|key| !is_plain_key(key)) {
        return Err(by_hand(format!("`{}` is not a plain YAML key", path.join("."))));
    }
    let edited = set_path(text, &path, level.as_str()).map_err(by_hand)?;
    let after = Settings::parse("hal.yaml", &edited)
        .map_err(|e| by_hand(format!("the edited hal.yaml would not read ({e})")))?;
    let mut expected = before.policy.clone();
    match place {
        Place::Tools => drop(expected.tools.insert(tool.to_owned(), level)),
        Place::Help(name) => drop(expected.helps.entry(name.clone()).or_default().insert(tool.to_owned(), level)),
    }
    let same_rest = Settings { policy: expected.clone(), ..before } == after;
    if !same_rest || after.policy.level(help, tool, Level::Autonomous).0 != level {
        return Err(by_hand("the edit would not say exactly that".to_owned()));
    }
    Ok(edited)
}

/// Whether `key` can be written as a plain YAML key as it is.
fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '/'))
        && !key.starts_with(['@', '-'])
}

/// `text` with the mapping value at `path` set to `value`, made where it is missing.
fn set_path(text: &str, path: &[&str], value: &str) -> Result<String, String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // The block being searched: lines [start, end) whose keys sit at `indent`.
    let (mut start, mut end, mut indent) = (0, lines.len(), 0_usize);
    for (depth, key) in path.iter().enumerate() {
        let last = depth + 1 == path.len();
        let found = (start..end).find(|&n| key_at(&lines[n], indent) == Some(key));
        let Some(at) = found else {
            // Missing from here on: new lines after the block's last line, each level two spaces deeper (or as
            // deep as the block's keys are).
            let mut new = Vec::new();
            for (offset, key) in path[depth..].iter().enumerate() {
                let pad = " ".repeat(indent + 2 * offset);
                match depth + offset + 1 == path.len() {
                    true => new.push(format!("{pad}{key}: {value}")),
                    false => new.push(format!("{pad}{key}:")),
                }
            }
            let insert_at = last_content_line(&lines, start, end).map_or(start, |n| n + 1);
            lines.splice(insert_at..insert_at, new);
            return Ok(joined(lines));
        };
        let rest = after_key(&lines[at], indent);
        let (content, comment) = split_comment(rest);
        if last {
            if content.starts_with(['&', '*', '!', '|', '>']) {
                return Err(format!("`{key}` has a value HAL does not edit ({content})"));
            }
            lines[at] = format!("{}{key}: {value}{comment}", " ".repeat(indent));
            return Ok(joined(lines));
        }
        if !content.is_empty() {
            if depth + 2 == path.len() && content.starts_with('{') && content.ends_with('}') {
                let flow = set_in_flow(content, path[depth + 1], value)?;
                lines[at] = format!("{}{key}: {flow}{comment}", " ".repeat(indent));
                return Ok(joined(lines));
            }
            return Err(format!("`{key}` holds `{content}`, which HAL does not edit"));
        }
        // Its block: the following lines indented deeper (blank lines and comments inside it belong to it).
        let child_start = at + 1;
        let mut child_end = child_start;
        let mut child_indent = None;
        for (n, line) in lines.iter().enumerate().take(end).skip(child_start) {
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let deeper = indentation(line);
            if deeper <= indent {
                break;
            }
            child_indent.get_or_insert(deeper);
            child_end = n + 1;
        }
        (start, end, indent) = (child_start, child_end.max(child_start), child_indent.unwrap_or(indent + 2));
    }
    Err("an empty path".to_owned())
}

/// The key a line holds when it is a mapping entry at exactly `indent`.
fn key_at(line: &str, indent: usize) -> Option<&str> {
    if indentation(line) != indent {
        return None;
    }
    let rest = &line[indent..];
    let colon = rest.find(':')?;
    let after = &rest[colon + 1..];
    if !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return None;
    }
    Some(rest[..colon].trim().trim_matches(['"', '\'']))
}

/// What follows `key:` on its line.
fn after_key(line: &str, indent: usize) -> &str {
    let rest = &line[indent..];
    rest.find(':').map_or("", |colon| &rest[colon + 1..])
}

/// A value and its comment (` # …`, kept with its spaces), when it has one; quotes are not looked into (a quoted
/// value is refused by the caller anyway unless it is the last key's).
fn split_comment(rest: &str) -> (&str, &str) {
    let value = match rest.find(" #") {
        Some(at) => rest[..at].trim_end(),
        None => rest.trim_end(),
    };
    (value.trim_start(), &rest[value.len()..])
}

/// A one-line flow mapping `{a: X, b: Y}` with `key` set to `value`.
fn set_in_flow(flow: &str, key: &str, value: &str) -> Result<String, String> {
    let inner = &flow[1..flow.len() - 1];
    if inner.contains(['{', '}', '[', ']', '"', '\'', '&', '*', '#']) {
        return Err(format!("`{flow}` is a flow mapping HAL does not edit"));
    }
    let mut entries = Vec::new();
    let mut replaced = false;
    for entry in inner.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let Some((name, _)) = entry.split_once(':') else {
            return Err(format!("`{flow}` holds `{entry}`, which is no `key: value`"));
        };
        if name.trim() == key {
            entries.push(format!("{key}: {value}"));
            replaced = true;
        } else {
            entries.push(entry.to_owned());
        }
    }
    if !replaced {
        entries.push(format!("{key}: {value}"));
    }
    Ok(format!("{{{}}}", entries.join(", ")))
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// The last line in [start, end) that is neither blank nor a comment.
fn last_content_line(lines: &[String], start: usize, end: usize) -> Option<usize> {
    (start..end).rev().find(|&n| !lines[n].trim().is_empty() && !lines[n].trim_start().starts_with('#'))
}

/// `lines` joined, ending with a newline.
fn joined(lines: Vec<String>) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::{Place, set_level};
    use crate::policy::Level;

    const HEAD: &str = "version: 1\n# who may do what\n";

    fn set(text: &str, place: &Place, tool: &str) -> Result<String, String> {
        set_level(&format!("{HEAD}{text}"), place, "writer", tool, Level::ActAndTell)
    }

    #[test]
    fn a_rule_is_added_where_it_is_missing_and_comments_stay() {
        let none = set("models: {}\n", &Place::Tools, "files.write").expect("edited");
        assert_eq!(none, format!("{HEAD}models: {{}}\npolicy:\n  tools:\n    files.write: AL2\n"));
        let text = "policy:\n    # the owner's note\n    default: AL1   # careful\n\nmodels: {}\n";
        let edited = set(text, &Place::Tools, "files.write").expect("edited");
        assert_eq!(
            edited,
            format!(
                "{HEAD}policy:\n    # the owner's note\n    default: AL1   # careful\n    tools:\n      files.write: AL2\n\nmodels: {{}}\n"
            )
        );
    }

    #[test]
    fn an_existing_rule_is_replaced_keeping_its_comment() {
        let text = "policy:\n  tools:\n    http: AL2\n    files.write: AL1  # ask me\n";
        let edited = set(text, &Place::Tools, "files.write").expect("edited");
        assert_eq!(edited, format!("{HEAD}policy:\n  tools:\n    http: AL2\n    files.write: AL2  # ask me\n"));
    }

    #[test]
    fn a_helps_rule_is_overridden_in_the_helps_own_rules_block_or_flow() {
        let flow = "policy:\n  helps:\n    writer: {files: AL1, http: AL3}\n";
        let edited = set(flow, &Place::Help("writer".into()), "files.write").expect("edited");
        assert!(edited.ends_with("    writer: {files: AL1, http: AL3, files.write: AL2}\n"), "{edited}");
        let block = "policy:\n  helps:\n    other:\n      files: AL1\n";
        let edited = set(block, &Place::Help("writer".into()), "files.write").expect("edited");
        assert!(edited.ends_with("      files: AL1\n    writer:\n      files.write: AL2\n"), "{edited}");
    }

    #[test]
    fn what_cannot_be_edited_for_certain_is_refused_with_the_rule_to_add() {
        let flow = "policy: {tools: {files.write: AL1}}\n";
        let refused = set(flow, &Place::Tools, "files.write").expect_err("refused");
        assert!(refused.contains("add `policy.tools.files.write: AL2` by hand"), "{refused}");
        let refused = set("policy:\n  tools: {a: AL1}\n", &Place::Tools, "-x").expect_err("refused");
        assert!(refused.contains("not a plain YAML key"), "{refused}");
    }
}
