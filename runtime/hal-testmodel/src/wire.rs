//! The bytes the server streams: the events of a reply in either wire format, and the misbehaving streams.

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::Misbehaviour;

/// What one reply streams, before it is cut into pieces.
pub(crate) struct ReplyEvents<'a> {
    pub(crate) text: &'a str,
    /// (id, name, arguments) of each call.
    pub(crate) calls: &'a [(String, String, String)],
    pub(crate) usage: (u64, u64),
    /// Stopped by the token limit (`length` / `max_tokens`).
    pub(crate) truncated: bool,
    /// Characters per piece of text or arguments.
    pub(crate) piece: usize,
}

/// `text` cut into pieces of at most `size` characters.
fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(size.max(1)).map(|c| c.iter().collect()).collect()
}

fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

fn openai_chunk(delta: Value, finish: Value) -> String {
    sse(
        None,
        &json!({"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "model": "scripted",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
    )
}

/// The events of a chat completions reply.
pub(crate) fn openai_events(reply: &ReplyEvents<'_>) -> Vec<String> {
    let mut events = openai_text(reply.text, reply.piece);
    for (index, (id, name, arguments)) in reply.calls.iter().enumerate() {
        events.push(openai_chunk(
            json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ));
        for part in pieces(arguments, reply.piece) {
            events.push(openai_chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": part}}]}),
                Value::Null,
            ));
        }
    }
    let finish = match (reply.truncated, reply.calls.is_empty()) {
        (true, _) => "length",
        (false, true) => "stop",
        (false, false) => "tool_calls",
    };
    events.push(openai_chunk(json!({}), json!(finish)));
    let (input, output) = reply.usage;
    events.push(sse(
        None,
        &json!({"id": "chatcmpl-scripted", "model": "scripted", "choices": [],
            "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output}}),
    ));
    events.push("data: [DONE]\n\n".to_owned());
    events
}

/// The opening of a chat completions reply and its text, without an end.
pub(crate) fn openai_text(text: &str, piece: usize) -> Vec<String> {
    let mut events = vec![openai_chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    for part in pieces(text, piece) {
        events.push(openai_chunk(json!({"content": part}), Value::Null));
    }
    events
}

/// The events of a messages reply.
pub(crate) fn anthropic_events(reply: &ReplyEvents<'_>) -> Vec<String> {
    let mut events = anthropic_text(reply.text, reply.usage.0, reply.piece);
    let mut index = 0;
    if !reply.text.is_empty() {
        events.push(sse(Some("content_block_stop"), &json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    for (id, name, arguments) in reply.calls {
        events.push(sse(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
        ));
        for part in pieces(arguments, reply.piece) {
            events.push(sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": part}}),
            ));
        }
        events.push(sse(Some("content_block_stop"), &json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    let stop = match (reply.truncated, reply.calls.is_empty()) {
        (true, _) => "max_tokens",
        (false, true) => "end_turn",
        (false, false) => "tool_use",
    };
    events.push(sse(
        Some("message_delta"),
        &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": reply.usage.1}}),
    ));
    events.push(sse(Some("message_stop"), &json!({"type": "message_stop"})));
    events
}

/// The opening of a messages reply and its text block (left open), without an end.
pub(crate) fn anthropic_text(text: &str, input_tokens: u64, piece: usize) -> Vec<String> {
    let mut events = vec![sse(
        Some("message_start"),
        &json!({"type": "message_start", "message": {"id": "msg_scripted", "type": "message", "role": "assistant",
            "model": "scripted", "content": [], "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
    )];
    if !text.is_empty() {
        events.push(text_block_start());
        events.push(sse(Some("ping"), &json!({"type": "ping"})));
        for part in pieces(text, piece) {
            events.push(anthropic_text_delta(&part));
        }
    }
    events
}

fn text_block_start() -> String {
    sse(
        Some("content_block_start"),
        &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    )
}

fn anthropic_text_delta(text: &str) -> String {
    sse(
        Some("content_block_delta"),
        &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
    )
}

/// The error a server sends in the middle of a stream.
pub(crate) fn error_event(anthropic: bool, message: &str) -> String {
    if anthropic {
        sse(Some("error"), &json!({"type": "error", "error": {"type": "overloaded_error", "message": message}}))
    } else {
        sse(None, &json!({"error": {"message": message, "type": "server_error"}}))
    }
}

/// The opening of an endless text stream, and the block of text events it repeats for ever.
pub(crate) fn endless_text(anthropic: bool) -> (String, String) {
    const WORDS: &str = "All work and no play makes a dull model. ";
    if anthropic {
        let opening = anthropic_text("", 10, 1).concat() + &text_block_start();
        (opening, (0..64).map(|_| anthropic_text_delta(WORDS)).collect())
    } else {
        let opening = openai_text("", 1).concat();
        (opening, (0..64).map(|_| openai_chunk(json!({"content": WORDS}), Value::Null)).collect())
    }
}

/// The opening of a stream whose first event's line never ends, and the block of bytes it repeats for ever.
pub(crate) fn endless_line(anthropic: bool) -> (String, String) {
    let opening = if anthropic {
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\""
    } else {
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\""
    };
    (opening.to_owned(), "a".repeat(64 * 1024))
}

/// Every event as its own piece of the body, and long events cut further.
pub(crate) fn cut(events: Vec<String>, piece: usize) -> Vec<Bytes> {
    let mut chunks = Vec::new();
    for event in events {
        for part in event.as_bytes().chunks(piece.max(16) * 4) {
            chunks.push(Bytes::copy_from_slice(part));
        }
    }
    chunks
}

/// The body of a misbehaving reply.
pub(crate) fn misbehave(
    misbehaviour: Misbehaviour,
    anthropic: bool,
    piece: usize,
    mut stopping: watch::Receiver<bool>,
) -> BoxStream<'static, Bytes> {
    let text_events = |text: &str| {
        if anthropic { anthropic_text(text, 10, piece) } else { openai_text(text, piece) }
    };
    match misbehaviour {
        Misbehaviour::ErrorMidStream { text, message } => {
            let mut events = text_events(&text);
            events.push(error_event(anthropic, &message));
            stream::iter(cut(events, piece)).boxed()
        }
        Misbehaviour::StallAfterHeaders | Misbehaviour::StallMidStream { .. } => {
            let text = match misbehaviour {
                Misbehaviour::StallMidStream { text } => text_events(&text),
                _ => Vec::new(),
            };
            // Nothing more until the server stops (or the client hangs up, which drops this stream).
            let silence = stream::once(async move {
                let _ = stopping.wait_for(|stopped| *stopped).await;
            })
            .filter_map(|()| async { None });
            stream::iter(cut(text, piece)).chain(silence).boxed()
        }
        Misbehaviour::EndlessText | Misbehaviour::EndlessLine => {
            let (opening, block) = match misbehaviour {
                Misbehaviour::EndlessText => endless_text(anthropic),
                _ => endless_line(anthropic),
            };
            let block = Bytes::from(block);
            let endless =
                stream::repeat_with(move || block.clone()).take_while(move |_| std::future::ready(!*stopping.borrow()));
            stream::once(async move { Bytes::from(opening) }).chain(endless).boxed()
        }
    }
}
