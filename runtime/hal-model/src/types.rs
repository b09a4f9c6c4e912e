//! What a model is asked and what it answers, independent of the wire format.

use serde::{Deserialize, Serialize};

/// One message of a conversation sent to a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// Text from the person (or from a calling help).
    User {
        /// The text.
        text: String,
    },
    /// A turn of the model: text, tool calls, or both.
    Assistant {
        /// Its text (may be empty).
        #[serde(default)]
        text: String,
        /// The tools it called.
        #[serde(default)]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call.
    Tool {
        /// The id of the call this answers.
        call_id: String,
        /// The tool's name.
        name: String,
        /// The result as text.
        content: String,
        /// Whether the call failed.
        #[serde(default)]
        is_error: bool,
    },
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Its name as HAL knows it (`files.read`, `goalie`, `finish`). The wire formats allow fewer characters;
    /// the encoders translate and the decoders translate back.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters: serde_json::Value,
}

/// A call of a tool by the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The id the model gave the call.
    pub id: String,
    /// The tool's name as HAL knows it.
    pub name: String,
    /// The arguments exactly as the model wrote them (normally a JSON object).
    pub arguments: String,
}

/// Everything sent to a model in one call.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Request {
    /// The system prompt.
    pub system: String,
    /// The conversation so far, oldest first.
    pub messages: Vec<Message>,
    /// The tools on offer.
    pub tools: Vec<ToolSpec>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
}

/// Tokens used by one call, as the server reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
}

/// What the model answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Its text (may be empty when it only called tools).
    pub text: String,
    /// Its tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped, as the server said it (`stop`, `tool_calls`, `end_turn`, `length`, …).
    pub stop_reason: Option<String>,
    /// Tokens used.
    pub usage: Usage,
    /// The model id the server reported.
    pub model: Option<String>,
}

impl Reply {
    /// This reply as the assistant message that continues a conversation.
    pub fn to_message(&self) -> Message {
        Message::Assistant { text: self.text.clone(), tool_calls: self.tool_calls.clone() }
    }
}

/// Translation between HAL's tool names and names the wire formats accept (`^[a-zA-Z0-9_-]{1,64}$`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolNames {
    pairs: Vec<(String, String)>,
}

impl ToolNames {
    /// Wire names for `tools`, each unique.
    pub(crate) fn for_tools(tools: &[ToolSpec]) -> ToolNames {
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(tools.len());
        for tool in tools {
            let base: String = tool
                .name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
                .take(60)
                .collect();
            let mut wire = base.clone();
            let mut n = 2;
            while pairs.iter().any(|(_, taken)| *taken == wire) {
                wire = format!("{base}{n}");
                n += 1;
            }
            pairs.push((tool.name.clone(), wire));
        }
        ToolNames { pairs }
    }

    /// The wire name of a HAL tool name (itself when unknown).
    pub(crate) fn wire_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.pairs.iter().find(|(hal, _)| hal == name).map_or(name, |(_, wire)| wire)
    }

    /// The HAL name of a wire name; a HAL name sent back as is (some servers do), or an unknown name, is kept.
    pub(crate) fn hal_name(&self, wire: &str) -> String {
        self.pairs.iter().find(|(_, w)| w == wire).map_or_else(|| wire.to_owned(), |(hal, _)| hal.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> ToolSpec {
        ToolSpec { name: name.into(), description: String::new(), parameters: serde_json::json!({}) }
    }

    #[test]
    fn wire_names_are_safe_unique_and_reversible() {
        let names = ToolNames::for_tools(&[spec("files.read"), spec("files_read"), spec("units@v2"), spec("finish")]);
        assert_eq!(names.wire_name("files.read"), "files_read");
        assert_eq!(names.wire_name("files_read"), "files_read2");
        assert_eq!(names.wire_name("units@v2"), "units_v2");
        assert_eq!(names.hal_name("files_read"), "files.read");
        assert_eq!(names.hal_name("files_read2"), "files_read");
        assert_eq!(names.hal_name("units_v2"), "units@v2");
        assert_eq!(names.hal_name("files.read"), "files.read");
        assert_eq!(names.hal_name("unknown"), "unknown");
    }
}
