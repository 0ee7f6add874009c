//! Chat stream items as an Anthropic event stream: the state machine of protocols.md §3.3.

use bytes::BytesMut;

use super::response::{stop_reason, tool_id, usage};
use crate::protocol::Format;
use crate::protocol::anthropic::{self as an, Block, Known};
use crate::protocol::openai as oa;
use crate::translate::names::ToolNames;
use crate::translate::reasoning::UNSIGNED;
use crate::translate::stream::{CUT, ChatEvent, Slots, write_named};
use crate::translate::{Target, ids};

/// What kind of block is open in the client's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool(u32),
}

/// The Chat-chunks-to-Anthropic-stream state machine (protocols.md §3.3): one block open at a
/// time, indices contiguous from 0, each chunk's content written at once.
#[derive(Debug)]
pub(crate) struct Stream {
    names: ToolNames,
    model: String,
    id: String,
    started: bool,
    closed: bool,
    next_index: u32,
    open: Option<(u32, Open)>,
    slots: Slots,
    /// Slots whose block is already closed: late fragments for them cannot be written.
    finished_slots: Vec<u32>,
    saw_tool: bool,
    finish: Option<String>,
    usage: Option<oa::Usage>,
    /// The open thinking block has no signature yet: it gets [`UNSIGNED`] when it closes.
    unsigned: bool,
}

impl Stream {
    pub(crate) fn new(target: &Target<'_>, names: ToolNames) -> Self {
        Self {
            names,
            model: target.client_model.to_owned(),
            id: String::new(),
            started: false,
            closed: false,
            next_index: 0,
            open: None,
            slots: Slots::default(),
            finished_slots: Vec::new(),
            saw_tool: false,
            finish: None,
            usage: None,
            unsigned: false,
        }
    }

    /// Whether the client's stream has its final event (or an error).
    pub(crate) fn closed(&self) -> bool {
        self.closed
    }

    fn write(out: &mut BytesMut, event: &an::StreamEvent) {
        write_named(out, event.name(), event);
    }

    /// One upstream item; the client's events are appended to `out`.
    pub(crate) fn event(&mut self, event: ChatEvent, out: &mut BytesMut) {
        if self.closed {
            return;
        }
        match event {
            ChatEvent::Error { kind, message } => {
                crate::protocol::write_stream_error(out, Format::Messages, &kind, &message);
                self.closed = true;
            }
            ChatEvent::Done => self.finish(out),
            ChatEvent::Chunk(chunk) => self.chunk(chunk, out),
        }
    }

    fn start(&mut self, id: &str, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = ids::message(id);
        let zero = Some(0);
        // Usage with the cache fields, zero until the end: Claude Code reads them here.
        let message = an::Response {
            id: self.id.clone(),
            kind: "message".to_owned(),
            role: "assistant".to_owned(),
            model: self.model.clone(),
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: an::Usage {
                input_tokens: zero,
                output_tokens: 0,
                cache_creation_input_tokens: zero,
                cache_read_input_tokens: zero,
                cache_creation: None,
            },
        };
        Self::write(out, &an::StreamEvent::MessageStart { message });
    }

    fn chunk(&mut self, chunk: oa::Chunk, out: &mut BytesMut) {
        self.start(&chunk.id, out);
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
            return;
        };
        let mut delta = choice.delta;
        let reasoning = delta.take_reasoning();
        if let Some(text) = reasoning.filter(|t| !t.is_empty()) {
            self.ensure(Open::Thinking, out);
            self.delta(an::Delta::Thinking { thinking: text }, out);
        }
        for block in delta.thinking_blocks.into_iter().flatten() {
            match (block.kind.as_str(), block.signature, block.data) {
                ("redacted_thinking", _, Some(data)) => {
                    self.close(out);
                    self.whole_block(Block::Known(Known::RedactedThinking { data }), out);
                }
                (_, Some(signature), _) => {
                    self.ensure(Open::Thinking, out);
                    self.unsigned = false;
                    self.delta(an::Delta::Signature { signature }, out);
                    self.close(out);
                }
                _ => {}
            }
        }
        for text in [delta.content, delta.refusal].into_iter().flatten() {
            if !text.is_empty() {
                self.ensure(Open::Text, out);
                self.delta(an::Delta::Text { text }, out);
            }
        }
        for call in delta.tool_calls.into_iter().flatten() {
            self.tool_call(call, &chunk.id, out);
        }
        if let Some(finish) = choice.finish_reason {
            // Held until `[DONE]`: the usage chunk comes after the finish reason.
            self.finish = Some(finish);
            self.close(out);
        }
    }

    fn tool_call(&mut self, call: oa::ToolCallDelta, chunk_id: &str, out: &mut BytesMut) {
        let function = call.function.clone().unwrap_or_default();
        if call.id.is_none() && function.name.is_none() && function.arguments.is_none() {
            return;
        }
        let (slot, new) = self.slots.resolve(&call);
        if new {
            self.close(out);
            self.saw_tool = true;
            let id = tool_id(
                call.id.as_deref().unwrap_or_default(),
                chunk_id,
                slot as usize,
            );
            let name = self
                .names
                .client(function.name.as_deref().unwrap_or_default())
                .0
                .to_owned();
            self.open_block(
                Open::Tool(slot),
                Known::ToolUse {
                    id,
                    name,
                    input: serde_json::json!({}),
                },
                out,
            );
        } else if self.open.map(|(_, o)| o) != Some(Open::Tool(slot)) {
            if self.finished_slots.contains(&slot) {
                tracing::debug!(
                    slot,
                    "dropped arguments for a tool call whose block is closed"
                );
                return;
            }
            self.close(out);
        }
        if let Some(arguments) = function.arguments.filter(|a| !a.is_empty()) {
            self.delta(
                an::Delta::InputJson {
                    partial_json: arguments,
                },
                out,
            );
        }
    }

    /// Opens a block of kind `want` unless one is open: closes any other first.
    fn ensure(&mut self, want: Open, out: &mut BytesMut) {
        if self.open.map(|(_, o)| o) == Some(want) {
            return;
        }
        self.close(out);
        let block = match want {
            Open::Text => Known::Text {
                text: String::new(),
                cache_control: None,
            },
            Open::Thinking => {
                self.unsigned = true;
                Known::Thinking {
                    thinking: String::new(),
                    signature: None,
                }
            }
            Open::Tool(_) => return,
        };
        self.open_block(want, block, out);
    }

    fn open_block(&mut self, open: Open, block: Known, out: &mut BytesMut) {
        let index = self.start_block(Block::Known(block), out);
        self.open = Some((index, open));
    }

    /// A block that comes whole (redacted thinking): start and stop at once.
    fn whole_block(&mut self, block: Block, out: &mut BytesMut) {
        let index = self.start_block(block, out);
        Self::write(out, &an::StreamEvent::ContentBlockStop { index });
    }

    /// Writes `content_block_start` for `block` at the next index; returns that index.
    fn start_block(&mut self, block: Block, out: &mut BytesMut) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        Self::write(
            out,
            &an::StreamEvent::ContentBlockStart {
                index,
                content_block: block,
            },
        );
        index
    }

    fn delta(&mut self, delta: an::Delta, out: &mut BytesMut) {
        if let Some((index, _)) = self.open {
            Self::write(out, &an::StreamEvent::ContentBlockDelta { index, delta });
        }
    }

    fn close(&mut self, out: &mut BytesMut) {
        if matches!(self.open, Some((_, Open::Thinking))) && self.unsigned {
            self.unsigned = false;
            let signature = UNSIGNED.to_owned();
            self.delta(an::Delta::Signature { signature }, out);
        }
        if let Some((index, open)) = self.open.take() {
            if let Open::Tool(slot) = open {
                self.finished_slots.push(slot);
            }
            Self::write(out, &an::StreamEvent::ContentBlockStop { index });
        }
    }

    /// `[DONE]`: the held stop reason with the final usage, then `message_stop`.
    fn finish(&mut self, out: &mut BytesMut) {
        let Some(finish) = self.finish.take() else {
            let (kind, message) = CUT;
            crate::protocol::write_stream_error(out, Format::Messages, kind, message);
            self.closed = true;
            return;
        };
        self.start("", out);
        self.close(out);
        let stop = stop_reason(Some(&finish), self.saw_tool);
        Self::write(
            out,
            &an::StreamEvent::MessageDelta {
                delta: an::MessageDelta {
                    stop_reason: Some(stop.to_owned()),
                    stop_sequence: None,
                },
                usage: usage(&self.usage.unwrap_or_default()),
            },
        );
        Self::write(out, &an::StreamEvent::MessageStop);
        self.closed = true;
    }
}
