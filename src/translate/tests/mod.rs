//! Tests of the translation, by what they test: golden files under `tests/golden/`
//! ([`golden`]), the chunking property of streams ([`chunking`]), and one test per pitfall of
//! protocols.md §4: of requests ([`requests`]), of streams ([`streams`]), and of what request,
//! whole answer and stream must agree on ([`round_trips`]). [`transcript`] builds and reads
//! the SSE transcripts the pitfall tests use; [`usage`] reads a same-format answer's usage;
//! this module holds the fixtures all of them share.

mod chunking;
mod golden;
mod requests;
mod round_trips;
mod streams;
mod transcript;
mod usage;

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use serde_json::Value;

use super::*;
use crate::protocol::sse;

const CREATED: u64 = 1_750_000_000;

fn golden_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn format_of(name: &str) -> Format {
    match name {
        "chat" => Format::Chat,
        "messages" => Format::Messages,
        "responses" => Format::Responses,
        other => panic!("unknown format `{other}` in a golden directory name"),
    }
}

fn kind_of(name: &str) -> Kind {
    match name {
        "openai" => Kind::Openai,
        "anthropic" => Kind::Anthropic,
        other => panic!("unknown kind `{other}` in a golden directory name"),
    }
}

/// Target settings of a case.
struct Settings {
    reasoning: bool,
    max_output: u32,
    /// The agent session the client's headers name.
    session: Option<&'static str>,
    caching: Caching,
    /// The model takes Chat's `web_search_options`.
    web_search: bool,
}

/// No reasoning, 8192 output tokens, no session, izzi's caching on: what most cases need.
const PLAIN: Settings = Settings {
    reasoning: false,
    max_output: 8192,
    session: None,
    caching: Caching::Auto,
    web_search: false,
};

/// Reasoning on, up to `max_output` tokens.
fn reasoning(max_output: u32) -> Settings {
    Settings {
        reasoning: true,
        max_output,
        ..PLAIN
    }
}

fn target<'a>(request: &'a Body<'a>, settings: &Settings) -> Target<'a> {
    Target {
        upstream_model: "upstream-model",
        client_model: "client-model",
        max_output: settings.max_output,
        reasoning: settings.reasoning,
        web_search: settings.web_search,
        request,
        created: CREATED,
        caching: settings.caching,
        session: settings.session,
    }
}

/// The upstream request `body` (a client's, in `format`) becomes toward a `kind` provider.
fn upstream(format: Format, kind: Kind, body: &[u8], settings: &Settings) -> Value {
    let parsed = Body::parse(body).unwrap();
    let out = request(format, kind, &parsed, &target(&parsed, settings)).unwrap();
    serde_json::from_slice(&out.body).unwrap()
}

/// Runs a whole stream through a fresh translator, in the given byte chunks.
fn run_stream(
    format: Format,
    kind: Kind,
    target: &Target<'_>,
    chunks: &[&[u8]],
) -> (String, Usage, bool) {
    let mut machine = stream(format, kind, target);
    let mut parser = sse::Parser::default();
    let mut out = BytesMut::new();
    for chunk in chunks {
        parser.push(chunk);
        while let Some(event) = parser.next_event().unwrap() {
            machine.event(&event, &mut out);
        }
    }
    if let Some(event) = parser.finish() {
        machine.event(&event, &mut out);
    }
    let completed = machine.completed();
    machine.end(&mut out, None);
    (
        String::from_utf8(out.to_vec()).unwrap(),
        machine.usage(),
        completed,
    )
}

const EMPTY_REQUEST: &[u8] = br#"{"model":"client-model","messages":[]}"#;
