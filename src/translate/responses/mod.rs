//! OpenAI Responses onto OpenAI Chat and back: a Responses request as a Chat request
//! (`request`), and a Chat response (`response`) or stream (`stream`) as the Responses object or
//! event sequence. Toward an Anthropic-kind provider the gateway composes these with the
//! Chat↔Messages directions; there is no third copy. Pure.
//!
//! This module owns the one thing both ways share: how a thinking block rides in a reasoning
//! item's `encrypted_content`.

mod request;
mod response;
mod stream;

use crate::protocol::openai as oa;
use crate::protocol::responses as rs;

pub(crate) use request::request;
pub(crate) use response::response;
pub(crate) use stream::Stream;

/// Prefixes of `encrypted_content` that izzi writes for Anthropic thinking, so a reasoning item
/// Codex replays finds its way back to a signed block (and one from elsewhere is not forged).
const SIGNED: &str = "izzi-thinking:";
const REDACTED: &str = "izzi-redacted:";

/// A thinking block's `encrypted_content`, as [`signed_block`] reads it back.
fn encrypted(block: &oa::ThinkingBlock) -> Option<String> {
    match (block.kind.as_str(), &block.signature, &block.data) {
        ("redacted_thinking", _, Some(data)) => Some(format!("{REDACTED}{data}")),
        (_, Some(signature), _) => Some(format!("{SIGNED}{signature}")),
        _ => None,
    }
}

/// The signed thinking block izzi stored in a reasoning item, if it did.
fn signed_block(item: &rs::ReasoningItem) -> Option<oa::ThinkingBlock> {
    let content = item.encrypted_content.as_deref()?;
    if let Some(signature) = content.strip_prefix(SIGNED) {
        let thinking: String = item.summary.iter().map(|s| s.text.as_str()).collect();
        return Some(oa::ThinkingBlock {
            kind: "thinking".to_owned(),
            thinking: Some(thinking),
            signature: Some(signature.to_owned()),
            ..oa::ThinkingBlock::default()
        });
    }
    content
        .strip_prefix(REDACTED)
        .map(|data| oa::ThinkingBlock {
            kind: "redacted_thinking".to_owned(),
            data: Some(data.to_owned()),
            ..oa::ThinkingBlock::default()
        })
}
