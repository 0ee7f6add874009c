//! OpenAI Chat Completions wire types: request, response and stream chunks, as serde structs.
//! Unknown request members are kept in `extra` so translation can decide on each one. Also the
//! non-standard fields compatible hosts use for reasoning (`reasoning_content`, `reasoning`,
//! `thinking_blocks`). No logic.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::json::TextOr;

/// `POST /chat/completions` body.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Request {
    pub(crate) model: String,
    pub(crate) messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stop: Option<Stop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) response_format: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reasoning_effort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
    /// Members not listed above (`logprobs`, `metadata`, `store`, `seed`, …).
    #[serde(flatten)]
    pub(crate) extra: Map<String, Value>,
}

/// `stop`: one string or several.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub(crate) enum Stop {
    One(String),
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub(crate) include_usage: bool,
}

/// One message of any role.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Message {
    /// `system`, `developer`, `user`, `assistant`, `tool` (or legacy `function`).
    pub(crate) role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refusal: Option<String>,
    /// Non-standard reasoning text (DeepSeek, vLLM, LiteLLM); never sent to OpenAI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reasoning_content: Option<String>,
    /// Non-standard signed Anthropic thinking blocks (LiteLLM's convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) thinking_blocks: Option<Vec<ThinkingBlock>>,
}

/// `content`: a string or parts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged, from = "TextOr<Part>")]
pub(crate) enum Content {
    Text(#[serde(serialize_with = "super::text::text")] String),
    Parts(Vec<Part>),
}

impl From<TextOr<Part>> for Content {
    fn from(read: TextOr<Part>) -> Self {
        match read {
            TextOr::Text(text) => Self::Text(text),
            TextOr::List(list) => Self::Parts(list),
        }
    }
}

/// A content part; `Other` keeps a part whose type is not known here, for the error message.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub(crate) enum Part {
    Known(KnownPart),
    Other(Value),
}

/// The content parts izzi translates.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum KnownPart {
    Text {
        #[serde(serialize_with = "super::text::text")]
        text: String,
        /// A prompt-cache breakpoint as OpenRouter and LiteLLM take it for Claude models.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    File {
        file: File,
    },
    Refusal {
        refusal: String,
    },
}

/// `image_url` of an image part: an https URL or a `data:` URI.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct ImageUrl {
    pub(crate) url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
}

/// `file` of a file part.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct File {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) filename: Option<String>,
}

/// A tool call of an assistant message: a function's (`function`) or a freeform tool's
/// (`type: custom`, `custom`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct ToolCall {
    pub(crate) id: String,
    #[serde(rename = "type", default = "function_type")]
    pub(crate) kind: String,
    #[serde(default, skip_serializing_if = "FunctionCall::is_unset")]
    pub(crate) function: FunctionCall,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) custom: Option<CustomCall>,
}

/// `custom` of a freeform tool's call: its raw input.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct CustomCall {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) input: String,
}

/// `function` of a tool call: `arguments` is a JSON string.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct FunctionCall {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) arguments: String,
}

impl FunctionCall {
    /// A call with no function (a freeform tool's).
    fn is_unset(&self) -> bool {
        self.name.is_empty() && self.arguments.is_empty()
    }
}

fn function_type() -> String {
    "function".to_owned()
}

/// A signed Anthropic thinking block carried through Chat (`index` orders stream fragments).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) struct ThinkingBlock {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) index: Option<u32>,
    /// `thinking` or `redacted_thinking`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) thinking: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<String>,
}

/// A tool definition: `function` for function tools, other types kept for the error message.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Tool {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) function: Option<FunctionDef>,
    /// A freeform tool (`type: custom`): `name`, `description`, `format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) custom: Option<Value>,
    /// A prompt-cache breakpoint after the tools up to this one (OpenRouter's convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cache_control: Option<Value>,
}

/// `function` of a tool definition.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct FunctionDef {
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) strict: Option<bool>,
}

/// `tool_choice`: `none`/`auto`/`required` or a named function or custom tool.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub(crate) enum ToolChoice {
    Mode(String),
    Named(NamedChoice),
}

/// `{type:"function", function:{name}}` or `{type:"custom", custom:{name}}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct NamedChoice {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) function: Option<ChoiceName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) custom: Option<ChoiceName>,
}

impl NamedChoice {
    /// A function's choice, as izzi sends it.
    pub(crate) fn function(name: String) -> Self {
        Self {
            kind: "function".to_owned(),
            function: Some(ChoiceName { name }),
            custom: None,
        }
    }

    /// The tool named, function or custom.
    pub(crate) fn name(&self) -> Option<&str> {
        self.function
            .as_ref()
            .or(self.custom.as_ref())
            .map(|c| c.name.as_str())
    }
}

/// `function` of a named tool choice.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct ChoiceName {
    pub(crate) name: String,
}

/// A whole response (`choices` of [`Choice`]) or one stream chunk (of [`ChunkChoice`]): the
/// same envelope. A chunk's `usage` is always written, `null` except in the usage chunk.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Envelope<C: Object> {
    #[serde(default)]
    pub(crate) id: String,
    #[serde(default = "C::object")]
    pub(crate) object: String,
    #[serde(default)]
    pub(crate) created: u64,
    #[serde(default)]
    pub(crate) model: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        bound(deserialize = "C: Deserialize<'de>")
    )]
    pub(crate) choices: Vec<C>,
    #[serde(default)]
    pub(crate) usage: Option<Usage>,
}

/// What a choice's envelope says it is when the upstream leaves `object` out.
pub(crate) trait Object {
    fn object() -> String;
}

/// A whole response.
pub(crate) type Response = Envelope<Choice>;

/// One stream chunk.
pub(crate) type Chunk = Envelope<ChunkChoice>;

impl Object for Choice {
    fn object() -> String {
        "chat.completion".to_owned()
    }
}

impl Object for ChunkChoice {
    fn object() -> String {
        "chat.completion.chunk".to_owned()
    }
}

/// One choice of a response.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Choice {
    #[serde(default)]
    pub(crate) index: u32,
    pub(crate) message: Message,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
    #[serde(default)]
    pub(crate) logprobs: Option<Value>,
}

/// `usage`: `prompt_tokens` includes cached tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) struct Usage {
    #[serde(default)]
    pub(crate) prompt_tokens: u64,
    #[serde(default)]
    pub(crate) completion_tokens: u64,
    #[serde(default)]
    pub(crate) total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) prompt_tokens_details: Option<PromptDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) completion_tokens_details: Option<CompletionDetails>,
    /// Cache writes as some compatible hosts (LiteLLM) report them.
    #[serde(default, skip_serializing)]
    pub(crate) cache_creation_input_tokens: Option<u64>,
}

/// `prompt_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) struct PromptDetails {
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) cached_tokens: u64,
    /// Cache writes as OpenRouter reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cache_write_tokens: Option<u64>,
}

/// `completion_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) struct CompletionDetails {
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) reasoning_tokens: u64,
}

/// One choice of a chunk.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct ChunkChoice {
    #[serde(default)]
    pub(crate) index: u32,
    #[serde(default)]
    pub(crate) delta: Delta,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
    #[serde(default)]
    pub(crate) logprobs: Option<Value>,
}

/// `delta` of a chunk choice.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reasoning_content: Option<String>,
    /// Another host's name for `reasoning_content` (OpenRouter, Ollama); read, never written.
    #[serde(default, skip_serializing)]
    pub(crate) reasoning: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) thinking_blocks: Option<Vec<ThinkingBlock>>,
}

impl Delta {
    /// The reasoning text: `reasoning_content`, else `reasoning` when it is a string.
    pub(crate) fn take_reasoning(&mut self) -> Option<String> {
        let other = match self.reasoning.take() {
            Some(Value::String(text)) => Some(text),
            _ => None,
        };
        self.reasoning_content.take().or(other)
    }
}

/// A tool call fragment: the first has `id` and `function.name`, later ones `arguments` pieces.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct ToolCallDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) function: Option<FunctionDelta>,
    /// A freeform tool's call: its name first, then its raw input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) custom: Option<CustomDelta>,
}

/// `custom` of a freeform tool call fragment.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct CustomDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) input: Option<String>,
}

/// `function` of a tool call fragment.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct FunctionDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) arguments: Option<String>,
}

/// `{"error":{…}}`, an error body or a mid-stream error.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

/// `error` of an error body: `message` and `type` (or a `code`).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub(crate) message: String,
    #[serde(rename = "type", default)]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) code: Option<Value>,
}

/// Some hosts send `null` where a list or number belongs.
fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}
