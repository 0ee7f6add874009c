//! One module per subcommand: arguments in, typed settings, domain calls. The only layer that
//! prompts.

mod completions;
mod config;
mod count_tokens;
mod dashboard;
mod key;
mod keys;
mod man;
mod models;
mod route;
mod serve;
mod service;
mod setup;
mod status;
mod statusline;
mod usage;

use anyhow::{Context as _, Result};

use crate::cli::{Cli, Command};

/// Runs the parsed command.
pub(crate) fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Usage(args) => usage::run(&args),
        Command::Dashboard(args) => dashboard::run(&args),
        Command::Setup(args) => setup::run(args),
        Command::Status(args) => status::run(&args),
        Command::Statusline(args) => {
            statusline::run(&args);
            Ok(())
        }
        Command::Service { command } => service::run(command),
        Command::Key { command } => key::run(&command),
        Command::Models(args) => models::run(&args),
        Command::CountTokens(args) => count_tokens::run(&args),
        Command::Route { command } => route::run(&command),
        Command::Config { command } => config::run(command),
        Command::Completions { shell } => {
            completions::run(shell);
            Ok(())
        }
        Command::Man { dir } => man::run(&dir),
    }
}

/// Runs `future` to its end on a runtime of its own (commands are synchronous).
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    install_tls_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

/// Makes ring rustls' crypto provider (reqwest is built without one). Idempotent: every command
/// that makes HTTPS requests calls it first.
pub(crate) fn install_tls_provider() {
    // `Err` means a provider is already installed, which is all this wants.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
