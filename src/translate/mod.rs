//! Translation between the client's format and the provider's kind: requests, whole responses
//! and streams (state machines fed one SSE event at a time). Pure: no I/O, async or clock.
//!
//! The gateway calls only `request`, `response` and `stream`. When the client's format is the
//! provider's native one the body is forwarded with only `model` rewritten (`Body::with_model`),
//! and streams are relayed byte for byte while an observer reads their usage.
//!
//! Chat ↔ Messages are the primary pairs (`messages_to_chat`, `chat_to_messages`, one module
//! per direction); Responses maps onto Chat (`responses`), so Responses toward an
//! Anthropic-kind provider is the composition Responses → Chat → Messages, and its answers
//! Messages → Chat → Responses. Each of the three has a `request`, a `response` and a `stream`
//! file; `stream` here holds the plumbing every translated or observed stream goes through.

mod cache;
mod chat_to_messages;
mod freeform;
mod messages_to_chat;
mod names;
mod reasoning;
mod responses;
mod server_tools;
mod stream;

#[cfg(test)]
mod tests;

use std::borrow::Cow;

use serde::Serialize;

use crate::protocol::json::Body;
use crate::protocol::{Format, Kind, Usage, anthropic, openai, responses as rs};
use names::ToolNames;

pub(crate) use cache::Caching;
pub(crate) use stream::{Stream, stream};

/// What the translation needs to know about the routed model and the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The id to send upstream.
    pub(crate) upstream_model: &'a str,
    /// The id the client asked for (echoed in translated responses).
    pub(crate) client_model: &'a str,
    /// The model's largest output, the default `max_tokens` where Anthropic requires one.
    pub(crate) max_output: u32,
    /// Whether the model reasons (takes `reasoning_effort` / thinking).
    pub(crate) reasoning: bool,
    /// Whether the model takes Chat's `web_search_options` (OpenAI-kind providers).
    pub(crate) web_search: bool,
    /// The client's request: answers map tool names back through its `tools`, and a Chat
    /// stream carries usage only when its `stream_options` asked.
    pub(crate) request: &'a Body<'a>,
    /// Unix seconds, for the `created` fields translated answers carry (translation reads no
    /// clock).
    pub(crate) created: u64,
    /// Whether a translated request gets izzi's prompt caching.
    pub(crate) caching: Caching,
    /// The agent session (`attribution`), an OpenAI-kind provider's `prompt_cache_key`.
    pub(crate) session: Option<&'a str>,
}

/// A request that cannot be carried to the target: a 400 `invalid_request_error` naming the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TranslateError(pub(crate) String);

impl TranslateError {
    /// `field` has no equivalent at the target and its loss would change the answer.
    fn cannot(field: &str, to: &str) -> Self {
        Self(format!(
            "`{field}` cannot be sent to {to}: it has no equivalent there and dropping it would change the answer; remove it or pick another model."
        ))
    }
}

/// Logs a member dropped because it only steers a provider's own features.
fn dropped(field: &str, why: &str) {
    tracing::debug!(field, why, "translation dropped a field");
}

/// The upstream body for a client request.
#[derive(Debug)]
pub(crate) struct Prepared<'a> {
    pub(crate) body: Cow<'a, [u8]>,
}

/// Cursor's agent mode sends a Responses-shaped body (`input`, no `messages`) to Chat.
fn responses_shaped(format: Format, body: &Body<'_>) -> bool {
    format == Format::Responses || (body.get("messages").is_none() && body.get("input").is_some())
}

/// Whether the body goes to the provider as the client sent it (only `model` rewritten, and
/// `prompt_cache_key` added toward OpenAI) rather than translated.
pub(crate) fn forwards(format: Format, kind: Kind, body: &Body<'_>) -> bool {
    format.native_kind() == Some(kind) && !responses_shaped(format, body)
}

/// Parses a whole body as `T`; the error names the member that does not fit. Tracking the path
/// cost a third of what translating adds to a request (callgrind), so only a body that fails is
/// parsed again with it.
fn parse<T: serde::de::DeserializeOwned>(raw: &[u8], what: &str) -> Result<T, TranslateError> {
    if let Ok(parsed) = serde_json::from_slice(raw) {
        return Ok(parsed);
    }
    let mut de = serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        TranslateError(format!(
            "`{}` does not fit the {what} format: {}.",
            err.path(),
            err.inner()
        ))
    })
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, TranslateError> {
    serde_json::to_vec(value).map_err(|e| TranslateError(format!("could not encode: {e}")))
}

/// Builds the upstream body: the client's own bytes with `model` rewritten when the formats
/// match, a translation otherwise.
pub(crate) fn request<'a>(
    format: Format,
    kind: Kind,
    body: &Body<'a>,
    target: &Target<'_>,
) -> Result<Prepared<'a>, TranslateError> {
    let shaped = responses_shaped(format, body);
    let caching = target.caching == Caching::Auto;
    if forwards(format, kind, body) {
        if kind == Kind::Anthropic
            && let Some(out) = reasoning::without_unsigned(body.raw, target.upstream_model)
        {
            return Ok(Prepared {
                body: Cow::Owned(out),
            });
        }
        // A Chat client's own session still keys OpenAI's cache; Anthropic bodies go as sent.
        let key = target
            .session
            .filter(|_| caching && kind == Kind::Openai)
            .map(|session| ("prompt_cache_key", session));
        return Ok(Prepared {
            body: body.with_model_and(target.upstream_model, key),
        });
    }
    let out = if format == Format::Messages {
        let req: anthropic::Request = parse(body.raw, "Messages")?;
        let mut chat = messages_to_chat::request(req, target)?;
        if caching {
            cache::keep_key(&mut chat.extra, target.session);
        }
        encode(&chat)?
    } else {
        let mut chat: openai::Request = if shaped {
            let req: rs::Request = parse(body.raw, "Responses")?;
            responses::request(req, kind, target)?
        } else {
            parse(body.raw, "Chat Completions")?
        };
        match kind {
            Kind::Openai => {
                if caching {
                    cache::keep_key(&mut chat.extra, target.session);
                }
                encode(&chat)?
            }
            Kind::Anthropic => {
                let mut messages = chat_to_messages::request(chat, target)?;
                if caching {
                    cache::place(&mut messages, target.upstream_model);
                }
                encode(&messages)?
            }
        }
    };
    Ok(Prepared {
        body: Cow::Owned(out),
    })
}

/// Turns a whole (non-streamed) upstream response into the client's format, with its usage.
pub(crate) fn response<'a>(
    format: Format,
    kind: Kind,
    body: &'a [u8],
    target: &Target<'_>,
) -> Result<(Cow<'a, [u8]>, Usage), TranslateError> {
    if format.native_kind() == Some(kind) {
        // The body goes out as it came; a usage that cannot be read is counted locally.
        let usage = match kind {
            Kind::Anthropic => usage_of::<anthropic::Usage>(body).map(|u| from_anthropic(&u)),
            Kind::Openai => usage_of::<openai::Usage>(body)
                .map(|u| from_anthropic(&chat_to_messages::usage(&u))),
        };
        return Ok((Cow::Borrowed(body), usage.unwrap_or_default()));
    }
    let names = ToolNames::of(format, target.request);
    let (out, usage) = match kind {
        Kind::Anthropic => {
            let resp: anthropic::Response = parse(body, "Messages")?;
            let usage = from_anthropic(&resp.usage);
            let identity = ToolNames::default();
            let out = match format {
                Format::Responses => encode(&responses::response(
                    messages_to_chat::response(resp, target, &identity),
                    target,
                    &names,
                ))?,
                _ => encode(&messages_to_chat::response(resp, target, &names))?,
            };
            (out, usage)
        }
        Kind::Openai => {
            let resp: openai::Response = parse(body, "Chat Completions")?;
            let usage = from_anthropic(&chat_to_messages::usage(&resp.usage.unwrap_or_default()));
            let out = match format {
                Format::Responses => encode(&responses::response(resp, target, &names))?,
                _ => encode(&chat_to_messages::response(resp, target, &names))?,
            };
            (out, usage)
        }
    };
    Ok((Cow::Owned(out), usage))
}

/// The `usage` member of a whole answer. Providers write it last: then it is read from the
/// end, and the rest of a long answer is not scanned for it; otherwise the whole body is read.
fn usage_of<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    #[derive(serde::Deserialize)]
    struct UsageOnly<T> {
        usage: Option<T>,
    }
    match trailing_usage(body) {
        Some(value) => serde_json::from_str::<Option<T>>(value.get())
            .ok()
            .flatten(),
        None => serde_json::from_slice::<UsageOnly<T>>(body)
            .ok()
            .and_then(|u| u.usage),
    }
}

/// The value of `usage` when it is the last member of the object the body holds; `None` when
/// that cannot be told from the end. A member name follows `{` or `,`, where a quote cannot be
/// inside a string; and a value followed only by `}` and the body's end is a member of the
/// outermost object.
fn trailing_usage(body: &[u8]) -> Option<&serde_json::value::RawValue> {
    const NAME: &[u8] = b"\"usage\"";
    let at = memchr::memmem::rfind(body, NAME)?;
    if !matches!(body[..at].trim_ascii_end().last(), Some(b'{' | b',')) {
        return None;
    }
    let value = body[at + NAME.len()..]
        .trim_ascii_start()
        .strip_prefix(b":")?;
    let mut values =
        serde_json::Deserializer::from_slice(value).into_iter::<&serde_json::value::RawValue>();
    let usage = values.next()?.ok()?;
    (value[values.byte_offset()..].trim_ascii() == b"}").then_some(usage)
}

/// Anthropic wire usage as the gateway's.
fn from_anthropic(usage: &anthropic::Usage) -> Usage {
    Usage {
        input_tokens: usage.input_tokens.unwrap_or(0),
        output_tokens: usage.output_tokens,
        cache_read_tokens: usage.cache_read_input_tokens.unwrap_or(0),
        cache_write_tokens: usage.cache_creation_input_tokens.unwrap_or(0),
        cache_write_1h_tokens: usage
            .cache_creation
            .map_or(0, |c| c.ephemeral_1h_input_tokens),
    }
}

/// The text of a Chat answer's content: the string, or its text parts joined.
fn answer_text(content: Option<openai::Content>) -> String {
    match content {
        Some(openai::Content::Text(text)) => text,
        Some(openai::Content::Parts(parts)) => parts
            .into_iter()
            .filter_map(|p| match p {
                openai::Part::Known(openai::KnownPart::Text { text, .. }) => Some(text),
                _ => None,
            })
            .collect(),
        None => String::new(),
    }
}

/// Ids of translated answers, derived from the upstream's so they stay unique and traceable.
mod ids {
    /// An id without its format's prefix.
    pub(crate) fn base(id: &str) -> &str {
        ["chatcmpl-", "msg_", "resp_"]
            .iter()
            .find_map(|p| id.strip_prefix(p))
            .unwrap_or(id)
    }

    pub(crate) fn chat(id: &str) -> String {
        format!("chatcmpl-{}", base(id))
    }

    pub(crate) fn message(id: &str) -> String {
        format!("msg_{}", base(id))
    }

    pub(crate) fn response(id: &str) -> String {
        format!("resp_{}", base(id))
    }
}
