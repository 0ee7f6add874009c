//! Command-line definitions (clap). No files, network or keyring here: `commands` acts on these.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// One key and one endpoint for every AI coding tool.
///
/// `izzi serve` runs a local gateway that speaks OpenAI Chat Completions, Anthropic Messages and
/// OpenAI Responses, translates between them, enforces per-key limits and budgets, and records
/// every request's tokens and cost.
#[derive(Debug, Parser)]
#[command(name = "izzi", version, about, long_about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the local gateway (OpenAI and Anthropic APIs on one port).
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Config file [default: $IZZI_HOME/config.toml, used only if it exists].
    #[arg(long, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,
    /// Address to listen on [default: the config's `server.host`, else 127.0.0.1].
    #[arg(long, value_name = "H")]
    pub(crate) host: Option<IpAddr>,
    /// Port to listen on; 0 picks a free one [default: the config's `server.port`, else 8745].
    #[arg(long, value_name = "N")]
    pub(crate) port: Option<u16>,
}

/// Parses `std::env::args`.
pub(crate) fn parse() -> Result<Cli, clap::Error> {
    Cli::try_parse()
}
