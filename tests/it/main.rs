//! Integration tests: the real `izzi` binary against the mock upstream, over real HTTP.

mod gateway;
mod hostile;
mod ledger;
mod limits;
mod support;
