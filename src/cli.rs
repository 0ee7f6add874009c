//! Command-line definitions (clap). No files, network or keyring here: `commands` acts on these.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use rust_decimal::Decimal;

use crate::config::Plan;
use crate::store::query::{Dims, Since};

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
    /// Create, list and revoke the client keys the gateway accepts.
    Keys(KeysArgs),
    /// Requests, tokens and cost per key and model, from the usage ledger.
    Usage(UsageArgs),
    /// Open the running gateway's dashboard (spend, sessions, requests, limits) in the browser.
    ///
    /// Prints the page's URL, then opens it with the system's opener (`xdg-open`, `open`,
    /// `start`). Fails when no izzi gateway answers at the address the config names.
    Dashboard(DashboardArgs),
    /// List the model catalog: aliases, prices, context windows and providers.
    Models(ModelsArgs),
    /// Count a request's input tokens and price it, offline, before sending it.
    ///
    /// Reads an Anthropic Messages, OpenAI Chat Completions or OpenAI Responses request body
    /// (detected), or a plain text, from FILE or stdin. OpenAI models count exactly with their
    /// tokenizer; models whose tokenizer is not public get a calibrated estimate, marked `~`.
    /// Without `--model` it prints every catalog model, cheapest input first; the model a request
    /// body names is marked `*`.
    CountTokens(CountTokensArgs),
    /// See how the gateway's `[[routes]]` rules route a request.
    Route {
        #[command(subcommand)]
        command: RouteCommand,
    },
    /// Point your AI coding tools (Claude Code, Cursor, Cline, Windsurf, Codex, …) at izzi.
    Setup(SetupArgs),
    /// Show which tools are found and configured, where the key lives, and whether the endpoint
    /// answers.
    Status(StatusArgs),
    /// One line for Claude Code's status bar: today's spend, this session's, the live rpm.
    ///
    /// Claude Code runs it with its session's JSON on stdin (`izzi setup` adds it as
    /// `statusLine` when none is set). Reads the usage ledger; never fails: without a ledger or
    /// a gateway it prints less.
    Statusline(StatuslineArgs),
    /// Keep the gateway running in the background, as a service of your OS (a systemd user
    /// unit, a launchd LaunchAgent, a Task Scheduler logon task), across reboots and crashes.
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// The stored Izzi API key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Check `config.toml` without starting the gateway; print its JSON Schema.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the shell completion script for SHELL.
    ///
    /// bash: `izzi completions bash > ~/.local/share/bash-completion/completions/izzi`;
    /// zsh: `izzi completions zsh > ~/.zfunc/_izzi` (with `~/.zfunc` in `fpath`);
    /// fish: `izzi completions fish > ~/.config/fish/completions/izzi.fish`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (izzi.1, izzi-serve.1, …) into DIR (for packagers).
    #[command(hide = true)]
    Man {
        /// The directory to write into; it is created if missing.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
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
    /// Restore the files setup changed (all, or those of `--tools`) and remove those it created,
    /// and the service it installed.
    #[arg(long, conflicts_with_all = ["key", "base_url", "local"])]
    pub(crate) undo: bool,
    /// With `--local`: do not install the gateway as a service [default: asked on a terminal,
    /// installed with `--yes`].
    #[arg(long, requires = "local")]
    pub(crate) no_service: bool,
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
    /// Write logs to DIR/izzi.log, rotated at 10 MiB, three kept, instead of stderr (what
    /// `izzi service` uses where the OS keeps no journal).
    #[arg(long, value_name = "DIR")]
    pub(crate) log_dir: Option<PathBuf>,
    /// How to write the log on stderr: `json` is one object per line with stable field names
    /// [default: $IZZI_LOG_FORMAT, else text].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
}

#[derive(Debug, Args)]
pub(crate) struct DashboardArgs {
    /// Config file naming the gateway's address [default: $IZZI_HOME/config.toml, used only if
    /// it exists].
    #[arg(long, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,
    /// The gateway's port [default: the config's `server.port`, else 8745].
    #[arg(long, value_name = "N")]
    pub(crate) port: Option<u16>,
    /// Only print the URL; open no browser.
    #[arg(long)]
    pub(crate) no_open: bool,
}

/// `izzi serve --log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Lines for people (coloured on a terminal).
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields at the top level.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCommand {
    /// Register the gateway with the OS's service manager, start it, and wait until it answers.
    ///
    /// Linux: `~/.config/systemd/user/izzi.service`, logging to the journal. macOS:
    /// `~/Library/LaunchAgents/com.izziapi.izzi.plist`, logging to `$IZZI_HOME/logs`. Windows: a
    /// task run at logon, logging to `$IZZI_HOME/logs`. Installing again replaces the service.
    Install(ServiceInstallArgs),
    /// Stop the service and remove everything `install` wrote.
    Uninstall,
    /// Start the installed service and wait until it answers.
    Start,
    /// Stop the service (it starts again at the next login).
    Stop,
    /// Stop and start the service, and wait until it answers.
    Restart,
    /// Whether the service is installed and running: pid, version, address, uptime, health.
    Status {
        /// Print JSON (stable field names) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the service's logs (the journal on Linux, `$IZZI_HOME/logs/izzi.log` elsewhere).
    Logs {
        /// Keep printing new lines as they come.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Lines to show.
        #[arg(long, short = 'n', value_name = "N", default_value_t = 50)]
        lines: usize,
    },
    /// Re-read the config without a restart (as `kill -HUP PID` does).
    ///
    /// Keys, limits, providers and models change for new requests; requests in flight finish on
    /// the old config. An invalid file changes nothing, and its error (file, line, field) is
    /// shown. `host`, `port`, `[security]` and `[state]` change at the next restart.
    Reload,
}

#[derive(Debug, Args)]
pub(crate) struct ServiceInstallArgs {
    /// Config file the service uses [default: $IZZI_HOME/config.toml, used only if it exists].
    #[arg(long, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,
    /// Port the service listens on [default: the config's `server.port`, else 8745].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) port: Option<u16>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RouteCommand {
    /// Which `[[routes]]` rule a request body matches and why (each condition's value beside
    /// the rule's), the model that would serve it and what it would cost there. Offline: nothing
    /// is sent.
    Explain(RouteExplainArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RouteExplainArgs {
    /// The client tool the request comes from: claude-code, codex, cline, cursor, opencode,
    /// zed, openai-sdk, anthropic-sdk or other [default: other].
    #[arg(long, value_name = "T")]
    pub(crate) tool: Option<String>,
    /// The client key's name the request comes with [default: @setup, the key `izzi setup`
    /// stored].
    #[arg(long, value_name = "K")]
    pub(crate) key: Option<String>,
    /// Config file [default: $IZZI_HOME/config.toml; without it, the embedded defaults].
    #[arg(long, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,
    /// Print JSON (the shape is documented in docs/cli-json.md).
    #[arg(long)]
    pub(crate) json: bool,
    /// A request body (JSON: Anthropic Messages, Chat Completions or Responses); `-` reads
    /// stdin.
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Check the config as `izzi serve` would, without starting it, and print the effective
    /// config (defaults filled in; API keys, client keys and URL passwords masked).
    Check {
        /// Config file [default: $IZZI_HOME/config.toml; without it, the embedded defaults].
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Print the JSON Schema of `config.toml` (as published in docs/config.schema.json), for
    /// editors such as Taplo and VS Code's Even Better TOML.
    Schema,
}

#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    pub(crate) command: KeysCommand,
    /// Config file whose `[[keys]]` are listed too and whose `[state]` says where keys are
    /// stored [default: $IZZI_HOME/config.toml].
    #[arg(long, value_name = "PATH", global = true)]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key and print it once; izzi keeps only its SHA-256 hash.
    Create(KeyCreateArgs),
    /// Every key with its plan, limits, spend and balance (never the key itself), the key
    /// `izzi setup` stored too (`@setup`, accepted from this machine only).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; a running gateway refuses it within a second.
    Revoke {
        /// The key's name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct KeyCreateArgs {
    /// A name for the key: letters, digits, `.`, `_` and `-`.
    #[arg(long)]
    pub(crate) name: String,
    /// The plan, which sets requests per minute, concurrent requests and requests per day.
    #[arg(long, value_enum, default_value_t = Plan::Pro)]
    pub(crate) plan: Plan,
    /// Monthly budget in USD [default: none].
    #[arg(long, value_name = "USD")]
    pub(crate) budget: Option<Decimal>,
    /// Credits in USD, debited by every request's cost [default: no balance check].
    #[arg(long, value_name = "USD")]
    pub(crate) credits: Option<Decimal>,
    /// Requests per minute, instead of the plan's.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) rpm: Option<u32>,
    /// Concurrent requests, instead of the plan's.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) concurrent: Option<u32>,
    /// Requests per day (UTC), instead of the plan's.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) daily: Option<u32>,
}

#[derive(Debug, Args)]
pub(crate) struct UsageArgs {
    /// Only this key's requests.
    #[arg(long, value_name = "NAME")]
    pub(crate) key: Option<String>,
    /// Only requests since then: a time ago (7d, 24h, 30m), a UTC date (2026-03-01) or an
    /// RFC 3339 time [default: all].
    #[arg(long, value_name = "WHEN")]
    pub(crate) since: Option<Since>,
    /// Group by these, in order, comma-separated: day (UTC), model (served), key, tool (the
    /// client: claude-code, codex, cline, …), session (the agent session).
    #[arg(long, value_name = "DIM[,DIM…]", default_value = "key,model")]
    pub(crate) by: Dims,
    /// Print JSON instead of a table (the shape is documented in docs/cli-json.md).
    #[arg(long, conflicts_with = "csv")]
    pub(crate) json: bool,
    /// Print CSV (RFC 4180, a header line, one line per group, no total) instead of a table.
    #[arg(long)]
    pub(crate) csv: bool,
    /// Config file whose `[state]` says where the ledger is [default: $IZZI_HOME/config.toml].
    #[arg(long, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct StatuslineArgs {
    /// Config file whose `[state]` says where the ledger is and `[server]` where the gateway
    /// listens [default: $IZZI_HOME/config.toml].
    #[arg(long, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ModelsArgs {
    /// Print JSON (the shape is documented in docs/cli-json.md).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CountTokensArgs {
    /// Count for this model or alias only [default: every catalog model].
    #[arg(long, value_name = "M")]
    pub(crate) model: Option<String>,
    /// Print JSON (the shape is documented in docs/cli-json.md).
    #[arg(long)]
    pub(crate) json: bool,
    /// A request body (JSON) or a text file; `-` reads stdin [default: stdin, when it is not a
    /// terminal].
    #[arg(value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
}

/// The clap definition, for completions and man pages.
pub(crate) fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Parses `std::env::args`.
pub(crate) fn parse() -> Result<Cli, clap::Error> {
    Cli::try_parse()
}
