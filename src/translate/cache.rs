//! Prompt caching that survives translation. Toward an Anthropic-kind provider izzi places cache
//! breakpoints the way Claude Code does (after the tools, after the system prompt, on the last
//! two user turns), following Anthropic's rules: at most four, never on thinking blocks, none on
//! a prefix shorter than the model's minimum (the provider would ignore it), and none at all when
//! the client placed its own. Toward an OpenAI-kind provider the agent session becomes
//! `prompt_cache_key`, so the provider's automatic cache sticks to the conversation. Pure.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::protocol::anthropic::{self as an, Block, Content, Known};

/// Whether izzi adds prompt caching to a translated request (the model's and `[server]`'s
/// `prompt_caching`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caching {
    Auto,
    Off,
}

/// Anthropic's limit of breakpoints per request.
const MAX_BREAKPOINTS: usize = 4;

/// Bytes of serialized JSON per token, to judge a prefix's length without tokenizing: JSON's
/// quotes and keys make this an underestimate of the tokens, so a breakpoint is only ever
/// skipped for a prefix that really is short.
const BYTES_PER_TOKEN: u64 = 4;

/// The shortest prefix Anthropic caches for a model, in tokens (its prompt-caching docs: 4096
/// for Opus 4.5 and later and Haiku 4.5, 2048 for the Haiku 3 family, 1024 for the rest).
fn min_tokens(model: &str) -> u64 {
    let m = model.to_ascii_lowercase();
    if ["opus-4-5", "opus-4-6", "opus-4-7", "haiku-4-5"]
        .iter()
        .any(|family| m.contains(family))
    {
        4096
    } else if m.contains("haiku-3") || m.contains("3-haiku") || m.contains("3-5-haiku") {
        2048
    } else {
        1024
    }
}

/// The breakpoint izzi places: five minutes, Anthropic's default and cheapest write.
fn ephemeral() -> Value {
    serde_json::json!({"type": "ephemeral"})
}

/// Places breakpoints in a Messages request izzi built, unless its client placed some.
pub(crate) fn place(req: &mut an::Request, model: &str) {
    let mut marks = client_marks(req);
    if !marks.is_empty() {
        // Anthropic refuses more than four: the first (the longest-lived prefix) and the
        // latest are kept.
        let extra = marks.len().saturating_sub(MAX_BREAKPOINTS);
        for mark in marks.iter_mut().skip(1).take(extra) {
            **mark = None;
        }
        if extra > 0 {
            super::dropped("cache_control", "Anthropic takes at most four breakpoints");
        }
        return;
    }
    let min_bytes = min_tokens(model) * BYTES_PER_TOKEN;
    let mut placed = 0;
    let mut prefix = 0u64;
    if let Some(tools) = req.tools.as_mut() {
        prefix += tools.iter().map(weight).sum::<u64>();
        if let Some(last) = tools.last_mut()
            && prefix >= min_bytes
        {
            last.cache_control = Some(ephemeral());
            placed += 1;
        }
    }
    if let Some(Content::Blocks(system)) = req.system.as_mut() {
        prefix += system.iter().map(block_weight).sum::<u64>();
        if prefix >= min_bytes
            && let Some(Block::Known(Known::Text { cache_control, .. })) = system.last_mut()
        {
            *cache_control = Some(ephemeral());
            placed += 1;
        }
    }
    // Each user turn's prefix length, then marks on the last two long enough: the last writes
    // this turn's prefix, the one before reads what the previous request wrote.
    let mut ends = Vec::with_capacity(req.messages.len());
    for message in &req.messages {
        prefix += content_weight(&message.content);
        ends.push(prefix);
    }
    let turns = req
        .messages
        .iter_mut()
        .zip(ends)
        .rev()
        .filter(|(m, end)| m.role == "user" && *end >= min_bytes)
        .take((MAX_BREAKPOINTS - placed).min(2));
    for (message, _) in turns {
        mark_last(&mut message.content);
    }
}

/// Marks the last block of a turn that takes a breakpoint (text or a tool result).
fn mark_last(content: &mut Content) {
    if let Content::Text(text) = content {
        *content = Content::Blocks(vec![Block::Known(Known::Text {
            text: std::mem::take(text),
            cache_control: None,
        })]);
    }
    let Content::Blocks(blocks) = content else {
        return;
    };
    for block in blocks.iter_mut().rev() {
        if let Block::Known(
            Known::Text { cache_control, .. } | Known::ToolResult { cache_control, .. },
        ) = block
        {
            *cache_control = Some(ephemeral());
            return;
        }
    }
}

/// The client's own breakpoints, in prompt order (tools, system, turns).
fn client_marks(req: &mut an::Request) -> Vec<&mut Option<Value>> {
    let mut marks = Vec::new();
    for tool in req.tools.iter_mut().flatten() {
        if tool.cache_control.is_some() {
            marks.push(&mut tool.cache_control);
        }
    }
    let system = match &mut req.system {
        Some(Content::Blocks(blocks)) => blocks.as_mut_slice(),
        _ => &mut [],
    };
    let turns = req.messages.iter_mut().flat_map(|m| match &mut m.content {
        Content::Blocks(blocks) => blocks.as_mut_slice(),
        Content::Text(_) => &mut [],
    });
    for block in system.iter_mut().chain(turns) {
        if let Block::Known(
            Known::Text { cache_control, .. } | Known::ToolResult { cache_control, .. },
        ) = block
            && cache_control.is_some()
        {
            marks.push(cache_control);
        }
    }
    marks
}

/// Near the serialized length of a turn's content: text by its length (escaping it again would
/// cost as much as encoding the request, for a few bytes the estimate can do without), anything
/// else by [`weight`].
fn content_weight(content: &Content) -> u64 {
    match content {
        Content::Text(text) => text.len() as u64,
        Content::Blocks(blocks) => blocks.iter().map(block_weight).sum(),
    }
}

/// A block's share of [`content_weight`]: its text's length where it has text.
fn block_weight(block: &Block) -> u64 {
    /// The least JSON around a block's text: `{"type":"text","text":""}`.
    const FRAME: u64 = 25;
    match block {
        Block::Known(Known::Text { text, .. }) => text.len() as u64 + FRAME,
        Block::Known(Known::ToolResult {
            content: Some(content),
            ..
        }) => content_weight(content) + FRAME,
        other => weight(other),
    }
}

/// The serialized length of a value, without building the bytes.
fn weight<T: Serialize>(value: &T) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => 0,
    }
}

/// Sets `prompt_cache_key` to the agent session on a Chat request for an OpenAI-kind provider,
/// unless the client chose one.
pub(crate) fn keep_key(extra: &mut Map<String, Value>, session: Option<&str>) {
    if let Some(session) = session
        && !extra.contains_key("prompt_cache_key")
    {
        extra.insert("prompt_cache_key".to_owned(), Value::from(session));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(text: &str) -> Block {
        Block::Known(Known::Text {
            text: text.to_owned(),
            cache_control: None,
        })
    }

    fn turn(role: &str, content: &str) -> an::Message {
        an::Message {
            role: role.to_owned(),
            content: Content::Blocks(vec![text(content)]),
        }
    }

    fn marks(req: &an::Request) -> Vec<String> {
        let value = serde_json::to_value(req).unwrap();
        let mut found = Vec::new();
        let mut stack = vec![(String::new(), &value)];
        while let Some((path, v)) = stack.pop() {
            match v {
                Value::Object(map) => {
                    if map.contains_key("cache_control") {
                        found.push(path.clone());
                    }
                    for (k, v) in map {
                        stack.push((format!("{path}/{k}"), v));
                    }
                }
                Value::Array(list) => {
                    for (i, v) in list.iter().enumerate() {
                        stack.push((format!("{path}/{i}"), v));
                    }
                }
                _ => {}
            }
        }
        found.sort();
        found
    }

    fn long() -> String {
        "word ".repeat(1200)
    }

    /// The length estimate never exceeds what the content serialises to, so a prefix it calls
    /// long enough really is: text with characters JSON escapes, tool results of both shapes,
    /// and a block it serialises instead. Prose is weighed almost exactly.
    #[test]
    fn a_turn_is_weighed_at_most_its_serialised_length() {
        let quoted = "say \"hi\"\n\tthen\\stop\u{1}é ".repeat(40);
        let result = |content| {
            Block::Known(Known::ToolResult {
                tool_use_id: "toolu_1".to_owned(),
                content: Some(content),
                is_error: None,
                cache_control: None,
            })
        };
        let contents = [
            Content::Text(quoted.clone()),
            Content::Blocks(vec![text(&quoted), text("")]),
            Content::Blocks(vec![result(Content::Text(quoted.clone()))]),
            Content::Blocks(vec![result(Content::Blocks(vec![text(&quoted)]))]),
            Content::Blocks(vec![Block::Known(Known::ToolUse {
                id: "toolu_1".to_owned(),
                name: "read".to_owned(),
                input: serde_json::json!({"path": quoted}),
            })]),
        ];
        for content in contents {
            let serialised = serde_json::to_vec(&content).expect("serialises").len() as u64;
            let weighed = content_weight(&content);
            assert!(weighed <= serialised, "{weighed} > {serialised}");
        }
        // Prose, with nothing to escape, is weighed within a few bytes of its JSON.
        let prose = Content::Blocks(vec![text(&long())]);
        let serialised = serde_json::to_vec(&prose).expect("serialises").len() as u64;
        assert!(serialised - content_weight(&prose) < 10);
    }

    #[test]
    fn tools_system_and_the_last_two_user_turns_get_one_breakpoint_each() {
        let mut req = an::Request {
            tools: Some(vec![an::Tool {
                name: "read".to_owned(),
                description: Some(long()),
                ..an::Tool::default()
            }]),
            system: Some(Content::Blocks(vec![text("be brief"), text(&long())])),
            messages: vec![
                turn("user", "one"),
                turn("assistant", "two"),
                turn("user", "three"),
                turn("assistant", "four"),
                turn("user", "five"),
            ],
            ..an::Request::default()
        };
        place(&mut req, "claude-sonnet-4-20250514");
        assert_eq!(
            marks(&req),
            [
                "/messages/2/content/0",
                "/messages/4/content/0",
                "/system/1",
                "/tools/0"
            ]
        );
    }

    #[test]
    fn short_prefixes_get_none_and_the_model_minimum_counts() {
        let mut req = an::Request {
            system: Some(Content::Blocks(vec![text("be brief")])),
            messages: vec![turn("user", &"word ".repeat(1000))],
            ..an::Request::default()
        };
        let mut haiku = req.clone();
        place(&mut req, "claude-sonnet-4-20250514");
        assert_eq!(marks(&req), ["/messages/0/content/0"]);
        place(&mut haiku, "claude-haiku-4-5");
        assert!(marks(&haiku).is_empty(), "{:?}", marks(&haiku));
    }

    #[test]
    fn a_client_breakpoint_means_izzi_places_none() {
        let mut req = an::Request {
            system: Some(Content::Blocks(vec![text(&long())])),
            messages: vec![an::Message {
                role: "user".to_owned(),
                content: Content::Blocks(vec![Block::Known(Known::Text {
                    text: long(),
                    cache_control: Some(serde_json::json!({"type": "ephemeral", "ttl": "1h"})),
                })]),
            }],
            ..an::Request::default()
        };
        place(&mut req, "claude-sonnet-4-20250514");
        assert_eq!(marks(&req), ["/messages/0/content/0"]);
    }

    #[test]
    fn more_than_four_client_breakpoints_keep_the_first_and_the_latest() {
        let mark = Some(serde_json::json!({"type": "ephemeral"}));
        let marked = |text: &str| {
            Block::Known(Known::Text {
                text: text.to_owned(),
                cache_control: mark.clone(),
            })
        };
        let mut req = an::Request {
            system: Some(Content::Blocks(vec![marked("system")])),
            messages: (0..5)
                .map(|i| an::Message {
                    role: "user".to_owned(),
                    content: Content::Blocks(vec![marked(&format!("turn {i}"))]),
                })
                .collect(),
            ..an::Request::default()
        };
        place(&mut req, "claude-sonnet-4-20250514");
        assert_eq!(
            marks(&req),
            [
                "/messages/2/content/0",
                "/messages/3/content/0",
                "/messages/4/content/0",
                "/system/0"
            ]
        );
    }

    #[test]
    fn thinking_is_never_marked_and_tool_results_are() {
        let mut req = an::Request {
            messages: vec![an::Message {
                role: "user".to_owned(),
                content: Content::Blocks(vec![
                    Block::Known(Known::ToolResult {
                        tool_use_id: "t1".to_owned(),
                        content: Some(Content::Text(long())),
                        is_error: None,
                        cache_control: None,
                    }),
                    Block::Known(Known::Image {
                        source: an::Source::Url {
                            url: "https://example.com/a.png".to_owned(),
                        },
                    }),
                ]),
            }],
            ..an::Request::default()
        };
        place(&mut req, "claude-sonnet-4-20250514");
        assert_eq!(marks(&req), ["/messages/0/content/0"]);
    }

    #[test]
    fn the_session_is_the_cache_key_unless_the_client_chose_one() {
        let mut extra = Map::new();
        keep_key(&mut extra, Some("s-1"));
        assert_eq!(extra["prompt_cache_key"], "s-1");
        keep_key(&mut extra, Some("s-2"));
        assert_eq!(extra["prompt_cache_key"], "s-1");
        let mut none = Map::new();
        keep_key(&mut none, None);
        assert!(none.is_empty());
    }
}
