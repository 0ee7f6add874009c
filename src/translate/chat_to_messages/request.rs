//! A Chat request as a Messages request: turns, system text, tools, thinking, and the refusal
//! of what an Anthropic-kind provider cannot carry.

use serde_json::Value;

use super::{input, text_block};
use crate::protocol::anthropic::{self as an, Block, Content, Known, Source};
use crate::protocol::openai as oa;
use crate::translate::{Target, TranslateError, dropped, freeform, names, reasoning, server_tools};

/// Where the refusal messages say the request was going.
const TO: &str = "an Anthropic-kind provider";

/// Thinking budgets for `reasoning_effort` (LiteLLM's table; 1024 is Anthropic's floor).
fn budget_for(effort: &str) -> Option<u32> {
    match effort {
        "none" | "minimal" => None,
        "low" => Some(1024),
        "high" => Some(4096),
        "xhigh" => Some(8192),
        _ => Some(2048),
    }
}

/// A Chat request as a Messages request for an Anthropic-kind provider.
pub(crate) fn request(
    req: oa::Request,
    target: &Target<'_>,
) -> Result<an::Request, TranslateError> {
    refuse_or_drop(&req)?;
    let mut system = Vec::new();
    // Converted turns with the index of the Chat message each started from.
    let mut turns: Vec<(usize, an::Message)> = Vec::new();
    for (i, message) in req.messages.iter().enumerate() {
        let (role, blocks) = match message.role.as_str() {
            "system" | "developer" => {
                for (text, cache_control) in marked_texts(message.content.as_ref(), i)? {
                    system.push(Block::Known(Known::Text {
                        text,
                        cache_control,
                    }));
                }
                continue;
            }
            "user" => ("user", user_blocks(message.content.as_ref(), i)?),
            "assistant" => ("assistant", assistant_blocks(message, i)?),
            "tool" => {
                let id = message.tool_call_id.as_deref().unwrap_or_default();
                let parts = marked_texts(message.content.as_ref(), i)?;
                let cache_control = parts.iter().rev().find_map(|(_, mark)| mark.clone());
                let text = parts.into_iter().map(|(text, _)| text).collect::<Vec<_>>();
                let text = text.join("\n");
                let result = Known::ToolResult {
                    tool_use_id: names::sanitize_id(id).into_owned(),
                    content: (!text.is_empty()).then_some(Content::Text(text)),
                    is_error: None,
                    cache_control,
                };
                ("user", vec![Block::Known(result)])
            }
            other => {
                return Err(TranslateError(format!(
                    "`messages[{i}].role` `{other}` cannot be sent to {TO}: use `tool` messages with `tool_calls`."
                )));
            }
        };
        if blocks.is_empty() {
            continue;
        }
        // Consecutive tool results and the user text after them make one user turn.
        match turns.last_mut() {
            Some((_, last)) if last.role == role => {
                if let Content::Blocks(existing) = &mut last.content {
                    existing.extend(blocks);
                }
            }
            _ => turns.push((
                i,
                an::Message {
                    role: role.to_owned(),
                    content: Content::Blocks(blocks),
                },
            )),
        }
    }
    for (_, turn) in &mut turns {
        if let Content::Blocks(blocks) = &mut turn.content {
            // Anthropic wants a turn's tool results before anything else in it.
            blocks.sort_by_key(|b| !matches!(b, Block::Known(Known::ToolResult { .. })));
        }
    }
    check_results(&turns)?;
    trim_prefill(&mut turns);
    if turns.is_empty() && !system.is_empty() {
        // A transcript of only system text: Anthropic needs a user turn.
        turns.push((
            0,
            an::Message {
                role: "user".to_owned(),
                content: Content::Blocks(std::mem::take(&mut system)),
            },
        ));
    }
    let max_tokens = match (
        req.max_completion_tokens.or(req.max_tokens),
        target.max_output,
    ) {
        (Some(asked), 0) => asked,
        (Some(asked), max) => asked.min(max),
        (None, 0) => 4096,
        (None, max) => max,
    };
    let mut out = an::Request {
        model: target.upstream_model.to_owned(),
        max_tokens: Some(max_tokens),
        messages: turns.into_iter().map(|(_, m)| m).collect(),
        system: (!system.is_empty()).then_some(Content::Blocks(system)),
        stream: req.stream.filter(|s| *s),
        ..an::Request::default()
    };
    tools(&req, &mut out)?;
    if let Some(options) = req.extra.get("web_search_options").filter(|o| !o.is_null()) {
        // Anthropic's own web search, run by the provider like OpenAI's.
        out.tools
            .get_or_insert_with(Vec::new)
            .push(server_tools::anthropic_tool(options));
    }
    out.thinking = thinking(&req, &out, target)?;
    if out.thinking.is_some() {
        // Anthropic refuses sampling changes while thinking.
        if req.temperature.is_some() || req.top_p.is_some() {
            dropped(
                "temperature",
                "Anthropic takes no sampling changes with thinking",
            );
        }
    } else {
        out.temperature = req.temperature.map(|t| t.min(1.0));
        out.top_p = req.top_p;
    }
    if let Some(stop) = req.stop {
        let stops = match stop {
            oa::Stop::One(s) => vec![s],
            oa::Stop::Many(v) => v,
        };
        let (kept, blank): (Vec<String>, Vec<String>) =
            stops.into_iter().partition(|s| !s.trim().is_empty());
        if !blank.is_empty() {
            dropped("stop", "Anthropic ignores whitespace-only stop sequences");
        }
        out.stop_sequences = (!kept.is_empty()).then_some(kept);
    }
    let user = req.user.clone().or_else(|| {
        req.extra
            .get("safety_identifier")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    out.metadata = user.map(|user_id| an::Metadata {
        user_id: Some(user_id),
    });
    if let Some(format) = &req.response_format {
        match format.get("type").and_then(Value::as_str) {
            Some("json_schema") => {
                let schema = format
                    .get("json_schema")
                    .and_then(|s| s.get("schema"))
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({"type": "object"}));
                out.output_config = Some(an::OutputConfig {
                    effort: None,
                    format: Some(serde_json::json!({"type": "json_schema", "schema": schema})),
                });
            }
            Some("text") | None => {}
            Some(_) => dropped(
                "response_format",
                "Anthropic has no JSON mode without a schema",
            ),
        }
    }
    Ok(out)
}

/// Chat members whose loss would change the answer are refused; the others are dropped.
fn refuse_or_drop(req: &oa::Request) -> Result<(), TranslateError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(TranslateError(format!(
            "`n` must be 1 toward {TO}: it returns one choice; send separate requests."
        )));
    }
    for (key, value) in &req.extra {
        let refused = match key.as_str() {
            "logprobs" => value.as_bool() == Some(true),
            "top_logprobs" | "prediction" | "audio" | "functions" => !value.is_null(),
            "logit_bias" => value.as_object().is_some_and(|m| !m.is_empty()),
            "frequency_penalty" | "presence_penalty" => value.as_f64().is_some_and(|v| v != 0.0),
            "modalities" => value
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x.as_str() == Some("audio"))),
            _ => false,
        };
        if refused {
            return Err(TranslateError::cannot(key, TO));
        }
        if key != "safety_identifier" && key != "web_search_options" {
            dropped(key, "no Anthropic equivalent");
        }
    }
    Ok(())
}

/// The texts of a content: the string, or its text (and refusal) parts.
fn texts(content: Option<&oa::Content>, i: usize) -> Result<Vec<String>, TranslateError> {
    Ok(marked_texts(content, i)?
        .into_iter()
        .map(|(text, _)| text)
        .collect())
}

/// The texts of a content with the cache breakpoint each part carries.
fn marked_texts(
    content: Option<&oa::Content>,
    i: usize,
) -> Result<Vec<(String, Option<Value>)>, TranslateError> {
    match content {
        None => Ok(Vec::new()),
        Some(oa::Content::Text(text)) => Ok(vec![(text.clone(), None)]),
        Some(oa::Content::Parts(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                match part {
                    oa::Part::Known(oa::KnownPart::Text {
                        text,
                        cache_control,
                    }) => out.push((text.clone(), cache_control.clone())),
                    oa::Part::Known(oa::KnownPart::Refusal { refusal }) => {
                        out.push((refusal.clone(), None));
                    }
                    other => return Err(part_error(i, j, other)),
                }
            }
            Ok(out)
        }
    }
}

fn part_error(i: usize, j: usize, part: &oa::Part) -> TranslateError {
    let kind = match part {
        oa::Part::Known(oa::KnownPart::Text { .. }) => "text",
        oa::Part::Known(oa::KnownPart::ImageUrl { .. }) => "image_url",
        oa::Part::Known(oa::KnownPart::File { .. }) => "file",
        oa::Part::Known(oa::KnownPart::Refusal { .. }) => "refusal",
        oa::Part::Other(value) => value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("unknown"),
    };
    TranslateError(format!(
        "`messages[{i}].content[{j}].type` `{kind}` cannot be sent to {TO} in this message: remove the part or pick another model."
    ))
}

/// A user message as blocks: text (never empty), images, PDF files.
fn user_blocks(content: Option<&oa::Content>, i: usize) -> Result<Vec<Block>, TranslateError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(oa::Content::Text(text)) => {
            return Ok(non_blank(text).map(text_block).into_iter().collect());
        }
        Some(oa::Content::Parts(parts)) => parts,
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        match part {
            oa::Part::Known(oa::KnownPart::Text {
                text,
                cache_control,
            }) => {
                blocks.extend(non_blank(text).map(|text| {
                    Block::Known(Known::Text {
                        text,
                        cache_control: cache_control.clone(),
                    })
                }));
            }
            oa::Part::Known(oa::KnownPart::ImageUrl { image_url }) => {
                blocks.push(Block::Known(Known::Image {
                    source: source(&image_url.url),
                }));
            }
            oa::Part::Known(oa::KnownPart::File { file }) => match &file.file_data {
                Some(data) => blocks.push(Block::Known(Known::Document {
                    source: source(data),
                    title: file.filename.clone(),
                })),
                None => {
                    return Err(TranslateError(format!(
                        "`messages[{i}].content[{j}].file.file_id` cannot be sent to {TO}: send the file as `file_data`."
                    )));
                }
            },
            other => return Err(part_error(i, j, other)),
        }
    }
    Ok(blocks)
}

/// Anthropic refuses empty and whitespace-only text blocks.
fn non_blank(text: &str) -> Option<String> {
    (!text.trim().is_empty()).then(|| text.to_owned())
}

/// An image or file URL: a `data:` URI becomes base64 with its media type.
fn source(url: &str) -> Source {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((meta, data)) = rest.split_once(',')
        && let Some(media_type) = meta.strip_suffix(";base64")
    {
        return Source::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        };
    }
    Source::Url {
        url: url.to_owned(),
    }
}

/// An assistant message as blocks: signed thinking first, then text, then tool calls.
fn assistant_blocks(message: &oa::Message, i: usize) -> Result<Vec<Block>, TranslateError> {
    let mut blocks = Vec::new();
    for block in message.thinking_blocks.iter().flatten() {
        match (block.kind.as_str(), &block.signature, &block.data) {
            ("thinking", Some(signature), _) if reasoning::signed(signature) => {
                blocks.push(Block::Known(Known::Thinking {
                    thinking: block.thinking.clone().unwrap_or_default(),
                    signature: Some(signature.clone()),
                }));
            }
            ("redacted_thinking", _, Some(data)) => {
                blocks.push(Block::Known(Known::RedactedThinking { data: data.clone() }));
            }
            _ => dropped("thinking_blocks", "unsigned thinking cannot be replayed"),
        }
    }
    if message.reasoning_content.is_some() && blocks.is_empty() {
        dropped("reasoning_content", "unsigned reasoning cannot be replayed");
    }
    let text = texts(message.content.as_ref(), i)?.concat();
    blocks.extend(non_blank(&text).map(text_block));
    for call in message.tool_calls.iter().flatten() {
        let (name, input) = match &call.custom {
            Some(custom) => (
                custom.name.as_str(),
                serde_json::json!({freeform::INPUT: custom.input}),
            ),
            None => (call.function.name.as_str(), input(&call.function.arguments)),
        };
        blocks.push(Block::Known(Known::ToolUse {
            id: names::sanitize_id(&call.id).into_owned(),
            name: names::upstream(name).into_owned(),
            input,
        }));
    }
    Ok(blocks)
}

/// Each assistant turn's tool calls must be answered in the next turn: Anthropic refuses the
/// history otherwise, with an error that names none of the client's messages.
fn check_results(turns: &[(usize, an::Message)]) -> Result<(), TranslateError> {
    for (pos, (i, turn)) in turns.iter().enumerate() {
        let Content::Blocks(blocks) = &turn.content else {
            continue;
        };
        let calls = blocks.iter().filter_map(|b| match b {
            Block::Known(Known::ToolUse { id, .. }) => Some(id.as_str()),
            _ => None,
        });
        let answers: Vec<&str> = match turns.get(pos + 1) {
            Some((
                _,
                an::Message {
                    content: Content::Blocks(next),
                    ..
                },
            )) => next
                .iter()
                .filter_map(|b| match b {
                    Block::Known(Known::ToolResult { tool_use_id, .. }) => {
                        Some(tool_use_id.as_str())
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        for id in calls {
            if !answers.contains(&id) {
                return Err(TranslateError(format!(
                    "`messages[{i}].tool_calls` has the call `{id}` with no `tool` message answering it right after; add its result."
                )));
            }
        }
    }
    Ok(())
}

/// A final assistant turn is a prefill, which may not end in whitespace.
fn trim_prefill(turns: &mut Vec<(usize, an::Message)>) {
    let Some((_, last)) = turns.last_mut() else {
        return;
    };
    if last.role != "assistant" {
        return;
    }
    if let Content::Blocks(blocks) = &mut last.content
        && let Some(Block::Known(Known::Text { text, .. })) = blocks.last_mut()
    {
        let trimmed = text.trim_end().len();
        text.truncate(trimmed);
        if text.is_empty() {
            blocks.pop();
        }
        if blocks.is_empty() {
            turns.pop();
        }
    }
}

fn tools(req: &oa::Request, out: &mut an::Request) -> Result<(), TranslateError> {
    let mut list = Vec::new();
    for (i, tool) in req.tools.iter().flatten().enumerate() {
        if let Some(custom) = tool.custom.as_ref().filter(|_| tool.kind == "custom") {
            // A freeform tool as a function of one string; its calls go back as custom calls.
            let Some(name) = custom.get("name").and_then(Value::as_str) else {
                return Err(TranslateError(format!(
                    "`tools[{i}].custom.name` is missing: a custom tool needs a name."
                )));
            };
            list.push(an::Tool {
                name: names::upstream(name).into_owned(),
                description: custom
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                input_schema: Some(freeform::parameters(custom.get("format"))),
                cache_control: tool.cache_control.clone(),
                ..an::Tool::default()
            });
            continue;
        }
        let Some(function) = tool.function.as_ref().filter(|_| tool.kind == "function") else {
            return Err(TranslateError(format!(
                "`tools[{i}].type` `{}` cannot be sent to {TO}: only function and custom tools can.",
                tool.kind
            )));
        };
        if function.strict.is_some() {
            dropped("strict", "Anthropic tools take no strict flag");
        }
        list.push(an::Tool {
            kind: None,
            name: names::upstream(&function.name).into_owned(),
            description: function.description.clone(),
            input_schema: Some(
                function
                    .parameters
                    .clone()
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            ),
            strict: None,
            cache_control: tool.cache_control.clone(),
            extra: serde_json::Map::new(),
        });
    }
    if list.is_empty() {
        return Ok(());
    }
    let mut choice = match &req.tool_choice {
        Some(oa::ToolChoice::Mode(mode)) => match mode.as_str() {
            "required" => an::ToolChoice {
                kind: "any".to_owned(),
                ..an::ToolChoice::default()
            },
            "none" => an::ToolChoice {
                kind: "none".to_owned(),
                ..an::ToolChoice::default()
            },
            _ => an::ToolChoice {
                kind: "auto".to_owned(),
                ..an::ToolChoice::default()
            },
        },
        Some(oa::ToolChoice::Named(named)) => {
            let Some(name) = named.name() else {
                return Err(TranslateError(
                    "`tool_choice` names no tool: give `function.name` or `custom.name`."
                        .to_owned(),
                ));
            };
            an::ToolChoice {
                kind: "tool".to_owned(),
                name: Some(names::upstream(name).into_owned()),
                disable_parallel_tool_use: None,
            }
        }
        None => an::ToolChoice {
            kind: "auto".to_owned(),
            ..an::ToolChoice::default()
        },
    };
    if req.parallel_tool_calls == Some(false) && choice.kind != "none" {
        choice.disable_parallel_tool_use = Some(true);
    }
    let explicit = req.tool_choice.is_some() || choice.disable_parallel_tool_use.is_some();
    out.tools = Some(list);
    out.tool_choice = explicit.then_some(choice);
    Ok(())
}

/// `reasoning_effort` as `thinking`, where the model reasons and the request allows it.
fn thinking(
    req: &oa::Request,
    out: &an::Request,
    target: &Target<'_>,
) -> Result<Option<an::Thinking>, TranslateError> {
    let Some(effort) = req.reasoning_effort.as_deref() else {
        return Ok(None);
    };
    let Some(budget) = budget_for(effort) else {
        return Ok(None);
    };
    if !target.reasoning {
        dropped("reasoning_effort", "the model does not reason");
        return Ok(None);
    }
    if let Some(choice) = &out.tool_choice
        && (choice.kind == "any" || choice.kind == "tool")
    {
        return Err(TranslateError(format!(
            "`tool_choice` that forces a tool cannot be combined with `reasoning_effort` toward {TO}: drop one of them."
        )));
    }
    let max_tokens = out.max_tokens.unwrap_or(0);
    if max_tokens <= 1024 {
        dropped(
            "reasoning_effort",
            "max_tokens leaves no room for the 1024-token minimum budget",
        );
        return Ok(None);
    }
    // With thinking on, the turn that made the pending tool calls must open with its signed
    // thinking; a client that did not keep it cannot continue with thinking.
    let last_assistant = out.messages.iter().rev().find(|m| m.role == "assistant");
    if let Some(an::Message {
        content: Content::Blocks(blocks),
        ..
    }) = last_assistant
    {
        let calls = blocks
            .iter()
            .any(|b| matches!(b, Block::Known(Known::ToolUse { .. })));
        let signed = matches!(
            blocks.first(),
            Some(Block::Known(
                Known::Thinking { .. } | Known::RedactedThinking { .. }
            ))
        );
        if calls && !signed {
            dropped(
                "reasoning_effort",
                "the last tool-call turn carries no signed thinking",
            );
            return Ok(None);
        }
    }
    Ok(Some(an::Thinking::Enabled {
        budget_tokens: budget.min(max_tokens - 1),
    }))
}
