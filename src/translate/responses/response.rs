//! A whole Chat response as a Responses object, and the items, status and usage the stream
//! builds the same way.

use super::encrypted;
use crate::protocol::openai as oa;
use crate::protocol::responses::{self as rs, OutputItem};
use crate::translate::freeform;
use crate::translate::names::ToolNames;
use crate::translate::{Target, answer_text, ids};

/// Chat's finish reason as a Responses status and incomplete reason.
pub(super) fn status(finish: Option<&str>) -> (&'static str, Option<rs::IncompleteDetails>) {
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
pub(super) fn item_status(finish: Option<&str>) -> &'static str {
    status(finish).0
}

/// Chat usage as Responses usage (`input_tokens` counts cached input too).
pub(super) fn usage(usage: &oa::Usage) -> rs::Usage {
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

pub(super) fn empty_response(id: &str, target: &Target<'_>) -> rs::Response {
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

pub(super) fn reasoning_item(
    id: String,
    text: Option<String>,
    encrypted: Option<String>,
) -> OutputItem {
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

/// A tool call as the client's item: a `custom_tool_call` with its raw input for a freeform
/// tool, else a `function_call`.
pub(super) fn function_call(
    id: &str,
    name: &str,
    names: &ToolNames,
    arguments: String,
    status: &'static str,
) -> OutputItem {
    if names.is_local_shell(name) {
        return OutputItem::LocalShellCall {
            id: format!("lsh_{}", ids::base(id)),
            call_id: id.to_owned(),
            action: freeform::local_shell_action(&arguments),
            status,
        };
    }
    let custom = names.is_custom(name);
    let (name, namespace) = names.client(name);
    if custom {
        return OutputItem::CustomToolCall {
            id: format!("ctc_{}", ids::base(id)),
            call_id: id.to_owned(),
            name: name.to_owned(),
            input: freeform::input(&arguments),
            status,
        };
    }
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
    let mut text = answer_text(message.content);
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

pub(super) fn output_text(text: String) -> rs::OutputText {
    rs::OutputText {
        kind: "output_text",
        text,
        annotations: Vec::new(),
    }
}
