//! `izzi serve`.

use std::io::IsTerminal as _;

use anyhow::{Context as _, Result};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::cli::ServeArgs;
use crate::gateway::{self, ServeOptions};
use crate::service::logfile::Rotating;

pub(crate) fn run(args: ServeArgs) -> Result<()> {
    // Plain lines (no colour codes) unless a person watches stderr: a journal or a file keeps
    // them as they are.
    let (writer, ansi) = match &args.log_dir {
        Some(dir) => (BoxMakeWriter::new(Rotating::open(dir)?), false),
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_new(crate::env::log_filter()).unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(writer)
        // Its default reports a failed write with `eprintln!`, which panics when stderr fails
        // too (a log file on a full disk): the request, or the ledger thread, would die with it.
        .log_internal_errors(false)
        .with_ansi(ansi)
        .init();
    super::install_tls_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(gateway::serve(ServeOptions {
        config: args.config,
        host: args.host,
        port: args.port,
    }))
}
