//! The `files` tools, natively in Rust: read, list, write and search the thread's tree. They stand in for the
//! `files` isolate until the sandbox runs WebAssembly components, with the same names and schemas.

use std::sync::Arc;

use hal_model::ToolSpec;
use serde_json::{Value, json};

use crate::tools::{BoxFuture, Tool, ToolContext, ToolResult, Toolbox};

/// Longest file content returned by `files.read`, in bytes.
const MAX_READ: usize = 100 * 1024;
/// Most matches returned by `files.search`.
const MAX_MATCHES: usize = 200;

/// Add `files.read`, `files.list`, `files.write` and `files.search` to `toolbox`.
pub fn add_files_tools(toolbox: &mut Toolbox) -> Result<(), String> {
    for operation in [Operation::Read, Operation::List, Operation::Write, Operation::Search] {
        toolbox.add(Arc::new(Files::new(operation)))?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Operation {
    Read,
    List,
    Write,
    Search,
}

struct Files {
    operation: Operation,
    spec: ToolSpec,
}

impl Files {
    fn new(operation: Operation) -> Files {
        let (name, description, parameters) = match operation {
            Operation::Read => (
                "files.read",
                "Read a text file of the thread's working tree.",
                json!({"type": "object", "required": ["path"], "additionalProperties": false,
                    "properties": {"path": {"type": "string", "description": "Path from the root, e.g. notes/a.md"}}}),
            ),
            Operation::List => (
                "files.list",
                "List the files of the thread's working tree with their sizes, optionally under a directory.",
                json!({"type": "object", "additionalProperties": false,
                    "properties": {"prefix": {"type": "string", "description": "Only paths starting with this"}}}),
            ),
            Operation::Write => (
                "files.write",
                "Write a text file in the thread's working tree (created or replaced). The change is part of the thread's work, merged into main when a person accepts it.",
                json!({"type": "object", "required": ["path", "content"], "additionalProperties": false,
                    "properties": {"path": {"type": "string"}, "content": {"type": "string"}}}),
            ),
            Operation::Search => (
                "files.search",
                "Search the thread's working tree for lines matching a regular expression.",
                json!({"type": "object", "required": ["pattern"], "additionalProperties": false,
                    "properties": {"pattern": {"type": "string", "description": "A regular expression"},
                        "prefix": {"type": "string", "description": "Only paths starting with this"}}}),
            ),
        };
        Files { operation, spec: ToolSpec { name: name.to_owned(), description: description.to_owned(), parameters } }
    }

    fn run(&self, arguments: &Value, context: &mut ToolContext) -> Result<String, String> {
        let text = |key: &str| arguments.get(key).and_then(Value::as_str).unwrap_or_default();
        match self.operation {
            Operation::Read => {
                let path = text("path");
                let bytes = context.read(path)?.ok_or_else(|| format!("there is no file {path}"))?;
                let shown = &bytes[..bytes.len().min(MAX_READ)];
                let mut content = String::from_utf8_lossy(shown).into_owned();
                if bytes.len() > MAX_READ {
                    content.push_str(&format!("\n[… {} more bytes not shown]", bytes.len() - MAX_READ));
                }
                Ok(content)
            }
            Operation::List => {
                let prefix = text("prefix");
                let lines: Vec<String> = context
                    .list()?
                    .into_iter()
                    .filter(|(path, _)| path.starts_with(prefix))
                    .map(|(path, size)| format!("{path} ({size} bytes)"))
                    .collect();
                Ok(if lines.is_empty() { "(no files)".to_owned() } else { lines.join("\n") })
            }
            Operation::Write => {
                let (path, content) = (text("path"), text("content"));
                context.write(path, content.as_bytes().to_vec())?;
                Ok(format!("wrote {path} ({} bytes)", content.len()))
            }
            Operation::Search => {
                let pattern = regex::Regex::new(text("pattern")).map_err(|e| format!("invalid pattern: {e}"))?;
                let prefix = text("prefix");
                let mut matches = Vec::new();
                for (path, _) in context.list()?.into_iter().filter(|(path, _)| path.starts_with(prefix)) {
                    let Some(bytes) = context.read(&path)? else { continue };
                    let Ok(content) = String::from_utf8(bytes) else { continue };
                    for (number, line) in content.lines().enumerate() {
                        if pattern.is_match(line) {
                            matches.push(format!("{path}:{}: {line}", number + 1));
                            if matches.len() == MAX_MATCHES {
                                matches.push(format!("[stopped at {MAX_MATCHES} matches]"));
                                return Ok(matches.join("\n"));
                            }
                        }
                    }
                }
                Ok(if matches.is_empty() { "(no matches)".to_owned() } else { matches.join("\n") })
            }
        }
    }
}

impl Tool for Files {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, arguments: Value, context: &'a mut ToolContext) -> BoxFuture<'a, ToolResult> {
        Box::pin(async move {
            match self.run(&arguments, context) {
                Ok(content) => ToolResult::ok(content),
                Err(reason) => ToolResult::error(reason),
            }
        })
    }
}
