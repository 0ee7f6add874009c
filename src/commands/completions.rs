//! `izzi completions SHELL`: the completion script clap_complete makes from `cli`.

use clap_complete::Shell;

pub(crate) fn run(shell: Shell) {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut crate::cli::command(), "izzi", &mut script);
    crate::output::bytes(&script);
}
