//! Loading a YAML file against a JSON Schema into a typed value, with every problem located.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::document::Document;
use crate::problem::{FieldProblem, SpecError, field_of};

/// A compiled schema together with its source (for listing the fields an object allows).
pub(crate) struct Schema {
    source: Value,
    validator: jsonschema::Validator,
}

impl Schema {
    /// Compile a schema shipped with HAL.
    pub(crate) fn new(text: &str) -> Schema {
        let source: Value = serde_json::from_str(text).expect("the schemas shipped with HAL are valid JSON");
        let validator = jsonschema::validator_for(&source).expect("the schemas shipped with HAL are valid JSON Schema");
        Schema { source, validator }
    }

    /// Parse `text` (named `file` in errors), validate it, and deserialize it.
    pub(crate) fn load<T: DeserializeOwned>(&self, file: &str, text: &str) -> Result<T, SpecError> {
        self.load_checked(file, text, |_| Vec::new())
    }

    /// [`Schema::load`], then `check` the typed value for what a schema cannot say (a name that must refer to
    /// another entry, say); it returns (JSON pointer, message) pairs, located like schema errors.
    pub(crate) fn load_checked<T: DeserializeOwned>(
        &self,
        file: &str,
        text: &str,
        check: impl FnOnce(&T) -> Vec<(String, String)>,
    ) -> Result<T, SpecError> {
        let fail = |problems| SpecError { file: file.to_owned(), problems };
        let document = Document::parse(text).map_err(|problem| fail(vec![problem]))?;
        let mut problems = Vec::new();
        for error in self.validator.iter_errors(&document.value) {
            let pointer = error.instance_path().as_str().to_owned();
            match error.kind() {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    let allowed = self.allowed_fields(error.schema_path().as_str());
                    for name in unexpected {
                        let child = format!("{pointer}/{}", name.replace('~', "~0").replace('/', "~1"));
                        let (line, column) =
                            document.key_position(&child).unwrap_or_else(|| document.value_position(&pointer));
                        problems.push(FieldProblem {
                            line,
                            column,
                            field: field_of(&child),
                            message: format!("unknown field `{name}`; expected one of: {}", allowed.join(", ")),
                        });
                    }
                }
                _ => {
                    let (line, column) = document.value_position(&pointer);
                    problems.push(FieldProblem { line, column, field: field_of(&pointer), message: error.to_string() });
                }
            }
        }
        if !problems.is_empty() {
            problems.sort_by_key(|p| (p.line, p.column));
            return Err(fail(problems));
        }
        let value: T = serde_json::from_value(document.value.clone()).map_err(|error| {
            fail(vec![FieldProblem { line: 1, column: 1, field: String::new(), message: error.to_string() }])
        })?;
        let problems: Vec<FieldProblem> = check(&value)
            .into_iter()
            .map(|(pointer, message)| {
                let (line, column) = document.value_position(&pointer);
                FieldProblem { line, column, field: field_of(&pointer), message }
            })
            .collect();
        if problems.is_empty() { Ok(value) } else { Err(fail(problems)) }
    }

    /// The property names of the schema object that holds the keyword at `schema_path`.
    fn allowed_fields(&self, schema_path: &str) -> Vec<String> {
        let parent = schema_path.rsplit_once('/').map_or("", |(parent, _)| parent);
        let mut fields: Vec<String> = self
            .source
            .pointer(parent)
            .and_then(|object| object.get("properties"))
            .and_then(Value::as_object)
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default();
        fields.sort();
        fields
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every file in `fixtures/helps/invalid/` starts with `# expect: <line>:<column>: <field>: <message…>`;
    /// the first problem reported must start with exactly that.
    #[test]
    fn broken_helps_are_reported_at_the_exact_place() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/helps/invalid");
        let mut files: Vec<_> =
            std::fs::read_dir(&dir).expect("fixture dir").map(|e| e.expect("entry").path()).collect();
        files.sort();
        assert!(files.len() >= 10, "at least ten broken helps");
        for path in files {
            let text = std::fs::read_to_string(&path).expect("read fixture");
            let expected = text.lines().next().and_then(|l| l.strip_prefix("# expect: ")).expect("expect line");
            let name = format!("helps/{}", path.file_name().expect("name").to_string_lossy());
            let error = crate::Help::parse(&name, &text).expect_err(&name);
            let first = error.to_string().lines().next().expect("a problem").to_owned();
            let wanted = format!("{name}:{expected}");
            assert!(first.starts_with(&wanted), "\n  got: {first}\n want: {wanted}");
        }
    }
}
