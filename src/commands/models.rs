//! `izzi models [--json]`: the catalog (built-in models plus config `[[models]]`), as a table or
//! as the JSON documented in docs/cli-json.md. Reads the catalog; changes nothing.

use anyhow::Result;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::catalog::{Catalog, Model};
use crate::cli::ModelsArgs;
use crate::config::Config;
use crate::output;

/// One model in `--json` output. Prices are decimal strings (USD per million tokens), so no
/// float rounding creeps in.
#[derive(Serialize)]
struct Entry<'a> {
    id: &'a str,
    display_name: &'a str,
    provider: &'a str,
    aliases: &'a [String],
    input_per_mtok: Decimal,
    output_per_mtok: Decimal,
    cache_read_per_mtok: Option<Decimal>,
    cache_write_per_mtok: Option<Decimal>,
    context_window: u64,
    max_output: u32,
    tokenizer: &'a str,
    reasoning: bool,
}

impl<'a> Entry<'a> {
    fn of(m: &'a Model) -> Self {
        Self {
            id: &m.id,
            display_name: &m.display_name,
            provider: &m.provider,
            aliases: &m.aliases,
            input_per_mtok: m.input_per_mtok.normalize(),
            output_per_mtok: m.output_per_mtok.normalize(),
            cache_read_per_mtok: m.cache_read_per_mtok.map(|d| d.normalize()),
            cache_write_per_mtok: m.cache_write_per_mtok.map(|d| d.normalize()),
            context_window: m.context_window,
            max_output: m.max_output,
            tokenizer: &m.tokenizer,
            reasoning: m.reasoning,
        }
    }
}

#[derive(Serialize)]
struct Listing<'a> {
    models: Vec<Entry<'a>>,
}

pub(crate) fn run(args: &ModelsArgs) -> Result<()> {
    let (config, _) = Config::load(None)?;
    let catalog = Catalog::load(&config.models)?;
    if args.json {
        output::json(&Listing {
            models: catalog.models().iter().map(Entry::of).collect(),
        });
        return Ok(());
    }
    let mut rows = Vec::new();
    for m in catalog.models() {
        rows.push(vec![
            m.id.clone(),
            m.provider.clone(),
            output::usd(m.input_per_mtok),
            output::usd(m.output_per_mtok),
            output::thousands(m.context_window),
            output::thousands(u64::from(m.max_output)),
            m.aliases.join(", "),
        ]);
    }
    output::table(
        &[
            "MODEL",
            "PROVIDER",
            "INPUT $/M",
            "OUTPUT $/M",
            "CONTEXT",
            "MAX OUTPUT",
            "ALIASES",
        ],
        &rows,
    );
    Ok(())
}
