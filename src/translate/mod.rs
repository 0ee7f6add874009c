//! Translation between the client's format and the provider's kind: requests, whole responses
//! and streams (state machines fed one SSE event at a time). Pure: no I/O, async or clock.
//!
//! The gateway calls only the four functions here. When the client's format is the provider's
//! native one the body is forwarded with only `model` rewritten (`Body::with_model`), and streams
//! are relayed byte for byte while an observer reads their usage.
//!
//! Chat ↔ Messages are the primary pairs (`messages_to_chat`, `chat_to_messages`, one module
//! per direction); Responses maps onto Chat (`responses`), so Responses toward an
//! Anthropic-kind provider is the composition Responses → Chat → Messages, and its answers
//! Messages → Chat → Responses. Each of the three has a `request`, a `response` and a `stream`
//! file.

mod chat_to_messages;
mod messages_to_chat;
mod names;
mod responses;

#[cfg(test)]
mod tests;

use std::borrow::Cow;

use bytes::BytesMut;
use serde::Serialize;

use crate::protocol::json::{Body, without_values};
use crate::protocol::{Format, Kind, Usage, anthropic, openai, responses as rs, sse};
use names::ToolNames;

/// What the translation needs to know about the routed model and the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The id to send upstream.
    pub(crate) upstream_model: &'a str,
    /// The id the client asked for (echoed in translated responses).
    pub(crate) client_model: &'a str,
    /// The model's largest output, the default `max_tokens` where Anthropic requires one.
    pub(crate) max_output: u32,
    /// Whether the model reasons (takes `reasoning_effort` / thinking).
    pub(crate) reasoning: bool,
    /// The client's request: answers map tool names back through its `tools`, and a Chat
    /// stream carries usage only when its `stream_options` asked.
    pub(crate) request: &'a Body<'a>,
    /// Unix seconds, for the `created` fields translated answers carry (translation reads no
    /// clock).
    pub(crate) created: u64,
}

/// A request that cannot be carried to the target: a 400 `invalid_request_error` naming the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TranslateError(pub(crate) String);

impl TranslateError {
    /// `field` has no equivalent at the target and its loss would change the answer.
    fn cannot(field: &str, to: &str) -> Self {
        Self(format!(
            "`{field}` cannot be sent to {to}: it has no equivalent there and dropping it would change the answer; remove it or pick another model."
        ))
    }
}

/// Logs a member dropped because it only steers a provider's own features.
fn dropped(field: &str, why: &str) {
    tracing::debug!(field, why, "translation dropped a field");
}

/// The error when an upstream stream stops before its final event.
const CUT: (&str, &str) = (
    "api_error",
    "The upstream stream ended before its final event; the answer is incomplete.",
);

/// The upstream body for a client request.
#[derive(Debug)]
pub(crate) struct Prepared<'a> {
    pub(crate) body: Cow<'a, [u8]>,
    /// The body was translated rather than forwarded.
    pub(crate) translated: bool,
}

/// Cursor's agent mode sends a Responses-shaped body (`input`, no `messages`) to Chat.
fn responses_shaped(format: Format, body: &Body<'_>) -> bool {
    format == Format::Responses || (body.get("messages").is_none() && body.get("input").is_some())
}

/// Parses a whole body as `T`; the error names the member that does not fit. Tracking the path
/// cost a third of what translating adds to a request (callgrind), so only a body that fails is
/// parsed again with it.
fn parse<T: serde::de::DeserializeOwned>(raw: &[u8], what: &str) -> Result<T, TranslateError> {
    if let Ok(parsed) = serde_json::from_slice(raw) {
        return Ok(parsed);
    }
    let mut de = serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        TranslateError(format!(
            "`{}` does not fit the {what} format: {}.",
            err.path(),
            err.inner()
        ))
    })
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, TranslateError> {
    serde_json::to_vec(value).map_err(|e| TranslateError(format!("could not encode: {e}")))
}

/// Builds the upstream body: the client's own bytes with `model` rewritten when the formats
/// match, a translation otherwise.
pub(crate) fn request<'a>(
    format: Format,
    kind: Kind,
    body: &Body<'a>,
    target: &Target<'_>,
) -> Result<Prepared<'a>, TranslateError> {
    let shaped = responses_shaped(format, body);
    if format.native_kind() == Some(kind) && !shaped {
        return Ok(Prepared {
            body: body.with_model(target.upstream_model),
            translated: false,
        });
    }
    let out = if format == Format::Messages {
        let req: anthropic::Request = parse(body.raw, "Messages")?;
        encode(&messages_to_chat::request(req, target)?)?
    } else {
        let chat = if shaped {
            let req: rs::Request = parse(body.raw, "Responses")?;
            responses::request(req, kind, target)?
        } else {
            parse(body.raw, "Chat Completions")?
        };
        match kind {
            Kind::Openai => encode(&chat)?,
            Kind::Anthropic => encode(&chat_to_messages::request(chat, target)?)?,
        }
    };
    Ok(Prepared {
        body: Cow::Owned(out),
        translated: true,
    })
}

/// Turns a whole (non-streamed) upstream response into the client's format, with its usage.
pub(crate) fn response<'a>(
    format: Format,
    kind: Kind,
    body: &'a [u8],
    target: &Target<'_>,
) -> Result<(Cow<'a, [u8]>, Usage), TranslateError> {
    #[derive(serde::Deserialize)]
    struct UsageOnly<T> {
        usage: Option<T>,
    }
    if format.native_kind() == Some(kind) {
        // The body goes out as it came; a usage that cannot be read is counted locally.
        let usage = match kind {
            Kind::Anthropic => serde_json::from_slice::<UsageOnly<anthropic::Usage>>(body)
                .ok()
                .and_then(|u| u.usage)
                .map(|u| from_anthropic(&u)),
            Kind::Openai => serde_json::from_slice::<UsageOnly<openai::Usage>>(body)
                .ok()
                .and_then(|u| u.usage)
                .map(|u| from_anthropic(&chat_to_messages::usage(&u))),
        };
        return Ok((Cow::Borrowed(body), usage.unwrap_or_default()));
    }
    let names = ToolNames::of(format, target.request);
    let (out, usage) = match kind {
        Kind::Anthropic => {
            let resp: anthropic::Response = parse(body, "Messages")?;
            let usage = from_anthropic(&resp.usage);
            let identity = ToolNames::default();
            let out = match format {
                Format::Responses => encode(&responses::response(
                    messages_to_chat::response(resp, target, &identity),
                    target,
                    &names,
                ))?,
                _ => encode(&messages_to_chat::response(resp, target, &names))?,
            };
            (out, usage)
        }
        Kind::Openai => {
            let resp: openai::Response = parse(body, "Chat Completions")?;
            let usage = from_anthropic(&chat_to_messages::usage(&resp.usage.unwrap_or_default()));
            let out = match format {
                Format::Responses => encode(&responses::response(resp, target, &names))?,
                _ => encode(&chat_to_messages::response(resp, target, &names))?,
            };
            (out, usage)
        }
    };
    Ok((Cow::Owned(out), usage))
}

/// Anthropic wire usage as the gateway's.
fn from_anthropic(usage: &anthropic::Usage) -> Usage {
    Usage {
        input_tokens: usage.input_tokens.unwrap_or(0),
        output_tokens: usage.output_tokens,
        cache_read_tokens: usage.cache_read_input_tokens.unwrap_or(0),
        cache_write_tokens: usage.cache_creation_input_tokens.unwrap_or(0),
        cache_write_1h_tokens: usage
            .cache_creation
            .map_or(0, |c| c.ephemeral_1h_input_tokens),
    }
}

/// A stream in flight: fed each upstream event, it appends the client's events to `out`.
pub(crate) trait Stream: Send {
    /// One upstream event. Pass-through streams only observe (the raw bytes are relayed).
    fn event(&mut self, event: &sse::Event, out: &mut BytesMut);
    /// The upstream ended: closes the client's stream, with an error event when `error` is
    /// given (`(type, message)`) or the upstream stopped before its final event.
    fn end(&mut self, out: &mut BytesMut, error: Option<(&str, &str)>);
    /// Usage seen so far.
    fn usage(&self) -> Usage;
    /// Whether the upstream's final event has been seen.
    fn completed(&self) -> bool;
}

/// The stream state machine for this pair.
pub(crate) fn stream(format: Format, kind: Kind, target: &Target<'_>) -> Box<dyn Stream> {
    let watch = Watch {
        kind,
        usage: anthropic::Usage::default(),
        done: false,
    };
    if format.native_kind() == Some(kind) {
        return Box::new(Observer { format, watch });
    }
    let names = ToolNames::of(format, target.request);
    let (front, names) = match kind {
        Kind::Openai => (Front::Chat, names),
        Kind::Anthropic => {
            let (include_usage, front_names, back_names) = match format {
                // The Responses side needs the usage chunk and maps the names itself.
                Format::Responses => (true, ToolNames::default(), names),
                _ => (wants_usage(target.request), names, ToolNames::default()),
            };
            let machine = messages_to_chat::Stream::new(target, front_names, include_usage);
            (Front::Anthropic(Box::new(machine)), back_names)
        }
    };
    let back = match format {
        Format::Chat => Back::Chat { closed: false },
        Format::Messages => Back::Messages(Box::new(chat_to_messages::Stream::new(target, names))),
        Format::Responses => Back::Responses(Box::new(responses::Stream::new(target, names))),
    };
    Box::new(Translated { watch, front, back })
}

/// Whether a Chat client asked for the usage chunk.
fn wants_usage(body: &Body<'_>) -> bool {
    body.field::<openai::StreamOptions>("stream_options", "an object")
        .ok()
        .flatten()
        .is_some_and(|o| o.include_usage)
}

/// One upstream Chat stream item.
#[derive(Debug, Clone)]
pub(crate) enum ChatEvent {
    Chunk(openai::Chunk),
    Done,
    Error { kind: String, message: String },
}

impl ChatEvent {
    /// An upstream SSE event of a Chat stream; `None` for what is not one (comments, junk).
    fn parse(event: &sse::Event) -> Option<Self> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Some(ChatEvent::Done);
        }
        if data.contains("\"error\"")
            && let Ok(body) = serde_json::from_str::<openai::ErrorBody>(data)
        {
            let kind = body
                .error
                .kind
                .or_else(|| {
                    body.error
                        .code
                        .map(|c| c.as_str().map_or(c.to_string(), str::to_owned))
                })
                .unwrap_or_else(|| "api_error".to_owned());
            return Some(ChatEvent::Error {
                kind,
                message: body.error.message,
            });
        }
        match serde_json::from_str(data) {
            Ok(chunk) => Some(ChatEvent::Chunk(chunk)),
            Err(err) => {
                tracing::debug!(error = %without_values(&err.to_string()), "ignored an upstream stream event that is not a chunk");
                None
            }
        }
    }

    /// Writes this item to a Chat client.
    fn write(&self, out: &mut BytesMut) {
        match self {
            ChatEvent::Chunk(chunk) => match serde_json::to_vec(chunk) {
                Ok(data) => sse::write_event(out, None, &data),
                Err(err) => tracing::warn!(%err, "could not encode a chunk"),
            },
            ChatEvent::Done => sse::write_event(out, None, b"[DONE]"),
            ChatEvent::Error { kind, message } => {
                crate::protocol::write_stream_error(out, Format::Chat, kind, message);
            }
        }
    }
}

/// The text of a Chat answer's content: the string, or its text parts joined.
fn answer_text(content: Option<openai::Content>) -> String {
    match content {
        Some(openai::Content::Text(text)) => text,
        Some(openai::Content::Parts(parts)) => parts
            .into_iter()
            .filter_map(|p| match p {
                openai::Part::Known(openai::KnownPart::Text { text }) => Some(text),
                _ => None,
            })
            .collect(),
        None => String::new(),
    }
}

/// Writes one named event of a translated stream.
fn write_named<T: Serialize>(out: &mut BytesMut, name: &str, event: &T) {
    match serde_json::to_vec(event) {
        Ok(data) => sse::write_event(out, Some(name), &data),
        Err(err) => tracing::warn!(%err, "could not encode a stream event"),
    }
}

/// An upstream SSE event of an Anthropic stream; `None` for unknown event types (which the
/// protocol says to ignore).
fn parse_anthropic(event: &sse::Event) -> Option<anthropic::StreamEvent> {
    match serde_json::from_str(&event.data) {
        Ok(parsed) => Some(parsed),
        Err(err) => {
            tracing::debug!(error = %without_values(&err.to_string()), event = ?event.event, "ignored an unknown upstream stream event");
            None
        }
    }
}

/// Tool-call slots of a Chat stream: fragments are keyed by `index`, or by `id` for hosts that
/// omit the index or reuse one index for several calls.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    /// The id of each slot, in order (`""` when the host gave none).
    ids: Vec<String>,
    /// Upstream `index` → slot.
    by_index: Vec<(u32, u32)>,
    current: Option<u32>,
}

impl Slots {
    /// The slot a fragment belongs to, and whether it opens that slot.
    pub(crate) fn resolve(&mut self, call: &openai::ToolCallDelta) -> (u32, bool) {
        let id = call.id.as_deref().filter(|id| !id.is_empty());
        let known = match (id, call.index) {
            (Some(id), _) => self.ids.iter().position(|x| x == id).map(|p| p as u32),
            (None, Some(index)) => self
                .by_index
                .iter()
                .find(|(i, _)| *i == index)
                .map(|(_, s)| *s),
            (None, None) => self.current,
        };
        if let Some(slot) = known {
            self.current = Some(slot);
            return (slot, false);
        }
        let slot = self.ids.len() as u32;
        self.ids.push(id.unwrap_or_default().to_owned());
        if let Some(index) = call.index {
            self.by_index.retain(|(i, _)| *i != index);
            self.by_index.push((index, slot));
        }
        self.current = Some(slot);
        (slot, true)
    }
}

/// Usage and completion as the upstream reports them, in its own format.
#[derive(Debug)]
struct Watch {
    kind: Kind,
    usage: anthropic::Usage,
    done: bool,
}

impl Watch {
    fn anthropic(&mut self, event: &anthropic::StreamEvent) {
        match event {
            anthropic::StreamEvent::MessageStart { message } => self.usage = message.usage,
            anthropic::StreamEvent::MessageDelta { usage, .. } => {
                messages_to_chat::merge_usage(&mut self.usage, usage);
            }
            anthropic::StreamEvent::MessageStop => self.done = true,
            _ => {}
        }
    }

    fn chat(&mut self, event: &ChatEvent) {
        match event {
            ChatEvent::Chunk(openai::Chunk {
                usage: Some(usage), ..
            }) => self.usage = chat_to_messages::usage(usage),
            ChatEvent::Done => self.done = true,
            _ => {}
        }
    }

    fn usage(&self) -> Usage {
        from_anthropic(&self.usage)
    }
}

/// Same format both sides: the bytes are relayed as they are; this reads usage and completion.
struct Observer {
    format: Format,
    watch: Watch,
}

impl Stream for Observer {
    fn event(&mut self, event: &sse::Event, _out: &mut BytesMut) {
        match self.watch.kind {
            Kind::Anthropic => {
                // Only these carry usage or the end; deltas (the bulk) are not parsed.
                if matches!(
                    event.event.as_deref(),
                    Some("message_start" | "message_delta" | "message_stop")
                ) && let Some(parsed) = parse_anthropic(event)
                {
                    self.watch.anthropic(&parsed);
                }
            }
            Kind::Openai => {
                let data = event.data.trim();
                if data == "[DONE]" {
                    self.watch.done = true;
                } else if data.contains("\"usage\"")
                    && !data.contains("\"usage\":null")
                    && let Some(parsed) = ChatEvent::parse(event)
                {
                    self.watch.chat(&parsed);
                }
            }
        }
    }

    fn end(&mut self, out: &mut BytesMut, error: Option<(&str, &str)>) {
        match error {
            Some((kind, message)) => {
                crate::protocol::write_stream_error(out, self.format, kind, message);
            }
            None if !self.watch.done => {
                let (kind, message) = CUT;
                crate::protocol::write_stream_error(out, self.format, kind, message);
            }
            None => {}
        }
    }

    fn usage(&self) -> Usage {
        self.watch.usage()
    }

    fn completed(&self) -> bool {
        self.watch.done
    }
}

/// How upstream events become Chat items.
enum Front {
    /// The upstream speaks Chat: its chunks are the items.
    Chat,
    /// The upstream speaks Messages: a state machine makes Chat chunks of its events.
    Anthropic(Box<messages_to_chat::Stream>),
}

/// How Chat items become the client's events.
enum Back {
    Chat { closed: bool },
    Messages(Box<chat_to_messages::Stream>),
    Responses(Box<responses::Stream>),
}

impl Back {
    fn item(&mut self, item: ChatEvent, out: &mut BytesMut) {
        match self {
            Back::Chat { closed } => {
                if !*closed {
                    *closed = matches!(item, ChatEvent::Done | ChatEvent::Error { .. });
                    item.write(out);
                }
            }
            Back::Messages(machine) => machine.event(item, out),
            Back::Responses(machine) => machine.event(item, out),
        }
    }

    fn closed(&self) -> bool {
        match self {
            Back::Chat { closed } => *closed,
            Back::Messages(machine) => machine.closed(),
            Back::Responses(machine) => machine.closed(),
        }
    }
}

/// A translated stream: upstream events → Chat items → the client's events, each at once.
struct Translated {
    watch: Watch,
    front: Front,
    back: Back,
}

impl Stream for Translated {
    fn event(&mut self, event: &sse::Event, out: &mut BytesMut) {
        let mut items = Vec::new();
        match &mut self.front {
            Front::Chat => {
                let Some(item) = ChatEvent::parse(event) else {
                    return;
                };
                self.watch.chat(&item);
                items.push(item);
            }
            Front::Anthropic(machine) => {
                let Some(parsed) = parse_anthropic(event) else {
                    return;
                };
                self.watch.anthropic(&parsed);
                machine.event(&parsed, &mut items);
            }
        }
        for item in items {
            self.back.item(item, out);
        }
    }

    fn end(&mut self, out: &mut BytesMut, error: Option<(&str, &str)>) {
        let mut items = Vec::new();
        match &mut self.front {
            Front::Anthropic(machine) => machine.end(error, &mut items),
            Front::Chat => {
                let cut = (!self.watch.done).then_some(CUT);
                if let Some((kind, message)) = error.or(cut) {
                    items.push(ChatEvent::Error {
                        kind: kind.to_owned(),
                        message: message.to_owned(),
                    });
                }
            }
        }
        for item in items {
            self.back.item(item, out);
        }
        if !self.back.closed() {
            let (kind, message) = error.unwrap_or(CUT);
            self.back.item(
                ChatEvent::Error {
                    kind: kind.to_owned(),
                    message: message.to_owned(),
                },
                out,
            );
        }
    }

    fn usage(&self) -> Usage {
        self.watch.usage()
    }

    fn completed(&self) -> bool {
        self.watch.done
    }
}

/// Ids of translated answers, derived from the upstream's so they stay unique and traceable.
mod ids {
    /// An id without its format's prefix.
    pub(crate) fn base(id: &str) -> &str {
        ["chatcmpl-", "msg_", "resp_"]
            .iter()
            .find_map(|p| id.strip_prefix(p))
            .unwrap_or(id)
    }

    pub(crate) fn chat(id: &str) -> String {
        format!("chatcmpl-{}", base(id))
    }

    pub(crate) fn message(id: &str) -> String {
        format!("msg_{}", base(id))
    }

    pub(crate) fn response(id: &str) -> String {
        format!("resp_{}", base(id))
    }
}
