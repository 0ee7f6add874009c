//! Streams in flight: the `Stream` every pair is driven through, fed one upstream SSE event at
//! a time. Same format both sides, an observer reads usage and completion while the bytes are
//! relayed; otherwise the upstream's events become Chat items (`ChatEvent`, the pivot, with
//! tool-call `Slots`) and those the client's events, each at once. The per-direction machines
//! live in the direction modules; this owns the plumbing between them.

use bytes::BytesMut;
use serde::Serialize;

use super::names::ToolNames;
use super::{Target, chat_to_messages, from_anthropic, messages_to_chat, responses};
use crate::protocol::json::{Body, without_values};
use crate::protocol::{Format, Kind, Usage, anthropic, openai, sse};

/// The error when an upstream stream stops before its final event.
pub(super) const CUT: (&str, &str) = (
    "api_error",
    "The upstream stream ended before its final event; the answer is incomplete.",
);

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

/// Writes one named event of a translated stream.
pub(super) fn write_named<T: Serialize>(out: &mut BytesMut, name: &str, event: &T) {
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
            (Some(id), _) => self
                .ids
                .iter()
                .position(|x| x == id)
                .map(|p| u32::try_from(p).unwrap_or(u32::MAX)),
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
        let slot = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
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
