//! `izzi serve`.

use std::io::IsTerminal as _;

use anyhow::{Context as _, Result};
use clap::ValueEnum as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::cli::{LogFormat, ServeArgs};
use crate::gateway::{self, ServeOptions};
use crate::output::UsageError;
use crate::service::logfile::Rotating;

pub(crate) fn run(args: ServeArgs) -> Result<()> {
    let format = match args.log_format {
        Some(format) => format,
        None => log_format_from_env()?,
    };
    // Plain lines (no colour codes) unless a person watches stderr: a journal or a file keeps
    // them as they are.
    let (writer, ansi) = match &args.log_dir {
        Some(dir) => (BoxMakeWriter::new(Rotating::open(dir)?), false),
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    let filter =
        EnvFilter::try_new(crate::env::log_filter()).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Its default reports a failed write with `eprintln!`, which panics when stderr fails
        // too (a log file on a full disk): the request, or the ledger thread, would die with it.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.with_ansi(ansi).init(),
        // The event's fields at the top level, beside `timestamp`, `level`, `target` and
        // `message`; no span lists: the gateway's events carry what they need.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    super::install_tls_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(gateway::serve(ServeOptions {
        config: args.config,
        host: args.host,
        port: args.port,
        json_log: format == LogFormat::Json,
    }))
}

/// `IZZI_LOG_FORMAT`, else text.
fn log_format_from_env() -> Result<LogFormat> {
    let Some(value) = crate::env::log_format() else {
        return Ok(LogFormat::Text);
    };
    LogFormat::from_str(&value, true).map_err(|_| {
        UsageError(format!(
            "`{}={value}` is not a log format; use `text` or `json`",
            crate::env::IZZI_LOG_FORMAT
        ))
        .into()
    })
}
