//! A Responses request (or Cursor's Responses-shaped Chat body) as a Chat request: input items,
//! tools, tool choice and format, and the refusal of what the target cannot carry.

use serde_json::Value;

use super::signed_block;
use crate::protocol::Kind;
use crate::protocol::openai as oa;
use crate::protocol::responses as rs;
use crate::translate::freeform;
use crate::translate::{Target, TranslateError, dropped, names, server_tools};

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
        let mut search = None;
        for (i, tool) in tools.into_iter().enumerate() {
            function_tools(i, tool, (kind, target.web_search), &mut list, &mut search)?;
        }
        if let Some(options) = search {
            out.extra.insert("web_search_options".to_owned(), options);
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
            Some(call_kind @ ("function_call" | "custom_tool_call" | "local_shell_call")) => {
                let (id, name, arguments) = if call_kind == "custom_tool_call" {
                    let call: rs::CustomToolCallItem = parse(item, &path)?;
                    let arguments = freeform::arguments(&call.input);
                    (call.call_id, call.name, arguments)
                } else if call_kind == "local_shell_call" {
                    let call: rs::LocalShellCallItem = parse(item, &path)?;
                    let arguments = freeform::local_shell_arguments(&call.action);
                    let id = call.call_id.or(call.id).unwrap_or_default();
                    (id, freeform::LOCAL_SHELL.to_owned(), arguments)
                } else {
                    let call: rs::FunctionCallItem = parse(item, &path)?;
                    let name = match &call.namespace {
                        Some(namespace) => names::flatten(namespace, &call.name),
                        None => call.name,
                    };
                    (call.call_id, name, call.arguments)
                };
                let tool_call = oa::ToolCall {
                    id,
                    kind: "function".to_owned(),
                    function: oa::FunctionCall {
                        name: names::upstream(&name).into_owned(),
                        arguments,
                    },
                    custom: None,
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
            Some(
                "function_call_output" | "custom_tool_call_output" | "local_shell_call_output",
            ) => {
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
                    tool_call_id: Some(if output.call_id.is_empty() {
                        output.id.unwrap_or_default()
                    } else {
                        output.call_id
                    }),
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
                    cache_control: None,
                }));
            }
            Some("refusal") => out.push(oa::Part::Known(oa::KnownPart::Text {
                text: take_text(&mut part, "refusal", &part_path)?,
                cache_control: None,
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
                oa::Part::Known(oa::KnownPart::Text { text, .. }) => Some(text),
                _ => None,
            })
            .collect();
        return Ok(oa::Content::Text(text));
    }
    Ok(oa::Content::Parts(out))
}

/// One Responses tool as Chat function tools: a namespace gives one per inner function;
/// `web_search` becomes Chat's `web_search_options` where the target searches (Claude, or a
/// model with `web_search`), else it is dropped (Codex always sends it; the model just goes
/// without).
fn function_tools(
    i: usize,
    tool: Value,
    (kind, web_search): (Kind, bool),
    out: &mut Vec<oa::Tool>,
    options: &mut Option<Value>,
) -> Result<(), TranslateError> {
    let path = format!("tools[{i}]");
    let kind_of = tool.get("type").and_then(Value::as_str).map(str::to_owned);
    match kind_of.as_deref() {
        Some("function") => {
            let function: rs::FunctionTool = parse(tool, &path)?;
            let name = function.name.clone();
            out.push(chat_tool(&name, function));
        }
        Some("custom") => {
            // A freeform tool (Codex's `apply_patch`) as a function of one string, which every
            // provider takes; its calls go back to the client as `custom_tool_call`s.
            let custom: rs::CustomTool = parse(tool, &path)?;
            out.push(chat_tool(
                &custom.name,
                rs::FunctionTool {
                    name: custom.name.clone(),
                    description: custom.description,
                    parameters: Some(freeform::parameters(custom.format.as_ref())),
                    strict: None,
                    tools: None,
                },
            ));
        }
        Some("local_shell") => {
            // Codex's legacy shell tool (codex-mini) as a function of its `exec` action.
            out.push(chat_tool(
                freeform::LOCAL_SHELL,
                rs::FunctionTool {
                    name: freeform::LOCAL_SHELL.to_owned(),
                    description: Some(
                        "Runs a command on the user's machine and returns its output.".to_owned(),
                    ),
                    parameters: Some(freeform::local_shell_parameters()),
                    strict: None,
                    tools: None,
                },
            ));
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
            if kind == Kind::Anthropic || web_search {
                *options = Some(server_tools::chat_options(tool.get("user_location")));
            } else {
                dropped(search, "the model has no web search");
            }
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
        custom: None,
        cache_control: None,
    }
}

fn tool_choice(choice: Value, kind: Kind) -> Result<Option<oa::ToolChoice>, TranslateError> {
    Ok(match choice {
        Value::String(mode) => Some(oa::ToolChoice::Mode(mode)),
        Value::Object(map) => match map.get("type").and_then(Value::as_str) {
            // A custom tool goes to Chat as a function of the same name (`tool`).
            Some("function" | "custom") => {
                let name = map.get("name").and_then(Value::as_str).unwrap_or_default();
                Some(oa::ToolChoice::Named(oa::NamedChoice::function(
                    names::upstream(name).into_owned(),
                )))
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
