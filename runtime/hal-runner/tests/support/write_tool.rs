//! A minimal in-process tool for the runner's own tests and benchmark: `files.write {path, content}` writes into
//! the thread's tree. (The product's `files` tools are the sandbox's WebAssembly isolate.)

use std::sync::Arc;

use hal_model::ToolSpec;
use hal_runner::tools::{BoxFuture, Tool, ToolContext, ToolResult, Toolbox};

struct WriteFile(ToolSpec);

impl Tool for WriteFile {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn call<'a>(&'a self, arguments: serde_json::Value, context: &'a mut ToolContext) -> BoxFuture<'a, ToolResult> {
        Box::pin(async move {
            let text = |key: &str| arguments.get(key).and_then(serde_json::Value::as_str).unwrap_or_default();
            match context.write(text("path"), text("content").as_bytes().to_vec()) {
                Ok(()) => ToolResult::ok(format!("wrote {}", text("path"))),
                Err(error) => ToolResult::error(error.to_string()),
            }
        })
    }
}

/// A toolbox with `files.write`.
pub fn toolbox() -> Toolbox {
    let spec = ToolSpec {
        name: "files.write".into(),
        description: "Write a file".into(),
        parameters: serde_json::json!({"type": "object", "required": ["path", "content"],
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}}}),
    };
    let mut toolbox = Toolbox::new();
    toolbox.add(Arc::new(WriteFile(spec))).expect("a valid schema");
    toolbox
}
