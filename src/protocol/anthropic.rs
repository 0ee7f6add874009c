//! Anthropic Messages wire types: request, response and stream events, as serde structs.
//! Unknown request members are kept in `extra` so translation can decide on each one. No logic.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::json::TextOr;

/// `POST /v1/messages` body.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Request {
    pub(crate) model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_tokens: Option<u32>,
    pub(crate) messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) system: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) top_k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) thinking: Option<Thinking>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) output_config: Option<OutputConfig>,
    /// Members not listed above (`context_management`, `mcp_servers`, `service_tier`, …).
    #[serde(flatten)]
    pub(crate) extra: Map<String, Value>,
}

/// One turn of `messages`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct Message {
    /// `user` or `assistant` (Claude Code also puts `system` here on models it does not know).
    pub(crate) role: String,
    pub(crate) content: Content,
}

/// A string or a list of blocks (`content`, `system`, `tool_result.content`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged, from = "TextOr<Block>")]
pub(crate) enum Content {
    Text(#[serde(serialize_with = "super::text::text")] String),
    Blocks(Vec<Block>),
}

impl From<TextOr<Block>> for Content {
    fn from(read: TextOr<Block>) -> Self {
        match read {
            TextOr::Text(text) => Self::Text(text),
            TextOr::List(list) => Self::Blocks(list),
        }
    }
}

/// A content block; `Other` keeps a block whose type is not known here, for the error message.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub(crate) enum Block {
    Known(Known),
    Other(Value),
}

/// The content blocks izzi translates.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Known {
    Text {
        #[serde(serialize_with = "super::text::text")]
        text: String,
        /// A prompt-cache breakpoint (`{"type":"ephemeral","ttl":"1h"}`), kept as sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    Image {
        source: Source,
    },
    Document {
        source: Source,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<Content>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
        /// A prompt-cache breakpoint (`{"type":"ephemeral","ttl":"1h"}`), kept as sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    Thinking {
        #[serde(serialize_with = "super::text::text")]
        thinking: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    RedactedThinking {
        data: String,
    },
}

/// Where an image or document comes from.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Source {
    Base64 { media_type: String, data: String },
    Url { url: String },
    Text { media_type: String, data: String },
    File { file_id: String },
}

/// A tool: a client tool (`input_schema`) or a server tool (a versioned `type`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Tool {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<String>,
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) input_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) strict: Option<bool>,
    /// A prompt-cache breakpoint after the tools up to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cache_control: Option<Value>,
    /// A server tool's settings (`max_uses`, `user_location`, …) and beta members
    /// (`defer_loading`).
    #[serde(flatten)]
    pub(crate) extra: Map<String, Value>,
}

/// `tool_choice`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct ToolChoice {
    /// `auto`, `any`, `tool` or `none`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) disable_parallel_tool_use: Option<bool>,
}

/// `thinking`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Thinking {
    Enabled { budget_tokens: u32 },
    Disabled,
    Adaptive,
}

/// `metadata`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_id: Option<String>,
}

/// `output_config` (newer models): effort for adaptive thinking, structured output format.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct OutputConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) effort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) format: Option<Value>,
}

/// A whole response (also `message_start.message`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Response {
    #[serde(default)]
    pub(crate) id: String,
    #[serde(rename = "type", default = "message_type")]
    pub(crate) kind: String,
    #[serde(default = "assistant")]
    pub(crate) role: String,
    #[serde(default)]
    pub(crate) model: String,
    #[serde(default)]
    pub(crate) content: Vec<Block>,
    pub(crate) stop_reason: Option<String>,
    pub(crate) stop_sequence: Option<String>,
    #[serde(default)]
    pub(crate) usage: Usage,
}

fn message_type() -> String {
    "message".to_owned()
}

fn assistant() -> String {
    "assistant".to_owned()
}

/// `usage`: `input_tokens` excludes cache reads and writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cache_read_input_tokens: Option<u64>,
    /// The cache writes by time to live (`cache_creation_input_tokens` is their sum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cache_creation: Option<CacheCreation>,
}

/// `usage.cache_creation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) struct CacheCreation {
    #[serde(default)]
    pub(crate) ephemeral_5m_input_tokens: u64,
    #[serde(default)]
    pub(crate) ephemeral_1h_input_tokens: u64,
}

/// One stream event (`data` of an SSE event; its `type` repeats the `event:` name).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum StreamEvent {
    MessageStart {
        message: Response,
    },
    ContentBlockStart {
        index: u32,
        content_block: Block,
    },
    ContentBlockDelta {
        index: u32,
        delta: Delta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDelta,
        #[serde(default)]
        usage: Usage,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorDetail,
    },
}

impl StreamEvent {
    /// The SSE `event:` name, which the SDKs dispatch on.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error { .. } => "error",
        }
    }
}

/// `content_block_delta.delta`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type")]
pub(crate) enum Delta {
    #[serde(rename = "text_delta")]
    Text { text: String },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: String },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: String },
    #[serde(rename = "signature_delta")]
    Signature { signature: String },
    #[serde(rename = "citations_delta")]
    Citations { citation: Value },
}

/// `message_delta.delta`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct MessageDelta {
    pub(crate) stop_reason: Option<String>,
    pub(crate) stop_sequence: Option<String>,
}

/// `error` of an error body or event.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct ErrorDetail {
    #[serde(rename = "type", default)]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) message: String,
}
