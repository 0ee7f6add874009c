//! Long text (prompts, answers, tool results) written as JSON a chunk at a time.
//!
//! serde_json escapes a string one byte at a time; a translated request re-encodes the whole
//! prompt, so that loop was the largest single cost of translation (~9k instructions for the
//! bench's 916-byte prompt, 5k this way; docs/bench.md). [`text`] is a `serialize_with` for the
//! wire types' text fields: the same bytes as serde_json's, the bytes to escape found 32 at a
//! time and the runs between them copied whole, handed to serde_json as a raw value (which
//! serde_json reads once more to check it: the 5k include that pass).

use serde::Serialize as _;
use serde_json::value::RawValue;

/// Shorter text goes through serde_json as it is: the raw value's extra copy would cost more
/// than the scan saves.
const LONG: usize = 128;

/// `#[serde(serialize_with = "text::text")]`: `text` as a JSON string, exactly as serde_json
/// writes it.
pub(crate) fn text<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    if text.len() < LONG {
        return serializer.serialize_str(text);
    }
    RawValue::from_string(quoted(text))
        .map_err(serde::ser::Error::custom)?
        .serialize(serializer)
}

/// `text` as a JSON string literal, quotes included, escaped as serde_json escapes: `"` and `\`,
/// the control characters below 0x20 (`\b \t \n \f \r` by name, the rest as `\u00xx`); nothing
/// else, non-ASCII included. Text with nothing to escape (most prompts) is one copy into a
/// string of exactly its size.
fn quoted(text: &str) -> String {
    let bytes = text.as_bytes();
    let Some(mut at) = first_special(bytes) else {
        let mut out = String::with_capacity(bytes.len() + 2);
        out.push('"');
        out.push_str(text);
        out.push('"');
        return out;
    };
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 8 + 2);
    out.push('"');
    let mut start = 0;
    loop {
        // Escapes are ASCII bytes, so `start..at` is whole characters.
        out.push_str(&text[start..at]);
        if let Some(escape) = escape_of(bytes[at]) {
            push_escape(&mut out, bytes[at], escape);
        }
        start = at + 1;
        match first_special(&bytes[start..]) {
            Some(next) => at = start + next,
            None => break,
        }
    }
    out.push_str(&text[start..]);
    out.push('"');
    out
}

/// Where the first byte JSON must escape is, looked for 32 bytes at a time (a branch-free test
/// of each chunk, which the compiler turns into vector compares).
fn first_special(bytes: &[u8]) -> Option<usize> {
    let special = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let mut chunks = bytes.chunks_exact(32);
    let mut offset = 0;
    for chunk in &mut chunks {
        if chunk.iter().fold(false, |any, &b| any | special(b)) {
            return chunk.iter().position(|&b| special(b)).map(|i| offset + i);
        }
        offset += 32;
    }
    let rest = chunks.remainder();
    rest.iter().position(|&b| special(b)).map(|i| offset + i)
}

/// What serde_json writes for `byte`, or `None` when it writes the byte itself.
fn escape_of(byte: u8) -> Option<u8> {
    Some(match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        b'\t' => b't',
        b'\n' => b'n',
        0x0c => b'f',
        b'\r' => b'r',
        0x00..=0x1f => b'u',
        _ => return None,
    })
}

fn push_escape(out: &mut String, byte: u8, escape: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push(char::from(escape));
    if escape == b'u' {
        out.push_str("00");
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(plain: &str) -> String {
        let mut out = Vec::new();
        text(plain, &mut serde_json::Serializer::new(&mut out)).expect("serialises");
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn every_byte_class_is_written_as_serde_json_writes_it() {
        // Every char below 0x80, each in a long run of plain text at every offset of a chunk,
        // and some non-ASCII.
        for c in (0_u8..0x80)
            .map(char::from)
            .chain(['é', '€', '😀', '\u{7f}', '\u{2028}'])
        {
            for pad in 0..40 {
                let text = format!("{}{c}{}", "a".repeat(LONG + pad), "b".repeat(pad));
                assert_eq!(
                    ours(&text),
                    serde_json::to_string(&text).expect("serialises")
                );
            }
        }
    }

    #[test]
    fn mixed_text_round_trips_and_matches_serde_json() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let pool = [
            'a', ' ', '"', '\\', '\n', '\t', '\u{1}', '\u{1f}', 'é', '😀', '/', '{',
        ];
        for len in [LONG, LONG + 1, 200, 1000, 4099] {
            for _ in 0..50 {
                let text: String = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        // Mostly plain text, as prompts are.
                        let pick = (seed % 64) as usize;
                        if pick < pool.len() { pool[pick] } else { 'x' }
                    })
                    .collect();
                let written = ours(&text);
                assert_eq!(written, serde_json::to_string(&text).expect("serialises"));
                assert_eq!(
                    serde_json::from_str::<String>(&written).expect("parses"),
                    text
                );
            }
        }
    }

    #[test]
    fn short_text_takes_serde_jsons_own_path() {
        assert_eq!(ours("a \"b\"\n"), r#""a \"b\"\n""#);
    }
}
