//! The Anthropic messages format (`POST {base}/messages`).
//!
//! The request alternates user and assistant turns, so consecutive messages of one role (several tool results,
//! say) are merged into one turn of content blocks. The stream is a sequence of typed events; unknown event and
//! block types (thinking, for instance) are skipped.

use serde_json::{Value, json};

use crate::limits::{Caps, DecodeError, excerpt};
use crate::openai::error_text;
use crate::types::{Message, Reply, Request, ToolCall, ToolNames};

/// The path below the base URL.
pub const PATH: &str = "/messages";
/// The API version HAL speaks.
pub const VERSION: &str = "2023-06-01";
/// `max_tokens` is required by this format; used when the model's settings give none.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 4096;

/// The JSON body for `request` to `model`.
pub(crate) fn encode(request: &Request, model: &str, max_output_tokens: Option<u32>, names: &ToolNames) -> Value {
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match message {
            Message::User { text } => ("user", vec![json!({"type": "text", "text": text})]),
            Message::Assistant { text, tool_calls } => {
                let mut blocks = Vec::new();
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for call in tool_calls {
                    // The input must be an object; arguments that are not one are passed under `arguments`.
                    let input = match serde_json::from_str::<Value>(&call.arguments) {
                        Ok(object @ Value::Object(_)) => object,
                        _ => json!({"arguments": call.arguments}),
                    };
                    blocks.push(
                        json!({"type": "tool_use", "id": call.id, "name": names.wire_name(&call.name), "input": input}),
                    );
                }
                ("assistant", blocks)
            }
            Message::Tool { call_id, content, is_error, .. } => (
                "user",
                vec![json!({"type": "tool_result", "tool_use_id": call_id, "content": content, "is_error": is_error})],
            ),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    // The first turn must be the user's.
    if turns.first().is_some_and(|(role, _)| *role != "user") {
        turns.insert(0, ("user", vec![json!({"type": "text", "text": "(conversation continues)"})]));
    }
    let messages: Vec<Value> =
        turns.into_iter().map(|(role, blocks)| json!({"role": role, "content": blocks})).collect();
    let mut body = json!({
        "model": model,
        "max_tokens": max_output_tokens.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS),
        "messages": messages,
        "stream": true,
    });
    if !request.system.is_empty() {
        body["system"] = json!(request.system);
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "name": names.wire_name(&tool.name),
                    "description": tool.description,
                    "input_schema": tool.parameters,
                })
            })
            .collect();
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature.min(1.0));
    }
    body
}

/// Builds a [`Reply`] from stream events (or from one whole response body), within the caps.
///
/// Only tool-use blocks are kept by their index (at most `limits.reply.tool_calls` of them): a `text_delta`
/// is text whichever block it names (servers send it only in text blocks), and other blocks (thinking, …) are
/// not kept at all, so a server that opens blocks without end holds no memory.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    reply: Reply,
    /// Tool-use blocks by their index.
    calls: Vec<(u64, ToolCall)>,
    /// Bytes of arguments of all calls together.
    arguments: usize,
    stopped: bool,
    caps: Caps,
}

impl Decoder {
    /// A decoder that fails when the reply passes `caps`.
    pub(crate) fn new(caps: Caps) -> Decoder {
        Decoder { caps, ..Decoder::default() }
    }

    /// Take one event (`event:` name and `data:` payload). Returns the new text it carried.
    pub(crate) fn event(&mut self, name: Option<&str>, data: &str, names: &ToolNames) -> Result<String, DecodeError> {
        let event: Value =
            serde_json::from_str(data).map_err(|e| format!("an event is not JSON ({e}): {}", excerpt(data, 200)))?;
        let kind = event.get("type").and_then(Value::as_str).or(name).unwrap_or_default();
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "message_start" => {
                if let Some(message) = event.get("message") {
                    self.message_facts(message);
                }
            }
            "content_block_start" => {
                let block = event.get("content_block").unwrap_or(&Value::Null);
                return self.start_block(index, block, names);
            }
            "content_block_delta" => {
                let delta = event.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = delta.get("text").and_then(Value::as_str).unwrap_or_default();
                        return self.text(text);
                    }
                    Some("input_json_delta") => {
                        let piece = delta.get("partial_json").and_then(Value::as_str).unwrap_or_default();
                        if let Some((_, call)) = self.calls.iter_mut().find(|(i, _)| *i == index) {
                            self.caps.arguments(self.arguments, piece.len())?;
                            self.arguments += piece.len();
                            call.arguments.push_str(piece);
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = event.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.reply.stop_reason = Some(reason.to_owned());
                }
                if let Some(usage) = event.get("usage") {
                    self.usage(usage);
                }
            }
            "message_stop" => self.stopped = true,
            "error" => {
                let error = event.get("error").unwrap_or(&event);
                return Err(format!("the server sent an error in the stream: {}", error_text(error)).into());
            }
            _ => {}
        }
        Ok(String::new())
    }

    /// A response that was not streamed: one message object.
    pub(crate) fn whole(&mut self, body: &str, names: &ToolNames) -> Result<(), DecodeError> {
        let message: Value = serde_json::from_str(body)
            .map_err(|e| format!("the response is not JSON ({e}): {}", excerpt(body, 200)))?;
        self.message_facts(&message);
        for (index, block) in message.get("content").and_then(Value::as_array).into_iter().flatten().enumerate() {
            self.start_block(index as u64, block, names)?;
        }
        if let Some(reason) = message.get("stop_reason").and_then(Value::as_str) {
            self.reply.stop_reason = Some(reason.to_owned());
        }
        self.stopped = true;
        Ok(())
    }

    fn message_facts(&mut self, message: &Value) {
        if let Some(model) = message.get("model").and_then(Value::as_str) {
            self.reply.model = Some(model.to_owned());
        }
        if let Some(usage) = message.get("usage") {
            self.usage(usage);
        }
    }

    fn usage(&mut self, usage: &Value) {
        if let Some(input) = usage.get("input_tokens").and_then(Value::as_u64) {
            let cached = ["cache_read_input_tokens", "cache_creation_input_tokens"]
                .iter()
                .filter_map(|key| usage.get(key).and_then(Value::as_u64))
                .fold(0u64, u64::saturating_add);
            self.reply.usage.input = input.saturating_add(cached);
        }
        if let Some(output) = usage.get("output_tokens").and_then(Value::as_u64) {
            self.reply.usage.output = output;
        }
    }

    fn text(&mut self, text: &str) -> Result<String, DecodeError> {
        self.caps.text(self.reply.text.len(), text.len())?;
        self.reply.text.push_str(text);
        Ok(text.to_owned())
    }

    /// A block starts; returns the text it already carries.
    fn start_block(&mut self, index: u64, block: &Value, names: &ToolNames) -> Result<String, DecodeError> {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => self.text(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => {
                self.caps.another_call(self.calls.len())?;
                // A streamed block starts with an empty input and sends it as JSON pieces; a whole one has it all.
                let arguments = match block.get("input") {
                    Some(Value::Object(map)) if !map.is_empty() => Value::Object(map.clone()).to_string(),
                    _ => String::new(),
                };
                self.caps.arguments(self.arguments, arguments.len())?;
                self.arguments += arguments.len();
                let id = block.get("id").and_then(Value::as_str).unwrap_or_default();
                let name = block.get("name").and_then(Value::as_str).unwrap_or_default();
                self.caps.call_field("id", id)?;
                self.caps.call_field("name", name)?;
                let call = ToolCall { id: id.to_owned(), name: names.hal_name(name), arguments };
                self.calls.push((index, call));
                Ok(String::new())
            }
            _ => Ok(String::new()),
        }
    }

    /// The finished reply.
    pub(crate) fn finish(mut self) -> Result<Reply, DecodeError> {
        if !self.stopped && self.reply.stop_reason.is_none() {
            return Err(DecodeError::Protocol("the stream ended before the reply was complete".to_owned()));
        }
        self.calls.sort_by_key(|(index, _)| *index);
        for (n, (_, mut call)) in self.calls.into_iter().enumerate() {
            if call.arguments.is_empty() {
                call.arguments = "{}".to_owned();
            }
            if call.id.is_empty() {
                call.id = format!("toolu_{n}");
            }
            self.reply.tool_calls.push(call);
        }
        Ok(self.reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ToolSpec, Usage};

    fn names() -> ToolNames {
        ToolNames::for_tools(&[ToolSpec {
            name: "files.read".into(),
            description: String::new(),
            parameters: json!({}),
        }])
    }

    #[test]
    fn a_streamed_reply_with_text_thinking_and_two_tool_calls() {
        let names = names();
        let mut decoder = Decoder::default();
        let events = [
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"m","model":"claude-x","usage":{"input_tokens":20,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Reading"}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_a","name":"files_read","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"path\": "}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"\"a\"}"}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_b","name":"files.read","input":{}}}"#,
            ),
            ("content_block_stop", r#"{"type":"content_block_stop","index":3}"#),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","new":1},"usage":{"output_tokens":12}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        for (name, data) in events {
            decoder.event(Some(name), data, &names).expect("valid event");
        }
        let reply = decoder.finish().expect("complete");
        assert_eq!(reply.text, "Reading");
        assert_eq!(reply.usage, Usage { input: 25, output: 12 });
        assert_eq!(reply.stop_reason.as_deref(), Some("tool_use"));
        assert_eq!(reply.tool_calls.len(), 2);
        assert_eq!(reply.tool_calls[0].name, "files.read");
        assert_eq!(reply.tool_calls[0].arguments, r#"{"path": "a"}"#);
        assert_eq!(reply.tool_calls[1].arguments, "{}");
    }

    #[test]
    fn blocks_other_than_tool_use_hold_nothing_and_calls_stop_at_their_caps() {
        use crate::limits::{Overflow, ReplyLimits};
        let names = names();
        let caps = Caps::new(ReplyLimits { tool_calls: 1, arguments_bytes: 4, ..ReplyLimits::default() });
        let mut decoder = Decoder::new(caps);
        for index in 0..10_000 {
            let start = json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking"}});
            decoder.event(None, &start.to_string(), &names).expect("a thinking block");
        }
        assert!(decoder.calls.is_empty(), "thinking blocks are not kept");
        let tool = |index: u64| {
            json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": "t", "name": "files_read", "input": {}}})
            .to_string()
        };
        decoder.event(None, &tool(1), &names).expect("one call");
        let piece = |text: &str| {
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": text}})
                .to_string()
        };
        decoder.event(None, &piece("{}"), &names).expect("2 bytes");
        let error = decoder.event(None, &piece("{}{"), &names).expect_err("5 bytes");
        assert_eq!(error, DecodeError::Over(Overflow::Arguments { limit: 4 }));
        let error = decoder.event(None, &tool(2), &names).expect_err("a second call");
        assert_eq!(error, DecodeError::Over(Overflow::ToolCalls { limit: 1 }));
    }

    #[test]
    fn turns_alternate_and_tool_results_share_one_user_turn() {
        let request = Request {
            system: "sys".into(),
            messages: vec![
                Message::Assistant {
                    text: "hi".into(),
                    tool_calls: vec![
                        ToolCall { id: "1".into(), name: "files.read".into(), arguments: r#"{"path":"a"}"#.into() },
                        ToolCall { id: "2".into(), name: "files.read".into(), arguments: "not json".into() },
                    ],
                },
                Message::Tool { call_id: "1".into(), name: "files.read".into(), content: "A".into(), is_error: false },
                Message::Tool { call_id: "2".into(), name: "files.read".into(), content: "bad".into(), is_error: true },
                Message::User { text: "thanks".into() },
            ],
            tools: vec![],
            temperature: Some(1.5),
        };
        let body = encode(&request, "claude-x", None, &names());
        let messages = body["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 3, "{body:#}");
        assert_eq!(messages[0]["role"], "user");
        assert_eq!(messages[1]["content"][1]["name"], "files_read");
        assert_eq!(messages[1]["content"][2]["input"], json!({"arguments": "not json"}));
        assert_eq!(messages[2]["content"].as_array().expect("blocks").len(), 3);
        assert_eq!(body["system"], "sys");
        assert_eq!(body["temperature"], 1.0);
        assert_eq!(body["max_tokens"], DEFAULT_MAX_OUTPUT_TOKENS);
    }
}
