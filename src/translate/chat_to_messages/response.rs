//! A whole Chat response as a Messages response, and the finish reason, usage and tool ids the
//! stream maps the same way.

use super::{input, text_block};
use crate::protocol::anthropic::{self as an, Block, Known};
use crate::protocol::openai as oa;
use crate::translate::names::{self, ToolNames};
use crate::translate::reasoning::UNSIGNED;
use crate::translate::{Target, answer_text, ids};

/// Chat's finish reason as Anthropic's stop reason; a tool turn is `tool_use` whatever the
/// upstream said (some say `stop`).
pub(super) fn stop_reason(finish: Option<&str>, tool_calls: bool) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        _ if tool_calls => "tool_use",
        Some("tool_calls" | "function_call") => "tool_use",
        _ => "end_turn",
    }
}

/// Chat usage as Anthropic usage: `input_tokens` without the cached part.
pub(crate) fn usage(usage: &oa::Usage) -> an::Usage {
    let details = usage.prompt_tokens_details.unwrap_or_default();
    let read = details.cached_tokens;
    let write = details
        .cache_write_tokens
        .or(usage.cache_creation_input_tokens)
        .unwrap_or(0);
    an::Usage {
        input_tokens: Some(usage.prompt_tokens.saturating_sub(read + write)),
        output_tokens: usage.completion_tokens,
        cache_creation_input_tokens: Some(write),
        cache_read_input_tokens: Some(read),
        cache_creation: None,
    }
}

/// A whole Chat response as a Messages response.
pub(crate) fn response(resp: oa::Response, target: &Target<'_>, names: &ToolNames) -> an::Response {
    let mut content = Vec::new();
    let choice = resp.choices.into_iter().next().unwrap_or_default();
    let message = choice.message;
    let mut signed = false;
    for block in message.thinking_blocks.iter().flatten() {
        match block.kind.as_str() {
            "redacted_thinking" => content.push(Block::Known(Known::RedactedThinking {
                data: block.data.clone().unwrap_or_default(),
            })),
            _ => content.push(Block::Known(Known::Thinking {
                thinking: block.thinking.clone().unwrap_or_default(),
                signature: block.signature.clone(),
            })),
        }
        signed = true;
    }
    if !signed && let Some(reasoning) = message.reasoning_content.filter(|r| !r.is_empty()) {
        content.push(Block::Known(Known::Thinking {
            thinking: reasoning,
            signature: Some(UNSIGNED.to_owned()),
        }));
    }
    let text = answer_text(message.content);
    if !text.is_empty() {
        content.push(text_block(text));
    }
    if let Some(refusal) = message.refusal.filter(|r| !r.is_empty()) {
        content.push(text_block(refusal));
    }
    let calls = message.tool_calls.unwrap_or_default();
    let tool_calls = !calls.is_empty();
    for (k, call) in calls.into_iter().enumerate() {
        content.push(Block::Known(Known::ToolUse {
            id: tool_id(&call.id, &resp.id, k),
            name: names.client(&call.function.name).0.to_owned(),
            input: input(&call.function.arguments),
        }));
    }
    an::Response {
        id: ids::message(&resp.id),
        kind: "message".to_owned(),
        role: "assistant".to_owned(),
        model: target.client_model.to_owned(),
        content,
        stop_reason: Some(stop_reason(choice.finish_reason.as_deref(), tool_calls).to_owned()),
        stop_sequence: None,
        usage: usage(&resp.usage.unwrap_or_default()),
    }
}

/// A `tool_use` id: the upstream's, sanitized, or one made from the response id and slot.
pub(super) fn tool_id(id: &str, response_id: &str, slot: usize) -> String {
    if id.is_empty() {
        format!(
            "toolu_{}_{slot}",
            names::sanitize_id(ids::base(response_id))
        )
    } else {
        names::sanitize_id(id).into_owned()
    }
}
