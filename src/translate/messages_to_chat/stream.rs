//! An Anthropic event stream as Chat stream items: a state machine fed one upstream event at a
//! time, and the cumulative usage of `message_delta`.

use serde_json::Value;

use super::response::{finish_reason, usage};
use crate::protocol::anthropic::{self as an, Block, Known};
use crate::protocol::openai as oa;
use crate::translate::names::ToolNames;
use crate::translate::stream::{CUT, ChatEvent};
use crate::translate::{Target, dropped, freeform, ids};

/// The kind of tool a call is to, as Chat names it.
#[derive(Debug, Clone, Copy)]
enum Call {
    Function,
    Custom,
}

/// What a content block open in the upstream stream is.
#[derive(Debug)]
enum Open {
    Text,
    Tool {
        slot: u32,
        got_arguments: bool,
        /// Input given whole in `content_block_start` (some upstreams do), sent at the stop
        /// if no `input_json_delta` came.
        start_input: Option<Value>,
        /// A freeform tool's arguments so far: its raw input is sent once they are whole.
        freeform: Option<String>,
    },
    Thinking,
    Other,
}

/// The Anthropic-stream-to-Chat-chunks state machine: each upstream event becomes its chunks
/// at once.
#[derive(Debug)]
pub(crate) struct Stream {
    names: ToolNames,
    model: String,
    created: u64,
    include_usage: bool,
    id: String,
    started: bool,
    finished: bool,
    open: Vec<(u32, Open)>,
    next_slot: u32,
    thinking_blocks: u32,
    thinking_text: String,
    usage: an::Usage,
    stop_reason: Option<String>,
}

impl Stream {
    pub(crate) fn new(target: &Target<'_>, names: ToolNames, include_usage: bool) -> Self {
        Self {
            names,
            model: target.client_model.to_owned(),
            created: target.created,
            include_usage,
            id: ids::chat(""),
            started: false,
            finished: false,
            open: Vec::new(),
            next_slot: 0,
            thinking_blocks: 0,
            thinking_text: String::new(),
            usage: an::Usage::default(),
            stop_reason: None,
        }
    }

    fn chunk(&self, delta: oa::Delta, finish_reason: Option<&str>) -> ChatEvent {
        ChatEvent::Chunk(oa::Chunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![oa::ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish_reason.map(str::to_owned),
                logprobs: None,
            }],
            usage: None,
        })
    }

    fn open_mut(&mut self, index: u32) -> Option<&mut Open> {
        self.open
            .iter_mut()
            .find(|(i, _)| *i == index)
            .map(|(_, o)| o)
    }

    /// One upstream event; the chunks it makes are appended to `out`.
    pub(crate) fn event(&mut self, event: &an::StreamEvent, out: &mut Vec<ChatEvent>) {
        if self.finished {
            return;
        }
        match event {
            an::StreamEvent::MessageStart { message } => {
                if self.started {
                    return;
                }
                self.started = true;
                self.id = ids::chat(&message.id);
                self.usage = message.usage;
                out.push(self.chunk(
                    oa::Delta {
                        role: Some("assistant".to_owned()),
                        content: Some(String::new()),
                        ..oa::Delta::default()
                    },
                    None,
                ));
            }
            an::StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => self.block_start(*index, content_block, out),
            an::StreamEvent::ContentBlockDelta { index, delta } => {
                self.block_delta(*index, delta, out);
            }
            an::StreamEvent::ContentBlockStop { index } => {
                let Some(pos) = self.open.iter().position(|(i, _)| i == index) else {
                    return;
                };
                let (_, open) = self.open.remove(pos);
                match open {
                    Open::Tool {
                        slot,
                        got_arguments,
                        start_input,
                        freeform: Some(arguments),
                    } => {
                        let arguments = match start_input {
                            Some(input) if !got_arguments => input.to_string(),
                            _ => arguments,
                        };
                        let input = freeform::input(&arguments);
                        out.push(self.call_delta(Call::Custom, slot, None, None, Some(input)));
                    }
                    Open::Tool {
                        slot,
                        got_arguments: false,
                        start_input: Some(input),
                        freeform: None,
                    } => {
                        out.push(self.call_delta(
                            Call::Function,
                            slot,
                            None,
                            None,
                            Some(input.to_string()),
                        ));
                    }
                    _ => {}
                }
            }
            an::StreamEvent::MessageDelta { delta, usage } => {
                merge_usage(&mut self.usage, usage);
                let finish = finish_reason(delta.stop_reason.as_deref(), self.next_slot > 0);
                self.stop_reason = Some(finish.to_owned());
                out.push(self.chunk(oa::Delta::default(), Some(finish)));
            }
            an::StreamEvent::MessageStop => {
                if self.include_usage {
                    out.push(ChatEvent::Chunk(oa::Chunk {
                        id: self.id.clone(),
                        object: "chat.completion.chunk".to_owned(),
                        created: self.created,
                        model: self.model.clone(),
                        choices: Vec::new(),
                        usage: Some(usage(&self.usage)),
                    }));
                }
                out.push(ChatEvent::Done);
                self.finished = true;
            }
            an::StreamEvent::Ping => {}
            an::StreamEvent::Error { error } => {
                out.push(ChatEvent::Error {
                    kind: error.kind.clone(),
                    message: error.message.clone(),
                });
                self.finished = true;
            }
        }
    }

    fn block_start(&mut self, index: u32, block: &Block, out: &mut Vec<ChatEvent>) {
        let open = match block {
            Block::Known(Known::Text { text, .. }) => {
                if !text.is_empty() {
                    out.push(self.chunk(content(text), None));
                }
                Open::Text
            }
            Block::Known(Known::ToolUse { id, name, input }) => {
                let slot = self.next_slot;
                self.next_slot += 1;
                let custom = self.names.is_custom(name);
                let name = self.names.client(name).0.to_owned();
                let call = if custom { Call::Custom } else { Call::Function };
                out.push(self.call_delta(
                    call,
                    slot,
                    Some(id.clone()),
                    Some(name),
                    Some(String::new()),
                ));
                let start_input = match input {
                    Value::Object(map) if !map.is_empty() => Some(input.clone()),
                    _ => None,
                };
                Open::Tool {
                    slot,
                    got_arguments: false,
                    start_input,
                    freeform: custom.then(String::new),
                }
            }
            Block::Known(Known::Thinking { thinking, .. }) => {
                self.thinking_text.clear();
                if !thinking.is_empty() {
                    self.thinking_text.push_str(thinking);
                    out.push(self.chunk(reasoning(thinking), None));
                }
                Open::Thinking
            }
            Block::Known(Known::RedactedThinking { data }) => {
                let block = oa::ThinkingBlock {
                    index: Some(self.thinking_blocks),
                    kind: "redacted_thinking".to_owned(),
                    data: Some(data.clone()),
                    ..oa::ThinkingBlock::default()
                };
                self.thinking_blocks += 1;
                out.push(self.chunk(thinking_blocks(block), None));
                Open::Other
            }
            other => {
                dropped(
                    "content_block",
                    &format!("{other:?} has no Chat equivalent"),
                );
                Open::Other
            }
        };
        self.open.push((index, open));
    }

    fn block_delta(&mut self, index: u32, delta: &an::Delta, out: &mut Vec<ChatEvent>) {
        match delta {
            an::Delta::Text { text } if !text.is_empty() => {
                out.push(self.chunk(content(text), None));
            }
            an::Delta::InputJson { partial_json } if !partial_json.is_empty() => {
                if let Some(Open::Tool {
                    slot,
                    got_arguments,
                    freeform,
                    ..
                }) = self.open_mut(index)
                {
                    *got_arguments = true;
                    if let Some(arguments) = freeform {
                        arguments.push_str(partial_json);
                        return;
                    }
                    let slot = *slot;
                    out.push(self.call_delta(
                        Call::Function,
                        slot,
                        None,
                        None,
                        Some(partial_json.clone()),
                    ));
                }
            }
            an::Delta::Thinking { thinking } if !thinking.is_empty() => {
                self.thinking_text.push_str(thinking);
                out.push(self.chunk(reasoning(thinking), None));
            }
            an::Delta::Signature { signature } => {
                // The whole signed block, once: what a client must replay to keep thinking.
                let block = oa::ThinkingBlock {
                    index: Some(self.thinking_blocks),
                    kind: "thinking".to_owned(),
                    thinking: Some(std::mem::take(&mut self.thinking_text)),
                    signature: Some(signature.clone()),
                    data: None,
                };
                self.thinking_blocks += 1;
                out.push(self.chunk(thinking_blocks(block), None));
            }
            _ => {}
        }
    }

    /// A tool call's fragment: its id and name first, then its arguments (a function's JSON) or
    /// its raw input (a freeform tool's, `type: custom`).
    fn call_delta(
        &self,
        call: Call,
        slot: u32,
        id: Option<String>,
        name: Option<String>,
        text: Option<String>,
    ) -> ChatEvent {
        let (kind, function, custom) = match call {
            Call::Function => (
                "function",
                Some(oa::FunctionDelta {
                    name,
                    arguments: text,
                }),
                None,
            ),
            Call::Custom => ("custom", None, Some(oa::CustomDelta { name, input: text })),
        };
        self.chunk(
            oa::Delta {
                tool_calls: Some(vec![oa::ToolCallDelta {
                    index: Some(slot),
                    kind: id.as_ref().map(|_| kind.to_owned()),
                    id,
                    function,
                    custom,
                }]),
                ..oa::Delta::default()
            },
            None,
        )
    }

    /// The upstream ended: an error chunk unless `message_stop` (or an error) came.
    pub(crate) fn end(&mut self, error: Option<(&str, &str)>, out: &mut Vec<ChatEvent>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let (kind, message) = error.unwrap_or(CUT);
        out.push(ChatEvent::Error {
            kind: kind.to_owned(),
            message: message.to_owned(),
        });
    }
}

/// `message_delta` usage is cumulative: counts it gives replace those of `message_start`.
pub(crate) fn merge_usage(total: &mut an::Usage, delta: &an::Usage) {
    total.output_tokens = delta.output_tokens;
    for (mine, theirs) in [
        (&mut total.input_tokens, delta.input_tokens),
        (
            &mut total.cache_read_input_tokens,
            delta.cache_read_input_tokens,
        ),
        (
            &mut total.cache_creation_input_tokens,
            delta.cache_creation_input_tokens,
        ),
    ] {
        if theirs.is_some() {
            *mine = theirs;
        }
    }
    if delta.cache_creation.is_some() {
        total.cache_creation = delta.cache_creation;
    }
}

fn content(text: &str) -> oa::Delta {
    oa::Delta {
        content: Some(text.to_owned()),
        ..oa::Delta::default()
    }
}

fn reasoning(text: &str) -> oa::Delta {
    oa::Delta {
        reasoning_content: Some(text.to_owned()),
        ..oa::Delta::default()
    }
}

fn thinking_blocks(block: oa::ThinkingBlock) -> oa::Delta {
    oa::Delta {
        thinking_blocks: Some(vec![block]),
        ..oa::Delta::default()
    }
}
