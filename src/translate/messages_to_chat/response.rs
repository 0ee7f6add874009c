//! A whole Anthropic response as a Chat response, and the stop reason and usage the stream maps
//! the same way.

use super::arguments;
use crate::protocol::anthropic::{self as an, Block, Known};
use crate::protocol::openai as oa;
use crate::translate::names::ToolNames;
use crate::translate::{Target, dropped, freeform, ids};

/// Anthropic's stop reason as Chat's finish reason.
pub(super) fn finish_reason(stop: Option<&str>, tool_calls: bool) -> &'static str {
    match stop {
        Some("tool_use") => "tool_calls",
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("refusal") => "content_filter",
        _ if tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// Anthropic usage as Chat usage: `prompt_tokens` counts cached input too.
pub(super) fn usage(usage: &an::Usage) -> oa::Usage {
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
            Block::Known(Known::Text { text: t, .. }) => text.push_str(&t),
            Block::Known(Known::ToolUse { id, name, input }) => {
                let client = names.client(&name).0.to_owned();
                calls.push(if names.is_custom(&name) {
                    oa::ToolCall {
                        id,
                        kind: "custom".to_owned(),
                        function: oa::FunctionCall::default(),
                        custom: Some(oa::CustomCall {
                            name: client,
                            input: freeform::input(&arguments(&input)),
                        }),
                    }
                } else {
                    oa::ToolCall {
                        id,
                        kind: "function".to_owned(),
                        function: oa::FunctionCall {
                            name: client,
                            arguments: arguments(&input),
                        },
                        custom: None,
                    }
                });
            }
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
