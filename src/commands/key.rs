//! `izzi key print`: the stored key and nothing else on stdout, as Claude Code's `apiKeyHelper`
//! and Codex's `auth.command` expect.

use anyhow::{Result, bail};

use crate::cli::KeyCommand;

pub(crate) fn run(command: &KeyCommand) -> Result<()> {
    match command {
        KeyCommand::Print => match crate::secrets::load()? {
            Some((key, _)) => {
                crate::output::line(key.expose());
                Ok(())
            }
            None => bail!("no key is stored; run `izzi setup --key KEY` to store one"),
        },
    }
}
