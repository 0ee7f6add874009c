//! Golden files: one input and one expected output per case, walked by [`golden_files`].
//!
//! A golden directory is named `<what>-<client format>-<provider kind>`, `what` being
//! `request`, `response` or `stream`. A case is `NAME.in.json` (or `.in.sse`) with
//! `NAME.out.json` (`.out.sse`) beside it, plus optional `NAME.request.json` (the client's
//! request, for responses and streams) and `NAME.target.json` (`reasoning`, `max_output`, `session`, `caching`, `web_search`).
//! `IZZI_BLESS=1 cargo test --lib translate::` rewrites the expected files; review the diff.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;

fn settings(path: &Path) -> Settings {
    let value: Value = fs_err::read(path)
        .ok()
        .map_or(Value::Null, |b| serde_json::from_slice(&b).unwrap());
    Settings {
        reasoning: value["reasoning"].as_bool().unwrap_or(false),
        max_output: value["max_output"]
            .as_u64()
            .map_or(8192, |v| u32::try_from(v).unwrap_or(u32::MAX)),
        session: value["session"]
            .as_str()
            .map(|s| &*Box::leak(s.to_owned().into_boxed_str())),
        web_search: value["web_search"].as_bool().unwrap_or(false),
        caching: if value["caching"].as_bool() == Some(false) {
            Caching::Off
        } else {
            Caching::Auto
        },
    }
}

/// The output of one case, as it is written to its expected file.
fn run_case(dir: &str, input: &Path) -> String {
    let mut parts = dir.splitn(3, '-');
    let what = parts.next().unwrap();
    let format = format_of(parts.next().unwrap());
    let kind = kind_of(parts.next().unwrap());
    let stem = input
        .to_str()
        .unwrap()
        .split(".in.")
        .next()
        .unwrap()
        .to_owned();
    let settings = settings(Path::new(&format!("{stem}.target.json")));
    let raw = fs_err::read(input).unwrap();
    match what {
        "request" => {
            let body = Body::parse(&raw).unwrap();
            let target = target(&body, &settings);
            match request(format, kind, &body, &target) {
                Ok(prepared) => {
                    let value: Value = serde_json::from_slice(&prepared.body).unwrap();
                    serde_json::to_string_pretty(&value).unwrap() + "\n"
                }
                Err(err) => format!("error: {err}\n"),
            }
        }
        "response" | "stream" => {
            let request_raw = fs_err::read(format!("{stem}.request.json"))
                .unwrap_or_else(|_| br#"{"model":"client-model","messages":[]}"#.to_vec());
            let body = Body::parse(&request_raw).unwrap();
            let target = target(&body, &settings);
            if what == "response" {
                let (out, usage) = response(format, kind, &raw, &target).unwrap();
                let body: Value = serde_json::from_slice(&out).unwrap();
                let both = json!({"izzi_usage": usage, "body": body});
                serde_json::to_string_pretty(&both).unwrap() + "\n"
            } else {
                let (out, usage, completed) = run_stream(format, kind, &target, &[&raw]);
                format!(
                    "{out}: izzi usage={} completed={completed}\n",
                    serde_json::to_string(&usage).unwrap()
                )
            }
        }
        other => panic!("unknown golden kind `{other}`"),
    }
}

/// Every case under `tests/golden/`: each input's translation must equal its expected file.
#[test]
fn golden_files() {
    let bless = std::env::var_os("IZZI_BLESS").is_some();
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut dirs: Vec<_> = fs_err::read_dir(golden_root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let dir_name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let mut inputs: Vec<_> = fs_err::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_str().unwrap().contains(".in."))
            .collect();
        inputs.sort();
        for input in inputs {
            cases += 1;
            let actual = run_case(&dir_name, &input);
            let expected_path = PathBuf::from(input.to_str().unwrap().replace(".in.", ".out."));
            let expected = fs_err::read_to_string(&expected_path).unwrap_or_default();
            if actual != expected {
                if bless {
                    fs_err::write(&expected_path, &actual).unwrap();
                } else {
                    failures.push(format!(
                        "{}:\n--- expected\n{expected}\n--- actual\n{actual}",
                        expected_path.display()
                    ));
                }
            }
        }
    }
    assert!(cases >= 40, "only {cases} golden cases found");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
