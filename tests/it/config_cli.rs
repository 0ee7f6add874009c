//! `izzi config check` and `izzi config schema` on the real binary.

use tempfile::TempDir;

use crate::count_tokens::izzi;

const SECRETS: [&str; 4] = [
    "sk-ant-upstream-secret",
    "izzi-ci-client-secret-0000",
    "pg-password-secret",
    "redis-password-secret",
];

fn config_file(home: &TempDir, text: &str) -> String {
    let path = home.path().join("team.toml");
    std::fs::write(&path, text).expect("write the config");
    path.to_str().expect("a UTF-8 temp path").to_owned()
}

#[test]
fn check_prints_the_effective_config_with_every_secret_masked() {
    let home = TempDir::new().unwrap();
    let path = config_file(
        &home,
        r#"
[server]
port = 9000

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "https://api.anthropic.com"
api_key = "sk-ant-upstream-secret"
models = ["claude-*"]

[[keys]]
name = "ci"
key = "izzi-ci-client-secret-0000"
credits_usd = 12.5

[state]
postgres_url = "postgres://izzi:pg-password-secret@db.internal:5432/izzi"
redis_url = "redis://:redis-password-secret@cache.internal:6379/0"
"#,
    );
    let out = izzi(&home)
        .args(["config", "check", "--config", &path])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    for secret in SECRETS {
        assert!(!stdout.contains(secret), "{secret} printed:\n{stdout}");
        assert!(!stderr.contains(secret), "{secret} printed:\n{stderr}");
    }
    assert!(stderr.contains("team.toml` is valid"), "{stderr}");

    let effective: toml::Table = toml::from_str(&stdout).expect("the output is TOML");
    // What the file set, and the defaults it did not.
    assert_eq!(effective["server"]["port"].as_integer(), Some(9000));
    assert_eq!(
        effective["server"]["max_body_bytes"].as_integer(),
        Some(33_554_432)
    );
    assert_eq!(
        effective["security"]["ip_block_duration_s"].as_integer(),
        Some(900)
    );
    assert_eq!(effective["state"]["lease_s"].as_integer(), Some(15));
    assert_eq!(effective["keys"][0]["plan"].as_str(), Some("pro"));
    assert_eq!(effective["keys"][0]["credits_usd"].as_float(), Some(12.5));
    // The secrets, masked where they stood.
    assert_eq!(effective["providers"][0]["api_key"].as_str(), Some("*****"));
    assert_eq!(effective["keys"][0]["key"].as_str(), Some("*****"));
    assert_eq!(
        effective["state"]["postgres_url"].as_str(),
        Some("postgres://izzi:*****@db.internal:5432/izzi")
    );
    assert_eq!(
        effective["state"]["redis_url"].as_str(),
        Some("redis://:*****@cache.internal:6379/0")
    );
}

#[test]
fn check_without_a_file_prints_the_defaults() {
    let home = TempDir::new().unwrap();
    let out = izzi(&home).args(["config", "check"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let effective: toml::Table = toml::from_slice(&out.stdout).unwrap();
    assert_eq!(effective["server"]["port"].as_integer(), Some(8745));
    assert!(String::from_utf8_lossy(&out.stderr).contains("embedded defaults"));
}

#[test]
fn check_refuses_what_serve_would_refuse_naming_the_file_and_field() {
    let home = TempDir::new().unwrap();
    // A parse error: file, line and field.
    let path = config_file(&home, "[server]\nport = 9000\nprot = 1\n");
    let out = izzi(&home)
        .args(["config", "check", "--config", &path])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("team.toml") && stderr.contains("line 3") && stderr.contains("prot"),
        "{stderr}"
    );

    // Past parsing: a model whose alias another model already has, found by building the
    // catalog as `izzi serve` does.
    let path = config_file(
        &home,
        "[[models]]\nid = \"mine\"\nprovider = \"anthropic\"\naliases = [\"sonnet\"]\n",
    );
    let out = izzi(&home)
        .args(["config", "check", "--config", &path])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("team.toml") && stderr.contains("`sonnet`"),
        "{stderr}"
    );

    let out = izzi(&home)
        .args(["config", "check", "--config", "/nonexistent/izzi.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/izzi.toml"));
}

#[test]
fn published_schema_is_what_the_config_types_generate() {
    let home = TempDir::new().unwrap();
    let out = izzi(&home).args(["config", "schema"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let published = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/config.schema.json"),
    )
    .unwrap();
    assert!(
        String::from_utf8(out.stdout).unwrap() == published,
        "docs/config.schema.json is stale: run `izzi config schema > docs/config.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&published).unwrap();
    let server = &schema["definitions"]["Server"];
    assert_eq!(server["additionalProperties"], false);
    assert_eq!(server["properties"]["port"]["default"], 8745);
    assert!(
        schema["definitions"]["State"]["properties"]["postgres_url"]["description"]
            .as_str()
            .unwrap()
            .contains("postgres://")
    );
}
