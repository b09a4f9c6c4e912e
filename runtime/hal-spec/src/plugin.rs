//! Plugins: `plugins/<name>/v<N>/plugin.yaml` (the manifest) and `tests.yaml` (calls with what they must give).
//! The source is plain Python functions in `plugin.py`; HAL supplies the glue to the isolate world.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::isolate::{Capabilities, IsolateManifest, SandboxLimits};
use crate::problem::SpecError;
use crate::validate::Schema;

/// The schema manifests are validated against (`schemas/plugin.schema.json`).
pub const PLUGIN_SCHEMA: &str = include_str!("../../../schemas/plugin.schema.json");
/// The schema test files are validated against (`schemas/plugin-tests.schema.json`).
pub const PLUGIN_TESTS_SCHEMA: &str = include_str!("../../../schemas/plugin-tests.schema.json");

/// A validated `plugin.yaml`. The fields mirror `schemas/plugin.schema.json`, which documents them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginManifest {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// What it does.
    pub description: String,
    /// The language of its source: `python` (the default) or `rust`.
    #[serde(default)]
    pub language: Option<String>,
    /// Its functions.
    pub functions: Vec<PluginFunction>,
    /// What it asks to be allowed.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Its own limits.
    #[serde(default)]
    pub limits: SandboxLimits,
}

/// One function of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginFunction {
    /// Its name, the Python function's.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments.
    #[serde(default = "any_object")]
    pub parameters: Value,
}

fn any_object() -> Value {
    serde_json::json!({"type": "object"})
}

/// One case of `tests.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginTest {
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// The function called.
    pub call: String,
    /// Its arguments.
    #[serde(default = "empty_object")]
    pub arguments: Value,
    /// The result it must return (`null` included: present means checked).
    #[serde(default, deserialize_with = "present")]
    pub expect: Option<Value>,
    /// Text its error must contain.
    #[serde(default)]
    pub expect_error: Option<String>,
}

/// A field that is present, whatever its value (`null` too).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

fn empty_object() -> Value {
    serde_json::json!({})
}

impl PluginManifest {
    /// Parse and validate a manifest. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<PluginManifest, SpecError> {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::new(PLUGIN_SCHEMA)).load(file, text)
    }

    /// [`PluginManifest::parse`], and each function's argument schema compiled as its first call will compile it
    /// (a bad `pattern` or an unresolvable `$ref` shows here, located, not at a call): for a plugin being written.
    /// Loading the versions on main leaves the compiling to each function's first call.
    pub fn parse_compiled(file: &str, text: &str) -> Result<PluginManifest, SpecError> {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::new(PLUGIN_SCHEMA)).load_checked(file, text, |manifest: &PluginManifest| {
            let mut problems = Vec::new();
            for (index, function) in manifest.functions.iter().enumerate() {
                if let Err(error) = jsonschema::validator_for(&function.parameters) {
                    let message = format!("the arguments' schema of `{}` does not compile: {error}", function.name);
                    problems.push((format!("/functions/{index}/parameters"), message));
                }
            }
            problems
        })
    }

    /// The manifest the sandbox runs it under, as an isolate named `isolate` (its name, or `<name>@v<N>`).
    pub fn as_isolate(&self, isolate: &str) -> IsolateManifest {
        IsolateManifest {
            name: isolate.to_owned(),
            version: self.version,
            description: self.description.clone(),
            capabilities: self.capabilities.clone(),
            limits: self.limits,
        }
    }
}

impl PluginTest {
    /// Parse and validate a `tests.yaml`. `file` names it in errors.
    pub fn parse_all(file: &str, text: &str) -> Result<Vec<PluginTest>, SpecError> {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::new(PLUGIN_TESTS_SCHEMA)).load(file, text)
    }

    /// What is wrong with `outcome` (the function's result or error text) for this case, if anything.
    pub fn check(&self, outcome: &Result<String, String>) -> Option<String> {
        match (outcome, &self.expect_error) {
            (Err(error), Some(wanted)) if error.contains(wanted.as_str()) => None,
            (Err(error), Some(wanted)) => Some(format!("raised {error:?}, expected an error containing {wanted:?}")),
            (Ok(result), Some(wanted)) => Some(format!("returned {result}, expected an error containing {wanted:?}")),
            (Err(error), None) => Some(format!("raised {error}")),
            (Ok(result), None) => {
                let Some(expected) = self.expect.as_ref() else {
                    return Some("the case says neither `expect` nor `expect_error`".to_owned());
                };
                let got = serde_json::from_str::<Value>(result).unwrap_or_else(|_| Value::String(result.clone()));
                (!same(&got, expected)).then(|| format!("returned {got}, expected {expected}"))
            }
        }
    }
}

/// JSON equality with numbers compared to a relative 1e-9.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_and_its_tests_parse_and_cases_compare_as_json() {
        let manifest = PluginManifest::parse(
            "plugins/convert/v1/plugin.yaml",
            "name: convert\nversion: 1\ndescription: Converts\nfunctions:\n  - name: km_to_m\n    description: km to m\n",
        )
        .expect("valid");
        assert_eq!(manifest.functions[0].parameters, serde_json::json!({"type": "object"}));
        let bad = PluginManifest::parse("p.yaml", "name: Convert\nversion: 1\ndescription: x\nfunctions: []\n");
        let error = bad.expect_err("invalid").to_string();
        assert!(error.starts_with("p.yaml:1:"), "{error}");
        let tests = PluginTest::parse_all(
            "tests.yaml",
            "- call: km_to_m\n  arguments: {km: 2}\n  expect: {m: 2000}\n- call: km_to_m\n  expect_error: TypeError\n",
        )
        .expect("valid");
        assert_eq!(tests[0].check(&Ok(r#"{"m": 2000.0000000001}"#.into())), None);
        assert!(tests[0].check(&Ok(r#"{"m": 2001}"#.into())).is_some());
        assert_eq!(tests[1].check(&Err("TypeError: missing km".into())), None);
        assert!(tests[1].check(&Ok("1".into())).is_some());
        let null = PluginTest::parse_all("t.yaml", "- call: f\n  expect: null\n").expect("valid");
        assert_eq!(null[0].check(&Ok("null".into())), None);
        assert!(null[0].check(&Ok("1".into())).is_some(), "expect: null is checked");
        assert!(PluginTest::parse_all("t.yaml", "- call: f\n").is_err(), "a case must expect something");
    }

    /// Regression: a function whose argument schema could not compile (a bad `pattern`) passed `plugins.test` and
    /// failed only at its first call from main.
    #[test]
    fn a_schema_that_does_not_compile_is_found_when_the_plugin_is_written() {
        let text = "name: p\nversion: 1\ndescription: d\nfunctions:\n  - name: f\n    description: g\n    \
                    parameters:\n      type: object\n      properties:\n        a: {type: string, pattern: \"(\"}\n";
        assert!(PluginManifest::parse("plugin.yaml", text).is_ok(), "offering does not compile it");
        let error = PluginManifest::parse_compiled("plugin.yaml", text).expect_err("a bad pattern");
        let shown = error.to_string();
        assert!(shown.starts_with("plugin.yaml:8:") && shown.contains("functions[0].parameters"), "{shown}");
        assert!(shown.contains("`f` does not compile"), "{shown}");
    }
}
