//! `izzi usage`: requests, tokens and cost grouped by day, model, key, tool or session (key and
//! model unless `--by` says otherwise), summed from the ledger in `izzi.db` (or PostgreSQL with
//! `[state].postgres_url`) by `store::query`, which the gateway's JSON API shares. Reads only.

use anyhow::Result;

use crate::cli::UsageArgs;
use crate::config::Config;
use crate::output;
use crate::store::query::{self, UsageLine};
use crate::store::{Counts, Database};

/// The counts' columns after the groups': (table header, CSV header).
const COLUMNS: [(&str, &str); 7] = [
    ("REQUESTS", "requests"),
    ("INPUT", "input_tokens"),
    ("OUTPUT", "output_tokens"),
    ("CACHE READ", "cache_read_tokens"),
    ("CACHE WRITE", "cache_write_tokens"),
    ("COST", "cost_usd"),
    ("", "unpriced_requests"),
];

pub(crate) fn run(args: &UsageArgs) -> Result<()> {
    let (config, _) = Config::load(args.config.as_deref())?;
    let store = Database::open(&config.state)?;
    let by = &args.by.0;
    let report = query::usage(
        &*store,
        by,
        args.since.as_ref(),
        args.key.as_deref(),
        jiff::Timestamp::now(),
    )?;
    if args.json {
        output::json(&report);
        return Ok(());
    }
    let group = |line: &UsageLine| -> Vec<String> {
        by.iter()
            .map(|dim| line.group.get(dim).cloned().flatten().unwrap_or_default())
            .collect()
    };
    if args.csv {
        let header: Vec<&str> = by
            .iter()
            .map(|d| d.as_str())
            .chain(COLUMNS.iter().map(|(_, csv)| *csv))
            .collect();
        let rows: Vec<Vec<String>> = report
            .lines
            .iter()
            .map(|line| {
                let c = &line.counts;
                let mut row = group(line);
                row.extend(
                    [
                        c.requests,
                        c.input_tokens,
                        c.output_tokens,
                        c.cache_read_tokens,
                        c.cache_write_tokens,
                    ]
                    .map(|n| n.to_string()),
                );
                row.push(c.cost_usd.to_string());
                row.push(c.unpriced_requests.to_string());
                row
            })
            .collect();
        output::csv(&header, &rows);
        return Ok(());
    }
    if report.lines.is_empty() {
        output::notice("no requests recorded for this selection");
        return Ok(());
    }
    let cost = crate::output::usd;
    let row = |l: &Counts, mut cells: Vec<String>| {
        cells.extend([
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
        ]);
        cells
    };
    let mut rows: Vec<Vec<String>> = report
        .lines
        .iter()
        .map(|l| row(&l.counts, group(l)))
        .collect();
    let total = std::iter::once("total".to_owned())
        .chain(std::iter::repeat_n(
            String::new(),
            by.len().saturating_sub(1),
        ))
        .collect();
    rows.push(row(&report.total, total));
    let dims: Vec<String> = by.iter().map(|d| d.as_str().to_uppercase()).collect();
    let header: Vec<&str> = dims
        .iter()
        .map(String::as_str)
        .chain(COLUMNS[..6].iter().map(|(table, _)| *table))
        .collect();
    output::table(&header, &rows);
    Ok(())
}
