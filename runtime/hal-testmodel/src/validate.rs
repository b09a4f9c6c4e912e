//! Requests checked against the wire format they are sent in, as strictly as the real services check them, so
//! a test fails where a real server would answer 400.
//!
//! OpenAI chat completions: `model`, a non-empty `messages` list of known roles; an assistant message's
//! `tool_calls` have unique ids, a function name and string arguments; each is answered by one `tool` message
//! right after it (before any other message), and a `tool` message answers a call of the assistant message
//! just before it. Anthropic messages: `model`, `max_tokens`, `messages` that start with the user and
//! alternate; text blocks are not blank; `tool_use` blocks only in assistant turns, `tool_result` blocks only
//! in user turns, first in their turn, answering exactly the `tool_use` ids of the assistant turn before.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// `Err` with the reason when `body` is not a valid chat completions request.
pub(crate) fn openai(body: &Value) -> Result<(), String> {
    let object = body.as_object().ok_or("the body is not a JSON object")?;
    text_field(object, "model")?;
    optional_bool(object, "stream")?;
    optional_number(object, "temperature", 0.0, 2.0)?;
    optional_positive(object, "max_tokens")?;
    if let Some(tools) = object.get("tools") {
        let tools = tools.as_array().ok_or("`tools` is not a list")?;
        let mut names = BTreeSet::new();
        for (n, tool) in tools.iter().enumerate() {
            if tool["type"] != "function" {
                return Err(format!("tools[{n}]: `type` is not `function`"));
            }
            let name = tool_name(&tool["function"]["name"]).map_err(|e| format!("tools[{n}].function.name: {e}"))?;
            if !names.insert(name) {
                return Err(format!("tools[{n}]: the name `{name}` is used twice"));
            }
            if tool["function"].get("parameters").is_some_and(|p| !p.is_object()) {
                return Err(format!("tools[{n}].function.parameters: not an object"));
            }
        }
    }
    let messages = non_empty_list(object, "messages")?;
    // The calls of the last assistant message that no tool message answered yet.
    let mut open: Vec<String> = Vec::new();
    for (n, message) in messages.iter().enumerate() {
        let at = format!("messages[{n}]");
        let role = message["role"].as_str().ok_or_else(|| format!("{at}: no `role`"))?;
        if role != "tool" && !open.is_empty() {
            return Err(format!("{at}: the tool calls {open:?} before it have no `tool` message answering them"));
        }
        match role {
            "system" | "developer" | "user" => {
                content(&message["content"]).map_err(|e| format!("{at}.content: {e}"))?
            }
            "assistant" => {
                let calls = match message.get("tool_calls") {
                    None | Some(Value::Null) => &[][..],
                    Some(Value::Array(calls)) if !calls.is_empty() => calls.as_slice(),
                    Some(_) => return Err(format!("{at}.tool_calls: not a non-empty list")),
                };
                match message.get("content") {
                    None | Some(Value::Null) if !calls.is_empty() => {}
                    content => content
                        .map_or(Err("missing".to_owned()), self::content)
                        .map_err(|e| format!("{at}.content: {e}"))?,
                }
                for (c, call) in calls.iter().enumerate() {
                    let at = format!("{at}.tool_calls[{c}]");
                    let id = call["id"].as_str().filter(|id| !id.is_empty()).ok_or_else(|| format!("{at}: no `id`"))?;
                    if open.iter().any(|known| known == id) {
                        return Err(format!("{at}: the id `{id}` is used twice"));
                    }
                    if call["type"] != "function" {
                        return Err(format!("{at}: `type` is not `function`"));
                    }
                    tool_name(&call["function"]["name"]).map_err(|e| format!("{at}.function.name: {e}"))?;
                    if !call["function"]["arguments"].is_string() {
                        return Err(format!("{at}.function.arguments: not a string"));
                    }
                    open.push(id.to_owned());
                }
            }
            "tool" => {
                let id = message["tool_call_id"].as_str().ok_or_else(|| format!("{at}: no `tool_call_id`"))?;
                content(&message["content"]).map_err(|e| format!("{at}.content: {e}"))?;
                let Some(position) = open.iter().position(|known| known == id) else {
                    return Err(format!(
                        "{at}: `tool_call_id` `{id}` answers no tool call of the assistant message before it"
                    ));
                };
                open.remove(position);
            }
            other => return Err(format!("{at}: unknown role `{other}`")),
        }
    }
    if !open.is_empty() {
        return Err(format!("the tool calls {open:?} of the last message have no `tool` message answering them"));
    }
    Ok(())
}

/// `Err` with the reason when `body` is not a valid Anthropic messages request.
pub(crate) fn anthropic(body: &Value) -> Result<(), String> {
    let object = body.as_object().ok_or("the body is not a JSON object")?;
    text_field(object, "model")?;
    if object.get("max_tokens").and_then(Value::as_u64).is_none_or(|max| max == 0) {
        return Err("`max_tokens` is required and must be a positive integer".to_owned());
    }
    optional_bool(object, "stream")?;
    optional_number(object, "temperature", 0.0, 1.0)?;
    match object.get("system") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(blocks)) if blocks.iter().all(|b| b["type"] == "text" && b["text"].is_string()) => {}
        Some(_) => return Err("`system` is neither text nor a list of text blocks".to_owned()),
    }
    if let Some(tools) = object.get("tools") {
        let tools = tools.as_array().ok_or("`tools` is not a list")?;
        let mut names = BTreeSet::new();
        for (n, tool) in tools.iter().enumerate() {
            let name = tool_name(&tool["name"]).map_err(|e| format!("tools[{n}].name: {e}"))?;
            if !names.insert(name) {
                return Err(format!("tools[{n}]: the name `{name}` is used twice"));
            }
            if !tool["input_schema"].is_object() {
                return Err(format!("tools[{n}].input_schema: not an object"));
            }
        }
    }
    let messages = non_empty_list(object, "messages")?;
    // The tool_use ids of the assistant turn before.
    let mut open: Vec<String> = Vec::new();
    for (n, message) in messages.iter().enumerate() {
        let at = format!("messages[{n}]");
        let role = message["role"].as_str().ok_or_else(|| format!("{at}: no `role`"))?;
        let expected = if n % 2 == 0 { "user" } else { "assistant" };
        if role != expected {
            return Err(format!(
                "{at}: the role is `{role}`, not `{expected}`: turns start with the user and alternate"
            ));
        }
        let blocks = match &message["content"] {
            Value::String(text) if !text.trim().is_empty() => Vec::new(),
            Value::Array(blocks) if !blocks.is_empty() => blocks.clone(),
            _ => return Err(format!("{at}.content: neither text nor a non-empty list of blocks")),
        };
        let mut answered: Vec<String> = Vec::new();
        let mut after_other = false;
        let mut uses = Vec::new();
        for (b, block) in blocks.iter().enumerate() {
            let at = format!("{at}.content[{b}]");
            match (block["type"].as_str(), role) {
                (Some("text"), _) => {
                    if block["text"].as_str().is_none_or(|text| text.trim().is_empty()) {
                        return Err(format!("{at}: a text block must hold non-blank text"));
                    }
                    after_other = true;
                }
                (Some("tool_use"), "assistant") => {
                    let id =
                        block["id"].as_str().filter(|id| !id.is_empty()).ok_or_else(|| format!("{at}: no `id`"))?;
                    tool_name(&block["name"]).map_err(|e| format!("{at}.name: {e}"))?;
                    if !block["input"].is_object() {
                        return Err(format!("{at}.input: not an object"));
                    }
                    if uses.contains(&id) {
                        return Err(format!("{at}: the id `{id}` is used twice"));
                    }
                    uses.push(id);
                }
                (Some("tool_result"), "user") => {
                    let id = block["tool_use_id"].as_str().ok_or_else(|| format!("{at}: no `tool_use_id`"))?;
                    if !open.iter().any(|known| known == id) || answered.iter().any(|done| done == id) {
                        return Err(format!(
                            "{at}: `tool_use_id` `{id}` answers no tool_use block of the assistant turn before it"
                        ));
                    }
                    if after_other {
                        return Err(format!("{at}: tool_result blocks must come first in their turn"));
                    }
                    if !matches!(block.get("content"), None | Some(Value::String(_)) | Some(Value::Array(_))) {
                        return Err(format!("{at}.content: neither text nor a list of blocks"));
                    }
                    answered.push(id.to_owned());
                }
                (Some(kind), role) => return Err(format!("{at}: a `{kind}` block cannot be in a `{role}` turn")),
                (None, _) => return Err(format!("{at}: no `type`")),
            }
        }
        if role == "user" {
            if let Some(missing) = open.iter().find(|id| !answered.contains(id)) {
                return Err(format!("{at}: the tool_use `{missing}` of the assistant turn before has no tool_result"));
            }
            open.clear();
        } else {
            open = uses.into_iter().map(str::to_owned).collect();
        }
    }
    if let Some(missing) = open.first() {
        return Err(format!("the tool_use `{missing}` of the last turn has no tool_result"));
    }
    Ok(())
}

fn text_field(object: &Map<String, Value>, key: &str) -> Result<(), String> {
    match object.get(key) {
        Some(Value::String(text)) if !text.is_empty() => Ok(()),
        _ => Err(format!("`{key}` is required and must be non-empty text")),
    }
}

fn non_empty_list<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a Vec<Value>, String> {
    match object.get(key) {
        Some(Value::Array(list)) if !list.is_empty() => Ok(list),
        _ => Err(format!("`{key}` is required and must be a non-empty list")),
    }
}

fn optional_bool(object: &Map<String, Value>, key: &str) -> Result<(), String> {
    match object.get(key) {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(_) => Err(format!("`{key}` is not true or false")),
    }
}

fn optional_number(object: &Map<String, Value>, key: &str, min: f64, max: f64) -> Result<(), String> {
    match object.get(key) {
        None => Ok(()),
        Some(value) if value.as_f64().is_some_and(|v| (min..=max).contains(&v)) => Ok(()),
        Some(_) => Err(format!("`{key}` is not a number from {min} to {max}")),
    }
}

fn optional_positive(object: &Map<String, Value>, key: &str) -> Result<(), String> {
    match object.get(key) {
        None => Ok(()),
        Some(value) if value.as_u64().is_some_and(|v| v > 0) => Ok(()),
        Some(_) => Err(format!("`{key}` is not a positive integer")),
    }
}

/// A tool name both formats accept: `^[a-zA-Z0-9_-]{1,64}$`.
fn tool_name(name: &Value) -> Result<&str, String> {
    let name = name.as_str().ok_or("missing")?;
    let valid =
        (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid { Ok(name) } else { Err(format!("`{name}` does not match ^[a-zA-Z0-9_-]{{1,64}}$")) }
}

/// Message content: text, or a list of content parts.
fn content(value: &Value) -> Result<(), String> {
    match value {
        Value::String(_) => Ok(()),
        Value::Array(parts) if parts.iter().all(|p| p["type"].is_string()) => Ok(()),
        Value::Null => Err("missing".to_owned()),
        _ => Err("neither text nor a list of parts".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call(id: &str) -> Value {
        json!({"id": id, "type": "function", "function": {"name": "files_read", "arguments": "{}"}})
    }

    #[test]
    fn openai_tool_messages_answer_the_calls_just_before_them() {
        let user = json!({"role": "user", "content": "hi"});
        let ask = |calls: Vec<Value>| json!({"role": "assistant", "content": null, "tool_calls": calls});
        let tool = |id: &str| json!({"role": "tool", "tool_call_id": id, "content": "done"});
        let body = |messages: Vec<Value>| json!({"model": "m", "messages": messages, "stream": true});
        let good = body(vec![user.clone(), ask(vec![call("a"), call("b")]), tool("b"), tool("a"), user.clone()]);
        assert_eq!(openai(&good), Ok(()));
        let cases = [
            (body(vec![user.clone(), tool("a")]), "messages[1]: `tool_call_id` `a` answers no tool call"),
            (body(vec![user.clone(), ask(vec![call("a")]), user.clone()]), "messages[2]: the tool calls [\"a\"]"),
            (body(vec![user.clone(), ask(vec![call("a")])]), "the tool calls [\"a\"] of the last message"),
            (
                body(vec![user.clone(), ask(vec![call("a"), call("a")])]),
                "messages[1].tool_calls[1]: the id `a` is used twice",
            ),
            (body(vec![user.clone(), ask(vec![call("a")]), tool("a"), tool("a")]), "messages[3]: `tool_call_id` `a`"),
            (json!({"messages": [user.clone()]}), "`model` is required"),
            (body(vec![json!({"role": "robot", "content": "x"})]), "messages[0]: unknown role `robot`"),
            (body(vec![]), "`messages` is required"),
        ];
        for (body, reason) in cases {
            let error = openai(&body).expect_err("invalid");
            assert!(error.starts_with(reason), "{error} does not start with {reason}");
        }
    }

    #[test]
    fn anthropic_turns_alternate_and_results_answer_the_turn_before() {
        let text = |role: &str, text: &str| json!({"role": role, "content": [{"type": "text", "text": text}]});
        let uses = |ids: &[&str]| {
            let blocks: Vec<Value> =
                ids.iter().map(|id| json!({"type": "tool_use", "id": id, "name": "files_read", "input": {}})).collect();
            json!({"role": "assistant", "content": blocks})
        };
        let results = |ids: &[&str]| {
            let blocks: Vec<Value> =
                ids.iter().map(|id| json!({"type": "tool_result", "tool_use_id": id, "content": "ok"})).collect();
            json!({"role": "user", "content": blocks})
        };
        let body = |messages: Vec<Value>| json!({"model": "m", "max_tokens": 10, "messages": messages});
        let good = body(vec![text("user", "hi"), uses(&["a", "b"]), results(&["b", "a"])]);
        assert_eq!(anthropic(&good), Ok(()));
        let cases = [
            (body(vec![text("assistant", "hi")]), "messages[0]: the role is `assistant`, not `user`"),
            (body(vec![text("user", "a"), text("user", "b")]), "messages[1]: the role is `user`"),
            (body(vec![text("user", " ")]), "messages[0].content[0]: a text block must hold non-blank text"),
            (
                body(vec![text("user", "hi"), uses(&["a"]), results(&["x"])]),
                "messages[2].content[0]: `tool_use_id` `x`",
            ),
            (body(vec![text("user", "hi"), uses(&["a", "b"]), results(&["a"])]), "messages[2]: the tool_use `b`"),
            (body(vec![text("user", "hi"), uses(&["a"])]), "the tool_use `a` of the last turn"),
            (body(vec![results(&["a"])]), "messages[0].content[0]: `tool_use_id` `a`"),
            (json!({"model": "m", "messages": [text("user", "hi")]}), "`max_tokens` is required"),
        ];
        for (body, reason) in cases {
            let error = anthropic(&body).expect_err("invalid");
            assert!(error.starts_with(reason), "{error} does not start with {reason}");
        }
        let mut late = results(&["a"]);
        late["content"].as_array_mut().expect("blocks").insert(0, json!({"type": "text", "text": "first"}));
        let error = anthropic(&body(vec![text("user", "hi"), uses(&["a"]), late])).expect_err("invalid");
        assert!(error.contains("must come first"), "{error}");
    }
}
