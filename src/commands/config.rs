//! `izzi config check` and `izzi config schema`.

use anyhow::{Context as _, Result};

use crate::cli::ConfigCommand;
use crate::config::Config;
use crate::output;

pub(crate) fn run(command: ConfigCommand) -> Result<()> {
    match command {
        ConfigCommand::Check { config } => check(config.as_deref()),
        ConfigCommand::Schema => {
            output::json(&Config::schema());
            Ok(())
        }
    }
}

/// Everything `izzi serve` checks before it opens a database or a port: the file, then the
/// catalog with its `[[models]]` and the providers' URLs and keys.
fn check(path: Option<&std::path::Path>) -> Result<()> {
    let (config, path) = Config::load(path)?;
    crate::gateway::Router::new(&config, None).with_context(|| Config::invalid(path.as_deref()))?;
    let text = toml::to_string_pretty(&config.masked())
        .context("cannot write the effective config as TOML")?;
    output::line(text.trim_end());
    match &path {
        Some(path) => output::notice(format_args!("`{}` is valid", path.display())),
        None => output::notice("no config file: these are the embedded defaults"),
    }
    Ok(())
}
