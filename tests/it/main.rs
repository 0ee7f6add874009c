//! Integration tests: the real `izzi` binary against the mock upstream, over real HTTP, and
//! against tool config trees in temp homes.

mod access;
mod attribution;
mod caching;
mod config_cli;
mod count_tokens;
mod dashboard;
mod durability;
mod gateway;
mod hostile;
mod ledger;
mod limits;
mod logs;
mod models_cli;
mod money;
mod privacy;
#[cfg(unix)]
mod reload;
mod responses_state;
mod routes;
#[cfg(target_os = "linux")]
mod service;
mod setup;
#[cfg(unix)]
mod setup_tty;
mod shared_state;
mod shell;
mod state_tls;
mod statusline;
mod support;
mod telemetry;
mod translation;
mod upstream_pool;
mod upstream_tls;
mod usage_api;
