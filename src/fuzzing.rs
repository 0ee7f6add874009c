//! Entry points for the `cargo fuzz` targets in `fuzz/` (feature `fuzzing`, never in a release):
//! each takes the fuzzer's bytes, drives one parser or translator the way the gateway or setup
//! does, and panics only when an invariant breaks. Thin on purpose: the code under test stays
//! `pub(crate)`, and this module owns nothing but the byte layouts below and the checks.
//!
//! Layouts (the seed builder in `scripts/fuzz` writes the same):
//! - `sse`: `[chunk]` then the stream.
//! - `translate_request`: `[pair]` then the client's body.
//! - `translate_response`: `[pair]` then the client's body, a NUL byte, the upstream's body.
//! - `translate_stream`: `[pair][chunk]` then the client's body, a NUL byte, the upstream's SSE.
//! - `validate`: `[format]` then the body.
//! - `config`: the TOML text.
//! - `setup_json`: `[template]` then the user's file; `setup_toml`: the same, TOML.
//!
//! `pair` picks the client format (`pair % 3`: chat, messages, responses), the provider kind
//! (`pair / 3 % 2`: openai, anthropic) and, in its high bits, the target's reasoning and largest
//! output; `chunk` the size the bytes arrive in (`chunk % 17`, 0: whole); `format` as `pair`.
//! A NUL byte cannot occur in JSON text, so it separates the two bodies unambiguously.

use bytes::BytesMut;

use crate::protocol::json::Body;
use crate::protocol::{Format, Kind, anthropic, openai, sse};
use crate::setup::edit::{self, Format as FileFormat};
use crate::setup::templates::{self, Template, Vars};
use crate::translate::{self, Target};

fn pair_of(selector: u8) -> (Format, Kind) {
    let format = [Format::Chat, Format::Messages, Format::Responses][usize::from(selector % 3)];
    let kind = [Kind::Openai, Kind::Anthropic][usize::from(selector / 3 % 2)];
    (format, kind)
}

fn target<'a>(selector: u8, request: &'a Body<'a>) -> Target<'a> {
    let max_output = [8192, 0, 1, 128_000, u32::MAX][usize::from(selector >> 4) % 5];
    Target {
        upstream_model: "upstream-model",
        client_model: "client-model",
        max_output,
        reasoning: selector & 0x08 != 0,
        web_search: selector & 0x02 != 0,
        request,
        created: 1_750_000_000,
        caching: if selector & 0x04 == 0 {
            crate::translate::Caching::Auto
        } else {
            crate::translate::Caching::Off
        },
        session: Some("fuzz-session"),
    }
}

/// Splits `data` at its first NUL: the client's request and what follows. A request that is not
/// a JSON object is replaced by an empty one, so the upstream half is still exercised.
fn split_request(data: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(0, data) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"{}"[..], data),
    }
}

const EMPTY: &[u8] = b"{}";

fn body_or_empty(raw: &[u8]) -> Body<'_> {
    Body::parse(raw).unwrap_or_else(|_| Body {
        raw: EMPTY,
        fields: Vec::new(),
    })
}

/// Feeds `bytes` to `parser` in chunks of `chunk` (0: whole), collecting every event.
fn parse_in_chunks(parser: &mut sse::Parser, bytes: &[u8], chunk: usize) -> Vec<sse::Event> {
    let size = if chunk == 0 {
        bytes.len().max(1)
    } else {
        chunk
    };
    let mut events = Vec::new();
    for piece in bytes.chunks(size) {
        parser.push(piece);
        // Lines over the parser's limit cannot be made from a fuzz input.
        while let Ok(Some(event)) = parser.next_event() {
            events.push(event);
        }
    }
    events.extend(parser.finish());
    events
}

/// The SSE parser: any split of the bytes gives the events the whole gives, and each event
/// written back by `write_event` parses to itself.
pub fn sse(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let whole = parse_in_chunks(&mut sse::Parser::default(), stream, 0);
    let split = parse_in_chunks(&mut sse::Parser::default(), stream, usize::from(chunk % 17));
    assert_eq!(whole, split, "a split stream parsed differently");
    for event in &whole {
        let single_line = |s: &str| !s.contains(['\n', '\r']);
        let name_ok = event.event.as_deref().is_none_or(|n| {
            single_line(n) && !n.is_empty() && !n.starts_with(' ') && !n.contains('\u{fffd}')
        });
        if !name_ok || !single_line(&event.data) {
            continue;
        }
        let mut out = BytesMut::new();
        sse::write_event(&mut out, event.event.as_deref(), event.data.as_bytes());
        let again = parse_in_chunks(&mut sse::Parser::default(), &out, 0);
        assert_eq!(again, vec![event.clone()], "write_event did not round-trip");
    }
}

/// Client request → upstream body: a translated body is JSON; a forwarded one is the client's
/// with `model` rewritten.
pub fn translate_request(data: &[u8]) {
    let Some((&selector, raw)) = data.split_first() else {
        return;
    };
    let Ok(body) = Body::parse(raw) else {
        return;
    };
    let (format, kind) = pair_of(selector);
    let target = target(selector, &body);
    let Ok(prepared) = translate::request(format, kind, &body, &target) else {
        return;
    };
    if !translate::forwards(format, kind, &body) {
        // izzi never sends a body its own reader of that API would refuse.
        let readable = match kind {
            Kind::Anthropic => serde_json::from_slice::<anthropic::Request>(&prepared.body).is_ok(),
            Kind::Openai => serde_json::from_slice::<openai::Request>(&prepared.body).is_ok(),
        };
        assert!(
            readable,
            "a translated request does not read back: {}",
            String::from_utf8_lossy(&prepared.body)
        );
    } else {
        let forwarded = Body::parse(&prepared.body).expect("a forwarded request parses");
        assert_eq!(
            forwarded
                .field::<String>("model", "a string")
                .ok()
                .flatten()
                .as_deref(),
            Some(target.upstream_model)
        );
    }
}

/// Upstream answer → client answer: what goes to the client is JSON whenever it was translated.
pub fn translate_response(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (request, answer) = split_request(rest);
    let body = body_or_empty(request);
    let (format, kind) = pair_of(selector);
    let target = target(selector, &body);
    let Ok((out, _usage)) = translate::response(format, kind, answer, &target) else {
        return;
    };
    if format.native_kind() != Some(kind) {
        let readable = match format {
            Format::Messages => serde_json::from_slice::<anthropic::Response>(&out).is_ok(),
            Format::Chat => serde_json::from_slice::<openai::Response>(&out).is_ok(),
            Format::Responses => serde_json::from_slice::<serde_json::Value>(&out).is_ok(),
        };
        assert!(
            readable,
            "a translated answer does not read back: {}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// Upstream stream → client stream, event by event, whatever the upstream sent: every event
/// izzi writes carries JSON its own reader of the client's API takes (or Chat's `[DONE]`), and
/// the stream ends with exactly one final event, last, so no SDK waits for more.
pub fn translate_stream(data: &[u8]) {
    let [selector, chunk, rest @ ..] = data else {
        return;
    };
    let (request, stream) = split_request(rest);
    let body = body_or_empty(request);
    let (format, kind) = pair_of(*selector);
    let target = target(*selector, &body);
    let mut machine = translate::stream(format, kind, &target);
    let mut out = BytesMut::new();
    for event in parse_in_chunks(&mut sse::Parser::default(), stream, usize::from(chunk % 17)) {
        machine.event(&event, &mut out);
    }
    let _ = (machine.completed(), machine.usage().total_input());
    let error = (chunk & 0x80 != 0).then_some(("api_error", "cut \"short\"\n"));
    machine.end(&mut out, error);
    if format.native_kind() == Some(kind) {
        // Pass-through: the upstream's bytes are relayed; izzi only adds its error event.
        return;
    }
    let events = parse_in_chunks(&mut sse::Parser::default(), &out, 0);
    let is_final = |event: &sse::Event| match format {
        Format::Messages => matches!(event.event.as_deref(), Some("message_stop" | "error")),
        Format::Chat => event.data == "[DONE]" || event.data.starts_with("{\"type\":\"error\""),
        // A Responses failure is an `error` event, then `response.failed` to close the
        // response, or the `error` alone when no response was created yet.
        Format::Responses => match event.event.as_deref() {
            Some("response.completed" | "response.incomplete" | "response.failed") => true,
            Some("error") => events.len() == 1,
            _ => false,
        },
    };
    for (i, event) in events.iter().enumerate() {
        let readable = match format {
            Format::Messages => serde_json::from_str::<anthropic::StreamEvent>(&event.data).is_ok(),
            Format::Chat => {
                event.data == "[DONE]" || serde_json::from_str::<openai::Chunk>(&event.data).is_ok()
            }
            Format::Responses => serde_json::from_str::<serde_json::Value>(&event.data).is_ok(),
        };
        assert!(
            readable,
            "izzi wrote an event its client cannot read: {event:?}"
        );
        if format == Format::Responses && event.event.as_deref() == Some("error") && i > 0 {
            assert_eq!(
                events.get(i + 1).and_then(|e| e.event.as_deref()),
                Some("response.failed"),
                "a Responses error event is not followed by `response.failed`"
            );
        }
        assert_eq!(
            is_final(event),
            i + 1 == events.len(),
            "the final event is not last, or not alone: {event:?} at {i} of {}",
            events.len()
        );
    }
    assert!(!events.is_empty(), "an ended stream wrote nothing");
}

/// The gateway's request checks: the top-level parse, the shape checks, the `model` rewrite
/// (which must keep every other member), the hold's `max_tokens` look-up and the local count.
pub fn validate(data: &[u8]) {
    let Some((&selector, raw)) = data.split_first() else {
        return;
    };
    let format = [Format::Chat, Format::Messages, Format::Responses][usize::from(selector % 3)];
    let Ok(body) = Body::parse(raw) else {
        return;
    };
    let shaped = crate::gateway::check_shape(format, &body).is_ok();
    let rewritten = body.with_model("izzi-fuzz");
    let again = Body::parse(&rewritten).expect("a body with its model rewritten parses");
    assert_eq!(
        again.get("model").map(serde_json::value::RawValue::get),
        Some("\"izzi-fuzz\"")
    );
    let others = |b: &Body<'_>| -> Vec<(String, String)> {
        b.fields
            .iter()
            .filter(|(k, _)| k != "model")
            .map(|(k, v)| (k.to_string(), v.get().to_owned()))
            .collect()
    };
    assert_eq!(
        others(&body),
        others(&again),
        "the rewrite changed other members"
    );
    for field in ["max_tokens", "max_completion_tokens", "max_output_tokens"] {
        let _ = body.field::<u64>(field, "an integer");
    }
    if shaped && let Ok(value) = serde_json::from_slice::<serde_json::Value>(raw) {
        let catalog = crate::catalog::Catalog::load(&[]).expect("the embedded catalog loads");
        if let Some(model) = catalog.models().first() {
            let _ = crate::tokens::count_request(model, &value);
        }
    }
}

/// `config.toml`: parses or fails with a message, and a parsed config builds its routing table
/// (globs, model overrides) or fails with a message.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = crate::config::Config::parse(text) {
        let _ = crate::gateway::Router::new(&config, None);
    }
}

/// The JSON templates setup merges, each with the formats their tools write.
const JSON_TEMPLATES: [Template; 11] = [
    Template::ClaudeCode,
    Template::ClaudeCodeToken,
    Template::EditorClaudeCode,
    Template::EditorRooCode,
    Template::RooCodeImport,
    Template::ClineGlobalState,
    Template::ClineSecrets,
    Template::ClineProviders,
    Template::Opencode,
    Template::OpencodeAuth,
    Template::Zed,
];

const TOML_TEMPLATES: [Template; 2] = [Template::Codex, Template::CodexEnvKey];

fn vars() -> Vars {
    Vars::default()
        .with("base_url", "http://127.0.0.1:8745")
        .with("openai_base_url", "http://127.0.0.1:8745/v1")
        .with("public_openai_base_url", "https://api.izziapi.com/v1")
        .with("key", "izzi-fuzz-key")
        .with("key_command", "izzi key print")
        .with("izzi", r#"C:\Program Files\izzi "x"\izzi.exe"#)
        .with("roo_import", "/tmp/roo.json")
        .with("editor", "Code")
}

/// Setup's JSON and JSONC editor: a merged file parses in its format, and merging again
/// changes nothing.
pub fn setup_json(data: &[u8]) {
    let Some((&selector, original)) = data.split_first() else {
        return;
    };
    let template = JSON_TEMPLATES[usize::from(selector >> 1) % JSON_TEMPLATES.len()];
    let format = if selector & 1 == 0 {
        FileFormat::Json
    } else {
        FileFormat::Jsonc
    };
    let patch = templates::json(template, &vars()).expect("the JSON templates parse");
    let Ok(out) = edit::json(Some(original), format, &patch) else {
        return;
    };
    let again = edit::json(Some(&out), format, &patch).expect("a merged file merges again");
    assert_eq!(
        String::from_utf8_lossy(&again),
        String::from_utf8_lossy(&out),
        "a second merge changed the file"
    );
}

/// Setup's TOML editor: the same properties.
pub fn setup_toml(data: &[u8]) {
    let Some((&selector, original)) = data.split_first() else {
        return;
    };
    let template = TOML_TEMPLATES[usize::from(selector) % TOML_TEMPLATES.len()];
    let patch = templates::toml(template, &vars()).expect("the TOML templates parse");
    let Ok(out) = edit::toml(Some(original), &patch) else {
        return;
    };
    let again = edit::toml(Some(&out), &patch).expect("a merged file merges again");
    assert_eq!(
        String::from_utf8_lossy(&again),
        String::from_utf8_lossy(&out),
        "a second merge changed the file"
    );
}
