//! `izzi status [--json]`: each tool (found, where, configured, by izzi or not, manual steps),
//! where the key lives, and whether the endpoint answers `GET /v1/models` with that key.

use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::output;
use crate::secrets::{self, Location, Secret};
use crate::setup::{self, Ctx, Files, Layout, Target, backup, tools};

/// `--json` output; its field names are stable.
#[derive(Debug, Serialize)]
struct Status {
    key: Key,
    endpoint: Endpoint,
    /// The gateway as a service: installed or not, running or not (`izzi service status`).
    service: super::service::Summary,
    tools: Vec<ToolStatus>,
}

#[derive(Debug, Serialize)]
struct Key {
    stored: bool,
    /// `keyring` or `file`.
    store: Option<&'static str>,
    path: Option<String>,
}

#[derive(Debug, Serialize)]
struct Endpoint {
    url: String,
    /// The endpoint answered 2xx with the stored key.
    ok: bool,
    status: Option<u16>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct ToolStatus {
    id: &'static str,
    name: &'static str,
    found: bool,
    #[serde(rename = "where")]
    places: Vec<String>,
    /// Every file izzi would write already points at the endpoint.
    configured: bool,
    /// izzi setup changed this tool's files (and `izzi setup --undo` would restore them).
    by_izzi: bool,
    /// Some of the tool's setup is done by hand (see `izzi setup`).
    manual: bool,
    files: Vec<String>,
    problems: Vec<String>,
}

pub(crate) fn run(args: &StatusArgs) -> Result<()> {
    let layout = Layout::detect()?;
    let izzi_home = crate::env::izzi_home()?;
    let manifest = backup::Store::new(&izzi_home).load()?;
    let stored = secrets::load()?;
    let base = manifest
        .base_url
        .clone()
        .unwrap_or_else(|| crate::gateway::HOSTED_BASE.to_owned());
    let target = Target {
        base: base.clone(),
        key: stored
            .as_ref()
            .map_or_else(|| Secret::new(""), |(key, _)| key.clone()),
        izzi: setup::stable_izzi(),
        izzi_home,
    };
    let files = Files::disk();
    let ctx = Ctx::new(&layout, &target, &files);
    let tools = tools::all()
        .into_iter()
        .map(|tool| {
            let detection = tool.detect(&layout);
            let by_izzi = manifest.files.iter().any(|e| e.tool == tool.id());
            if !detection.found() {
                return ToolStatus {
                    id: tool.id(),
                    name: tool.name(),
                    found: false,
                    places: Vec::new(),
                    configured: false,
                    by_izzi,
                    manual: false,
                    files: Vec::new(),
                    problems: Vec::new(),
                };
            }
            let plan = tool.plan(&ctx);
            ToolStatus {
                id: tool.id(),
                name: tool.name(),
                found: true,
                places: detection.places,
                configured: !plan.files.is_empty()
                    && plan.edits.is_empty()
                    && plan.problems.is_empty(),
                by_izzi,
                manual: !plan.manual.is_empty(),
                files: plan.files.iter().map(|f| layout.show(f)).collect(),
                problems: plan.problems,
            }
        })
        .collect();
    let key = Key {
        stored: stored.is_some(),
        store: stored.as_ref().map(|(_, loc)| match loc {
            Location::Keyring => "keyring",
            Location::File(_) => "file",
        }),
        path: stored.as_ref().and_then(|(_, loc)| match loc {
            Location::Keyring => None,
            Location::File(path) => Some(path.display().to_string()),
        }),
    };
    let endpoint = check(&base, stored.as_ref().map(|(key, _)| key));
    let status = Status {
        key,
        endpoint,
        service: super::service::Summary::read()?,
        tools,
    };
    if args.json {
        output::json(&status);
    } else {
        print(&status, stored.as_ref().map(|(_, loc)| loc));
    }
    Ok(())
}

fn print(status: &Status, location: Option<&Location>) {
    match location {
        Some(location) => output::line(format_args!("Key: stored in {location}")),
        None => output::line("Key: none stored; run `izzi setup --key KEY`"),
    }
    let e = &status.endpoint;
    let verdict = match (e.ok, e.status, &e.error) {
        (true, Some(code), _) => format!("answers (HTTP {code})"),
        (false, Some(code), _) => {
            format!("answers HTTP {code}: check the key with `izzi key print`")
        }
        (_, _, Some(error)) => format!("does not answer: {error}"),
        _ => "not checked".to_owned(),
    };
    output::line(format_args!("Endpoint: {} {verdict}", e.url));
    output::line(format_args!("Service: {}", status.service.text()));
    output::line("Tools:");
    for tool in &status.tools {
        let state = if tool.found {
            let mut parts = Vec::new();
            if tool.configured {
                parts.push(if tool.by_izzi {
                    "configured by izzi"
                } else {
                    "configured"
                });
            } else if !tool.files.is_empty() {
                parts.push("not configured");
            }
            if tool.manual {
                parts.push("manual step (see `izzi setup`)");
            }
            if !tool.problems.is_empty() {
                parts.push("has a file izzi cannot edit");
            }
            format!("{} [{}]", parts.join(", "), tool.places.join(", "))
        } else {
            "not found".to_owned()
        };
        output::line(format_args!("  {:<12} {state}", tool.id));
    }
}

/// `GET {base}/v1/models` with the key, within a few seconds.
fn check(base: &str, key: Option<&Secret>) -> Endpoint {
    let url = format!("{base}/v1/models");
    let Some(key) = key else {
        return Endpoint {
            url,
            ok: false,
            status: None,
            error: Some("no key is stored".to_owned()),
        };
    };
    let result = (|| -> Result<u16> {
        super::install_tls_provider();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?;
            let response = client.get(&url).bearer_auth(key.expose()).send().await?;
            Ok(response.status().as_u16())
        })
    })();
    match result {
        Ok(code) => Endpoint {
            url,
            ok: (200..300).contains(&code),
            status: Some(code),
            error: None,
        },
        Err(err) => Endpoint {
            url,
            ok: false,
            status: None,
            error: Some(format!("{err:#}")),
        },
    }
}
