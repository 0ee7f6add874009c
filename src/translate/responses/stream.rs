//! Chat stream items as a Responses event sequence: the state machine that numbers the events
//! and keeps the output items it streams.

use bytes::BytesMut;
use serde::Serialize;

use super::encrypted;
use super::response::{
    empty_response, function_call, item_status, output_text, reasoning_item, status, usage,
};
use crate::protocol::openai as oa;
use crate::protocol::responses::{self as rs, OutputItem, StreamEvent};
use crate::translate::freeform;
use crate::translate::names::ToolNames;
use crate::translate::stream::{CUT, ChatEvent, Slots, write_named};
use crate::translate::{Target, ids};

/// The Chat-chunks-to-Responses-events state machine: one output item open at a time, each
/// opened before its deltas, `sequence_number` rising from 0, everything closed before
/// `response.completed` carries the full output.
#[derive(Debug)]
pub(crate) struct Stream {
    names: ToolNames,
    response: rs::Response,
    seq: u64,
    started: bool,
    closed: bool,
    /// Output index of the open item.
    open: Option<usize>,
    slots: Slots,
    /// Output index of each tool slot.
    slot_items: Vec<(u32, usize)>,
    finish: Option<String>,
    usage: Option<oa::Usage>,
    /// The open custom or local shell call's arguments: its input or action is known only once
    /// they are whole.
    held: String,
}

#[derive(Serialize)]
struct Numbered<'a> {
    #[serde(flatten)]
    event: &'a StreamEvent<'a>,
    sequence_number: u64,
}

impl Stream {
    pub(crate) fn new(target: &Target<'_>, names: ToolNames) -> Self {
        Self {
            names,
            response: empty_response("", target),
            seq: 0,
            started: false,
            closed: false,
            open: None,
            slots: Slots::default(),
            slot_items: Vec::new(),
            finish: None,
            usage: None,
            held: String::new(),
        }
    }

    /// Whether the client's stream has its final event (or an error).
    pub(crate) fn closed(&self) -> bool {
        self.closed
    }

    fn write(&mut self, out: &mut BytesMut, event: &StreamEvent<'_>) {
        let numbered = Numbered {
            event,
            sequence_number: self.seq,
        };
        self.seq += 1;
        write_named(out, event.name(), &numbered);
    }

    /// One upstream item; the client's events are appended to `out`.
    pub(crate) fn event(&mut self, event: ChatEvent, out: &mut BytesMut) {
        if self.closed {
            return;
        }
        match event {
            ChatEvent::Error { kind, message } => self.fail(&kind, &message, out),
            ChatEvent::Done => match self.finish.take() {
                Some(finish) => self.complete(&finish, out),
                None => {
                    let (kind, message) = CUT;
                    self.fail(kind, message, out);
                }
            },
            ChatEvent::Chunk(chunk) => self.chunk(chunk, out),
        }
    }

    fn start(&mut self, id: &str, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        self.response.id = ids::response(id);
        let response = self.response.clone();
        self.write(
            out,
            &StreamEvent::Created {
                response: &response,
            },
        );
        self.write(
            out,
            &StreamEvent::InProgress {
                response: &response,
            },
        );
    }

    fn base(&self) -> String {
        ids::base(&self.response.id).to_owned()
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
            self.reasoning_delta(&text, out);
        }
        for block in delta.thinking_blocks.into_iter().flatten() {
            self.thinking_block(&block, out);
        }
        for text in [delta.content, delta.refusal].into_iter().flatten() {
            if !text.is_empty() {
                self.text_delta(&text, out);
            }
        }
        for call in delta.tool_calls.into_iter().flatten() {
            self.tool_call(call, out);
        }
        if let Some(finish) = choice.finish_reason {
            self.finish = Some(finish);
            self.close(out);
        }
    }

    fn open_item(&mut self, item: OutputItem, out: &mut BytesMut) -> usize {
        self.close(out);
        let index = self.response.output.len();
        self.write(
            out,
            &StreamEvent::ItemAdded {
                output_index: index,
                item: &item,
            },
        );
        self.response.output.push(item);
        self.open = Some(index);
        index
    }

    fn open_kind(&self) -> Option<&OutputItem> {
        self.open.and_then(|i| self.response.output.get(i))
    }

    fn reasoning_delta(&mut self, text: &str, out: &mut BytesMut) {
        if !matches!(self.open_kind(), Some(OutputItem::Reasoning { .. })) {
            let id = format!("rs_{}_{}", self.base(), self.response.output.len());
            let index = self.open_item(reasoning_item(id.clone(), None, None), out);
            let part = rs::Summary {
                kind: "summary_text".to_owned(),
                text: String::new(),
            };
            self.write(
                out,
                &StreamEvent::SummaryPartAdded {
                    item_id: &id,
                    output_index: index,
                    summary_index: 0,
                    part: &part,
                },
            );
            if let Some(OutputItem::Reasoning { summary, .. }) = self.response.output.get_mut(index)
            {
                summary.push(part);
            }
        }
        let Some(index) = self.open else { return };
        let id = item_id(&self.response.output[index]).to_owned();
        self.write(
            out,
            &StreamEvent::SummaryDelta {
                item_id: &id,
                output_index: index,
                summary_index: 0,
                delta: text,
            },
        );
        if let Some(OutputItem::Reasoning { summary, .. }) = self.response.output.get_mut(index)
            && let Some(part) = summary.first_mut()
        {
            part.text.push_str(text);
        }
    }

    /// A signed (or redacted) thinking block: its signature goes into the open reasoning
    /// item's `encrypted_content`, which then closes.
    fn thinking_block(&mut self, block: &oa::ThinkingBlock, out: &mut BytesMut) {
        let Some(sealed) = encrypted(block) else {
            return;
        };
        if block.kind == "redacted_thinking"
            || !matches!(self.open_kind(), Some(OutputItem::Reasoning { .. }))
        {
            let id = format!("rs_{}_{}", self.base(), self.response.output.len());
            let text = block.thinking.clone().filter(|t| !t.is_empty());
            self.open_item(reasoning_item(id, text, None), out);
        }
        if let Some(index) = self.open
            && let Some(OutputItem::Reasoning {
                encrypted_content, ..
            }) = self.response.output.get_mut(index)
        {
            *encrypted_content = Some(sealed);
        }
        self.close(out);
    }

    fn text_delta(&mut self, text: &str, out: &mut BytesMut) {
        if !matches!(self.open_kind(), Some(OutputItem::Message { .. })) {
            let id = format!("msg_{}_{}", self.base(), self.response.output.len());
            let index = self.open_item(
                OutputItem::Message {
                    id: id.clone(),
                    role: "assistant",
                    status: "in_progress",
                    content: Vec::new(),
                },
                out,
            );
            let part = output_text(String::new());
            self.write(
                out,
                &StreamEvent::PartAdded {
                    item_id: &id,
                    output_index: index,
                    content_index: 0,
                    part: &part,
                },
            );
            if let Some(OutputItem::Message { content, .. }) = self.response.output.get_mut(index) {
                content.push(part);
            }
        }
        let Some(index) = self.open else { return };
        let id = item_id(&self.response.output[index]).to_owned();
        self.write(
            out,
            &StreamEvent::TextDelta {
                item_id: &id,
                output_index: index,
                content_index: 0,
                delta: text,
                logprobs: [],
            },
        );
        if let Some(OutputItem::Message { content, .. }) = self.response.output.get_mut(index)
            && let Some(part) = content.first_mut()
        {
            part.text.push_str(text);
        }
    }

    fn tool_call(&mut self, call: oa::ToolCallDelta, out: &mut BytesMut) {
        let function = call.function.clone().unwrap_or_default();
        if call.id.is_none() && function.name.is_none() && function.arguments.is_none() {
            return;
        }
        let (slot, new) = self.slots.resolve(&call);
        let index = if new {
            let call_id = match call.id.as_deref() {
                Some(id) if !id.is_empty() => id.to_owned(),
                _ => format!("call_{}_{slot}", self.base()),
            };
            let name = function.name.as_deref().unwrap_or_default();
            let item = function_call(&call_id, name, &self.names, String::new(), "in_progress");
            let index = self.open_item(item, out);
            self.slot_items.push((slot, index));
            index
        } else {
            match self.slot_items.iter().find(|(s, _)| *s == slot) {
                Some((_, index)) if self.open == Some(*index) => *index,
                _ => {
                    tracing::debug!(
                        slot,
                        "dropped arguments for a tool call whose item is closed"
                    );
                    return;
                }
            }
        };
        let Some(arguments) = function.arguments.filter(|a| !a.is_empty()) else {
            return;
        };
        if let Some(OutputItem::CustomToolCall { .. } | OutputItem::LocalShellCall { .. }) =
            self.response.output.get(index)
        {
            self.held.push_str(&arguments);
            return;
        }
        let id = item_id(&self.response.output[index]).to_owned();
        self.write(
            out,
            &StreamEvent::ArgumentsDelta {
                item_id: &id,
                output_index: index,
                delta: &arguments,
            },
        );
        if let Some(OutputItem::FunctionCall { arguments: all, .. }) =
            self.response.output.get_mut(index)
        {
            all.push_str(&arguments);
        }
    }

    /// Closes the open item with its `*.done` events.
    fn close(&mut self, out: &mut BytesMut) {
        let Some(index) = self.open.take() else {
            return;
        };
        let Some(mut item) = self.response.output.get(index).cloned() else {
            return;
        };
        match &mut item {
            OutputItem::Message {
                id,
                status,
                content,
                ..
            } => {
                *status = item_status(self.finish.as_deref());
                if let Some(part) = content.first() {
                    self.write(
                        out,
                        &StreamEvent::TextDone {
                            item_id: id,
                            output_index: index,
                            content_index: 0,
                            text: &part.text,
                            logprobs: [],
                        },
                    );
                    self.write(
                        out,
                        &StreamEvent::PartDone {
                            item_id: id,
                            output_index: index,
                            content_index: 0,
                            part,
                        },
                    );
                }
            }
            OutputItem::FunctionCall {
                id,
                name,
                arguments,
                status,
                ..
            } => {
                *status = "completed";
                self.write(
                    out,
                    &StreamEvent::ArgumentsDone {
                        item_id: id,
                        output_index: index,
                        name,
                        arguments,
                    },
                );
            }
            OutputItem::LocalShellCall { action, status, .. } => {
                *status = "completed";
                *action = freeform::local_shell_action(&std::mem::take(&mut self.held));
            }
            OutputItem::CustomToolCall {
                id, input, status, ..
            } => {
                *status = "completed";
                *input = freeform::input(&std::mem::take(&mut self.held));
                if !input.is_empty() {
                    self.write(
                        out,
                        &StreamEvent::CustomInputDelta {
                            item_id: id,
                            output_index: index,
                            delta: input,
                        },
                    );
                }
                self.write(
                    out,
                    &StreamEvent::CustomInputDone {
                        item_id: id,
                        output_index: index,
                        input,
                    },
                );
            }
            OutputItem::Reasoning { id, summary, .. } => {
                if let Some(part) = summary.first() {
                    self.write(
                        out,
                        &StreamEvent::SummaryDone {
                            item_id: id,
                            output_index: index,
                            summary_index: 0,
                            text: &part.text,
                        },
                    );
                    self.write(
                        out,
                        &StreamEvent::SummaryPartDone {
                            item_id: id,
                            output_index: index,
                            summary_index: 0,
                            part,
                        },
                    );
                }
            }
        }
        self.write(
            out,
            &StreamEvent::ItemDone {
                output_index: index,
                item: &item,
            },
        );
        self.response.output[index] = item;
    }

    fn complete(&mut self, finish: &str, out: &mut BytesMut) {
        self.start("", out);
        self.close(out);
        let (status, incomplete) = status(Some(finish));
        self.response.status = status;
        self.response.incomplete_details = incomplete;
        self.response.usage = Some(usage(&self.usage.unwrap_or_default()));
        let response = self.response.clone();
        if status == "completed" {
            self.write(
                out,
                &StreamEvent::Completed {
                    response: &response,
                },
            );
        } else {
            self.write(
                out,
                &StreamEvent::Incomplete {
                    response: &response,
                },
            );
        }
        self.closed = true;
    }

    /// An `error` event; once the response exists, `response.failed` closes its lifecycle.
    fn fail(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        self.write(
            out,
            &StreamEvent::Error {
                code: kind,
                message,
                param: None,
            },
        );
        if self.started {
            self.response.status = "failed";
            self.response.error = Some(serde_json::json!({"code": kind, "message": message}));
            let response = self.response.clone();
            self.write(
                out,
                &StreamEvent::Failed {
                    response: &response,
                },
            );
        }
        self.closed = true;
    }
}

fn item_id(item: &OutputItem) -> &str {
    match item {
        OutputItem::Message { id, .. }
        | OutputItem::FunctionCall { id, .. }
        | OutputItem::CustomToolCall { id, .. }
        | OutputItem::LocalShellCall { id, .. }
        | OutputItem::Reasoning { id, .. } => id,
    }
}
