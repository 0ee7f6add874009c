//! `izzi models` on the real binary: the table and the stable `--json` shape.

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::count_tokens::izzi;

fn models_json(home: &TempDir) -> Value {
    let out = izzi(home)
        .args(["models", "--json"])
        .output()
        .expect("models JSON");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("models JSON")
}

#[test]
fn json_lists_every_model_with_exact_prices() {
    let home = TempDir::new().unwrap();
    let listing = models_json(&home);
    let models = listing["models"].as_array().unwrap();
    assert!(models.len() >= 11);
    let sonnet = models
        .iter()
        .find(|m| m["id"] == "claude-sonnet-4-20250514")
        .unwrap();
    assert_eq!(
        sonnet,
        &json!({
            "id": "claude-sonnet-4-20250514",
            "display_name": "Claude Sonnet 4",
            "provider": "anthropic",
            "aliases": ["sonnet", "claude-sonnet-4", "claude-sonnet-4-0"],
            "input_per_mtok": "3",
            "output_per_mtok": "15",
            "cache_read_per_mtok": "0.3",
            "cache_write_per_mtok": "3.75",
            "context_window": 200_000,
            "max_output": 64000,
            "tokenizer": "claude",
            "reasoning": true,
        })
    );
    let gpt5 = models.iter().find(|m| m["id"] == "gpt-5").unwrap();
    assert_eq!(gpt5["cache_write_per_mtok"], Value::Null);
    assert_eq!(gpt5["reasoning"], true);
    // Every entry has the same documented keys.
    let keys = |m: &Value| {
        let mut k: Vec<String> = m.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert!(models.iter().all(|m| keys(m) == keys(sonnet)));
}

#[test]
fn table_shows_aliases_prices_context_and_provider() {
    let home = TempDir::new().unwrap();
    let out = izzi(&home).arg("models").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().next().unwrap();
    for column in [
        "MODEL",
        "PROVIDER",
        "INPUT $/M",
        "OUTPUT $/M",
        "CONTEXT",
        "ALIASES",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let sonnet = text
        .lines()
        .find(|l| l.starts_with("claude-sonnet-4-20250514"))
        .unwrap();
    for cell in [
        "anthropic",
        "$3",
        "$15",
        "200,000",
        "64,000",
        "sonnet, claude-sonnet-4",
    ] {
        assert!(sonnet.contains(cell), "{sonnet}");
    }
}

#[test]
fn config_models_are_listed() {
    let home = TempDir::new().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        "[[models]]\nid = \"local-llama\"\nprovider = \"ollama\"\naliases = [\"llama\"]\ninput_per_mtok = 0.0\noutput_per_mtok = 0.0\n",
    )
    .unwrap();
    let listing = models_json(&home);
    let local = listing["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "local-llama")
        .unwrap();
    assert_eq!(local["aliases"], json!(["llama"]));
    assert_eq!(local["input_per_mtok"], "0");
}
