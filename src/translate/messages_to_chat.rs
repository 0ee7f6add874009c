//! Anthropic Messages shapes to OpenAI Chat shapes: a Messages request for an OpenAI-kind
//! provider, and an Anthropic response or stream for a Chat client (or, composed, for a
//! Responses client). Pure; knows nothing of the reverse direction.

use serde_json::Value;

use super::names::{self, ToolNames};
use super::{ChatEvent, Target, TranslateError, dropped, ids};
use crate::protocol::anthropic::{self as an, Block, Content, Known, Source};
use crate::protocol::openai as oa;

/// Where the refusal messages say the request was going.
const TO: &str = "an OpenAI-kind provider";

/// A Messages request as a Chat request for an OpenAI-kind provider.
pub(crate) fn request(
    req: an::Request,
    target: &Target<'_>,
) -> Result<oa::Request, TranslateError> {
    for (key, value) in &req.extra {
        match key.as_str() {
            "mcp_servers" | "container" if !value.is_null() => {
                return Err(TranslateError::cannot(key, TO));
            }
            _ => dropped(key, "no OpenAI equivalent"),
        }
    }
    if req.top_k.is_some() {
        return Err(TranslateError(format!(
            "`top_k` cannot be sent to {TO}: it has no equivalent there; remove it."
        )));
    }
    let mut out = oa::Request {
        model: target.upstream_model.to_owned(),
        ..oa::Request::default()
    };
    if let Some(system) = &req.system {
        out.messages.push(system_message(system, "system")?);
    }
    for (i, message) in req.messages.iter().enumerate() {
        match message.role.as_str() {
            "user" => user_turn(i, &message.content, &mut out.messages)?,
            "assistant" => out.messages.push(assistant_turn(i, &message.content)?),
            // Claude Code puts one here on models it does not know.
            "system" => out
                .messages
                .push(system_message(&message.content, &format!("messages[{i}]"))?),
            other => {
                return Err(TranslateError(format!(
                    "`messages[{i}].role` `{other}` is not a Messages role: use `user` or `assistant`."
                )));
            }
        }
    }
    if let Some(tools) = &req.tools {
        let mut list = Vec::with_capacity(tools.len());
        for (i, tool) in tools.iter().enumerate() {
            if let Some(kind) = tool.kind.as_deref().filter(|k| *k != "custom") {
                return Err(TranslateError(format!(
                    "`tools[{i}].type` `{kind}` cannot be sent to {TO}: server tools run only on Anthropic; remove the tool or pick a Claude model."
                )));
            }
            list.push(oa::Tool {
                kind: "function".to_owned(),
                function: Some(oa::FunctionDef {
                    name: names::upstream(&tool.name).into_owned(),
                    description: tool.description.clone(),
                    parameters: Some(tool.input_schema.clone().unwrap_or_else(empty_schema)),
                    strict: tool.strict,
                }),
            });
        }
        if !list.is_empty() {
            out.tools = Some(list);
        }
    }
    if let Some(choice) = &req.tool_choice {
        out.tool_choice = Some(match choice.kind.as_str() {
            "any" => oa::ToolChoice::Mode("required".to_owned()),
            "none" => oa::ToolChoice::Mode("none".to_owned()),
            "tool" => oa::ToolChoice::Named(oa::NamedChoice {
                kind: "function".to_owned(),
                function: oa::ChoiceName {
                    name: names::upstream(choice.name.as_deref().unwrap_or_default()).into_owned(),
                },
            }),
            _ => oa::ToolChoice::Mode("auto".to_owned()),
        });
        if choice.disable_parallel_tool_use == Some(true) && out.tools.is_some() {
            out.parallel_tool_calls = Some(false);
        }
    }
    let max = clamp_max(req.max_tokens, target);
    if target.reasoning {
        // OpenAI's reasoning models refuse `max_tokens` and take only default sampling.
        out.max_completion_tokens = Some(max);
        if req.temperature.is_some() || req.top_p.is_some() {
            dropped(
                "temperature",
                "reasoning models take only the default sampling",
            );
        }
    } else {
        out.max_tokens = Some(max);
        out.temperature = req.temperature;
        out.top_p = req.top_p;
    }
    if let Some(stops) = req.stop_sequences.filter(|s| !s.is_empty()) {
        if stops.len() > 4 {
            return Err(TranslateError(format!(
                "`stop_sequences` has {} entries, but {TO} takes at most 4.",
                stops.len()
            )));
        }
        out.stop = Some(oa::Stop::Many(stops));
    }
    if req.stream == Some(true) {
        out.stream = Some(true);
        // The closing `message_delta` needs the usage, which OpenAI sends only when asked.
        out.stream_options = Some(oa::StreamOptions {
            include_usage: true,
        });
    }
    out.user = req.metadata.and_then(|m| m.user_id);
    let effort = req.output_config.as_ref().and_then(|c| c.effort.as_deref());
    out.reasoning_effort = match (&req.thinking, target.reasoning) {
        (Some(an::Thinking::Enabled { budget_tokens }), true) => Some(effort_for(*budget_tokens)),
        (Some(an::Thinking::Adaptive), true) => Some(match effort {
            Some("low") => "low".to_owned(),
            Some("high" | "max") => "high".to_owned(),
            _ => "medium".to_owned(),
        }),
        (Some(an::Thinking::Enabled { .. } | an::Thinking::Adaptive), false) => {
            dropped("thinking", "the model does not reason");
            None
        }
        _ => None,
    };
    if let Some(config) = req.output_config {
        match config.format {
            Some(format) if format.get("type").and_then(Value::as_str) == Some("json_schema") => {
                let schema = format.get("schema").cloned().unwrap_or_else(empty_schema);
                out.response_format = Some(serde_json::json!({
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": schema, "strict": true}
                }));
            }
            Some(_) => dropped("output_config.format", "only json_schema has an equivalent"),
            None => {}
        }
    }
    Ok(out)
}

/// The largest output the client allows, within the model's: Anthropic clients always send
/// one; the catalog's is the default and the ceiling.
fn clamp_max(asked: Option<u32>, target: &Target<'_>) -> u32 {
    match (asked, target.max_output) {
        (Some(asked), 0) => asked,
        (Some(asked), max) => asked.min(max),
        (None, max) => max,
    }
}

/// A thinking budget as a reasoning effort.
fn effort_for(budget: u32) -> String {
    match budget {
        0..=1024 => "low",
        1025..=8192 => "medium",
        _ => "high",
    }
    .to_owned()
}

fn empty_schema() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

/// `system` (or a system turn) as a Chat system message: its text blocks joined.
fn system_message(content: &Content, path: &str) -> Result<oa::Message, TranslateError> {
    let text = match content {
        Content::Text(text) => text.clone(),
        Content::Blocks(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                match block {
                    Block::Known(Known::Text { text }) => texts.push(text.as_str()),
                    other => return Err(block_error(&format!("{path}.content[{j}]"), other)),
                }
            }
            texts.join("\n")
        }
    };
    Ok(oa::Message {
        role: "system".to_owned(),
        content: Some(oa::Content::Text(text)),
        ..oa::Message::default()
    })
}

/// A user turn: its tool results become `tool` messages first (Chat wants them right after the
/// calls), then the rest, with any images from tool results, as one user message.
fn user_turn(
    i: usize,
    content: &Content,
    out: &mut Vec<oa::Message>,
) -> Result<(), TranslateError> {
    let blocks = match content {
        Content::Text(text) => {
            out.push(user_message(vec![text_part(text)]));
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    let mut result_images = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let path = format!("messages[{i}].content[{j}]");
        match block {
            Block::Known(Known::ToolResult {
                tool_use_id,
                content,
                is_error,
            }) => {
                let mut texts = Vec::new();
                match content {
                    Some(Content::Text(text)) => texts.push(text.clone()),
                    Some(Content::Blocks(inner)) => {
                        for (k, block) in inner.iter().enumerate() {
                            match block {
                                Block::Known(Known::Text { text }) => texts.push(text.clone()),
                                Block::Known(Known::Image { source }) => {
                                    result_images.push(image_part(source, &path)?);
                                }
                                other => {
                                    return Err(block_error(
                                        &format!("{path}.content[{k}]"),
                                        other,
                                    ));
                                }
                            }
                        }
                    }
                    None => {}
                }
                let mut text = texts.join("\n");
                if *is_error == Some(true) && !text.starts_with("Error") {
                    // Chat has no error flag; say it in the text so the model still knows.
                    text = format!("Error: {text}");
                }
                out.push(oa::Message {
                    role: "tool".to_owned(),
                    tool_call_id: Some(tool_use_id.clone()),
                    content: Some(oa::Content::Text(text)),
                    ..oa::Message::default()
                });
            }
            Block::Known(Known::Text { text }) => parts.push(text_part(text)),
            Block::Known(Known::Image { source }) => parts.push(image_part(source, &path)?),
            Block::Known(Known::Document { source, title }) => {
                parts.push(document_part(source, title.as_deref(), &path)?);
            }
            other => return Err(block_error(&path, other)),
        }
    }
    result_images.append(&mut parts);
    if !result_images.is_empty() {
        out.push(user_message(result_images));
    }
    Ok(())
}

fn user_message(mut parts: Vec<oa::Part>) -> oa::Message {
    let content = match parts.as_slice() {
        [oa::Part::Known(oa::KnownPart::Text { .. })] => match parts.pop() {
            Some(oa::Part::Known(oa::KnownPart::Text { text })) => oa::Content::Text(text),
            _ => oa::Content::Parts(parts),
        },
        _ => oa::Content::Parts(parts),
    };
    oa::Message {
        role: "user".to_owned(),
        content: Some(content),
        ..oa::Message::default()
    }
}

fn text_part(text: &str) -> oa::Part {
    oa::Part::Known(oa::KnownPart::Text {
        text: text.to_owned(),
    })
}

fn image_part(source: &Source, path: &str) -> Result<oa::Part, TranslateError> {
    let url = match source {
        Source::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        Source::Url { url } => url.clone(),
        Source::Text { .. } | Source::File { .. } => {
            return Err(TranslateError(format!(
                "`{path}.source.type` cannot be sent to {TO}: send the image as base64 or a URL."
            )));
        }
    };
    Ok(oa::Part::Known(oa::KnownPart::ImageUrl {
        image_url: oa::ImageUrl { url, detail: None },
    }))
}

fn document_part(
    source: &Source,
    title: Option<&str>,
    path: &str,
) -> Result<oa::Part, TranslateError> {
    match source {
        Source::Base64 { media_type, data } => Ok(oa::Part::Known(oa::KnownPart::File {
            file: oa::File {
                file_data: Some(format!("data:{media_type};base64,{data}")),
                filename: Some(title.unwrap_or("document.pdf").to_owned()),
                file_id: None,
            },
        })),
        Source::Text { data, .. } => Ok(text_part(data)),
        Source::Url { .. } | Source::File { .. } => Err(TranslateError(format!(
            "`{path}.source.type` cannot be sent to {TO}: send the document as base64 or text."
        ))),
    }
}

/// An assistant turn: text joined, tool calls, thinking dropped (signatures are model-bound).
fn assistant_turn(i: usize, content: &Content) -> Result<oa::Message, TranslateError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    match content {
        Content::Text(t) => text.push_str(t),
        Content::Blocks(blocks) => {
            for (j, block) in blocks.iter().enumerate() {
                match block {
                    Block::Known(Known::Text { text: t }) => text.push_str(t),
                    Block::Known(Known::ToolUse { id, name, input }) => {
                        calls.push(oa::ToolCall {
                            id: id.clone(),
                            kind: "function".to_owned(),
                            function: oa::FunctionCall {
                                name: names::upstream(name).into_owned(),
                                arguments: arguments(input),
                            },
                        });
                    }
                    Block::Known(Known::Thinking { .. } | Known::RedactedThinking { .. }) => {
                        dropped(
                            "thinking",
                            "thinking history is bound to the model that wrote it",
                        );
                    }
                    other => {
                        return Err(block_error(&format!("messages[{i}].content[{j}]"), other));
                    }
                }
            }
        }
    }
    let content = if text.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(oa::Content::Text(text))
    };
    Ok(oa::Message {
        role: "assistant".to_owned(),
        content,
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..oa::Message::default()
    })
}

/// Tool input as Chat's JSON string (`{}` when absent).
fn arguments(input: &Value) -> String {
    match input {
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}

fn block_error(path: &str, block: &Block) -> TranslateError {
    let kind = match block {
        Block::Known(known) => match known {
            Known::Text { .. } => "text",
            Known::Image { .. } => "image",
            Known::Document { .. } => "document",
            Known::ToolUse { .. } => "tool_use",
            Known::ToolResult { .. } => "tool_result",
            Known::Thinking { .. } => "thinking",
            Known::RedactedThinking { .. } => "redacted_thinking",
        },
        Block::Other(value) => value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("unknown"),
    };
    TranslateError(format!(
        "`{path}.type` `{kind}` cannot be sent to {TO} in this place: remove the block or pick a Claude model."
    ))
}

/// Anthropic's stop reason as Chat's finish reason.
pub(crate) fn finish_reason(stop: Option<&str>, tool_calls: bool) -> &'static str {
    match stop {
        Some("tool_use") => "tool_calls",
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("refusal") => "content_filter",
        _ if tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// Anthropic usage as Chat usage: `prompt_tokens` counts cached input too.
pub(crate) fn usage(usage: &an::Usage) -> oa::Usage {
    let read = usage.cache_read_input_tokens.unwrap_or(0);
    let write = usage.cache_creation_input_tokens.unwrap_or(0);
    let prompt = usage.input_tokens.unwrap_or(0) + read + write;
    oa::Usage {
        prompt_tokens: prompt,
        completion_tokens: usage.output_tokens,
        total_tokens: prompt + usage.output_tokens,
        prompt_tokens_details: Some(oa::PromptDetails {
            cached_tokens: read,
            cache_write_tokens: None,
        }),
        completion_tokens_details: None,
        cache_creation_input_tokens: None,
    }
}

/// A whole Anthropic response as a Chat response.
pub(crate) fn response(resp: an::Response, target: &Target<'_>, names: &ToolNames) -> oa::Response {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut calls = Vec::new();
    for block in resp.content {
        match block {
            Block::Known(Known::Text { text: t }) => text.push_str(&t),
            Block::Known(Known::ToolUse { id, name, input }) => calls.push(oa::ToolCall {
                id,
                kind: "function".to_owned(),
                function: oa::FunctionCall {
                    name: names.client(&name).0.to_owned(),
                    arguments: arguments(&input),
                },
            }),
            Block::Known(Known::Thinking {
                thinking,
                signature,
            }) => {
                reasoning.push_str(&thinking);
                thinking_blocks.push(oa::ThinkingBlock {
                    kind: "thinking".to_owned(),
                    thinking: Some(thinking),
                    signature,
                    ..oa::ThinkingBlock::default()
                });
            }
            Block::Known(Known::RedactedThinking { data }) => {
                thinking_blocks.push(oa::ThinkingBlock {
                    kind: "redacted_thinking".to_owned(),
                    data: Some(data),
                    ..oa::ThinkingBlock::default()
                });
            }
            other => dropped(
                "content",
                &format!("block {other:?} has no Chat equivalent"),
            ),
        }
    }
    let finish = finish_reason(resp.stop_reason.as_deref(), !calls.is_empty());
    oa::Response {
        id: ids::chat(&resp.id),
        object: "chat.completion".to_owned(),
        created: target.created,
        model: target.client_model.to_owned(),
        choices: vec![oa::Choice {
            index: 0,
            message: oa::Message {
                role: "assistant".to_owned(),
                content: (!text.is_empty() || calls.is_empty()).then_some(oa::Content::Text(text)),
                tool_calls: (!calls.is_empty()).then_some(calls),
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
                ..oa::Message::default()
            },
            finish_reason: Some(finish.to_owned()),
            logprobs: None,
        }],
        usage: Some(usage(&resp.usage)),
    }
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
                if let Open::Tool {
                    slot,
                    got_arguments: false,
                    start_input: Some(input),
                } = open
                {
                    out.push(self.tool_delta(slot, None, None, Some(input.to_string())));
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
            Block::Known(Known::Text { text }) => {
                if !text.is_empty() {
                    out.push(self.chunk(content(text), None));
                }
                Open::Text
            }
            Block::Known(Known::ToolUse { id, name, input }) => {
                let slot = self.next_slot;
                self.next_slot += 1;
                let name = self.names.client(name).0.to_owned();
                out.push(self.tool_delta(slot, Some(id.clone()), Some(name), Some(String::new())));
                let start_input = match input {
                    Value::Object(map) if !map.is_empty() => Some(input.clone()),
                    _ => None,
                };
                Open::Tool {
                    slot,
                    got_arguments: false,
                    start_input,
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
                    ..
                }) = self.open_mut(index)
                {
                    *got_arguments = true;
                    let slot = *slot;
                    out.push(self.tool_delta(slot, None, None, Some(partial_json.clone())));
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

    fn tool_delta(
        &self,
        slot: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: Option<String>,
    ) -> ChatEvent {
        let kind = id.as_ref().map(|_| "function".to_owned());
        self.chunk(
            oa::Delta {
                tool_calls: Some(vec![oa::ToolCallDelta {
                    index: Some(slot),
                    id,
                    kind,
                    function: Some(oa::FunctionDelta { name, arguments }),
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
        let (kind, message) = error.unwrap_or(super::CUT);
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
