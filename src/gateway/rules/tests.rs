use super::*;

fn rules(text: &str) -> Rules {
    Rules::new(&Config::parse(text).unwrap().routes).unwrap()
}

/// Rules as Claude Code Router users write them: background, think, long context, web
/// search, images, then a per-key and per-tool default.
const RULES: &str = r#"
[[routes]]
name = "background"
model = "claude-*haiku*"
to = "gpt-4.1-mini"
[[routes]]
name = "think"
thinking = true
to = "o3"
[[routes]]
name = "long"
min_input_tokens = 2000
to = "gemini-2.5-pro"
[[routes]]
name = "search"
has_tools = ["web_search"]
to = "sonnet"
[[routes]]
name = "vision"
has_images = true
to = "gpt-4.1"
[[routes]]
name = "ci"
key = ["ci", "nightly"]
tool = "codex"
to = ["gpt-4.1-mini", "gpt-4.1"]
[[routes]]
name = "cline"
tool = ["cline", "cursor"]
to = "sonnet"
"#;

#[test]
fn the_first_rule_whose_conditions_all_hold_decides() {
    let rules = rules(RULES);
    let long = format!(
        r#"{{"model":"sonnet","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "word ".repeat(2000)
    );
    let table: &[(&str, Tool, &str, &str, Option<&str>)] = &[
        // (model, tool, key, body members, expected rule)
        (
            "claude-3-5-haiku-20241022",
            Tool::ClaudeCode,
            "k",
            "",
            Some("background"),
        ),
        (
            "claude-haiku-4-5",
            Tool::Other,
            "k",
            r#","thinking":{"type":"enabled","budget_tokens":1024}"#,
            Some("background"),
        ),
        ("claude-sonnet-4-5", Tool::ClaudeCode, "k", "", None),
        (
            "sonnet",
            Tool::ClaudeCode,
            "k",
            r#","thinking":{"type":"enabled","budget_tokens":1024}"#,
            Some("think"),
        ),
        (
            "sonnet",
            Tool::ClaudeCode,
            "k",
            r#","thinking":{"type":"disabled"}"#,
            None,
        ),
        (
            "gpt-5",
            Tool::Codex,
            "k",
            r#","reasoning":{"effort":"high"}"#,
            Some("think"),
        ),
        (
            "gpt-5",
            Tool::Codex,
            "k",
            r#","reasoning":{"effort":"none"}"#,
            None,
        ),
        (
            "gpt-5",
            Tool::OpenaiSdk,
            "k",
            r#","reasoning_effort":"low""#,
            Some("think"),
        ),
        (
            "sonnet",
            Tool::ClaudeCode,
            "k",
            r#","tools":[{"type":"web_search_20250305","name":"web_search"}]"#,
            Some("search"),
        ),
        (
            "gpt-5",
            Tool::Codex,
            "k",
            r#","tools":[{"type":"web_search_preview"}]"#,
            Some("search"),
        ),
        (
            "gpt-5",
            Tool::Codex,
            "k",
            r#","tools":[{"type":"function","function":{"name":"web_search"}}]"#,
            Some("search"),
        ),
        (
            "gpt-5",
            Tool::Codex,
            "k",
            r#","tools":[{"type":"function","function":{"name":"web_searcher"}}]"#,
            None,
        ),
        ("gpt-5", Tool::Codex, "ci", "", Some("ci")),
        ("gpt-5", Tool::ClaudeCode, "ci", "", None),
        ("gpt-5", Tool::Codex, "other", "", None),
        ("gpt-5", Tool::Cursor, "k", "", Some("cline")),
        ("gpt-5", Tool::Cline, "nightly", "", Some("cline")),
    ];
    for &(model, tool, key, members, expected) in table {
        let raw = format!(
            r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]{members}}}"#
        );
        let body = Body::parse(raw.as_bytes()).unwrap();
        let picked = rules.pick(&Request::new(model, tool, key, &body, raw.as_bytes()));
        assert_eq!(
            picked.map(|r| &*r.name),
            expected,
            "{model} {tool:?} {key} {members}"
        );
    }
    let body = Body::parse(long.as_bytes()).unwrap();
    let picked = rules.pick(&Request::new(
        "sonnet",
        Tool::Zed,
        "k",
        &body,
        long.as_bytes(),
    ));
    assert_eq!(picked.map(|r| &*r.name), Some("long"));
    let image = r#"{"model":"sonnet","messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x/a.png"}}]}]}"#;
    let body = Body::parse(image.as_bytes()).unwrap();
    let picked = rules.pick(&Request::new(
        "sonnet",
        Tool::Zed,
        "k",
        &body,
        image.as_bytes(),
    ));
    assert_eq!(picked.map(|r| &*r.name), Some("vision"));
    // A short body whose two images count 3,200 tokens is a long prompt all the same.
    let images = image.replace(
        "}]}]}",
        r#"},{"type":"image","source":{"type":"url","url":"https://x/b.png"}}]}]}"#,
    );
    let body = Body::parse(images.as_bytes()).unwrap();
    let picked = rules.pick(&Request::new(
        "sonnet",
        Tool::Zed,
        "k",
        &body,
        images.as_bytes(),
    ));
    assert_eq!(picked.map(|r| &*r.name), Some("long"), "{images}");
}

#[test]
fn explain_shows_each_conditions_value() {
    let rules = rules(RULES);
    let raw = r#"{"model":"gpt-5","messages":[],"tools":[{"type":"function","function":{"name":"read"}}]}"#;
    let body = Body::parse(raw.as_bytes()).unwrap();
    let request = Request::new("gpt-5", Tool::Codex, "ci", &body, raw.as_bytes());
    let ci = &rules.all()[5];
    assert_eq!(ci.to, ["gpt-4.1-mini", "gpt-4.1"]);
    let checks = ci.explain(&request);
    let shown: Vec<(&str, &str, &str, bool)> = checks
        .iter()
        .map(|c| (c.condition, c.wanted.as_str(), c.actual.as_str(), c.holds))
        .collect();
    assert_eq!(
        shown,
        [
            ("tool", "codex", "codex", true),
            ("key", "ci, nightly", "ci", true)
        ]
    );
    let search = rules.all()[3].explain(&request);
    assert_eq!(
        (search[0].actual.as_str(), search[0].holds),
        ("function, read", false)
    );
    assert_eq!(rules.all()[0].header, "background");
}

#[test]
fn routes_to_unknown_models_and_fallback_cycles_are_refused_at_start() {
    let err = |text: &str| {
        let config = Config::parse(text).unwrap();
        format!(
            "{:#}",
            crate::gateway::Router::new(&config, None).unwrap_err()
        )
    };
    let provider = "[[providers]]\nname = \"a\"\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:1\"\nmodels = [\"claude-*\"]\n";
    let unknown = err(&format!(
        "{provider}[[routes]]\nmodel = \"x\"\nto = [\"sonnet\", \"gpt-9\"]\n"
    ));
    assert!(
        unknown.contains("line 8, `routes[0].to`: the model `gpt-9` is neither in the catalog nor matched by a provider's `models`"),
        "{unknown}"
    );
    let model = |id: &str, fallbacks: &str| {
        format!("[[models]]\nid = \"{id}\"\nprovider = \"a\"\nfallbacks = [{fallbacks}]\n")
    };
    let cycle = err(&format!(
        "{provider}{}{}{}",
        model("m1", "\"m2\""),
        model("m2", "\"sonnet\", \"m3\""),
        model("m3", "\"m1\"")
    ));
    assert!(
        cycle.contains(
            "line 9, `models[0].fallbacks`: the fallbacks form a cycle: m1 → m2 → m3 → m1"
        ),
        "{cycle}"
    );
    let own = err(&format!("{provider}{}", model("m1", "\"m1\"")));
    assert!(own.contains("m1 → m1"), "{own}");
    // A chain that ends is fine, and so is a route to a model only a glob knows.
    let config = Config::parse(&format!(
        "{provider}{}{}[[routes]]\nto = \"claude-new-9\"\n",
        model("m1", "\"m2\""),
        model("m2", "\"sonnet\"")
    ))
    .unwrap();
    crate::gateway::Router::new(&config, None).unwrap();
}

#[test]
fn unnamed_rules_are_named_by_their_place() {
    let rules = rules("[[routes]]\nmodel = \"a*\"\nto = \"sonnet\"\n[[routes]]\nto = \"opus\"\n");
    let names: Vec<&str> = rules.all().iter().map(|r| &*r.name).collect();
    assert_eq!(names, ["routes[0]", "routes[1]"]);
}

#[test]
fn config_checks_name_the_line_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "[[routes]]\nname = \"a\"\nto = \"sonnet\"\n\n[[routes]]\nname = \"b\"\nmodel = \"x*\"\nto = \"opus\"\n",
            "line 8, `routes[1].to`: the route `b` can never match: every request it matches is taken by the earlier route `a` (line 3, `routes[0].to`)",
        ),
        (
            "[[routes]]\nmodel = \"claude-*\"\nto = \"sonnet\"\n[[routes]]\nmodel = \"claude-haiku-4-5\"\nthinking = true\nto = \"opus\"\n",
            "line 7, `routes[1].to`: the route `routes[1]` can never match",
        ),
        (
            "[[routes]]\nkey = [\"a\", \"b\"]\nmin_input_tokens = 10\nto = \"sonnet\"\n[[routes]]\nkey = \"a\"\nmin_input_tokens = 50\nhas_images = true\nto = \"opus\"\n",
            "line 9, `routes[1].to`: the route `routes[1]` can never match",
        ),
        (
            "[[routes]]\nhas_tools = [\"web_search\", \"fetch\"]\nto = \"sonnet\"\n[[routes]]\nhas_tools = [\"fetch\"]\ntool = \"zed\"\nto = \"opus\"\n",
            "can never match",
        ),
        (
            "[[routes]]\ntool = \"vim\"\nto = \"sonnet\"\n",
            "line 2, `routes[0].tool`: `vim` is not a tool izzi knows",
        ),
        (
            "[[routes]]\nmodel = \"[a\"\nto = \"sonnet\"\n",
            "line 2, `routes[0].model`: `[a` is not a valid glob",
        ),
        (
            "[[routes]]\nto = []\n",
            "line 2, `routes[0].to`: name the model",
        ),
        (
            "[[routes]]\nname = \"a b\"\nto = \"x\"\n",
            "line 2, `routes[0].name`: `a b` is not a valid route name",
        ),
        (
            "[[routes]]\nname = \"a\"\nmodel = \"x\"\nto = \"x\"\n[[routes]]\nname = \"a\"\nto = \"y\"\n",
            "line 6, `routes[1].name`: the route name `a` is used twice",
        ),
        ("[breaker]\nwindow_s = 0\n", "`breaker.window_s`"),
    ];
    for (text, expected) in cases {
        let err = format!("{:#}", Config::parse(text).unwrap_err());
        assert!(err.contains(expected), "{text}\n{err}");
    }
    // Narrower earlier rules leave later ones reachable.
    for text in [
        "[[routes]]\nmodel = \"claude-haiku-4-5\"\nto = \"sonnet\"\n[[routes]]\nmodel = \"claude-*\"\nto = \"opus\"\n",
        "[[routes]]\nthinking = true\nto = \"o3\"\n[[routes]]\nthinking = false\nto = \"opus\"\n",
        "[[routes]]\nmin_input_tokens = 100\nto = \"o3\"\n[[routes]]\nmin_input_tokens = 50\nto = \"opus\"\n",
        "[[routes]]\ntool = \"codex\"\nto = \"o3\"\n[[routes]]\ntool = [\"codex\", \"zed\"]\nto = \"opus\"\n",
    ] {
        Config::parse(text).unwrap();
    }
}
