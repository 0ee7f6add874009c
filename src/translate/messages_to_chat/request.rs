//! A Messages request as a Chat request: system text, turns with their images, documents and
//! tool results, tools, thinking, and the refusal of what an OpenAI-kind provider cannot carry.

use serde_json::Value;

use super::arguments;
use crate::protocol::anthropic::{self as an, Block, Content, Known, Source};
use crate::protocol::openai as oa;
use crate::translate::{Target, TranslateError, dropped, names, server_tools};

/// Where the refusal messages say the request was going.
const TO: &str = "an OpenAI-kind provider";

/// A Messages request as a Chat request for an OpenAI-kind provider.
pub(crate) fn request(
    req: an::Request,
    target: &Target<'_>,
) -> Result<oa::Request, TranslateError> {
    for key in req.extra.keys() {
        let why = match key.as_str() {
            "mcp_servers" => "Anthropic's MCP connector runs only at Anthropic",
            "container" => "Anthropic's code-execution container runs only at Anthropic",
            "context_management" => "OpenAI-kind providers clear no context for the client",
            _ => "no OpenAI equivalent",
        };
        dropped(key, why);
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
            match tool.kind.as_deref().filter(|k| *k != "custom") {
                None => {}
                Some(kind) if kind.starts_with("web_search_") => {
                    if target.web_search {
                        out.extra.insert(
                            "web_search_options".to_owned(),
                            server_tools::chat_options(tool.extra.get("user_location")),
                        );
                    } else {
                        dropped(kind, "the model has no web search");
                    }
                    continue;
                }
                Some(kind) if kind.starts_with("web_fetch_") => {
                    dropped(kind, "OpenAI-kind providers fetch no pages");
                    continue;
                }
                Some(kind) => {
                    return Err(TranslateError(format!(
                        "`tools[{i}].type` `{kind}` cannot be sent to {TO}: server tools run only on Anthropic; remove the tool or pick a Claude model."
                    )));
                }
            }
            if tool.extra.contains_key("defer_loading") {
                dropped("defer_loading", "every tool is loaded up front");
            }
            list.push(oa::Tool {
                kind: "function".to_owned(),
                function: Some(oa::FunctionDef {
                    name: names::upstream(&tool.name).into_owned(),
                    description: tool.description.clone(),
                    parameters: Some(tool.input_schema.clone().unwrap_or_else(empty_schema)),
                    strict: tool.strict,
                }),
                custom: None,
                cache_control: None,
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
            "tool" => oa::ToolChoice::Named(oa::NamedChoice::function(
                names::upstream(choice.name.as_deref().unwrap_or_default()).into_owned(),
            )),
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
                    Block::Known(Known::Text { text, .. }) => texts.push(text.as_str()),
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
                ..
            }) => {
                let mut texts = Vec::new();
                match content {
                    Some(Content::Text(text)) => texts.push(text.clone()),
                    Some(Content::Blocks(inner)) => {
                        for (k, block) in inner.iter().enumerate() {
                            match block {
                                Block::Known(Known::Text { text, .. }) => texts.push(text.clone()),
                                Block::Known(Known::Image { source }) => {
                                    result_images.push(image_part(source, &path)?);
                                }
                                Block::Other(other)
                                    if other.get("type").and_then(Value::as_str)
                                        == Some("tool_reference") =>
                                {
                                    dropped(
                                        "tool_reference",
                                        "every tool is loaded up front, none is deferred",
                                    );
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
            Block::Known(Known::Text { text, .. }) => parts.push(text_part(text)),
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
            Some(oa::Part::Known(oa::KnownPart::Text { text, .. })) => oa::Content::Text(text),
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
        cache_control: None,
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

/// A block of a server tool's run at Anthropic (web search, web fetch, code execution, MCP).
fn server_block(block: &Value) -> bool {
    block
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|kind| {
            matches!(
                kind,
                "server_tool_use" | "mcp_tool_use" | "mcp_tool_result" | "container_upload"
            ) || kind.ends_with("_tool_result")
        })
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
                    Block::Known(Known::Text { text: t, .. }) => text.push_str(t),
                    Block::Known(Known::ToolUse { id, name, input }) => {
                        calls.push(oa::ToolCall {
                            id: id.clone(),
                            kind: "function".to_owned(),
                            function: oa::FunctionCall {
                                name: names::upstream(name).into_owned(),
                                arguments: arguments(input),
                            },
                            custom: None,
                        });
                    }
                    Block::Known(Known::Thinking { .. } | Known::RedactedThinking { .. }) => {
                        dropped(
                            "thinking",
                            "thinking history is bound to the model that wrote it",
                        );
                    }
                    Block::Other(other) if server_block(other) => {
                        dropped(
                            "server tool block",
                            "a server tool's call and result ran at Anthropic; the text keeps what it found",
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
