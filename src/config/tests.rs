use super::*;

#[test]
fn empty_config_is_all_defaults() {
    let config = Config::parse("").unwrap();
    assert_eq!(config.server.port, 8745);
    assert_eq!(config.server.max_body_bytes, 33_554_432);
    assert_eq!(config.security.ip_block_after_failures, 10);
}

#[test]
fn spec_example_parses() {
    let text = r#"
[server]
host = "127.0.0.1"
port = 8745
max_body_bytes = 33554432

[security]
ip_block_after_failures = 10
ip_block_window_s = 60
ip_block_duration_s = 900

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "https://api.anthropic.com"
api_key_env = "ANTHROPIC_API_KEY"
models = ["claude-*"]

[[models]]
id = "my-model"
provider = "openai"
upstream_id = "gpt-4.1-mini"
aliases = ["mm"]
input_per_mtok = 0.4
output_per_mtok = 1.6
context_window = 1047576

[[keys]]
name = "ci"
key = "izzi-ci-0000000000"
plan = "pro"
monthly_budget_usd = 50.0
credits_usd = 100.0
rpm = 600
"#;
    let config = Config::parse(text).unwrap();
    assert_eq!(config.providers[0].kind, Kind::Anthropic);
    assert_eq!(config.keys[0].credits_usd, Some(Decimal::from(100)));
    assert_eq!(config.models[0].input_per_mtok.unwrap().to_string(), "0.4");
}

/// Every `toml` block of README.md and docs/config.md is a config that loads, so the
/// documented fields and values stay the real ones.
#[test]
fn documented_configs_parse() {
    for (doc, text) in [
        ("README.md", include_str!("../../README.md")),
        ("docs/config.md", include_str!("../../docs/config.md")),
    ] {
        let blocks: Vec<&str> = text
            .split("```toml\n")
            .skip(1)
            .map(|rest| rest.split("```").next().unwrap())
            .collect();
        assert!(!blocks.is_empty(), "{doc} has no toml block");
        for block in blocks {
            if let Err(err) = Config::parse(block) {
                panic!("a config in {doc} does not load: {err:#}\n{block}");
            }
        }
    }
}

#[test]
fn state_defaults_to_embedded_and_checks_its_urls() {
    let config = Config::parse("").unwrap();
    assert_eq!(config.state.redis_url, None);
    assert_eq!(config.state.postgres_url, None);
    assert_eq!(config.state.on_unavailable, OnUnavailable::Closed);
    assert_eq!(config.state.sync, Synchronous::Normal);
    let config = Config::parse(
        "[state]\nredis_url = \"redis://127.0.0.1:6379\"\npostgres_url = \"postgres://izzi@db/izzi\"\non_unavailable = \"open\"\nlease_s = 5\nsync = \"full\"\n",
    )
    .unwrap();
    assert_eq!(config.state.on_unavailable, OnUnavailable::Open);
    assert_eq!(config.state.lease_s, 5);
    assert_eq!(config.state.sync, Synchronous::Full);
    let err = Config::parse("[state]\nredis_url = \"http://x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`state.redis_url`"), "{err}");
    let err = Config::parse("[state]\npostgres_url = \"mysql://u:secret@x/db\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`state.postgres_url`") && !err.contains("secret"),
        "{err}"
    );
    let err = Config::parse("[state]\non_unavailable = \"maybe\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2") && err.contains("maybe"), "{err}");
}

#[test]
fn key_names_follow_the_rule_of_created_keys_so_none_is_the_setup_key() {
    let key = |name: &str| format!("[[keys]]\nname = \"{name}\"\nkey = \"izzi-0000000000\"\n");
    assert!(Config::parse(&key("personal")).is_ok());
    assert!(!valid_key_name(SETUP_KEY_NAME));
    for bad in [SETUP_KEY_NAME, "", "two words"] {
        let err = Config::parse(&key(bad)).unwrap_err().to_string();
        assert!(
            err.contains("`keys[0].name`") && err.contains("not a valid key name"),
            "{err}"
        );
    }
    assert!(Config::parse("").unwrap().security.accept_stored_key);
    let off = Config::parse("[security]\naccept_stored_key = false\n").unwrap();
    assert!(!off.security.accept_stored_key);
}

#[test]
fn the_admin_key_is_long_and_no_client_key_and_masked() {
    let admin = "izzi-admin-0123456789abcdef";
    let ok = Config::parse(&format!("[dashboard]\nadmin_key = \"{admin}\"\n")).unwrap();
    assert_eq!(ok.dashboard.admin_key.as_deref(), Some(admin));
    assert_eq!(
        ok.masked().dashboard.admin_key.as_deref(),
        Some(masked::MASK)
    );
    let short = Config::parse("[dashboard]\nadmin_key = \"short\"\n").unwrap_err();
    assert!(short.to_string().contains("at least 16"), "{short}");
    let shared = Config::parse(&format!(
        "[dashboard]\nadmin_key = \"{admin}\"\n[[keys]]\nname = \"a\"\nkey = \"{admin}\"\n"
    ))
    .unwrap_err();
    assert!(
        shared.to_string().contains("not be a client key"),
        "{shared}"
    );
}

#[test]
fn a_parse_error_never_shows_a_key() {
    let err = Config::parse(
        "[[keys]]\nname = \"ci\"\nkey = \"izzi-ci-secret-0123456789\"\nplan = \"gold\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("line 4") && err.contains("gold"), "{err}");
    let err = Config::parse("[[keys]]\nname = \"ci\"\nkey = \"izzi-ci-secret-0123456789\" x\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 3"), "{err}");
    assert!(!err.contains("secret-0123456789"), "{err}");
}

#[test]
fn errors_name_line_and_field() {
    let err = Config::parse("[server]\nport = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("port"), "{err}");
    let err = Config::parse("[server]\n\nprot = 1\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 3") && err.contains("prot"), "{err}");
    let err = Config::parse("[[providers]]\nname='a'\nkind='gemini'\nbase_url='http://x'\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 3") && err.contains("gemini"), "{err}");
}
