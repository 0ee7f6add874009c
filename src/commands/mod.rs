//! One module per subcommand: arguments in, typed settings, domain calls. The only layer that
//! prompts.

mod keys;
mod serve;
mod usage;

use anyhow::Result;

use crate::cli::{Cli, Command};

/// Runs the parsed command.
pub(crate) fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Usage(args) => usage::run(&args),
    }
}
