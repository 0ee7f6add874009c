//! Server-sent events: an incremental parser for upstream streams and the writer for ours.
//!
//! The parser takes bytes as they arrive, split anywhere (mid-line, mid-`\r\n`), and yields whole
//! events. It follows the WHATWG rules the SDKs use: `\n`, `\r\n` or `\r` end a line, `:` lines
//! are comments, several `data:` lines join with `\n`, a blank line dispatches.

use bytes::{Buf, BytesMut};

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Event {
    /// The `event:` name, if any.
    pub(crate) event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub(crate) data: String,
}

/// Incremental SSE parser.
#[derive(Debug)]
pub(crate) struct Parser {
    /// Largest event (its unended line plus the data gathered so far) buffered.
    max_event: usize,
    buf: BytesMut,
    /// A `\r` ended the last line; a `\n` first in the next chunk belongs to it.
    skip_lf: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    /// Bytes taken out of `buf` so far: every line and line end read.
    taken: u64,
    /// `taken` after the last blank line: the stream up to here is whole events only.
    boundary: u64,
}

/// The default largest event: anything bigger is an upstream fault, not something to buffer.
const MAX_EVENT: usize = 16 * 1024 * 1024;

/// An upstream stream the parser refuses: one event larger than the limit.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent an event larger than {0} bytes (`server.max_upstream_event_bytes`)")]
pub(crate) struct EventTooLarge(pub(crate) usize);

impl Default for Parser {
    fn default() -> Self {
        Self::new(MAX_EVENT)
    }
}

impl Parser {
    /// A parser that refuses events larger than `max_event` bytes.
    pub(crate) fn new(max_event: usize) -> Self {
        Self {
            max_event,
            buf: BytesMut::new(),
            skip_lf: false,
            event: None,
            data: String::new(),
            has_data: false,
            taken: 0,
            boundary: 0,
        }
    }

    /// Adds bytes read from the stream.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if the bytes pushed so far hold one.
    pub(crate) fn next_event(&mut self) -> Result<Option<Event>, EventTooLarge> {
        loop {
            if self.skip_lf && !self.buf.is_empty() {
                if self.buf[0] == b'\n' {
                    self.buf.advance(1);
                    self.taken += 1;
                }
                self.skip_lf = false;
            }
            let Some(end) = memchr::memchr2(b'\n', b'\r', &self.buf) else {
                if self.buf.len() + self.data.len() > self.max_event {
                    return Err(EventTooLarge(self.max_event));
                }
                return Ok(None);
            };
            let line = self.buf.split_to(end + 1);
            self.taken += line.len() as u64;
            if line[end] == b'\r' {
                self.skip_lf = true;
            }
            if end == 0 {
                self.boundary = self.taken;
            }
            if let Some(event) = self.take_line(&line[..end]) {
                return Ok(Some(event));
            }
            if self.data.len() > self.max_event {
                return Err(EventTooLarge(self.max_event));
            }
        }
    }

    /// How many of the bytes pushed so far end with a blank line: a relay that sends no more
    /// than this never leaves its client in the middle of an event.
    pub(crate) fn whole_events_len(&self) -> u64 {
        self.boundary
    }

    /// The event left when the stream ends without its final blank line, if any.
    pub(crate) fn finish(&mut self) -> Option<Event> {
        if !self.buf.is_empty() {
            let line = self.buf.split();
            if let Some(event) = self.take_line(&line) {
                return Some(event);
            }
        }
        self.take_line(b"")
    }

    fn take_line(&mut self, line: &[u8]) -> Option<Event> {
        if line.is_empty() {
            if !self.has_data {
                self.event = None;
                return None;
            }
            self.has_data = false;
            return Some(Event {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        if line[0] == b':' {
            return None;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event = Some(value.into_owned()),
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

/// Appends one event: `event: NAME` (when given), one `data:` line, a blank line. `data` must
/// be single-line (compact JSON is).
pub(crate) fn write_event(out: &mut BytesMut, event: Option<&str>, data: &[u8]) {
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut parser = Parser::default();
        let mut events = Vec::new();
        for chunk in chunks {
            parser.push(chunk);
            while let Some(event) = parser.next_event().unwrap() {
                events.push(event);
            }
        }
        events.extend(parser.finish());
        events
    }

    const STREAM: &[u8] = b"event: message_start\ndata: {\"a\":1}\n\n: comment\n\nevent: ping\r\ndata: {}\r\n\r\ndata: line1\ndata:line2\n\nid: 7\nretry: 10\ndata: [DONE]\n\n";

    #[test]
    fn parses_names_comments_crlf_and_multiline_data() {
        let events = parse_all(&[STREAM]);
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].event.as_deref(), Some("message_start"));
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[1].event.as_deref(), Some("ping"));
        assert_eq!(events[2].event, None);
        assert_eq!(events[2].data, "line1\nline2");
        assert_eq!(events[3].data, "[DONE]");
    }

    #[test]
    fn any_split_gives_the_same_events() {
        let whole = parse_all(&[STREAM]);
        for i in 0..STREAM.len() {
            for j in i..STREAM.len() {
                let parts = [&STREAM[..i], &STREAM[i..j], &STREAM[j..]];
                assert_eq!(parse_all(&parts), whole, "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn bare_cr_lines_and_unterminated_last_event() {
        let events = parse_all(&[b"data: a\r\rdata: b"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].data, "b");
    }

    #[test]
    fn whole_events_end_at_the_last_blank_line_however_the_bytes_are_split() {
        for i in 0..STREAM.len() {
            let mut parser = Parser::default();
            let mut received = 0;
            for part in [&STREAM[..i], &STREAM[i..]] {
                parser.push(part);
                received += part.len();
                while parser.next_event().unwrap().is_some() {}
                let whole = usize::try_from(parser.whole_events_len()).unwrap();
                let (sent, held) = (&STREAM[..whole], &STREAM[whole..received]);
                assert!(
                    sent.is_empty() || sent.ends_with(b"\n\n") || sent.ends_with(b"\r\n\r"),
                    "split at {i}: {sent:?}"
                );
                // Nothing held back ends an event: no whole event is kept from the client.
                let ends_event = |w: &[u8]| w == b"\n\n" || w == b"\r\r" || w == b"\n\r";
                assert!(!held.windows(2).any(ends_event), "split at {i}: {held:?}");
            }
            assert_eq!(parser.whole_events_len(), STREAM.len() as u64);
        }
    }

    #[test]
    fn an_event_over_the_limit_is_refused_however_it_is_split_into_lines() {
        // One line without an end.
        let mut parser = Parser::new(16);
        parser.push(b"data: 0123456789abcdefg");
        assert!(parser.next_event().is_err());
        // Many short data lines of one event, each under the limit.
        let mut parser = Parser::new(16);
        parser.push(b"data: 01234567\ndata: 01234567\ndata: 01234567\n");
        assert!(parser.next_event().is_err());
        // Events under the limit pass, however many.
        let mut parser = Parser::new(16);
        parser.push(&b"data: 0123456789\n\n".repeat(100));
        for _ in 0..100 {
            assert!(parser.next_event().unwrap().is_some());
        }
    }

    #[test]
    fn writer_round_trips() {
        let mut out = BytesMut::new();
        write_event(&mut out, Some("ping"), b"{\"type\":\"ping\"}");
        write_event(&mut out, None, b"[DONE]");
        let events = parse_all(&[&out]);
        assert_eq!(events[0].event.as_deref(), Some("ping"));
        assert_eq!(events[1].data, "[DONE]");
    }
}
