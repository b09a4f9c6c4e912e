//! `helps.check`: a help written on a thread (by `help-author`, say) checked as `hal help validate` checks one on
//! `main`: against the schema, and every command it names a tool, group of tools or help there is.

use std::sync::Arc;

use hal_model::ToolSpec;
use serde_json::{Value, json};

use crate::catalog::Catalog;
use crate::tools::{BoxFuture, Tool, ToolContext, ToolResult};

/// The tool's name.
pub const NAME: &str = "helps.check";

/// Checks `helps/<name>.yaml` in the thread's tree.
pub(crate) struct HelpCheck {
    spec: ToolSpec,
    /// The tools a command may name.
    tools: Vec<String>,
    catalog: Arc<Catalog>,
}

impl HelpCheck {
    pub(crate) fn new(tools: Vec<String>, catalog: Arc<Catalog>) -> HelpCheck {
        let spec = ToolSpec {
            name: NAME.to_owned(),
            description: "Check the help helps/<name>.yaml of this thread: that it is valid (the schema of helps) and \
                          that every command it names is a tool, group of tools or help HAL has. Returns `ok`, or \
                          each problem with where it is."
                .to_owned(),
            parameters: json!({"type": "object", "required": ["name"], "additionalProperties": false,
                "properties": {"name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$",
                    "description": "The help's name (helps/<name>.yaml)"}}}),
        };
        HelpCheck { spec, tools, catalog }
    }
}

/// Check the text of help `name` (`path`, for messages) as `helps.check` does: valid, and every command it names is
/// one of `tools`, a group of them, a help of `catalog`, or itself.
pub(crate) fn check(tools: &[String], catalog: &Catalog, name: &str, path: &str, text: &str) -> Result<(), String> {
    let helps = catalog.helps.iter().map(|entry| entry.name.as_str()).chain([name]);
    let callable = hal_spec::Callable::new(tools, helps);
    let unknown = |command: &str| {
        if callable.names(command) {
            return None;
        }
        // The model gets the whole list when nothing is close: it cannot run `hal isolate list`.
        let hint = match callable.closest(command).as_slice() {
            [] => format!("the tools are {}", tools.join(", ")),
            close => format!("did you mean {}?", hal_spec::either(close)),
        };
        Some(format!("`{command}` is neither a tool, a group of tools, nor a help: {hint}"))
    };
    hal_spec::Help::parse_resolving(path, text, unknown).map(drop).map_err(|error| error.to_string())
}

impl Tool for HelpCheck {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, arguments: Value, context: &'a mut ToolContext) -> BoxFuture<'a, ToolResult> {
        Box::pin(async move {
            let name = arguments.get("name").and_then(Value::as_str).unwrap_or_default();
            let path = format!("{}/{name}.yaml", crate::catalog::HELPS_DIR);
            let bytes = match context.read_at_most(&path, hal_store::MAX_SPEC_BYTES) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return ToolResult::error(format!("this thread has no {path}: write it first")),
                Err(error) => return ToolResult::error(format!("{path}: {error}")),
            };
            let Ok(text) = String::from_utf8(bytes) else {
                return ToolResult::error(format!("{path} is not UTF-8 text"));
            };
            match check(&self.tools, &self.catalog, name, &path, &text) {
                Ok(()) => ToolResult::ok(format!("ok: {path} is a valid help")),
                Err(error) => ToolResult::error(error),
            }
        })
    }
}
