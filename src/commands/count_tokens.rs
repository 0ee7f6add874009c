//! `izzi count-tokens [--model M] [--json] [FILE|-]`: reads a request body or a text, counts its
//! input tokens offline for one model or every catalog model, and prices input and output at
//! the catalog's prices. Counting is `tokens`, prices `catalog`, printing `output`; this module
//! only reads the input and puts them together.
//!
//! Input: FILE, or stdin for `-` or when no FILE is given and stdin is not a terminal. It is a
//! JSON request body when the file name ends in `.json` or the text starts with `{` (then it must
//! parse); a JSON document that is not a request body (no `messages`, no `input`) and any other
//! text are counted as plain text, without message framing. The output range runs from 0 to the
//! request's `max_tokens` / `max_completion_tokens` / `max_output_tokens`, capped at the model's
//! `max_output`, or to `max_output` itself.
//!
//! Without `--model` every catalog model is listed, even when the body names one (SPEC): that
//! model's row is marked, and `--json` names it in `request_model`.

use std::io::{IsTerminal as _, Read as _};
use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use crate::catalog::{Catalog, Model};
use crate::cli::CountTokensArgs;
use crate::config::Config;
use crate::output::{self, UsageError};
use crate::protocol::Usage;
use crate::tokens::{self, Encoding, Prompt, Shape, Tokenizer};

/// Inputs larger than this show a progress bar (on a terminal).
const PROGRESS_BYTES: u64 = 1024 * 1024;

pub(crate) fn run(args: &CountTokensArgs) -> Result<()> {
    let (config, _) = Config::load(None)?;
    let catalog = Catalog::load(&config.models)?;
    let models: Vec<&Model> = match &args.model {
        Some(name) => vec![catalog.get(name).ok_or_else(|| {
            UsageError(format!(
                "there is no model `{name}`; `izzi models` lists the models and their aliases"
            ))
        })?],
        None => catalog.models().iter().collect(),
    };
    let input = Input::read(args.file.as_deref())?;
    let body = input.json()?;
    let shape = body.as_ref().and_then(Shape::detect);
    let prompt = match (&body, shape) {
        (Some(body), Some(_)) => Prompt::request(body),
        _ => Prompt::plain(&input.text),
    };
    tokenize(&prompt, &models);
    let request_max = body.as_ref().and_then(tokens::max_output_of);
    let request_model = body
        .as_ref()
        .and_then(|b| b.get("model"))
        .and_then(Value::as_str)
        .and_then(|name| catalog.get(name))
        .map(|m| m.id.as_str());
    let mut rows: Vec<Row<'_>> = models
        .iter()
        .map(|m| Row::new(m, &prompt, request_max))
        .collect();
    rows.sort_by(|a, b| {
        (a.input_cost_usd, a.total_cost_usd_max, a.id).cmp(&(
            b.input_cost_usd,
            b.total_cost_usd_max,
            b.id,
        ))
    });
    let report = Report {
        source: &input.source,
        shape: shape.map_or("text", Shape::name),
        request_model,
        models: rows,
    };
    if args.json {
        output::json(&report);
    } else {
        report.print(shape, args.model.is_some());
    }
    Ok(())
}

/// Runs each encoding the models need once, with a progress bar for large inputs.
fn tokenize(prompt: &Prompt<'_>, models: &[&Model]) {
    let mut encodings: Vec<Encoding> = Vec::new();
    for m in models {
        let encoding = Tokenizer::of(m).encoding;
        if !encodings.contains(&encoding) {
            encodings.push(encoding);
        }
    }
    let bytes = prompt.text_bytes();
    if bytes <= PROGRESS_BYTES {
        return;
    }
    let total = usize::try_from(bytes * encodings.len() as u64).unwrap_or(usize::MAX);
    let bar = output::progress(total, "counting tokens (bytes)");
    for encoding in encodings {
        prompt.tokenize(encoding, &mut |done| bar.inc(done));
    }
    bar.finish_and_clear();
}

/// The text to count and where it came from.
pub(super) struct Input {
    /// The path as given, or `-` for stdin.
    pub(super) source: String,
    pub(super) text: String,
}

impl Input {
    pub(super) fn read(file: Option<&Path>) -> Result<Self> {
        let path = match file {
            Some(path) if path != Path::new("-") => path,
            Some(_) => return Self::stdin(),
            None if !std::io::stdin().is_terminal() => return Self::stdin(),
            None => {
                return Err(UsageError(
                    "give a request body or text file to count, or `-` to read stdin".to_owned(),
                )
                .into());
            }
        };
        let shown = path.display();
        let bytes = fs_err::read(path).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "there is no such file".to_owned(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                std::io::ErrorKind::IsADirectory => "it is a directory".to_owned(),
                _ => {
                    std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string)
                }
            };
            anyhow!("cannot read `{shown}`: {why}; give the path of a text file or request body")
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            anyhow!("`{shown}` is not UTF-8 text; give a text file or a JSON request body")
        })?;
        Ok(Self {
            source: path.to_string_lossy().into_owned(),
            text,
        })
    }

    fn stdin() -> Result<Self> {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin as UTF-8 text")?;
        Ok(Self {
            source: "-".to_owned(),
            text,
        })
    }

    /// The parsed body, when the input is JSON (a `.json` file, or text that starts with `{`).
    pub(super) fn json(&self) -> Result<Option<Value>> {
        let named_json = Path::new(&self.source)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if !named_json && !self.text.trim_start().starts_with('{') {
            return Ok(None);
        }
        let shown = if self.source == "-" {
            "stdin"
        } else {
            &self.source
        };
        serde_json::from_str(&self.text).map(Some).map_err(|e| {
            anyhow!(
                "`{shown}` is not valid JSON: {e}; fix the request body or pass a plain-text file"
            )
        })
    }
}

/// `--json` output; see docs/cli-json.md.
#[derive(Serialize)]
struct Report<'a> {
    source: &'a str,
    shape: &'static str,
    request_model: Option<&'a str>,
    models: Vec<Row<'a>>,
}

/// One model's count and prices. Money is USD as decimal strings.
#[derive(Serialize)]
pub(super) struct Row<'a> {
    id: &'a str,
    provider: &'a str,
    tokenizer: &'a str,
    input_tokens: u64,
    exact: bool,
    pub(super) input_cost_usd: Decimal,
    pub(super) max_output_tokens: u64,
    pub(super) output_cost_usd_max: Decimal,
    pub(super) total_cost_usd_max: Decimal,
    #[serde(skip)]
    how: String,
}

impl<'a> Row<'a> {
    pub(super) fn new(model: &'a Model, prompt: &Prompt<'_>, request_max: Option<u64>) -> Self {
        let count = prompt.count(model);
        let max_output = u64::from(model.max_output);
        let max_output_tokens = request_max.map_or(max_output, |m| m.min(max_output));
        let input_cost_usd = model
            .cost(&Usage {
                input_tokens: count.tokens,
                ..Usage::default()
            })
            .normalize();
        let output_cost_usd_max = model
            .cost(&Usage {
                output_tokens: max_output_tokens,
                ..Usage::default()
            })
            .normalize();
        Self {
            id: &model.id,
            provider: &model.provider,
            tokenizer: &model.tokenizer,
            input_tokens: count.tokens,
            exact: count.exact,
            input_cost_usd,
            max_output_tokens,
            output_cost_usd_max,
            total_cost_usd_max: (input_cost_usd + output_cost_usd_max).normalize(),
            how: Tokenizer::of(model).describe(model),
        }
    }

    /// `1,234`, or `~1,234` for an estimate.
    pub(super) fn tokens(&self) -> String {
        let mark = if self.exact { "" } else { "~" };
        format!("{mark}{}", output::thousands(self.input_tokens))
    }
}

impl Report<'_> {
    fn print(&self, shape: Option<Shape>, one_model: bool) {
        let what = match shape {
            Some(shape) => format!("{} request", shape.title()),
            None => "plain text".to_owned(),
        };
        let source = if self.source == "-" {
            "stdin".to_owned()
        } else {
            format!("`{}`", self.source)
        };
        if let (true, Some(row)) = (one_model, self.models.first()) {
            let how = if row.exact {
                format!("exact, {}", row.how)
            } else {
                format!("estimate, {}", row.how)
            };
            output::line(format_args!(
                "{what} from {source}, for {} ({})",
                row.id, row.provider
            ));
            output::line(format_args!("input tokens  {} ({how})", row.tokens()));
            output::line(format_args!(
                "input cost    {}",
                output::usd(row.input_cost_usd)
            ));
            output::line(format_args!(
                "output cost   $0 – {} (up to {} tokens)",
                output::usd(row.output_cost_usd_max),
                output::thousands(row.max_output_tokens)
            ));
            output::line(format_args!(
                "total cost    {} – {}",
                output::usd(row.input_cost_usd),
                output::usd(row.total_cost_usd_max)
            ));
            return;
        }
        output::line(format_args!(
            "{what} from {source}: {} models, cheapest input first",
            self.models.len()
        ));
        let mut rows = Vec::new();
        for row in &self.models {
            let mark = if Some(row.id) == self.request_model {
                " *"
            } else {
                ""
            };
            rows.push(vec![
                format!("{}{mark}", row.id),
                row.provider.to_owned(),
                row.tokens(),
                output::usd(row.input_cost_usd),
                output::usd(row.output_cost_usd_max),
                output::thousands(row.max_output_tokens),
            ]);
        }
        output::table(
            &[
                "MODEL",
                "PROVIDER",
                "INPUT TOKENS",
                "INPUT COST",
                "OUTPUT COST UP TO",
                "MAX OUTPUT",
            ],
            &rows,
        );
        if self.models.iter().any(|r| !r.exact) {
            output::line(
                "~ estimated: the model's tokenizer is not public, or the request has tools, images or files",
            );
        }
        if self.request_model.is_some() {
            output::line("* the model the request names");
        }
    }
}
