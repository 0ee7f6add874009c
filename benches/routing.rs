//! Routing with 20 `[[routes]]` rules: what the gateway does per request between reading the
//! body and translating it (top-level parse, the client tool, rule matching, catalog lookup),
//! against the same without rules (parse, catalog lookup). Three requests: Claude Code's background request (the first rule with a model glob that
//! matches), a main-model turn that no rule takes (all 20 tried, thinking and tools read from the
//! body), and a long prompt (its size estimated). Run with `cargo bench --bench routing`; what
//! rules add is the difference between a `route` line and its `without rules` line.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use izzi::BenchRouter;
use serde_json::json;

/// Twenty rules as a team might write them: per-tool and per-key rules, task slots, size.
fn config() -> String {
    let mut text = String::new();
    let tools = ["codex", "cline", "cursor", "opencode", "zed"];
    for (i, tool) in tools.iter().enumerate() {
        text.push_str(&format!(
            "[[routes]]\nname = \"tool-{i}\"\ntool = \"{tool}\"\nmodel = \"gpt-*\"\nto = \"gpt-4.1-mini\"\n"
        ));
    }
    for i in 0..8 {
        text.push_str(&format!(
            "[[routes]]\nname = \"team-{i}\"\nkey = [\"team-{i}\", \"ci-{i}\"]\nto = \"gpt-4.1\"\n"
        ));
    }
    text.push_str(
        r#"
[[routes]]
name = "background"
model = "claude-*haiku*"
tool = "claude-code"
to = "gpt-4.1-mini"
[[routes]]
name = "think"
thinking = true
model = "claude-opus*"
to = "o3"
[[routes]]
name = "search"
has_tools = ["web_search"]
to = "sonnet"
[[routes]]
name = "vision"
has_images = true
model = "gpt-*"
to = "gpt-4.1"
[[routes]]
name = "grok"
model = "grok-*"
to = ["grok-4", "gpt-4.1"]
[[routes]]
name = "gemini"
model = "gemini-*"
to = "gemini-2.5-pro"
[[routes]]
name = "long"
min_input_tokens = 60000
to = "gemini-2.5-pro"
"#,
    );
    text
}

/// A Claude Code-like body: a system prompt, a few turns, a few tools.
fn body(model: &str, turns: usize, extra: &str) -> Vec<u8> {
    let messages: Vec<_> = (0..turns)
        .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": format!("turn {i}: {extra} please look at src/main.rs and fix the failing test")}))
        .collect();
    let tools: Vec<_> = ["Read", "Edit", "Bash", "Grep"]
        .iter()
        .map(|name| json!({"name": name, "description": "A tool.", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}))
        .collect();
    serde_json::to_vec(&json!({
        "model": model,
        "max_tokens": 32000,
        "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."}],
        "messages": messages,
        "tools": tools,
        "thinking": {"type": "enabled", "budget_tokens": 4000},
    }))
    .expect("a body")
}

fn bench(c: &mut Criterion) {
    let router = BenchRouter::new(&config()).expect("the benchmark's config loads");
    let agent = "claude-cli/2.0.14 (external, cli)";
    let cases = [
        ("background", body("claude-3-5-haiku-20241022", 1, "")),
        ("no rule (20 tried)", body("claude-sonnet-4-5", 6, "")),
        (
            "long prompt",
            body("claude-sonnet-4-5", 2, &"word ".repeat(60_000)),
        ),
    ];
    let mut group = c.benchmark_group("routing, 20 rules");
    for (name, body) in &cases {
        assert!(
            router.route(body, agent, "@setup").is_some(),
            "{name} routes"
        );
        group.bench_function(format!("{name}: without rules"), |b| {
            b.iter(|| router.baseline(black_box(body)));
        });
        group.bench_function(format!("{name}: route"), |b| {
            b.iter(|| router.route(black_box(body), agent, "@setup"));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
