//! How much of a reply HAL reads, and how long it waits for the next byte.
//!
//! The table of caps and the reasoning are on [`ReplyLimits`].

use std::time::Duration;

/// How much of one model reply the client reads and keeps, and how long it waits for it.
///
/// A model server is outside HAL's control: it may stream without end, send one line that never ends, call a
/// thousand tools, or go silent in the middle of a reply. Every part of a reply the client keeps has a cap, so
/// memory stays bounded whatever the server does, for as long as the run's time limit allows:
///
/// | what | cap | `hal.yaml` | default |
/// | --- | --- | --- | --- |
/// | the reply's text | [`ReplyLimits::text_bytes`] | `limits.reply.text_kb` | 256 KiB |
/// | one line (and one event) of the event stream; the whole body of a reply that is not streamed | [`ReplyLimits::line_bytes`] | `limits.reply.line_kb` | 1 MiB |
/// | the raw body kept for the step record | [`ReplyLimits::raw_bytes`] | `limits.reply.raw_kb` | 256 KiB |
/// | tool calls in one reply | [`ReplyLimits::tool_calls`] | `limits.reply.tool_calls` | 64 |
/// | the arguments of those calls, in all | [`ReplyLimits::arguments_bytes`] | `limits.reply.arguments_kb` | 1 MiB |
/// | silence while waiting for the answer or its next bytes | [`ReplyLimits::idle`] | `limits.idle_seconds` | 60 s |
///
/// Passing a cap ends the call at once with [`crate::ModelError::TooLarge`], which names the setting that raises
/// it and is never retried (the same request would get the same answer). The raw body is the exception: past
/// its cap the client stops keeping the copy and goes on reading, and the step records that it was not kept.
///
/// Silence is retried only while nothing of the reply has come (no headers, or headers but no byte of the
/// body), like a connection that broke: the request may have been lost on the way. Each attempt waits at most
/// the idle time, so the retries together end long before a run's `max_seconds`. Silence after the first byte
/// of the body ends the call with [`crate::ModelError::Stalled`]: the server was working on the reply and
/// stopped, and asking again would most likely repeat that. With the defaults, five attempts that each wait
/// 60 s end in about five minutes, inside the 600 s a run has by default; a local server that takes longer than
/// `idle_seconds` to read a long prompt before its first token needs a larger value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Longest text of one reply, in bytes (`limits.reply.text_kb`; default 256 KiB).
    pub text_bytes: usize,
    /// Longest line, and longest event, of a streamed reply; longest body of a reply that is not streamed, in
    /// bytes (`limits.reply.line_kb`; default 1 MiB).
    pub line_bytes: usize,
    /// Longest raw response body kept for the step record, in bytes (`limits.reply.raw_kb`; default 256 KiB).
    /// A longer one is read to its end but not kept.
    pub raw_bytes: usize,
    /// Most tool calls in one reply (`limits.reply.tool_calls`; default 64).
    pub tool_calls: usize,
    /// Most bytes of tool-call arguments in one reply, all calls together (`limits.reply.arguments_kb`;
    /// default 1 MiB).
    pub arguments_bytes: usize,
    /// Longest silence while waiting for the response or its next bytes (`limits.idle_seconds`; default 60 s).
    pub idle: Duration,
}

impl ReplyLimits {
    /// The default text cap: 256 KiB.
    pub const DEFAULT_TEXT_BYTES: usize = 256 * 1024;
    /// The default line cap: 1 MiB.
    pub const DEFAULT_LINE_BYTES: usize = 1024 * 1024;
    /// The default raw-body cap: 256 KiB.
    pub const DEFAULT_RAW_BYTES: usize = 256 * 1024;
    /// The default tool-call cap: 64.
    pub const DEFAULT_TOOL_CALLS: usize = 64;
    /// The default arguments cap: 1 MiB.
    pub const DEFAULT_ARGUMENTS_BYTES: usize = 1024 * 1024;
    /// The default idle time: 60 s.
    pub const DEFAULT_IDLE: Duration = Duration::from_secs(60);
}

impl Default for ReplyLimits {
    fn default() -> ReplyLimits {
        ReplyLimits {
            text_bytes: ReplyLimits::DEFAULT_TEXT_BYTES,
            line_bytes: ReplyLimits::DEFAULT_LINE_BYTES,
            raw_bytes: ReplyLimits::DEFAULT_RAW_BYTES,
            tool_calls: ReplyLimits::DEFAULT_TOOL_CALLS,
            arguments_bytes: ReplyLimits::DEFAULT_ARGUMENTS_BYTES,
            idle: ReplyLimits::DEFAULT_IDLE,
        }
    }
}

/// Longest tool-call id a reply may carry (real servers send a few dozen bytes).
pub const MAX_CALL_ID: usize = 256;
/// Longest tool name a reply may carry (HAL's own names are far shorter; wire names are at most 64).
pub const MAX_CALL_NAME: usize = 128;

/// Which cap a reply passed. The message names the `hal.yaml` setting that raises it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Overflow {
    /// The reply's text.
    #[error("its text is longer than {} (limits.reply.text_kb in hal.yaml raises the limit)", size(*limit))]
    Text {
        /// The cap, in bytes.
        limit: usize,
    },
    /// One line or event of the event stream.
    #[error(
        "one line of its event stream is longer than {} (limits.reply.line_kb in hal.yaml raises the limit)",
        size(*limit)
    )]
    Line {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The body of a reply that is not streamed (it must be held whole to be read).
    #[error(
        "its body (not streamed) is longer than {} (limits.reply.line_kb in hal.yaml raises the limit)",
        size(*limit)
    )]
    Body {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The number of tool calls.
    #[error("it has more than {limit} tool calls (limits.reply.tool_calls in hal.yaml raises the limit)")]
    ToolCalls {
        /// The cap.
        limit: usize,
    },
    /// A tool call's id or name: HAL gave the names and ids are short tokens, so a long one is not a call.
    #[error("a tool call's {what} is longer than {limit} bytes")]
    CallField {
        /// `id` or `name`.
        what: &'static str,
        /// The cap, in bytes.
        limit: usize,
    },
    /// The tool-call arguments, all calls together.
    #[error(
        "its tool-call arguments are longer than {} in all (limits.reply.arguments_kb in hal.yaml raises the limit)",
        size(*limit)
    )]
    Arguments {
        /// The cap, in bytes.
        limit: usize,
    },
}

/// `bytes` for a message: in KiB when it is a whole number of them (the unit of the settings).
fn size(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) { format!("{} KiB", bytes / 1024) } else { format!("{bytes} bytes") }
}

/// Seconds for a message: `60`, `0.5`.
pub(crate) fn seconds(duration: Duration) -> String {
    format!("{}", duration.as_secs_f64())
}

/// Why a decoder could not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The reply does not follow the wire format.
    #[error("{0}")]
    Protocol(String),
    /// The reply passed a cap.
    #[error(transparent)]
    Over(#[from] Overflow),
}

impl From<String> for DecodeError {
    fn from(detail: String) -> DecodeError {
        DecodeError::Protocol(detail)
    }
}

/// At most `max` characters of `text` for an error message, with `…` when cut.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The caps a decoder checks as a reply grows.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Caps {
    limits: ReplyLimits,
}

impl Caps {
    pub(crate) fn new(limits: ReplyLimits) -> Caps {
        Caps { limits }
    }

    /// Text of `current` bytes may grow by `adding`.
    pub(crate) fn text(&self, current: usize, adding: usize) -> Result<(), Overflow> {
        let limit = self.limits.text_bytes;
        if current.saturating_add(adding) > limit { Err(Overflow::Text { limit }) } else { Ok(()) }
    }

    /// A reply with `calls` tool calls may start another.
    pub(crate) fn another_call(&self, calls: usize) -> Result<(), Overflow> {
        let limit = self.limits.tool_calls;
        if calls >= limit { Err(Overflow::ToolCalls { limit }) } else { Ok(()) }
    }

    /// A tool call's `what` (`id` or `name`) may be `value`.
    pub(crate) fn call_field(&self, what: &'static str, value: &str) -> Result<(), Overflow> {
        let limit = if what == "id" { MAX_CALL_ID } else { MAX_CALL_NAME };
        if value.len() > limit { Err(Overflow::CallField { what, limit }) } else { Ok(()) }
    }

    /// Arguments of `current` bytes in all may grow by `adding`.
    pub(crate) fn arguments(&self, current: usize, adding: usize) -> Result<(), Overflow> {
        let limit = self.limits.arguments_bytes;
        if current.saturating_add(adding) > limit { Err(Overflow::Arguments { limit }) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_setting_in_its_unit() {
        assert_eq!(
            Overflow::Text { limit: 256 * 1024 }.to_string(),
            "its text is longer than 256 KiB (limits.reply.text_kb in hal.yaml raises the limit)"
        );
        assert_eq!(
            Overflow::Line { limit: 100 }.to_string().split(" (").next(),
            Some("one line of its event stream is longer than 100 bytes")
        );
        assert_eq!(seconds(Duration::from_millis(500)), "0.5");
        assert_eq!(seconds(Duration::from_secs(60)), "60");
        assert_eq!(excerpt("héllo", 2), "hé…");
        assert_eq!(excerpt("hé", 2), "hé");
    }

    #[test]
    fn caps_allow_up_to_the_limit_and_not_a_byte_more() {
        let caps =
            Caps::new(ReplyLimits { text_bytes: 10, tool_calls: 2, arguments_bytes: 4, ..ReplyLimits::default() });
        assert!(caps.text(6, 4).is_ok());
        assert_eq!(caps.text(6, 5), Err(Overflow::Text { limit: 10 }));
        assert!(caps.another_call(1).is_ok());
        assert_eq!(caps.another_call(2), Err(Overflow::ToolCalls { limit: 2 }));
        assert_eq!(caps.arguments(4, 1), Err(Overflow::Arguments { limit: 4 }));
    }
}
