//! Small pieces of text a run makes and reads: the question for missing secrets, a tool result cut to fit a step,
//! a reply's text, and the ending a `finish` call or a plain reply asks for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hal_model::{Message, Reply, ToolCall};
use serde_json::Value;

use crate::status::Status;
use crate::tools::{Tool, ToolResult};

/// What to ask when a tool the run offers needs secrets that are not set: each name once, with the tools that
/// need it and the command that sets it (secrets are typed in a terminal, never sent in a chat).
pub(super) fn missing_secrets(tools: &[Arc<dyn Tool>]) -> Option<String> {
    let mut missing: Vec<(String, Vec<String>)> = Vec::new();
    for tool in tools {
        for name in tool.needs_secrets() {
            if crate::secrets::get(&name).is_some() {
                continue;
            }
            match missing.iter_mut().find(|(n, _)| *n == name) {
                Some((_, users)) => users.push(tool.spec().name.clone()),
                None => missing.push((name, vec![tool.spec().name.clone()])),
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let mut text = String::from("This help needs secrets that are not set:\n");
    for (name, users) in &missing {
        text.push_str(&format!("- {name} (for {})\n", users.join(", ")));
    }
    text.push_str("Set each in a terminal, never in a chat:\n");
    for (name, _) in &missing {
        text.push_str(&format!("  hal secret set {name}\n"));
    }
    text.push_str("then answer this thread to go on.");
    Some(text)
}

/// `text` with NUL characters (which a commit message cannot hold) replaced by U+FFFD.
pub(super) fn without_nul(text: String) -> String {
    if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text }
}

/// `text` cut (at a character boundary, saying so) to a quarter of the largest step HAL reads back, so that a
/// huge tool result never makes a step the thread cannot be read past.
pub(super) fn cut_to_step(text: String) -> String {
    let most = usize::try_from(hal_store::MAX_STEP_BYTES / 4).unwrap_or(usize::MAX);
    match text.len() <= most {
        true => text,
        false => hal_store::files::clip(&text, most, &format!(" cut: a step holds at most {most}")),
    }
}

/// A deadline `seconds` from now; absurdly large values mean "no deadline" rather than an overflow.
pub(super) fn deadline_after(seconds: f64) -> Instant {
    let now = Instant::now();
    let far = now + Duration::from_secs(100 * 365 * 24 * 3600);
    Duration::try_from_secs_f64(seconds).ok().and_then(|d| now.checked_add(d)).map_or(far, |d| d.min(far))
}

/// The conversation message answering `call` with `result`.
pub(super) fn tool_message(call: &ToolCall, result: ToolResult) -> Message {
    Message::Tool {
        call_id: call.id.clone(),
        name: call.name.clone(),
        content: result.content,
        is_error: result.is_error,
    }
}

/// The text of a reply step: what the model said, or the calls it made.
pub(super) fn reply_text(reply: &Reply) -> String {
    let mut text = reply.text.clone();
    for call in &reply.tool_calls {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("calls {} {}", call.name, call.arguments));
    }
    if text.is_empty() { "(an empty reply)".to_owned() } else { text }
}

pub(super) type Ending = (Status, String, Option<f64>, Option<String>);

/// The ending a `finish` call asks for, or why it is refused.
pub(super) fn parse_finish(call: &ToolCall) -> Result<Ending, String> {
    let args: Value = serde_json::from_str(&call.arguments)
        .map_err(|e| format!("the arguments of finish are not valid JSON: {e}"))?;
    let status = args
        .get("status")
        .and_then(Value::as_str)
        .and_then(Status::parse)
        .ok_or_else(|| "finish needs `status`: one of DONE, PENDING, ERROR, NOCANDO".to_owned())?;
    let output = match args.get("output") {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let confidence = args.get("confidence").and_then(Value::as_f64).filter(|c| (0.0..=1.0).contains(c));
    Ok((status, output, confidence, Some(call.id.clone())))
}

/// A reply without tool calls: its text is the result.
pub(super) fn plain_reply(reply: &Reply) -> Result<Ending, String> {
    if matches!(reply.stop_reason.as_deref(), Some("length" | "max_tokens")) {
        let reason = "the model's answer was cut off at its output limit (max_output_tokens in hal.yaml)";
        return Ok((Status::Error, reason.to_owned(), None, None));
    }
    if reply.text.trim().is_empty() {
        return Ok((Status::Error, "the model replied with nothing".to_owned(), None, None));
    }
    Ok((Status::Done, reply.text.clone(), None, None))
}
