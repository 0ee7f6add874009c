//! `izzi usage`: requests, tokens and cost per key and model, summed from the ledger in
//! `izzi.db` (or PostgreSQL with `[state].postgres_url`). Reads only.

use anyhow::Result;
use serde::Serialize;

use crate::cli::UsageArgs;
use crate::config::Config;
use crate::output;
use crate::store::{Counts, Database, UsageLine};

/// `izzi usage --json`. Costs are decimal strings in USD.
#[derive(Debug, Serialize)]
struct Report {
    /// The `--since` date, if given.
    since: Option<String>,
    /// The `--key` name, if given.
    key: Option<String>,
    lines: Vec<UsageLine>,
    total: Counts,
}

pub(crate) fn run(args: &UsageArgs) -> Result<()> {
    let (config, _) = Config::load(args.config.as_deref())?;
    let store = Database::open(&config.state)?;
    let lines = store.usage(args.key.as_deref(), args.since)?;
    let mut total = Counts::default();
    for line in &lines {
        total.add(&line.counts);
    }
    if args.json {
        output::json(&Report {
            since: args.since.map(|d| d.to_string()),
            key: args.key.clone(),
            lines,
            total,
        });
        return Ok(());
    }
    if lines.is_empty() {
        output::notice("no requests recorded for this selection");
        return Ok(());
    }
    let cost = crate::output::usd;
    let row = |l: &Counts, key: &str, model: &str| {
        vec![
            key.to_owned(),
            model.to_owned(),
            l.requests.to_string(),
            l.input_tokens.to_string(),
            l.output_tokens.to_string(),
            l.cache_read_tokens.to_string(),
            l.cache_write_tokens.to_string(),
            // Requests of a model without a price cost nothing here: say so beside the sum.
            if l.unpriced_requests > 0 {
                format!("{} ({} unpriced)", cost(l.cost_usd), l.unpriced_requests)
            } else {
                cost(l.cost_usd)
            },
        ]
    };
    let mut rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| row(&l.counts, &l.key, &l.model))
        .collect();
    rows.push(row(&total, "total", ""));
    output::table(
        &[
            "KEY",
            "MODEL",
            "REQUESTS",
            "INPUT",
            "OUTPUT",
            "CACHE READ",
            "CACHE WRITE",
            "COST",
        ],
        &rows,
    );
    Ok(())
}
