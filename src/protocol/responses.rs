//! OpenAI Responses wire types: request, response object and stream events, as serde structs.
//! Unknown request members are kept in `extra` so translation can decide on each one; `input`
//! items stay raw JSON until translation reads them by their `type`. No logic.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /responses` body (Cursor also sends this shape to `/chat/completions`).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Request {
    pub(crate) input: Input,
    #[serde(default)]
    pub(crate) instructions: Option<String>,
    #[serde(default)]
    pub(crate) max_output_tokens: Option<u32>,
    #[serde(default)]
    pub(crate) temperature: Option<f64>,
    #[serde(default)]
    pub(crate) top_p: Option<f64>,
    #[serde(default)]
    pub(crate) stream: Option<bool>,
    #[serde(default)]
    pub(crate) tools: Option<Vec<Value>>,
    #[serde(default)]
    pub(crate) tool_choice: Option<Value>,
    #[serde(default)]
    pub(crate) parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub(crate) text: Option<TextConfig>,
    #[serde(default)]
    pub(crate) reasoning: Option<Reasoning>,
    #[serde(default)]
    pub(crate) user: Option<String>,
    /// Members not listed above (`store`, `include`, `previous_response_id`, …).
    #[serde(flatten)]
    pub(crate) extra: Map<String, Value>,
}

/// `input`: a string (one user message) or items.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Input {
    Text(String),
    Items(Vec<Value>),
}

impl Default for Input {
    fn default() -> Self {
        Input::Items(Vec::new())
    }
}

/// A message item (`type` `message` or absent).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct InputMessage {
    pub(crate) role: String,
    pub(crate) content: InputContent,
}

/// A message's content: a string or parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum InputContent {
    Text(String),
    Parts(Vec<Value>),
}

/// `input_image` part.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct InputImage {
    #[serde(default)]
    pub(crate) image_url: Option<String>,
    #[serde(default)]
    pub(crate) detail: Option<String>,
}

/// `input_file` part.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct InputFile {
    #[serde(default)]
    pub(crate) file_data: Option<String>,
    #[serde(default)]
    pub(crate) file_id: Option<String>,
    #[serde(default)]
    pub(crate) file_url: Option<String>,
    #[serde(default)]
    pub(crate) filename: Option<String>,
}

/// A `function_call` item (history).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FunctionCallItem {
    pub(crate) call_id: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) arguments: String,
    #[serde(default)]
    pub(crate) namespace: Option<String>,
}

/// A `custom_tool_call` item (history): a freeform tool's raw input.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CustomToolCallItem {
    pub(crate) call_id: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) input: String,
}

/// A `local_shell_call` item (history): Codex's legacy shell tool.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LocalShellCallItem {
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) call_id: Option<String>,
    #[serde(default)]
    pub(crate) action: Value,
}

/// A `custom` tool: freeform input, optionally held to a grammar (`format`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CustomTool {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) format: Option<Value>,
}

/// A `function_call_output` (or `custom_tool_call_output`, `local_shell_call_output`) item.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FunctionCallOutput {
    /// The call answered (a `local_shell_call_output` may name it in `id` instead).
    #[serde(default)]
    pub(crate) call_id: String,
    #[serde(default)]
    pub(crate) id: Option<String>,
    pub(crate) output: InputContent,
}

/// A function tool (flat) or a namespace of them.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FunctionTool {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) parameters: Option<Value>,
    #[serde(default)]
    pub(crate) strict: Option<bool>,
    /// A namespace's tools.
    #[serde(default)]
    pub(crate) tools: Option<Vec<Value>>,
}

/// `text`: output format and verbosity.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct TextConfig {
    #[serde(default)]
    pub(crate) format: Option<Value>,
    #[serde(default)]
    pub(crate) verbosity: Option<String>,
}

/// `reasoning`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Reasoning {
    #[serde(default)]
    pub(crate) effort: Option<String>,
    #[serde(default)]
    pub(crate) summary: Option<String>,
}

/// A reasoning item (history): `encrypted_content` carries what izzi put there.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ReasoningItem {
    #[serde(default)]
    pub(crate) summary: Vec<Summary>,
    #[serde(default)]
    pub(crate) encrypted_content: Option<String>,
}

/// The response object.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Response {
    pub(crate) id: String,
    pub(crate) object: &'static str,
    pub(crate) created_at: u64,
    /// `in_progress`, `completed`, `incomplete` or `failed`.
    pub(crate) status: &'static str,
    pub(crate) model: String,
    pub(crate) output: Vec<OutputItem>,
    pub(crate) usage: Option<Usage>,
    pub(crate) incomplete_details: Option<IncompleteDetails>,
    pub(crate) error: Option<Value>,
    pub(crate) parallel_tool_calls: bool,
    pub(crate) tool_choice: &'static str,
    pub(crate) tools: Vec<Value>,
}

/// `incomplete_details`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct IncompleteDetails {
    /// `max_output_tokens` or `content_filter`.
    pub(crate) reason: &'static str,
}

/// An output item.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum OutputItem {
    Message {
        id: String,
        role: &'static str,
        status: &'static str,
        content: Vec<OutputText>,
    },
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        arguments: String,
        status: &'static str,
    },
    CustomToolCall {
        id: String,
        call_id: String,
        name: String,
        input: String,
        status: &'static str,
    },
    LocalShellCall {
        id: String,
        call_id: String,
        /// `{type: exec, command, working_directory, timeout_ms, env, user}`.
        action: Value,
        status: &'static str,
    },
    Reasoning {
        id: String,
        summary: Vec<Summary>,
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
    },
}

/// An `output_text` part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct OutputText {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) text: String,
    pub(crate) annotations: Vec<Value>,
}

/// A `summary_text` part of a reasoning item.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub(crate) struct Summary {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) text: String,
}

/// `usage`: `input_tokens` includes cached tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Usage {
    pub(crate) input_tokens: u64,
    pub(crate) input_tokens_details: InputDetails,
    pub(crate) output_tokens: u64,
    pub(crate) output_tokens_details: OutputDetails,
    pub(crate) total_tokens: u64,
}

/// `input_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct InputDetails {
    pub(crate) cached_tokens: u64,
}

/// `output_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct OutputDetails {
    pub(crate) reasoning_tokens: u64,
}

/// A stream event; written with its `sequence_number`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub(crate) enum StreamEvent<'a> {
    #[serde(rename = "response.created")]
    Created { response: &'a Response },
    #[serde(rename = "response.in_progress")]
    InProgress { response: &'a Response },
    #[serde(rename = "response.completed")]
    Completed { response: &'a Response },
    #[serde(rename = "response.incomplete")]
    Incomplete { response: &'a Response },
    #[serde(rename = "response.failed")]
    Failed { response: &'a Response },
    #[serde(rename = "response.output_item.added")]
    ItemAdded {
        output_index: usize,
        item: &'a OutputItem,
    },
    #[serde(rename = "response.output_item.done")]
    ItemDone {
        output_index: usize,
        item: &'a OutputItem,
    },
    #[serde(rename = "response.content_part.added")]
    PartAdded {
        item_id: &'a str,
        output_index: usize,
        content_index: usize,
        part: &'a OutputText,
    },
    #[serde(rename = "response.content_part.done")]
    PartDone {
        item_id: &'a str,
        output_index: usize,
        content_index: usize,
        part: &'a OutputText,
    },
    #[serde(rename = "response.output_text.delta")]
    TextDelta {
        item_id: &'a str,
        output_index: usize,
        content_index: usize,
        delta: &'a str,
        logprobs: [(); 0],
    },
    #[serde(rename = "response.output_text.done")]
    TextDone {
        item_id: &'a str,
        output_index: usize,
        content_index: usize,
        text: &'a str,
        logprobs: [(); 0],
    },
    #[serde(rename = "response.function_call_arguments.delta")]
    ArgumentsDelta {
        item_id: &'a str,
        output_index: usize,
        delta: &'a str,
    },
    #[serde(rename = "response.function_call_arguments.done")]
    ArgumentsDone {
        item_id: &'a str,
        output_index: usize,
        name: &'a str,
        arguments: &'a str,
    },
    #[serde(rename = "response.custom_tool_call_input.delta")]
    CustomInputDelta {
        item_id: &'a str,
        output_index: usize,
        delta: &'a str,
    },
    #[serde(rename = "response.custom_tool_call_input.done")]
    CustomInputDone {
        item_id: &'a str,
        output_index: usize,
        input: &'a str,
    },
    #[serde(rename = "response.reasoning_summary_part.added")]
    SummaryPartAdded {
        item_id: &'a str,
        output_index: usize,
        summary_index: usize,
        part: &'a Summary,
    },
    #[serde(rename = "response.reasoning_summary_text.delta")]
    SummaryDelta {
        item_id: &'a str,
        output_index: usize,
        summary_index: usize,
        delta: &'a str,
    },
    #[serde(rename = "response.reasoning_summary_text.done")]
    SummaryDone {
        item_id: &'a str,
        output_index: usize,
        summary_index: usize,
        text: &'a str,
    },
    #[serde(rename = "response.reasoning_summary_part.done")]
    SummaryPartDone {
        item_id: &'a str,
        output_index: usize,
        summary_index: usize,
        part: &'a Summary,
    },
    #[serde(rename = "error")]
    Error {
        code: &'a str,
        message: &'a str,
        param: Option<()>,
    },
}

impl StreamEvent<'_> {
    /// The SSE `event:` name (the `type`).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            StreamEvent::Created { .. } => "response.created",
            StreamEvent::InProgress { .. } => "response.in_progress",
            StreamEvent::Completed { .. } => "response.completed",
            StreamEvent::Incomplete { .. } => "response.incomplete",
            StreamEvent::Failed { .. } => "response.failed",
            StreamEvent::ItemAdded { .. } => "response.output_item.added",
            StreamEvent::ItemDone { .. } => "response.output_item.done",
            StreamEvent::PartAdded { .. } => "response.content_part.added",
            StreamEvent::PartDone { .. } => "response.content_part.done",
            StreamEvent::TextDelta { .. } => "response.output_text.delta",
            StreamEvent::TextDone { .. } => "response.output_text.done",
            StreamEvent::ArgumentsDelta { .. } => "response.function_call_arguments.delta",
            StreamEvent::ArgumentsDone { .. } => "response.function_call_arguments.done",
            StreamEvent::CustomInputDelta { .. } => "response.custom_tool_call_input.delta",
            StreamEvent::CustomInputDone { .. } => "response.custom_tool_call_input.done",
            StreamEvent::SummaryPartAdded { .. } => "response.reasoning_summary_part.added",
            StreamEvent::SummaryDelta { .. } => "response.reasoning_summary_text.delta",
            StreamEvent::SummaryDone { .. } => "response.reasoning_summary_text.done",
            StreamEvent::SummaryPartDone { .. } => "response.reasoning_summary_part.done",
            StreamEvent::Error { .. } => "error",
        }
    }
}
