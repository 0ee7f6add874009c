//! izzi: one key and one endpoint for every AI coding tool.
//!
//! `run` parses the command line, dispatches to `commands`, and turns the outcome into the exit
//! code SPEC promises: 0 done, 1 failed, 2 bad usage.

mod attribution;
mod catalog;
mod cli;
mod commands;
mod config;
mod env;
mod files;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod gateway;
mod output;
mod protocol;
mod secrets;
mod service;
mod setup;
mod store;
mod tokens;
mod translate;
mod wire;

use std::process::ExitCode;

#[doc(hidden)]
pub use gateway::BenchRouter;
#[doc(hidden)]
pub use tokens::bench_count;

/// Entry point of the binary.
#[must_use]
pub fn run() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(err) => return output::clap_error(&err),
    };
    match commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => output::failure(&err),
    }
}
