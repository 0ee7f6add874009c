//! Reads a request body of any client format into a [`Prompt`]: one walk that understands
//! Anthropic Messages, OpenAI Chat Completions and OpenAI Responses, since a count must not depend
//! on guessing the format right. Also tells the shapes apart, for `izzi count-tokens` to report.
//! Pure; knows nothing of models or prices.

use std::borrow::Cow;

use serde_json::Value;

use super::Prompt;
use super::media::{self, Image};

/// Framing per message, per `name`, per tool call, and the reply priming (OpenAI cookbook).
const PER_MESSAGE: u64 = 3;
const PER_NAME: u64 = 1;
const PER_TOOL_CALL: u64 = 1;
const REPLY_PRIMING: u64 = 3;

/// Which API a request body is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Chat Completions.
    Chat,
    /// OpenAI Responses.
    Responses,
}

impl Shape {
    /// `anthropic`, `chat` or `responses`: the name `--json` output uses.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Anthropic => "anthropic",
            Self::Chat => "chat",
            Self::Responses => "responses",
        }
    }

    /// The API's name, for people.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Self::Anthropic => "Anthropic Messages",
            Self::Chat => "OpenAI Chat Completions",
            Self::Responses => "OpenAI Responses",
        }
    }

    /// The shape of `body`, or `None` when it is not a request body (no `messages`, no `input`).
    /// A body that fits both Messages and Chat (only `model` and string messages) is `Chat`.
    pub(crate) fn detect(body: &Value) -> Option<Self> {
        let messages = body.get("messages").and_then(Value::as_array);
        if messages.is_none() {
            return body.get("input").map(|_| Self::Responses);
        }
        let anthropic_top = ["system", "stop_sequences", "top_k", "thinking"]
            .iter()
            .any(|k| body.get(k).is_some());
        let anthropic_tools = body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|tools| tools.iter().any(|t| t.get("input_schema").is_some()));
        let anthropic_blocks = messages.into_iter().flatten().any(|m| {
            m.get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|part| {
                    matches!(
                        part.get("type").and_then(Value::as_str),
                        Some(
                            "image"
                                | "document"
                                | "tool_use"
                                | "tool_result"
                                | "thinking"
                                | "redacted_thinking"
                        )
                    )
                })
        });
        if anthropic_top || anthropic_tools || anthropic_blocks {
            Some(Self::Anthropic)
        } else {
            Some(Self::Chat)
        }
    }
}

/// The members that set a request's output limit, in the three formats.
const MAX_OUTPUT_FIELDS: [&str; 3] = ["max_tokens", "max_completion_tokens", "max_output_tokens"];

/// The output limit a request sets: the first of its limit members that `member` reads as a
/// count. One rule for a parsed body ([`max_output_of`]) and the gateway's raw top level.
pub(crate) fn max_output(member: impl Fn(&str) -> Option<u64>) -> Option<u64> {
    MAX_OUTPUT_FIELDS.into_iter().find_map(member)
}

/// [`max_output`] of a parsed body.
pub(crate) fn max_output_of(body: &Value) -> Option<u64> {
    max_output(|name| body.get(name).and_then(Value::as_u64))
}

impl<'a> Prompt<'a> {
    /// Reads a request body of any of the three formats.
    pub(crate) fn request(body: &'a Value) -> Self {
        let mut p = Self::default();
        if let Some(system) = body.get("system") {
            p.message("system", None, Some(system), false);
        }
        if let Some(instructions) = body.get("instructions").filter(|v| !v.is_null()) {
            p.message("system", None, Some(instructions), false);
        }
        if let Some(messages) = body.get("messages").and_then(Value::as_array) {
            for (i, m) in messages.iter().enumerate() {
                p.item(m, i + 1 == messages.len());
            }
        }
        match body.get("input") {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    p.item(item, i + 1 == items.len());
                }
            }
            Some(Value::Null) | None => {}
            Some(input) => p.message("user", None, Some(input), true),
        }
        if let Some(tools) = body.get("tools").and_then(Value::as_array)
            && !tools.is_empty()
        {
            for tool in tools {
                p.json(tool);
            }
            // Anthropic `{type:"any"|"tool"}`, OpenAI `"required"` or a named function.
            let forced = body.get("tool_choice").is_some_and(|c| {
                matches!(c.as_str(), Some("required"))
                    || matches!(
                        c.get("type").and_then(Value::as_str),
                        Some("any" | "tool" | "function")
                    )
            });
            p.tools = Some(forced);
        }
        // Structured-output schemas are input too.
        for schema in [body.get("response_format"), body.pointer("/text/format")]
            .into_iter()
            .flatten()
            .filter(|v| v.is_object())
        {
            p.json(schema);
        }
        p.overhead += REPLY_PRIMING;
        p
    }

    /// A message (Anthropic, Chat) or a Responses input item.
    fn item(&mut self, item: &'a Value, last: bool) {
        let field = |k: &str| item.get(k);
        match field("type").and_then(Value::as_str) {
            None | Some("message") => {
                let role = field("role").and_then(Value::as_str).unwrap_or("user");
                let name = field("name").and_then(Value::as_str);
                self.message(role, name, field("content"), last);
                // Chat: assistant tool calls, the legacy function call, a refusal.
                for call in field("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let function = call.get("function").unwrap_or(call);
                    self.tool_call(function.get("name"), function.get("arguments"));
                }
                if let Some(call) = field("function_call") {
                    self.tool_call(call.get("name"), call.get("arguments"));
                }
                if let Some(refusal) = field("refusal").and_then(Value::as_str) {
                    self.text(refusal);
                }
            }
            Some("function_call") => {
                self.message("assistant", None, None, last);
                self.tool_call(field("name"), field("arguments"));
            }
            Some("function_call_output") => {
                self.message("tool", None, field("output"), last);
            }
            Some("reasoning") => {
                for part in field("summary")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    self.part(part, last);
                }
            }
            Some(_) => self.json(item),
        }
    }

    /// One message's framing, role, name and content.
    fn message(
        &mut self,
        role: &'a str,
        name: Option<&'a str>,
        content: Option<&'a Value>,
        last: bool,
    ) {
        self.overhead += PER_MESSAGE;
        self.text(role);
        if let Some(name) = name {
            self.text(name);
            self.overhead += PER_NAME;
        }
        if let Some(content) = content {
            self.content(content, last);
        }
    }

    /// A string, an array of parts, or (Responses `output`) anything else, counted as JSON.
    fn content(&mut self, content: &'a Value, last: bool) {
        match content {
            Value::String(s) => self.text(s),
            Value::Array(parts) => {
                for part in parts {
                    self.part(part, last);
                }
            }
            Value::Null => {}
            other => self.json(other),
        }
    }

    /// One content part or block, of any of the three formats.
    fn part(&mut self, part: &'a Value, last: bool) {
        let field = |k: &str| part.get(k);
        let str_field = |k: &str| part.get(k).and_then(Value::as_str);
        let Some(kind) = str_field("type") else {
            self.content(part, last);
            return;
        };
        match kind {
            "text" | "input_text" | "output_text" | "summary_text" => match str_field("text") {
                Some(text) => self.text(text),
                None => self.json(part),
            },
            "refusal" => self.content(field("refusal").unwrap_or(&Value::Null), last),
            // Anthropic `{type:"image", source}`.
            "image" => {
                let source = field("source");
                let image = match source.and_then(|s| s.get("data")).and_then(Value::as_str) {
                    Some(data) => Image::base64(data, false),
                    None => Image::unknown(false),
                };
                self.image(image);
            }
            // Chat `{type:"image_url", image_url:{url, detail}}`; Responses `{type:"input_image",
            // image_url, detail}`.
            "image_url" | "input_image" => {
                let inner = field("image_url");
                let url =
                    inner.and_then(|u| u.as_str().or_else(|| u.get("url").and_then(Value::as_str)));
                let detail = str_field("detail")
                    .or_else(|| inner.and_then(|u| u.get("detail")).and_then(Value::as_str));
                let low = detail == Some("low");
                let image = match url.and_then(data_url) {
                    Some(data) => Image::base64(data, low),
                    None => Image::unknown(low),
                };
                self.image(image);
            }
            // Anthropic `{type:"document", source, title?, context?}`.
            "document" => {
                for key in ["title", "context"] {
                    if let Some(text) = str_field(key) {
                        self.text(text);
                    }
                }
                let source = field("source");
                let source_type = source.and_then(|s| s.get("type")).and_then(Value::as_str);
                let data = source.and_then(|s| s.get("data"));
                match (source_type, data) {
                    (Some("text"), Some(text)) => self.content(text, last),
                    (Some("content"), _) => {
                        let content = source.and_then(|s| s.get("content"));
                        self.content(content.unwrap_or(&Value::Null), last);
                    }
                    (_, Some(Value::String(data))) => self.file(data),
                    _ => self.pdf_pages(1),
                }
            }
            // Chat `{type:"file", file:{file_data|file_id, filename}}`; Responses `input_file`.
            "file" | "input_file" => {
                let file = field("file").unwrap_or(part);
                if let Some(name) = file.get("filename").and_then(Value::as_str) {
                    self.text(name);
                }
                match file.get("file_data").and_then(Value::as_str) {
                    Some(data) => self.file(data_url(data).unwrap_or(data)),
                    None => self.pdf_pages(1),
                }
            }
            "tool_use" | "server_tool_use" => self.tool_call(field("name"), field("input")),
            "tool_result" => self.content(field("content").unwrap_or(&Value::Null), last),
            // Anthropic drops thinking from earlier turns; only the last turn's is read.
            "thinking" if last => self.content(field("thinking").unwrap_or(&Value::Null), last),
            "thinking" | "redacted_thinking" | "input_audio" => {}
            _ => self.json(part),
        }
    }

    fn tool_call(&mut self, name: Option<&'a Value>, arguments: Option<&'a Value>) {
        self.overhead += PER_TOOL_CALL;
        if let Some(name) = name.and_then(Value::as_str) {
            self.text(name);
        }
        match arguments {
            Some(Value::String(args)) => self.text(args),
            Some(args) if !args.is_null() => self.json(args),
            _ => {}
        }
    }

    /// Base64 file data: a PDF counts by pages, UTF-8 text as text, anything else as one page.
    fn file(&mut self, data: &str) {
        let head = data.get(..8).unwrap_or(data);
        // "JVBERi0" is base64 for "%PDF-".
        if head.starts_with("JVBERi0") {
            self.pdf_pages(media::pdf_pages(data));
        } else if let Some(text) = media::text(data) {
            self.texts.push(Cow::Owned(text));
            self.approximate = true;
        } else {
            self.pdf_pages(1);
        }
    }

    fn text(&mut self, text: &'a str) {
        if !text.is_empty() {
            self.texts.push(Cow::Borrowed(text));
        }
    }

    /// A structure counted by its compact JSON: an estimate of how the provider renders it.
    fn json(&mut self, value: &Value) {
        self.texts.push(Cow::Owned(value.to_string()));
        self.approximate = true;
    }

    fn image(&mut self, image: Image) {
        self.images.push(image);
        self.approximate = true;
    }

    fn pdf_pages(&mut self, pages: u64) {
        self.pdf_pages += pages;
        self.approximate = true;
    }
}

/// The base64 payload of a `data:…;base64,` URL.
fn data_url(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    meta.ends_with(";base64").then_some(data)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalog::Catalog;
    use crate::tokens::{Count, count_request};

    fn counted(model: &str, body: &Value) -> Count {
        let catalog = Catalog::load(&[]).unwrap();
        count_request(catalog.get(model).unwrap(), body)
    }

    fn o200k(text: &str) -> u64 {
        Prompt::plain(text).tokenize(super::super::Encoding::O200k, &mut |_| {})
    }

    #[test]
    fn detects_each_shape() {
        let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(Shape::detect(&chat), Some(Shape::Chat));
        let anthropic = json!({"model": "m", "max_tokens": 5, "system": "s", "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(Shape::detect(&anthropic), Some(Shape::Anthropic));
        let blocks = json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]}]});
        assert_eq!(Shape::detect(&blocks), Some(Shape::Anthropic));
        let tools = json!({"messages": [], "tools": [{"name": "f", "input_schema": {}}]});
        assert_eq!(Shape::detect(&tools), Some(Shape::Anthropic));
        assert_eq!(
            Shape::detect(&json!({"input": "hi"})),
            Some(Shape::Responses)
        );
        assert_eq!(Shape::detect(&json!({"prompt": "hi"})), None);
        assert_eq!(max_output_of(&anthropic), Some(5));
        assert_eq!(max_output_of(&json!({"max_output_tokens": 7})), Some(7));
        assert_eq!(max_output_of(&chat), None);
    }

    /// The same conversation in the three formats counts the same for an OpenAI model.
    #[test]
    fn the_three_formats_agree_on_the_same_conversation() {
        let anthropic = json!({"model": "gpt-4.1", "max_tokens": 100, "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]}]});
        let chat = json!({"model": "gpt-4.1", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2+2?"}]});
        let responses = json!({"model": "gpt-4.1", "instructions": "Be brief.",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "What is 2+2?"}]}]});
        let expected = 2 * PER_MESSAGE
            + o200k("system")
            + o200k("Be brief.")
            + o200k("user")
            + o200k("What is 2+2?")
            + REPLY_PRIMING;
        for body in [&anthropic, &chat, &responses] {
            assert_eq!(
                counted("gpt-4.1", body),
                Count {
                    tokens: expected,
                    exact: true
                },
                "{body}"
            );
        }
        let plain = json!({"model": "gpt-4.1", "input": "What is 2+2?"});
        assert_eq!(
            counted("gpt-4.1", &plain).tokens,
            PER_MESSAGE + o200k("user") + o200k("What is 2+2?") + REPLY_PRIMING
        );
    }

    #[test]
    fn tool_calls_and_results_count_in_every_format() {
        let args = r#"{"city":"Paris"}"#;
        let chat = json!({"messages": [
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "weather", "arguments": args}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]});
        let responses = json!({"input": [
            {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": args},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"}]});
        let expected = 2 * PER_MESSAGE
            + o200k("assistant")
            + PER_TOOL_CALL
            + o200k("weather")
            + o200k(args)
            + o200k("tool")
            + o200k("sunny")
            + REPLY_PRIMING;
        assert_eq!(counted("gpt-4.1", &chat).tokens, expected);
        assert_eq!(counted("gpt-4.1", &responses).tokens, expected);
        // Anthropic: the tool input is an object, counted as its compact JSON.
        let anthropic = json!({"messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "sunny"}]}]});
        let anthropic_expected = 2 * PER_MESSAGE
            + o200k("assistant")
            + PER_TOOL_CALL
            + o200k("weather")
            + o200k(args)
            + o200k("user")
            + o200k("sunny")
            + REPLY_PRIMING;
        let got = counted("gpt-4.1", &anthropic);
        assert_eq!(got.tokens, anthropic_expected);
        assert!(!got.exact, "tool input rendered as JSON is an estimate");
    }

    #[test]
    fn tool_definitions_count_and_claude_adds_its_tool_prompt() {
        let tool = json!({"name": "weather", "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}});
        let bare = json!({"messages": [{"role": "user", "content": "hi"}]});
        let with_tools = json!({"messages": [{"role": "user", "content": "hi"}], "tools": [tool]});
        let forced = json!({"messages": [{"role": "user", "content": "hi"}], "tools": [tool],
            "tool_choice": {"type": "any"}});
        let tool_tokens = o200k(&tool.to_string());
        let gpt = counted("gpt-4.1", &with_tools);
        assert_eq!(gpt.tokens, counted("gpt-4.1", &bare).tokens + tool_tokens);
        assert!(!gpt.exact);
        let base = 3 + o200k("user") + o200k("hi") + 3 + tool_tokens;
        assert_eq!(
            counted("sonnet", &with_tools).tokens,
            (base * 125).div_ceil(100) + 346
        );
        assert_eq!(
            counted("sonnet", &forced).tokens,
            (base * 125).div_ceil(100) + 313
        );
    }

    #[test]
    fn images_count_by_the_models_family() {
        use base64::Engine as _;
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(1000_u32.to_be_bytes());
        png.extend(1000_u32.to_be_bytes());
        let data = base64::engine::general_purpose::STANDARD.encode(&png);
        let anthropic = json!({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}]}]});
        let chat = json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{data}")}}]}]});
        let text_only = 3 + o200k("user") + 3;
        // Claude: 1000×1000/750 = 1334, not scaled by the text factor.
        assert_eq!(
            counted("sonnet", &anthropic).tokens,
            (text_only * 125).div_ceil(100) + 1334
        );
        // OpenAI: 1000×1000 → short side 768 → 2×2 tiles = 765.
        let gpt = counted("gpt-4.1", &chat);
        assert_eq!(gpt.tokens, text_only + 765);
        assert!(!gpt.exact);
        let low = json!({"input": [{"role": "user", "content": [
            {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"}]}]});
        assert_eq!(counted("gpt-4.1", &low).tokens, text_only + 85);
        // A URL image of unknown size counts as 1024×1024 for Claude: 1399.
        let url = json!({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}]}]});
        assert_eq!(
            counted("sonnet", &url).tokens,
            (text_only * 125).div_ceil(100) + 1399
        );
    }

    #[test]
    fn documents_count_by_pages_or_text() {
        use base64::Engine as _;
        let pdf = base64::engine::general_purpose::STANDARD
            .encode(b"%PDF-1.4 <</Type /Page>> <</Type /Page>> <</Type /Pages>>");
        let body = json!({"messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}}]}]});
        let text_only = 3 + o200k("user") + o200k("plain words") + 3;
        assert_eq!(counted("gpt-4.1", &body).tokens, text_only + 2 * 3000);
        let file = json!({"messages": [{"role": "user", "content": [
            {"type": "file", "file": {"filename": "a.pdf", "file_data": format!("data:application/pdf;base64,{pdf}")}}]}]});
        assert_eq!(
            counted("gpt-4.1", &file).tokens,
            3 + o200k("user") + o200k("a.pdf") + 3 + 2 * 3000
        );
    }

    #[test]
    fn only_the_last_turns_thinking_counts() {
        let thinking = json!({"type": "thinking", "thinking": "Let me think about this carefully.", "signature": "sig"});
        let earlier = json!({"messages": [
            {"role": "assistant", "content": [thinking, {"type": "text", "text": "ok"}]},
            {"role": "user", "content": "go on"}]});
        let last = json!({"messages": [
            {"role": "user", "content": "go on"},
            {"role": "assistant", "content": [thinking, {"type": "text", "text": "ok"}]}]});
        let extra = counted("gpt-4.1", &last).tokens - counted("gpt-4.1", &earlier).tokens;
        assert_eq!(extra, o200k("Let me think about this carefully."));
    }
}
