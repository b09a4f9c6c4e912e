//! Errors in help and agent files, located by file, line, column and field.

use std::fmt;

/// One thing wrong with a file, at a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The field, as `runner.temperature` or `tests[2].input`; empty for the whole document.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Everything wrong with one file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    /// The file, as the user knows it (e.g. `helps/summary.yaml` or `built-in helps/hal.yaml`).
    pub file: String,
    /// The problems, in document order.
    pub problems: Vec<FieldProblem>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: ", self.file, problem.line, problem.column)?;
            if !problem.field.is_empty() {
                write!(f, "{}: ", problem.field)?;
            }
            write!(f, "{}", problem.message)?;
        }
        Ok(())
    }
}

/// Turn a JSON pointer (`/tests/2/input`) into a field path (`tests[2].input`).
pub(crate) fn field_of(pointer: &str) -> String {
    let mut field = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            field.push_str(&format!("[{segment}]"));
        } else {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(&segment);
        }
    }
    field
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn pointers_become_field_paths() {
        assert_eq!(field_of(""), "");
        assert_eq!(field_of("/runner/temperature"), "runner.temperature");
        assert_eq!(field_of("/tests/2/input"), "tests[2].input");
        assert_eq!(field_of("/config/a~1b"), "config.a/b");
    }
}
