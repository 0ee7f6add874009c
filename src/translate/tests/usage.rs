//! A same-format answer's usage, read from the end when it is the last member and from the
//! whole body otherwise: both ways must find the outermost object's `usage` and nothing else.

use serde_json::value::RawValue;

use super::*;

/// Input and output tokens as the gateway reads them from an Anthropic-shaped answer.
fn read(body: &str) -> Option<(Option<u64>, u64)> {
    usage_of::<anthropic::Usage>(body.as_bytes()).map(|u| (u.input_tokens, u.output_tokens))
}

/// What reading the whole body finds.
fn whole(body: &str) -> Option<(Option<u64>, u64)> {
    #[derive(serde::Deserialize)]
    struct UsageOnly {
        usage: Option<anthropic::Usage>,
    }
    serde_json::from_str::<UsageOnly>(body)
        .ok()
        .and_then(|u| u.usage)
        .map(|u| (u.input_tokens, u.output_tokens))
}

#[test]
fn the_last_member_is_read_from_the_end() {
    let body = r#"{"id":"msg_1","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":12,"output_tokens":3}}"#;
    assert!(trailing_usage(body.as_bytes()).is_some());
    assert_eq!(read(body), Some((Some(12), 3)));
    // Pretty-printed, as some OpenAI-compatible servers write it.
    let pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(body).unwrap()).unwrap() + "\n";
    assert!(trailing_usage(pretty.as_bytes()).is_some());
    assert_eq!(read(&pretty), Some((Some(12), 3)));
    // A null usage is no usage.
    let null = r#"{"id":"x","usage":null}"#;
    assert_eq!(
        trailing_usage(null.as_bytes()).map(RawValue::get),
        Some("null")
    );
    assert_eq!(read(null), None);
}

#[test]
fn anything_else_is_read_whole_and_finds_the_outermost_usage() {
    let cases = [
        // Not the last member.
        r#"{"usage":{"input_tokens":1,"output_tokens":2},"system_fingerprint":"fp"}"#,
        // A tool's input with a `usage` of its own, after the answer's.
        r#"{"usage":{"input_tokens":1,"output_tokens":2},"content":[{"type":"tool_use","input":{"usage":{"input_tokens":9,"output_tokens":9}}}]}"#,
        // The same, ending the body.
        r#"{"content":[{"type":"tool_use","input":{"usage":{"input_tokens":9,"output_tokens":9}}}],"usage":{"input_tokens":1,"output_tokens":2}}"#,
        // A member name with an escaped quote before `usage`.
        r#"{"usage":{"input_tokens":1,"output_tokens":2},"x \"usage":{"input_tokens":9,"output_tokens":9}}"#,
        // Text that quotes a usage.
        r#"{"usage":{"input_tokens":1,"output_tokens":2},"text":"\"usage\":{\"input_tokens\":9}}"}"#,
    ];
    for body in cases {
        assert_eq!(read(body), Some((Some(1), 2)), "{body}");
        assert_eq!(read(body), whole(body), "{body}");
    }
    // Only the nested one: the answer reported nothing.
    let nested = r#"{"content":[{"type":"tool_use","input":{"usage":{"input_tokens":9,"output_tokens":9}}}]}"#;
    assert!(trailing_usage(nested.as_bytes()).is_none());
    assert_eq!(read(nested), None);
    // No usage, a usage of the wrong shape, and a body that is not JSON.
    for body in [
        r#"{"id":"x"}"#,
        r#"{"id":"x","usage":"many"}"#,
        "usage",
        r#""usage":{"output_tokens":1}}"#,
    ] {
        assert_eq!(read(body), None, "{body}");
    }
}

#[test]
fn every_order_of_members_reads_as_the_whole_body_does() {
    let members = [
        r#""id":"msg_1""#,
        r#""content":[{"type":"tool_use","input":{"usage":{"input_tokens":9}}}]"#,
        r#""usage":{"input_tokens":4,"output_tokens":5}"#,
        r#""stop_reason":"end_turn""#,
    ];
    // All 24 orders: every choice of four indices that are all different.
    let mut seen = 0;
    for n in 0..4_usize.pow(4) {
        let order = [n % 4, n / 4 % 4, n / 16 % 4, n / 64];
        if (0..4).any(|i| !order.contains(&i)) {
            continue;
        }
        let body = format!("{{{}}}", order.map(|i| members[i]).join(","));
        assert_eq!(read(&body), Some((Some(4), 5)), "{body}");
        assert_eq!(read(&body), whole(&body), "{body}");
        seen += 1;
    }
    assert_eq!(seen, 24);
}
