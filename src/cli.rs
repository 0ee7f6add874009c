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
    /// Point your AI coding tools (Claude Code, Cursor, Cline, Windsurf, Codex, …) at izzi.
    Setup(SetupArgs),
    /// Show which tools are found and configured, where the key lives, and whether the endpoint
    /// answers.
    Status(StatusArgs),
    /// The stored Izzi API key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Debug, Args)]
pub(crate) struct SetupArgs {
    /// Your Izzi API key [default: the stored key; on a terminal, asked for].
    #[arg(long, value_name = "KEY")]
    pub(crate) key: Option<String>,
    /// Only these tools, comma-separated (claude-code, cursor, cline, windsurf, codex, opencode,
    /// zed) [default: every tool found].
    #[arg(long, value_name = "TOOLS", value_delimiter = ',')]
    pub(crate) tools: Vec<String>,
    /// The API the tools should use [default: https://api.izziapi.com].
    #[arg(long, value_name = "URL", conflicts_with = "local")]
    pub(crate) base_url: Option<String>,
    /// Point the tools at the local gateway (`izzi serve`, http://127.0.0.1:8745).
    #[arg(long)]
    pub(crate) local: bool,
    /// Ask nothing: use the given or stored key and every tool found.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    /// Print the changes as diffs and write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Restore the files setup changed (all, or those of `--tools`) and remove those it created.
    #[arg(long, conflicts_with_all = ["key", "base_url", "local"])]
    pub(crate) undo: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Print JSON (stable field names) instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Print the stored key and nothing else (for Claude Code's `apiKeyHelper`).
    Print,
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
