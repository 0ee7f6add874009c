//! OpenAI Responses onto OpenAI Chat and back: a Responses request as a Chat request, and a
//! Chat response or stream as the Responses object or event sequence. Toward an Anthropic-kind
//! provider the gateway composes these with the Chat↔Messages directions; there is no third
//! copy. Pure.

use bytes::BytesMut;
use serde::Serialize;
use serde_json::Value;

use super::names::{self, ToolNames};
use super::{ChatEvent, Slots, Target, TranslateError, dropped, ids};
use crate::protocol::openai as oa;
use crate::protocol::responses::{self as rs, OutputItem, StreamEvent};
use crate::protocol::{Kind, sse};

/// Prefixes of `encrypted_content` that izzi writes for Anthropic thinking, so a reasoning item
/// Codex replays finds its way back to a signed block (and one from elsewhere is not forged).
const SIGNED: &str = "izzi-thinking:";
const REDACTED: &str = "izzi-redacted:";

fn to(kind: Kind) -> &'static str {
    match kind {
        Kind::Openai => "an OpenAI-kind provider",
        Kind::Anthropic => "an Anthropic-kind provider",
    }
}

/// A Responses request (or Cursor's Responses-shaped Chat body) as a Chat request for `kind`.
pub(crate) fn request(
    req: rs::Request,
    kind: Kind,
    target: &Target<'_>,
) -> Result<oa::Request, TranslateError> {
    let mut out = oa::Request {
        model: target.upstream_model.to_owned(),
        ..oa::Request::default()
    };
    for (key, value) in &req.extra {
        match key.as_str() {
            "previous_response_id" | "conversation" | "prompt" if !value.is_null() => {
                return Err(TranslateError(format!(
                    "`{key}` needs state stored at OpenAI and cannot be sent to {}: send the whole conversation in `input`.",
                    to(kind)
                )));
            }
            "background" if value.as_bool() == Some(true) => {
                return Err(TranslateError::cannot(key, to(kind)));
            }
            "top_logprobs" if !value.is_null() => {
                return Err(TranslateError::cannot(key, to(kind)));
            }
            "prompt_cache_key" | "safety_identifier" if kind == Kind::Openai => {
                out.extra.insert(key.clone(), value.clone());
            }
            "model" | "stream_options" => {}
            // `store: false`, `include`, `client_metadata`, `metadata`, `truncation`, …
            _ => dropped(key, "steers only OpenAI's own Responses features"),
        }
    }
    if let Some(instructions) = req.instructions.filter(|i| !i.is_empty()) {
        out.messages.push(text_message("system", instructions));
    }
    match req.input {
        rs::Input::Text(text) => out.messages.push(text_message("user", text)),
        rs::Input::Items(items) => input_items(items, kind, &mut out.messages)?,
    }
    if let Some(tools) = req.tools {
        let mut list = Vec::with_capacity(tools.len());
        for (i, tool) in tools.into_iter().enumerate() {
            function_tools(i, tool, kind, &mut list)?;
        }
        if !list.is_empty() {
            out.tools = Some(list);
            out.parallel_tool_calls = req.parallel_tool_calls;
            out.tool_choice = match req.tool_choice {
                Some(choice) => tool_choice(choice, kind)?,
                None => None,
            };
        }
    }
    if kind == Kind::Openai && target.reasoning {
        out.max_completion_tokens = req.max_output_tokens;
        if req.temperature.is_some() || req.top_p.is_some() {
            dropped(
                "temperature",
                "reasoning models take only the default sampling",
            );
        }
    } else {
        out.max_tokens = req.max_output_tokens;
        out.temperature = req.temperature;
        out.top_p = req.top_p;
    }
    if let Some(text) = req.text {
        if text.verbosity.is_some() {
            dropped("text.verbosity", "Chat has no verbosity");
        }
        out.response_format = match text.format {
            Some(format) => response_format(format),
            None => None,
        };
    }
    if let Some(reasoning) = req.reasoning {
        if kind == Kind::Openai && !target.reasoning && reasoning.effort.is_some() {
            dropped("reasoning.effort", "the model does not reason");
        } else {
            out.reasoning_effort = reasoning.effort;
        }
        if reasoning.summary.is_some() {
            dropped("reasoning.summary", "summaries are OpenAI's own");
        }
    }
    out.user = req.user;
    if req.stream == Some(true) {
        out.stream = Some(true);
        out.stream_options = Some(oa::StreamOptions {
            include_usage: true,
        });
    }
    Ok(out)
}

fn text_message(role: &str, text: String) -> oa::Message {
    oa::Message {
        role: role.to_owned(),
        content: Some(oa::Content::Text(text)),
        ..oa::Message::default()
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: Value, path: &str) -> Result<T, TranslateError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let inner = err.path().to_string();
        let at = if inner == "." {
            path.to_owned()
        } else {
            format!("{path}.{inner}")
        };
        TranslateError(format!("`{at}` is not valid: {}.", err.inner()))
    })
}

/// `input` items as Chat messages: consecutive calls join one assistant turn, outputs become
/// tool messages, reasoning items that izzi signed become that turn's thinking blocks.
fn input_items(
    items: Vec<Value>,
    kind: Kind,
    out: &mut Vec<oa::Message>,
) -> Result<(), TranslateError> {
    let mut thinking: Vec<oa::ThinkingBlock> = Vec::new();
    // Whether the last message is an assistant turn that later calls may join.
    let mut open_assistant = false;
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("input[{i}]");
        let kind_of = item.get("type").and_then(Value::as_str).map(str::to_owned);
        match kind_of.as_deref() {
            None | Some("message") => {
                let message: rs::InputMessage = parse(item, &path)?;
                let role = match message.role.as_str() {
                    "system" | "developer" => "system",
                    "user" => "user",
                    "assistant" => "assistant",
                    other => {
                        return Err(TranslateError(format!(
                            "`{path}.role` `{other}` is not a Responses role: use `user`, `assistant`, `system` or `developer`."
                        )));
                    }
                };
                let content = message_content(message.content, role, &path, kind)?;
                let mut msg = oa::Message {
                    role: role.to_owned(),
                    content: Some(content),
                    ..oa::Message::default()
                };
                if role == "assistant" {
                    msg.thinking_blocks = take_thinking(&mut thinking);
                }
                open_assistant = role == "assistant";
                out.push(msg);
            }
            Some("function_call") => {
                let call: rs::FunctionCallItem = parse(item, &path)?;
                let name = match &call.namespace {
                    Some(namespace) => names::flatten(namespace, &call.name),
                    None => call.name,
                };
                let tool_call = oa::ToolCall {
                    id: call.call_id,
                    kind: "function".to_owned(),
                    function: oa::FunctionCall {
                        name: names::upstream(&name).into_owned(),
                        arguments: call.arguments,
                    },
                };
                match out.last_mut() {
                    Some(last) if open_assistant => {
                        last.tool_calls.get_or_insert_with(Vec::new).push(tool_call);
                    }
                    _ => {
                        out.push(oa::Message {
                            role: "assistant".to_owned(),
                            tool_calls: Some(vec![tool_call]),
                            thinking_blocks: take_thinking(&mut thinking),
                            ..oa::Message::default()
                        });
                        open_assistant = true;
                    }
                }
            }
            Some("function_call_output") => {
                let output: rs::FunctionCallOutput = parse(item, &path)?;
                let text = match output.output {
                    rs::InputContent::Text(text) => text,
                    rs::InputContent::Parts(parts) => {
                        let mut texts = Vec::new();
                        for (j, mut part) in parts.into_iter().enumerate() {
                            match part.get("type").and_then(Value::as_str) {
                                Some("input_text" | "output_text" | "text") => texts.push(
                                    take_text(&mut part, "text", &format!("{path}.output[{j}]"))?,
                                ),
                                other => {
                                    return Err(TranslateError(format!(
                                        "`{path}.output[{j}].type` `{}` cannot be sent to {}: tool outputs carry only text there.",
                                        other.unwrap_or("unknown"),
                                        to(kind)
                                    )));
                                }
                            }
                        }
                        texts.join("\n")
                    }
                };
                out.push(oa::Message {
                    role: "tool".to_owned(),
                    tool_call_id: Some(output.call_id),
                    content: Some(oa::Content::Text(text)),
                    ..oa::Message::default()
                });
                open_assistant = false;
            }
            Some("reasoning") => {
                let item: rs::ReasoningItem = parse(item, &path)?;
                match (kind, signed_block(&item)) {
                    (Kind::Anthropic, Some(block)) => thinking.push(block),
                    _ => dropped(
                        "reasoning",
                        "reasoning from another model cannot be replayed",
                    ),
                }
            }
            Some(other) => {
                return Err(TranslateError(format!(
                    "`{path}.type` `{other}` cannot be sent to {}: it needs state stored at OpenAI.",
                    to(kind)
                )));
            }
        }
    }
    Ok(())
}

/// A text part's `field`, which must be a string: a prompt of another type is refused, never
/// sent on as an empty text.
fn take_text(part: &mut Value, field: &str, path: &str) -> Result<String, TranslateError> {
    match part.get_mut(field).map(Value::take) {
        Some(Value::String(text)) => Ok(text),
        _ => Err(TranslateError(format!(
            "`{path}.{field}` is not valid: expected a string."
        ))),
    }
}

fn take_thinking(thinking: &mut Vec<oa::ThinkingBlock>) -> Option<Vec<oa::ThinkingBlock>> {
    (!thinking.is_empty()).then(|| std::mem::take(thinking))
}

/// The signed thinking block izzi stored in a reasoning item, if it did.
fn signed_block(item: &rs::ReasoningItem) -> Option<oa::ThinkingBlock> {
    let content = item.encrypted_content.as_deref()?;
    if let Some(signature) = content.strip_prefix(SIGNED) {
        let thinking: String = item.summary.iter().map(|s| s.text.as_str()).collect();
        return Some(oa::ThinkingBlock {
            kind: "thinking".to_owned(),
            thinking: Some(thinking),
            signature: Some(signature.to_owned()),
            ..oa::ThinkingBlock::default()
        });
    }
    content
        .strip_prefix(REDACTED)
        .map(|data| oa::ThinkingBlock {
            kind: "redacted_thinking".to_owned(),
            data: Some(data.to_owned()),
            ..oa::ThinkingBlock::default()
        })
}

/// A message item's content as Chat content: parts for users, text for the others.
fn message_content(
    content: rs::InputContent,
    role: &str,
    path: &str,
    kind: Kind,
) -> Result<oa::Content, TranslateError> {
    let parts = match content {
        rs::InputContent::Text(text) => return Ok(oa::Content::Text(text)),
        rs::InputContent::Parts(parts) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, mut part) in parts.into_iter().enumerate() {
        let part_path = format!("{path}.content[{j}]");
        let kind_of = part.get("type").and_then(Value::as_str).map(str::to_owned);
        match kind_of.as_deref() {
            Some("input_text" | "output_text" | "text") => {
                out.push(oa::Part::Known(oa::KnownPart::Text {
                    text: take_text(&mut part, "text", &part_path)?,
                }))
            }
            Some("refusal") => out.push(oa::Part::Known(oa::KnownPart::Text {
                text: take_text(&mut part, "refusal", &part_path)?,
            })),
            Some("input_image") if role == "user" => {
                let image: rs::InputImage = parse(part, &part_path)?;
                let Some(url) = image.image_url else {
                    return Err(TranslateError(format!(
                        "`{part_path}.file_id` cannot be sent to {}: send the image as `image_url` (a URL or a data URI).",
                        to(kind)
                    )));
                };
                out.push(oa::Part::Known(oa::KnownPart::ImageUrl {
                    image_url: oa::ImageUrl {
                        url,
                        detail: image.detail,
                    },
                }));
            }
            Some("input_file") if role == "user" => {
                let file: rs::InputFile = parse(part, &part_path)?;
                if file.file_url.is_some() || (file.file_data.is_none() && kind == Kind::Anthropic)
                {
                    return Err(TranslateError(format!(
                        "`{part_path}` cannot be sent to {}: send the file as `file_data`.",
                        to(kind)
                    )));
                }
                out.push(oa::Part::Known(oa::KnownPart::File {
                    file: oa::File {
                        file_data: file.file_data,
                        file_id: file.file_id,
                        filename: file.filename,
                    },
                }));
            }
            other => {
                return Err(TranslateError(format!(
                    "`{part_path}.type` `{}` cannot be sent to {} in a `{role}` message.",
                    other.unwrap_or("unknown"),
                    to(kind)
                )));
            }
        }
    }
    if role != "user" {
        // Only user messages take non-text parts in Chat; the others are plain text.
        let text: String = out
            .into_iter()
            .filter_map(|p| match p {
                oa::Part::Known(oa::KnownPart::Text { text }) => Some(text),
                _ => None,
            })
            .collect();
        return Ok(oa::Content::Text(text));
    }
    Ok(oa::Content::Parts(out))
}

/// One Responses tool as Chat function tools: a namespace gives one per inner function;
/// `web_search` is dropped (Codex always sends it; the model just goes without).
fn function_tools(
    i: usize,
    tool: Value,
    kind: Kind,
    out: &mut Vec<oa::Tool>,
) -> Result<(), TranslateError> {
    let path = format!("tools[{i}]");
    let kind_of = tool.get("type").and_then(Value::as_str).map(str::to_owned);
    match kind_of.as_deref() {
        Some("function") => {
            let function: rs::FunctionTool = parse(tool, &path)?;
            let name = function.name.clone();
            out.push(chat_tool(&name, function));
        }
        Some("namespace") => {
            let namespace: rs::FunctionTool = parse(tool, &path)?;
            for (j, inner) in namespace
                .tools
                .clone()
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                let inner_path = format!("{path}.tools[{j}]");
                if inner.get("type").and_then(Value::as_str) != Some("function") {
                    return Err(TranslateError(format!(
                        "`{inner_path}.type` cannot be sent to {}: only function tools can.",
                        to(kind)
                    )));
                }
                let function: rs::FunctionTool = parse(inner, &inner_path)?;
                let flat = names::flatten(&namespace.name, &function.name);
                out.push(chat_tool(&flat, function));
            }
        }
        Some(search @ ("web_search" | "web_search_preview")) => {
            dropped(search, "OpenAI's hosted web search runs only at OpenAI");
        }
        other => {
            return Err(TranslateError(format!(
                "`{path}.type` `{}` cannot be sent to {}: only function tools can; remove it.",
                other.unwrap_or("unknown"),
                to(kind)
            )));
        }
    }
    Ok(())
}

fn chat_tool(name: &str, function: rs::FunctionTool) -> oa::Tool {
    oa::Tool {
        kind: "function".to_owned(),
        function: Some(oa::FunctionDef {
            name: names::upstream(name).into_owned(),
            description: function.description,
            parameters: function.parameters,
            strict: function.strict,
        }),
    }
}

fn tool_choice(choice: Value, kind: Kind) -> Result<Option<oa::ToolChoice>, TranslateError> {
    Ok(match choice {
        Value::String(mode) => Some(oa::ToolChoice::Mode(mode)),
        Value::Object(map) => match map.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = map.get("name").and_then(Value::as_str).unwrap_or_default();
                Some(oa::ToolChoice::Named(oa::NamedChoice {
                    kind: "function".to_owned(),
                    function: oa::ChoiceName {
                        name: names::upstream(name).into_owned(),
                    },
                }))
            }
            Some("allowed_tools") => {
                dropped("tool_choice", "allowed_tools narrows nothing in Chat");
                map.get("mode")
                    .and_then(Value::as_str)
                    .map(|m| oa::ToolChoice::Mode(m.to_owned()))
            }
            other => {
                return Err(TranslateError(format!(
                    "`tool_choice.type` `{}` cannot be sent to {}.",
                    other.unwrap_or("unknown"),
                    to(kind)
                )));
            }
        },
        _ => None,
    })
}

/// `text.format` as Chat's `response_format`.
fn response_format(format: Value) -> Option<Value> {
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => {
            let mut schema = serde_json::Map::new();
            for key in ["name", "schema", "strict", "description"] {
                if let Some(value) = format.get(key) {
                    schema.insert(key.to_owned(), value.clone());
                }
            }
            Some(serde_json::json!({"type": "json_schema", "json_schema": schema}))
        }
        Some("json_object") => Some(serde_json::json!({"type": "json_object"})),
        _ => None,
    }
}

/// Chat's finish reason as a Responses status and incomplete reason.
fn status(finish: Option<&str>) -> (&'static str, Option<rs::IncompleteDetails>) {
    match finish {
        Some("length") => (
            "incomplete",
            Some(rs::IncompleteDetails {
                reason: "max_output_tokens",
            }),
        ),
        Some("content_filter") => (
            "incomplete",
            Some(rs::IncompleteDetails {
                reason: "content_filter",
            }),
        ),
        _ => ("completed", None),
    }
}

/// A message item cut by the output limit or a filter is `incomplete`, like its response.
fn item_status(finish: Option<&str>) -> &'static str {
    status(finish).0
}

/// Chat usage as Responses usage (`input_tokens` counts cached input too).
fn usage(usage: &oa::Usage) -> rs::Usage {
    rs::Usage {
        input_tokens: usage.prompt_tokens,
        input_tokens_details: rs::InputDetails {
            cached_tokens: usage
                .prompt_tokens_details
                .unwrap_or_default()
                .cached_tokens,
        },
        output_tokens: usage.completion_tokens,
        output_tokens_details: rs::OutputDetails {
            reasoning_tokens: usage
                .completion_tokens_details
                .unwrap_or_default()
                .reasoning_tokens,
        },
        total_tokens: usage.prompt_tokens + usage.completion_tokens,
    }
}

fn empty_response(id: &str, target: &Target<'_>) -> rs::Response {
    rs::Response {
        id: ids::response(id),
        object: "response",
        created_at: target.created,
        status: "in_progress",
        model: target.client_model.to_owned(),
        output: Vec::new(),
        usage: None,
        incomplete_details: None,
        error: None,
        parallel_tool_calls: true,
        tool_choice: "auto",
        tools: Vec::new(),
    }
}

fn reasoning_item(id: String, text: Option<String>, encrypted: Option<String>) -> OutputItem {
    OutputItem::Reasoning {
        id,
        summary: text
            .map(|text| rs::Summary {
                kind: "summary_text".to_owned(),
                text,
            })
            .into_iter()
            .collect(),
        encrypted_content: encrypted,
    }
}

/// A thinking block's `encrypted_content`, as [`signed_block`] reads it back.
fn encrypted(block: &oa::ThinkingBlock) -> Option<String> {
    match (block.kind.as_str(), &block.signature, &block.data) {
        ("redacted_thinking", _, Some(data)) => Some(format!("{REDACTED}{data}")),
        (_, Some(signature), _) => Some(format!("{SIGNED}{signature}")),
        _ => None,
    }
}

fn function_call(
    id: &str,
    name: &str,
    names: &ToolNames,
    arguments: String,
    status: &'static str,
) -> OutputItem {
    let (name, namespace) = names.client(name);
    OutputItem::FunctionCall {
        id: format!("fc_{}", ids::base(id)),
        call_id: id.to_owned(),
        name: name.to_owned(),
        namespace: namespace.map(str::to_owned),
        arguments,
        status,
    }
}

/// A whole Chat response as a Responses object.
pub(crate) fn response(resp: oa::Response, target: &Target<'_>, names: &ToolNames) -> rs::Response {
    let mut out = empty_response(&resp.id, target);
    let base = ids::base(&resp.id).to_owned();
    let choice = resp.choices.into_iter().next().unwrap_or_default();
    let message = choice.message;
    let blocks = message.thinking_blocks.unwrap_or_default();
    if blocks.is_empty() {
        if let Some(text) = message.reasoning_content.filter(|t| !t.is_empty()) {
            out.output
                .push(reasoning_item(format!("rs_{base}_0"), Some(text), None));
        }
    } else {
        for block in &blocks {
            let n = out.output.len();
            out.output.push(reasoning_item(
                format!("rs_{base}_{n}"),
                block.thinking.clone(),
                encrypted(block),
            ));
        }
    }
    let mut text = match message.content {
        Some(oa::Content::Text(text)) => text,
        Some(oa::Content::Parts(parts)) => parts
            .into_iter()
            .filter_map(|p| match p {
                oa::Part::Known(oa::KnownPart::Text { text }) => Some(text),
                _ => None,
            })
            .collect(),
        None => String::new(),
    };
    if let Some(refusal) = message.refusal {
        text.push_str(&refusal);
    }
    if !text.is_empty() {
        out.output.push(OutputItem::Message {
            id: format!("msg_{base}"),
            role: "assistant",
            status: item_status(choice.finish_reason.as_deref()),
            content: vec![output_text(text)],
        });
    }
    for call in message.tool_calls.unwrap_or_default() {
        out.output.push(function_call(
            &call.id,
            &call.function.name,
            names,
            call.function.arguments,
            "completed",
        ));
    }
    let (status, incomplete) = status(choice.finish_reason.as_deref());
    out.status = status;
    out.incomplete_details = incomplete;
    out.usage = Some(usage(&resp.usage.unwrap_or_default()));
    out
}

fn output_text(text: String) -> rs::OutputText {
    rs::OutputText {
        kind: "output_text",
        text,
        annotations: Vec::new(),
    }
}

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
        match serde_json::to_vec(&numbered) {
            Ok(data) => sse::write_event(out, Some(event.name()), &data),
            Err(err) => tracing::warn!(%err, "could not encode a stream event"),
        }
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
                    let (kind, message) = super::CUT;
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
        | OutputItem::Reasoning { id, .. } => id,
    }
}
