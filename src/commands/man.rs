//! `izzi man DIR` (hidden): one man page per command, made by clap_mangen from `cli`, for the
//! release archives (`scripts/package`).

use std::path::Path;

use anyhow::{Context as _, Result};

pub(crate) fn run(dir: &Path) -> Result<()> {
    fs_err::create_dir_all(dir)?;
    clap_mangen::generate_to(crate::cli::command(), dir)
        .with_context(|| format!("cannot write the man pages into `{}`", dir.display()))?;
    crate::output::line(dir.display());
    Ok(())
}
