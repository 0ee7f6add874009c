//! Reasoning state is provider-bound: Anthropic checks a thinking block's signature, OpenAI an
//! item's `encrypted_content`, and each refuses the other's (or none). When a turn reaches a
//! different provider kind than the one that reasoned (a fallback, a route, a user switching
//! models), the signed state is stripped and the visible text kept.
//!
//! Thinking that izzi makes from an OpenAI-kind provider's reasoning text has no Anthropic
//! signature; it carries [`UNSIGNED`] instead, so that when a client (Claude Code) sends it back
//! toward Anthropic, even in its own format, izzi finds it cheaply and removes it. Pure.

use serde_json::Value;

use super::dropped;

/// The signature of thinking izzi made from reasoning no Anthropic model signed.
pub(crate) const UNSIGNED: &str = "izzi-unsigned";

/// Whether a thinking block's signature can be replayed to Anthropic.
pub(crate) fn signed(signature: &str) -> bool {
    !signature.is_empty() && !signature.starts_with(UNSIGNED)
}

/// A Messages body going to Anthropic as it is, without the thinking izzi made elsewhere (and,
/// if the pending tool-call turn then opens with no signed thinking, without `thinking`, which
/// Anthropic would refuse); `None` when it carries none, which the common case learns from one
/// byte search.
pub(crate) fn without_unsigned(raw: &[u8], model: &str) -> Option<Vec<u8>> {
    memchr::memmem::find(raw, UNSIGNED.as_bytes())?;
    let mut body: Value = serde_json::from_slice(raw).ok()?;
    let messages = body.get_mut("messages")?.as_array_mut()?;
    let mut removed = false;
    for message in messages.iter_mut() {
        if let Some(blocks) = message.get_mut("content").and_then(Value::as_array_mut) {
            let before = blocks.len();
            blocks.retain(|b| {
                let unsigned = b.get("type").and_then(Value::as_str) == Some("thinking")
                    && !b
                        .get("signature")
                        .and_then(Value::as_str)
                        .is_some_and(signed);
                !unsigned
            });
            removed |= blocks.len() != before;
        }
    }
    if !removed {
        return None;
    }
    dropped("thinking", "made from another provider's reasoning");
    messages.retain(|m| {
        m.get("content")
            .and_then(Value::as_array)
            .is_none_or(|c| !c.is_empty())
    });
    let pending = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
        .and_then(|m| m.get("content").and_then(Value::as_array))
        .is_some_and(|blocks| {
            let kind = |b: &Value| b.get("type").and_then(Value::as_str).map(str::to_owned);
            let calls = blocks
                .iter()
                .any(|b| kind(b).as_deref() == Some("tool_use"));
            let opens_signed = blocks
                .first()
                .and_then(kind)
                .is_some_and(|k| k == "thinking" || k == "redacted_thinking");
            calls && !opens_signed
        });
    if pending
        && let Some(object) = body.as_object_mut()
        && object.remove("thinking").is_some()
    {
        dropped(
            "thinking",
            "the pending tool-call turn has no signed thinking left",
        );
    }
    body["model"] = Value::from(model);
    serde_json::to_vec(&body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_thinking_izzi_made_is_removed_and_thinking_goes_with_it_when_it_must() {
        let body = json!({"model": "sonnet", "max_tokens": 9000,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "real", "signature": "EqQBCkYIBxgCKkA"},
                    {"type": "text", "text": "one"}]},
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "from gpt", "signature": UNSIGNED},
                    {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]});
        let raw = serde_json::to_vec(&body).unwrap();
        let out: Value =
            serde_json::from_slice(&without_unsigned(&raw, "claude-x").unwrap()).unwrap();
        assert_eq!(out["model"], "claude-x");
        assert!(out.get("thinking").is_none(), "{out}");
        assert_eq!(out["messages"][1], body["messages"][1]);
        assert_eq!(
            out["messages"][3]["content"],
            json!([{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}])
        );
        let clean =
            serde_json::to_vec(&json!({"model": "m", "messages": [body["messages"][1]]})).unwrap();
        assert!(without_unsigned(&clean, "m").is_none());
    }
}
