//! The `files` isolate: the thread's working tree for a model.

wit_bindgen::generate!({ world: "isolate", path: "../../schemas/wit" });

use hal::isolate::tree;
use serde_json::{Value, json};

/// Longest content `read` returns, in bytes.
const MAX_READ: usize = 100 * 1024;
/// Most matches `search` returns.
const MAX_MATCHES: usize = 200;
/// Largest file `search` reads, in bytes.
const MAX_SEARCHED: u64 = 8 << 20;

struct Files;

fn spec(name: &str, description: &str, parameters: Value) -> FunctionSpec {
    FunctionSpec { name: name.to_owned(), description: description.to_owned(), parameters: parameters.to_string() }
}

fn text<'a>(arguments: &'a Value, key: &str) -> &'a str {
    arguments.get(key).and_then(Value::as_str).unwrap_or_default()
}

impl Guest for Files {
    fn describe() -> Vec<FunctionSpec> {
        vec![
            spec(
                "read",
                "Read a text file of the thread's working tree.",
                json!({"type": "object", "required": ["path"], "additionalProperties": false,
                    "properties": {"path": {"type": "string", "description": "Path from the root, e.g. notes/a.md"}}}),
            ),
            spec(
                "list",
                "List the files of the thread's working tree with their sizes, optionally under a directory.",
                json!({"type": "object", "additionalProperties": false,
                    "properties": {"prefix": {"type": "string", "description": "Only paths starting with this"}}}),
            ),
            spec(
                "write",
                "Write a text file in the thread's working tree (created or replaced). The change is part of the thread's work, merged into main when a person accepts it.",
                json!({"type": "object", "required": ["path", "content"], "additionalProperties": false,
                    "properties": {"path": {"type": "string"}, "content": {"type": "string"}}}),
            ),
            spec(
                "search",
                "Search the thread's working tree for lines containing a text.",
                json!({"type": "object", "required": ["text"], "additionalProperties": false,
                    "properties": {"text": {"type": "string", "description": "The text to look for"},
                        "prefix": {"type": "string", "description": "Only paths starting with this"}}}),
            ),
        ]
    }

    fn call(function: String, arguments: String) -> Result<String, String> {
        let arguments: Value = serde_json::from_str(&arguments).map_err(|e| format!("arguments: {e}"))?;
        match function.as_str() {
            "read" => {
                let path = text(&arguments, "path");
                let bytes = tree::read(path)?.ok_or_else(|| format!("there is no file {path}"))?;
                let mut content = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_READ)]).into_owned();
                if bytes.len() > MAX_READ {
                    content.push_str(&format!("\n[… {} more bytes not shown]", bytes.len() - MAX_READ));
                }
                Ok(content)
            }
            "list" => {
                let lines: Vec<String> = tree::list_files(text(&arguments, "prefix"))?
                    .into_iter()
                    .map(|(path, size)| format!("{path} ({size} bytes)"))
                    .collect();
                Ok(if lines.is_empty() { "(no files)".to_owned() } else { lines.join("\n") })
            }
            "write" => {
                let (path, content) = (text(&arguments, "path"), text(&arguments, "content"));
                tree::write(path, content.as_bytes())?;
                Ok(format!("wrote {path} ({} bytes)", content.len()))
            }
            "search" => {
                let needle = text(&arguments, "text");
                let mut matches = Vec::new();
                let mut skipped = Vec::new();
                for (path, size) in tree::list_files(text(&arguments, "prefix"))? {
                    // A file larger than this is data, not text to search line by line, and could be larger than
                    // this isolate's memory: it is named, not read.
                    if size > MAX_SEARCHED {
                        skipped.push(path);
                        continue;
                    }
                    let bytes = match tree::read(&path) {
                        Ok(Some(bytes)) => bytes,
                        Ok(None) => continue,
                        // Larger than this isolate may read (its memory): named, like a file over the bound.
                        Err(_) => {
                            skipped.push(path);
                            continue;
                        }
                    };
                    let Ok(content) = String::from_utf8(bytes) else { continue };
                    for (number, line) in content.lines().enumerate() {
                        if line.contains(needle) {
                            matches.push(format!("{path}:{}: {line}", number + 1));
                            if matches.len() == MAX_MATCHES {
                                matches.push(format!("[stopped at {MAX_MATCHES} matches]"));
                                return Ok(matches.join("\n"));
                            }
                        }
                    }
                }
                if matches.is_empty() {
                    matches.push("(no matches)".to_owned());
                }
                if !skipped.is_empty() {
                    matches.push(format!("[not searched, too large: {}]", skipped.join(", ")));
                }
                Ok(matches.join("\n"))
            }
            other => Err(format!("files has no function `{other}`")),
        }
    }
}

export!(Files);
