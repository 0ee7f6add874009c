//! Integration tests: the real `izzi` binary against the mock upstream, over real HTTP, and
//! against tool config trees in temp homes.

mod gateway;
mod hostile;
mod ledger;
mod limits;
mod setup;
#[cfg(unix)]
mod setup_tty;
mod support;
