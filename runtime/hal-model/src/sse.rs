//! An incremental parser of server-sent events (the `text/event-stream` format both wire formats stream in).
//!
//! Bytes arrive in arbitrary pieces: a line, an event, even a UTF-8 character may be split between two network
//! reads. [`SseParser::feed`] keeps the unfinished tail and returns only complete events. Lines end with `\n`,
//! `\r\n` or `\r`; `data` lines of one event are joined with `\n`; comments (`:`) and unknown fields are skipped.
//!
//! What the parser holds is bounded: an unfinished line and the data lines of an unfinished event count
//! together against one limit ([`SseParser::with_limit`]; [`DEFAULT_MAX_EVENT`] by default). An event that
//! passes it is dropped whole, and [`SseParser::overflowed`] says so; [`SseParser::try_feed`] fails instead.

/// The limit of [`SseParser::new`]: 1 MiB for one event (its data lines and the unfinished line together).
pub const DEFAULT_MAX_EVENT: usize = 1024 * 1024;

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if the server sent one.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// An event, or a line, longer than the parser's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an event of the stream is longer than {limit} bytes")]
pub struct EventTooLong {
    /// The limit, in bytes.
    pub limit: usize,
}

/// Parser state between pieces of the stream.
#[derive(Debug)]
pub struct SseParser {
    /// Bytes of an unfinished line.
    pending: Vec<u8>,
    /// The last byte fed was a `\r`, so a `\n` at the start of the next piece ends nothing.
    after_cr: bool,
    event: Option<String>,
    /// The data lines so far, joined with `\n`.
    data: String,
    has_data: bool,
    started: bool,
    /// Most bytes of one event: `pending` and `data` together.
    limit: usize,
    /// The current event passed the limit: its lines are skipped up to the blank line that ends it.
    skipping: bool,
    /// The line being skipped is not blank.
    skipped_any: bool,
    /// Some event passed the limit.
    overflowed: bool,
}

impl Default for SseParser {
    fn default() -> SseParser {
        SseParser::with_limit(DEFAULT_MAX_EVENT)
    }
}

impl SseParser {
    /// A parser at the start of a stream, holding at most [`DEFAULT_MAX_EVENT`] bytes of one event.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// A parser holding at most `limit` bytes of one event (its unfinished line and its data lines together).
    pub fn with_limit(limit: usize) -> SseParser {
        SseParser {
            pending: Vec::new(),
            after_cr: false,
            event: None,
            data: String::new(),
            has_data: false,
            started: false,
            limit,
            skipping: false,
            skipped_any: false,
            overflowed: false,
        }
    }

    /// Whether an event longer than the limit was dropped.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Feed the next piece of the stream; returns the events it completed. An event longer than the limit is
    /// dropped (see [`SseParser::overflowed`]).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in bytes {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\n' => self.end_line(&mut events),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut events);
                }
                _ if self.skipping => self.skipped_any = true,
                other => {
                    if self.pending.len() + self.data.len() >= self.limit {
                        self.overflow();
                    } else {
                        self.pending.push(other);
                    }
                }
            }
        }
        events
    }

    /// Feed the next piece of the stream; fails as soon as an event passes the limit.
    pub fn try_feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, EventTooLong> {
        let events = self.feed(bytes);
        if self.overflowed { Err(EventTooLong { limit: self.limit }) } else { Ok(events) }
    }

    /// The end of the stream: an event without its final blank line still counts.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut events = Vec::new();
        if !self.pending.is_empty() {
            self.end_line(&mut events);
        }
        self.end_line(&mut events);
        events.pop()
    }

    /// Drop the current event, and skip what is left of it.
    fn overflow(&mut self) {
        self.overflowed = true;
        self.skipping = true;
        self.skipped_any = true;
        self.pending = Vec::new();
        self.data = String::new();
        self.event = None;
        self.has_data = false;
    }

    fn end_line(&mut self, events: &mut Vec<SseEvent>) {
        let mut line = std::mem::take(&mut self.pending);
        if self.skipping {
            // The blank line that ends the dropped event ends the skipping too.
            self.skipping = std::mem::take(&mut self.skipped_any);
            return;
        }
        if !self.started {
            self.started = true;
            if line.starts_with(b"\xEF\xBB\xBF") {
                line.drain(..3);
            }
        }
        if line.is_empty() {
            if self.has_data {
                events.push(SseEvent { event: self.event.take(), data: std::mem::take(&mut self.data) });
            }
            self.event = None;
            self.data.clear();
            self.has_data = false;
            return;
        }
        let line = String::from_utf8_lossy(&line);
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(stream: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for chunk in stream.chunks(piece) {
            events.extend(parser.feed(chunk));
        }
        events.extend(parser.finish());
        events
    }

    #[test]
    fn events_are_the_same_whatever_the_piece_size() {
        let stream =
            "\u{feff}: a comment\nevent: message_start\ndata: {\"a\":1}\n\ndata: line one\r\ndata: line two\r\n\r\n\
                      id: 7\nretry: 100\ndata:no space é\r\rdata: [DONE]\n\n"
                .as_bytes();
        let expected = vec![
            SseEvent { event: Some("message_start".into()), data: "{\"a\":1}".into() },
            SseEvent { event: None, data: "line one\nline two".into() },
            SseEvent { event: None, data: "no space é".into() },
            SseEvent { event: None, data: "[DONE]".into() },
        ];
        for piece in [1, 2, 3, 5, 7, 64, 4096] {
            assert_eq!(parse_in_pieces(stream, piece), expected, "piece size {piece}");
        }
    }

    #[test]
    fn an_event_without_data_is_not_an_event_and_a_last_event_without_blank_line_counts() {
        assert_eq!(parse_in_pieces(b"event: ping\n\n", 4), vec![]);
        assert_eq!(parse_in_pieces(b"data: tail", 3), vec![SseEvent { event: None, data: "tail".into() }]);
        assert_eq!(parse_in_pieces(b"data\n\n", 3), vec![SseEvent { event: None, data: String::new() }]);
    }

    #[test]
    fn an_event_past_the_limit_is_dropped_whole_and_the_next_one_parses() {
        let long = format!("event: big\ndata: {}\ndata: more\n\ndata: next\n\n", "x".repeat(100));
        for piece in [1, 7, 4096] {
            let mut parser = SseParser::with_limit(64);
            let mut events = Vec::new();
            for chunk in long.as_bytes().chunks(piece) {
                events.extend(parser.feed(chunk));
            }
            assert_eq!(events, vec![SseEvent { event: None, data: "next".into() }], "piece size {piece}");
            assert!(parser.overflowed());
        }
        // Many short data lines count together.
        let mut parser = SseParser::with_limit(64);
        assert_eq!(parser.try_feed("data: 0123456789\n".repeat(10).as_bytes()), Err(EventTooLong { limit: 64 }));
        // A line without end never holds more than the limit.
        let mut parser = SseParser::with_limit(64);
        for _ in 0..1000 {
            parser.feed(&[b'a'; 100]);
        }
        assert!(parser.pending.len() <= 64 && parser.overflowed());
        let mut parser = SseParser::with_limit(64);
        assert_eq!(parser.try_feed(&[b'a'; 64]), Ok(vec![]), "up to the limit is fine");
    }
}
