//! YAML documents as JSON values that remember where each value and key came from.
//!
//! JSON Schema validates JSON values and reports JSON pointers; users need a line and column. Parsing with
//! saphyr's marked nodes keeps the start of every value and every mapping key, indexed by JSON pointer.

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::Value;

use crate::problem::FieldProblem;

/// A parsed document.
pub(crate) struct Document {
    /// The content.
    pub(crate) value: Value,
    /// Where the value at each JSON pointer starts (1-based line and column).
    values: HashMap<String, (usize, usize)>,
    /// Where the key of the value at each JSON pointer starts.
    keys: HashMap<String, (usize, usize)>,
}

impl Document {
    /// Parse `text`. An empty document (nothing but comments) is an empty mapping.
    pub(crate) fn parse(text: &str) -> Result<Document, FieldProblem> {
        let docs = MarkedYaml::load_from_str(text).map_err(|error| FieldProblem {
            line: error.marker().line(),
            column: error.marker().col() + 1,
            field: String::new(),
            message: format!("not valid YAML: {}", error.info()),
        })?;
        let mut document =
            Document { value: Value::Object(Default::default()), values: HashMap::new(), keys: HashMap::new() };
        match docs.as_slice() {
            [] => {
                document.values.insert(String::new(), (1, 1));
            }
            [one] => document.value = document.convert(one, String::new())?,
            [_, second, ..] => {
                let (line, column) = start(second);
                return Err(FieldProblem {
                    line,
                    column,
                    field: String::new(),
                    message: "a file holds one YAML document; remove the second `---`".into(),
                });
            }
        }
        Ok(document)
    }

    /// Where the value at `pointer` starts; the nearest enclosing value if it has none.
    pub(crate) fn value_position(&self, pointer: &str) -> (usize, usize) {
        let mut pointer = pointer;
        loop {
            if let Some(position) = self.values.get(pointer) {
                return *position;
            }
            match pointer.rfind('/') {
                Some(slash) => pointer = &pointer[..slash],
                None => return (1, 1),
            }
        }
    }

    /// Where the key of the value at `pointer` starts, if it is a mapping entry.
    pub(crate) fn key_position(&self, pointer: &str) -> Option<(usize, usize)> {
        self.keys.get(pointer).copied()
    }

    fn convert(&mut self, node: &MarkedYaml<'_>, pointer: String) -> Result<Value, FieldProblem> {
        let position = start(node);
        self.values.insert(pointer.clone(), position);
        let problem = |message: String| FieldProblem {
            line: position.0,
            column: position.1,
            field: crate::problem::field_of(&pointer),
            message,
        };
        Ok(match &node.data {
            YamlData::Value(scalar) => match scalar {
                Scalar::Null => Value::Null,
                Scalar::Boolean(b) => Value::Bool(*b),
                Scalar::Integer(i) => Value::from(*i),
                Scalar::FloatingPoint(f) => serde_json::Number::from_f64(f.into_inner())
                    .map(Value::Number)
                    .ok_or_else(|| problem("infinite or NaN numbers are not allowed".into()))?,
                Scalar::String(s) => Value::String(s.to_string()),
            },
            YamlData::Representation(text, ..) => Value::String(text.to_string()),
            YamlData::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    out.push(self.convert(item, format!("{pointer}/{index}"))?);
                }
                Value::Array(out)
            }
            YamlData::Mapping(entries) => {
                let mut out = serde_json::Map::new();
                for (key, value) in entries {
                    let name = match &key.data {
                        YamlData::Value(Scalar::String(s)) => s.to_string(),
                        _ => {
                            let (line, column) = start(key);
                            return Err(FieldProblem {
                                line,
                                column,
                                field: crate::problem::field_of(&pointer),
                                message: "keys must be plain text".into(),
                            });
                        }
                    };
                    let child = format!("{pointer}/{}", name.replace('~', "~0").replace('/', "~1"));
                    self.keys.insert(child.clone(), start(key));
                    let converted = self.convert(value, child)?;
                    out.insert(name, converted);
                }
                Value::Object(out)
            }
            YamlData::Tagged(tag, _) => {
                return Err(problem(format!("YAML tags such as `!{}` are not supported", tag.suffix)));
            }
            YamlData::Alias(_) => return Err(problem("YAML aliases (`*name`) are not supported".into())),
            YamlData::BadValue => return Err(problem("this value could not be read".into())),
        })
    }
}

/// The 1-based start of a node.
fn start(node: &MarkedYaml<'_>) -> (usize, usize) {
    (node.span.start.line(), node.span.start.col() + 1)
}
