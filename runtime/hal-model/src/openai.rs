//! The OpenAI-compatible chat completions format (`POST {base}/chat/completions`), spoken by OpenAI, Ollama,
//! vLLM, llama.cpp server, LM Studio and OpenRouter.
//!
//! Servers differ: some send a tool call's id and name only in its first fragment, some repeat them, some leave
//! out `index`; some send usage in a final chunk with no choices, some not at all; some ignore `stream` and answer
//! with one JSON body. Unknown fields and enum values are ignored or kept as text, never an error.

use serde_json::{Value, json};

use crate::limits::{Caps, DecodeError, excerpt};
use crate::types::{Message, Reply, Request, ToolCall, ToolNames, Usage};

/// The path below the base URL.
pub const PATH: &str = "/chat/completions";

/// The JSON body for `request` to `model`.
pub(crate) fn encode(request: &Request, model: &str, max_output_tokens: Option<u32>, names: &ToolNames) -> Value {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if !request.system.is_empty() {
        messages.push(json!({"role": "system", "content": request.system}));
    }
    for message in &request.messages {
        messages.push(match message {
            Message::User { text } => json!({"role": "user", "content": text}),
            Message::Assistant { text, tool_calls } => {
                let mut turn = json!({"role": "assistant", "content": text});
                if !tool_calls.is_empty() {
                    turn["tool_calls"] = tool_calls
                        .iter()
                        .map(|call| {
                            json!({
                                "id": call.id,
                                "type": "function",
                                "function": {"name": names.wire_name(&call.name), "arguments": call.arguments},
                            })
                        })
                        .collect();
                }
                turn
            }
            Message::Tool { call_id, content, .. } => {
                json!({"role": "tool", "tool_call_id": call_id, "content": content})
            }
        });
    }
    let mut body = json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "function": {
                        "name": names.wire_name(&tool.name),
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                })
            })
            .collect();
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if let Some(max) = max_output_tokens {
        body["max_tokens"] = json!(max);
    }
    body
}

/// Builds a [`Reply`] from streamed chunks (or from one whole response body), within the caps.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    reply: Reply,
    /// Tool calls by the server's `index`, in order of first appearance.
    calls: Vec<(u64, ToolCall)>,
    done: bool,
    caps: Caps,
}

impl Decoder {
    /// A decoder that fails when the reply passes `caps`.
    pub(crate) fn new(caps: Caps) -> Decoder {
        Decoder { caps, ..Decoder::default() }
    }

    /// Take one `data:` payload. Returns the new text it carried, for live display.
    pub(crate) fn chunk(&mut self, data: &str, names: &ToolNames) -> Result<String, DecodeError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(String::new());
        }
        let chunk: Value =
            serde_json::from_str(data).map_err(|e| format!("a chunk is not JSON ({e}): {}", excerpt(data, 200)))?;
        if let Some(error) = chunk.get("error") {
            return Err(format!("the server sent an error in the stream: {}", error_text(error)).into());
        }
        self.common(&chunk);
        let mut new_text = String::new();
        for choice in chunk.get("choices").and_then(Value::as_array).into_iter().flatten() {
            // A whole (non-streamed) response has `message` where a chunk has `delta`.
            let delta = choice.get("delta").or_else(|| choice.get("message"));
            if let Some(delta) = delta {
                if let Some(text) = delta.get("content").and_then(Value::as_str) {
                    self.caps.text(self.reply.text.len(), text.len())?;
                    self.reply.text.push_str(text);
                    new_text.push_str(text);
                }
                for (position, call) in
                    delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate()
                {
                    self.tool_call_fragment(position, call, names)?;
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.reply.stop_reason = Some(reason.to_owned());
            }
        }
        Ok(new_text)
    }

    /// A response that was not streamed: one JSON object.
    pub(crate) fn whole(&mut self, body: &str, names: &ToolNames) -> Result<(), DecodeError> {
        self.chunk(body, names)?;
        self.done = true;
        Ok(())
    }

    fn common(&mut self, chunk: &Value) {
        if let Some(model) = chunk.get("model").and_then(Value::as_str) {
            self.reply.model = Some(model.to_owned());
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let number = |key: &str| usage.get(key).and_then(Value::as_u64);
            self.reply.usage = Usage {
                input: number("prompt_tokens").unwrap_or(self.reply.usage.input),
                output: number("completion_tokens").unwrap_or(self.reply.usage.output),
            };
        }
    }

    fn tool_call_fragment(&mut self, position: usize, fragment: &Value, names: &ToolNames) -> Result<(), DecodeError> {
        let id = fragment.get("id").and_then(Value::as_str).filter(|id| !id.is_empty());
        let index = match fragment.get("index").and_then(Value::as_u64) {
            Some(index) => index,
            // Without `index`: a new id starts a call, a known id continues it, no id continues the last one.
            None => match (id, self.calls.last()) {
                (Some(id), _) => match self.calls.iter().find(|(_, call)| call.id == id) {
                    Some((index, _)) => *index,
                    None => self.calls.iter().map(|(i, _)| i + 1).max().unwrap_or(0).max(position as u64),
                },
                (None, Some((index, _))) => *index,
                (None, None) => position as u64,
            },
        };
        let slot = match self.calls.iter().position(|(i, _)| *i == index) {
            Some(slot) => slot,
            None => {
                self.caps.another_call(self.calls.len())?;
                self.calls.push((index, ToolCall { id: String::new(), name: String::new(), arguments: String::new() }));
                self.calls.len() - 1
            }
        };
        // Arguments of every call but this one: the cap is on all of them together.
        let others: usize =
            self.calls.iter().enumerate().filter(|(n, _)| *n != slot).map(|(_, (_, call))| call.arguments.len()).sum();
        let call = &mut self.calls[slot].1;
        if let Some(id) = fragment.get("id").and_then(Value::as_str).filter(|id| !id.is_empty()) {
            self.caps.call_field("id", id)?;
            call.id = id.to_owned();
        }
        let function = fragment.get("function");
        if let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str).filter(|n| !n.is_empty()) {
            self.caps.call_field("name", name)?;
            call.name = names.hal_name(name);
        }
        match function.and_then(|f| f.get("arguments")) {
            Some(Value::String(piece)) => {
                self.caps.arguments(others + call.arguments.len(), piece.len())?;
                call.arguments.push_str(piece);
            }
            // A few servers send the arguments as an object rather than a JSON string.
            Some(object @ Value::Object(_)) => {
                let arguments = object.to_string();
                self.caps.arguments(others, arguments.len())?;
                call.arguments = arguments;
            }
            _ => {}
        }
        Ok(())
    }

    /// The finished reply. A stream that ended without `[DONE]` is accepted when it carried a finish reason.
    pub(crate) fn finish(mut self) -> Result<Reply, DecodeError> {
        if !self.done && self.reply.stop_reason.is_none() {
            return Err(DecodeError::Protocol("the stream ended before the reply was complete".to_owned()));
        }
        for (n, (_, mut call)) in self.calls.into_iter().enumerate() {
            if call.id.is_empty() {
                call.id = format!("call_{n}");
            }
            self.reply.tool_calls.push(call);
        }
        Ok(self.reply)
    }
}

/// The human part of an `error` object: its `message`, or the whole value.
pub(crate) fn error_text(error: &Value) -> String {
    error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToolSpec;

    fn names() -> ToolNames {
        ToolNames::for_tools(&[ToolSpec {
            name: "files.read".into(),
            description: "read".into(),
            parameters: json!({"type": "object"}),
        }])
    }

    #[test]
    fn split_arguments_and_several_calls_are_assembled() {
        let names = names();
        let mut decoder = Decoder::default();
        let chunks = [
            r#"{"id":"c1","model":"m-1","choices":[{"index":0,"delta":{"role":"assistant","content":"Let me "}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"look."},"logprobs":null,"new_field":[1]}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"files_read","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"pa"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"files_read","arguments":"{\"path\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"th\":\"a.txt\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"\"b.txt\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls_v2_unknown"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":31,"completion_tokens":9,"total_tokens":40}}"#,
            "[DONE]",
        ];
        let mut shown = String::new();
        for chunk in chunks {
            shown.push_str(&decoder.chunk(chunk, &names).expect("valid chunk"));
        }
        let reply = decoder.finish().expect("complete");
        assert_eq!(shown, "Let me look.");
        assert_eq!(reply.text, "Let me look.");
        assert_eq!(reply.model.as_deref(), Some("m-1"));
        assert_eq!(reply.stop_reason.as_deref(), Some("tool_calls_v2_unknown"));
        assert_eq!(reply.usage, Usage { input: 31, output: 9 });
        assert_eq!(
            reply.tool_calls,
            vec![
                ToolCall { id: "call_a".into(), name: "files.read".into(), arguments: r#"{"path":"a.txt"}"#.into() },
                ToolCall { id: "call_b".into(), name: "files.read".into(), arguments: r#"{"path":"b.txt"}"#.into() },
            ]
        );
    }

    #[test]
    fn calls_without_index_are_told_apart_by_id() {
        let names = names();
        let mut decoder = Decoder::default();
        for chunk in [
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"files.read","arguments":"{\"path\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"\"x\"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"b","function":{"name":"files.read","arguments":"{}"}}]}}]}"#,
            "[DONE]",
        ] {
            decoder.chunk(chunk, &names).expect("valid");
        }
        let reply = decoder.finish().expect("complete");
        let calls: Vec<(&str, &str)> = reply.tool_calls.iter().map(|c| (c.id.as_str(), c.arguments.as_str())).collect();
        assert_eq!(calls, [("a", r#"{"path":"x"}"#), ("b", "{}")]);
    }

    #[test]
    fn a_whole_response_body_is_read_too() {
        let mut decoder = Decoder::default();
        let body = r#"{"model":"llama","choices":[{"index":0,"message":{"role":"assistant","content":"hi","tool_calls":[{"id":"x","type":"function","function":{"name":"files.read","arguments":{"path":"a"}}}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        decoder.whole(body, &names()).expect("valid");
        let reply = decoder.finish().expect("complete");
        assert_eq!(reply.text, "hi");
        assert_eq!(reply.tool_calls[0].name, "files.read");
        assert_eq!(reply.tool_calls[0].arguments, r#"{"path":"a"}"#);
    }

    #[test]
    fn a_cut_stream_and_an_error_chunk_are_errors() {
        let mut decoder = Decoder::default();
        decoder.chunk(r#"{"choices":[{"delta":{"content":"par"}}]}"#, &names()).expect("valid");
        assert!(decoder.finish().is_err());
        let mut decoder = Decoder::default();
        let error = decoder.chunk(r#"{"error":{"message":"overloaded"}}"#, &names()).expect_err("error");
        assert!(error.to_string().contains("overloaded"), "{error}");
    }

    #[test]
    fn text_calls_and_arguments_stop_at_their_caps() {
        use crate::limits::{Overflow, ReplyLimits};
        let caps =
            Caps::new(ReplyLimits { text_bytes: 8, tool_calls: 2, arguments_bytes: 10, ..ReplyLimits::default() });
        let names = names();
        let mut decoder = Decoder::new(caps);
        decoder.chunk(r#"{"choices":[{"delta":{"content":"12345678"}}]}"#, &names).expect("at the cap");
        let error = decoder.chunk(r#"{"choices":[{"delta":{"content":"9"}}]}"#, &names).expect_err("past it");
        assert_eq!(error, DecodeError::Over(Overflow::Text { limit: 8 }));

        let mut decoder = Decoder::new(caps);
        let call = |index: u64, arguments: &str| {
            json!({"choices":[{"delta":{"tool_calls":[{"index": index, "id": format!("c{index}"),
                "function":{"name":"files_read","arguments": arguments}}]}}]})
            .to_string()
        };
        decoder.chunk(&call(0, "{\"a\":1}"), &names).expect("first");
        decoder.chunk(&call(1, "{}"), &names).expect("second");
        let error = decoder.chunk(&call(1, "{}"), &names).expect_err("11 bytes in all");
        assert_eq!(error, DecodeError::Over(Overflow::Arguments { limit: 10 }));
        let error = decoder.chunk(&call(2, ""), &names).expect_err("a third call");
        assert_eq!(error, DecodeError::Over(Overflow::ToolCalls { limit: 2 }));
    }

    #[test]
    fn requests_carry_history_tools_and_wire_names() {
        let request = Request {
            system: "be brief".into(),
            messages: vec![
                Message::User { text: "read a".into() },
                Message::Assistant {
                    text: String::new(),
                    tool_calls: vec![ToolCall { id: "c".into(), name: "files.read".into(), arguments: "{}".into() }],
                },
                Message::Tool { call_id: "c".into(), name: "files.read".into(), content: "A".into(), is_error: false },
            ],
            tools: vec![ToolSpec {
                name: "files.read".into(),
                description: "read".into(),
                parameters: json!({"type": "object"}),
            }],
            temperature: Some(0.0),
        };
        let body = encode(&request, "gpt-x", Some(100), &ToolNames::for_tools(&request.tools));
        assert_eq!(body["messages"][0], json!({"role": "system", "content": "be brief"}));
        assert_eq!(body["messages"][2]["tool_calls"][0]["function"]["name"], "files_read");
        assert_eq!(body["messages"][3]["tool_call_id"], "c");
        assert_eq!(body["tools"][0]["function"]["name"], "files_read");
        assert_eq!(body["max_tokens"], 100);
        assert_eq!(body["stream"], true);
    }
}
