//! An incremental parser of server-sent events (the `text/event-stream` format both wire formats stream in).
//!
//! Bytes arrive in arbitrary pieces: a line, an event, even a UTF-8 character may be split between two network
//! reads. [`SseParser::feed`] keeps the unfinished tail and returns only complete events. Lines end with `\n`,
//! `\r\n` or `\r`; `data` lines of one event are joined with `\n`; comments (`:`) and unknown fields are skipped.

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if the server sent one.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Parser state between pieces of the stream.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of an unfinished line.
    pending: Vec<u8>,
    /// The last byte fed was a `\r`, so a `\n` at the start of the next piece ends nothing.
    after_cr: bool,
    event: Option<String>,
    data: Vec<String>,
    has_data: bool,
    started: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feed the next piece of the stream; returns the events it completed.
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
                other => self.pending.push(other),
            }
        }
        events
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

    fn end_line(&mut self, events: &mut Vec<SseEvent>) {
        let mut line = std::mem::take(&mut self.pending);
        if !self.started {
            self.started = true;
            if line.starts_with(b"\xEF\xBB\xBF") {
                line.drain(..3);
            }
        }
        if line.is_empty() {
            if self.has_data {
                events.push(SseEvent { event: self.event.take(), data: self.data.join("\n") });
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
                self.data.push(value.to_owned());
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
}
