//! Isolates as runner tools: each function of an isolate is the tool `<isolate>.<function>`.

use std::sync::Arc;

use hal_model::ToolSpec;
use hal_runner::model::SecretLookup;
use hal_runner::tools::{BoxFuture, Tool, ToolContext, ToolResult, Toolbox};

use crate::host::{CallContext, Isolate, Sandbox};

struct IsolateFunction {
    sandbox: Arc<Sandbox>,
    isolate: Arc<Isolate>,
    function: String,
    spec: ToolSpec,
    secret: SecretLookup,
}

/// Offer every function of `isolates` in `toolbox`, run in `sandbox`.
pub fn add_isolate_tools(
    toolbox: &mut Toolbox,
    sandbox: &Arc<Sandbox>,
    isolates: &[Arc<Isolate>],
    secret: &SecretLookup,
) -> Result<(), hal_runner::tools::InvalidSchema> {
    for isolate in isolates {
        for (function, description, parameters) in &isolate.functions {
            let spec = ToolSpec {
                name: format!("{}.{function}", isolate.manifest.name),
                description: description.clone(),
                parameters: parameters.clone(),
            };
            toolbox.add(Arc::new(IsolateFunction {
                sandbox: sandbox.clone(),
                isolate: isolate.clone(),
                function: function.clone(),
                spec,
                secret: secret.clone(),
            }))?;
        }
    }
    Ok(())
}

impl Tool for IsolateFunction {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn policy_names(&self) -> Vec<String> {
        // `<name>` is the newest version of a plugin: a rule naming that version (`wc@v2`) holds for it too.
        let manifest = &self.isolate.manifest;
        match self.isolate.plugin && !manifest.name.contains('@') {
            true => vec![format!("{}@v{}.{}", manifest.name, manifest.version, self.function)],
            false => Vec::new(),
        }
    }

    fn needs_secrets(&self) -> Vec<String> {
        self.isolate.granted.secrets.clone()
    }

    fn call<'a>(&'a self, arguments: serde_json::Value, context: &'a mut ToolContext) -> BoxFuture<'a, ToolResult> {
        Box::pin(async move {
            let tree = context.fork();
            let call = CallContext {
                tree: Some(Box::new(tree)),
                http: true,
                secret: self.secret.clone(),
                progress: context.progress(),
            };
            let (sandbox, isolate, function) = (self.sandbox.clone(), self.isolate.clone(), self.function.clone());
            let arguments = arguments.to_string();
            let outcome =
                tokio::task::spawn_blocking(move || sandbox.call(&isolate, &function, &arguments, call)).await;
            match outcome {
                Ok(Ok(output)) => {
                    if let Some(tree) = output.tree {
                        for (path, content) in tree.into_writes() {
                            if let Err(error) = context.write(&path, content) {
                                return ToolResult::error(error.to_string());
                            }
                        }
                    }
                    ToolResult::ok(output.result)
                }
                Ok(Err(error)) => ToolResult::error(error.to_string()),
                Err(error) => ToolResult::error(format!("the sandbox's worker failed: {error}")),
            }
        })
    }
}
