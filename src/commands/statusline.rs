//! `izzi statusline`: the command Claude Code runs for its status line. Claude Code pipes a JSON
//! object on stdin (`session_id`, `model`, `workspace`, `cost`, …); this prints one line from the
//! ledger, `izzi · today $4.21 · session $0.37 · 41/60 rpm`, the rpm live from the gateway's
//! `/izzi/api/limits` when it answers on loopback within a few milliseconds. It never fails
//! loudly: bad stdin, no ledger or an unreachable gateway leave a shorter line, and exit 0.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Result;
use jiff::Timestamp;
use rust_decimal::Decimal;

use crate::cli::StatuslineArgs;
use crate::config::{Config, SETUP_KEY_NAME};
use crate::output;
use crate::store::query::{self, Filter, RequestFilter};
use crate::store::{Database, Store, default_path};

/// The most of stdin read (Claude Code's object is a few KB).
const MAX_STDIN: u64 = 1 << 20;
/// How long the gateway gets to answer, in all.
const LIVE_BUDGET: Duration = Duration::from_millis(25);

/// What Claude Code's JSON tells: only the session matters here.
#[derive(Debug, Default, serde::Deserialize)]
struct Input {
    session_id: Option<String>,
}

pub(crate) fn run(args: &StatuslineArgs) {
    let input = read_input();
    let mut parts = vec!["izzi".to_owned()];
    match line(args, input.session_id.as_deref()) {
        Ok(more) => parts.extend(more),
        Err(err) => {
            tracing::debug!(error = format!("{err:#}"), "status line without the ledger");
            parts.push("no usage yet".to_owned());
        }
    }
    output::line(parts.join(" · "));
}

/// Claude Code's JSON from stdin; nothing when stdin is a terminal or not that JSON.
fn read_input() -> Input {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Input::default();
    }
    let mut text = Vec::new();
    if stdin.lock().take(MAX_STDIN).read_to_end(&mut text).is_err() {
        return Input::default();
    }
    serde_json::from_slice(&text).unwrap_or_default()
}

/// Today's spend, the session's, and the live rpm of the session's key.
fn line(args: &StatuslineArgs, session: Option<&str>) -> Result<Vec<String>> {
    let (config, _) = Config::load(args.config.as_deref())?;
    let db: Database = match &config.state.postgres_url {
        Some(_) => Database::open(&config.state)?,
        None => {
            // Never creates a database: no gateway has run yet.
            let path = default_path()?;
            anyhow::ensure!(path.exists(), "no ledger at {}", path.display());
            Store::open(&path)?.into()
        }
    };
    let now = Timestamp::now();
    let today = query::total(
        &*db,
        &Filter {
            since: Some(query::today_start(now)),
            ..Filter::default()
        },
    )?;
    let mut parts = vec![format!("today {}", money(today.cost_usd))];
    let mut key = None;
    if let Some(session) = session {
        let filter = Filter {
            session: Some(session.to_owned()),
            ..Filter::default()
        };
        parts.push(format!(
            "session {}",
            money(query::total(&*db, &filter)?.cost_usd)
        ));
        let last = db.requests(&RequestFilter {
            limit: Some(1),
            session: Some(session.to_owned()),
            ..RequestFilter::default()
        })?;
        key = last.into_iter().next().map(|(_, row)| row.key_name);
    }
    if let Some(rpm) = live_rpm(&config, key.as_deref()) {
        parts.push(rpm);
    }
    Ok(parts)
}

/// `$4.21`; under a dollar with up to four decimals (`$0.0037`).
fn money(amount: Decimal) -> String {
    if amount >= Decimal::ONE {
        format!("${:.2}", amount.round_dp(2))
    } else {
        format!("${}", amount.round_dp(4).normalize())
    }
}

/// `41/60 rpm` of `key` (else the key `izzi setup` stored, else the only key) from the
/// gateway's limits, when it answers on loopback in time.
fn live_rpm(config: &Config, key: Option<&str>) -> Option<String> {
    let host = config.server.host;
    if !(host.is_loopback() || host.is_unspecified()) {
        return None;
    }
    let ip = crate::service::probe::reachable(host);
    let body = get(SocketAddr::new(ip, config.server.port), "/izzi/api/limits")?;
    let limits: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let keys = limits["keys"].as_array()?;
    let wanted = key.unwrap_or(SETUP_KEY_NAME);
    let chosen = keys
        .iter()
        .find(|k| k["key"] == wanted)
        .or_else(|| (keys.len() == 1).then(|| &keys[0]))?;
    let rpm = &chosen["rpm"];
    Some(format!(
        "{}/{} rpm",
        rpm["used"].as_u64()?,
        rpm["limit"].as_u64()?
    ))
}

/// The body of a `GET` answered 200 within [`LIVE_BUDGET`], over plain HTTP/1.0 on loopback:
/// no async runtime and no TLS setup (what `service::probe` uses), which would cost more than
/// the whole line may take.
fn get(address: SocketAddr, path: &str) -> Option<Vec<u8>> {
    let deadline = Instant::now() + LIVE_BUDGET;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    };
    let mut stream = TcpStream::connect_timeout(&address, left()?).ok()?;
    stream.set_write_timeout(left()).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 8192];
    loop {
        stream.set_read_timeout(Some(left()?)).ok()?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => return None,
        }
    }
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status_ok = answer.starts_with(b"HTTP/1.1 200") || answer.starts_with(b"HTTP/1.0 200");
    status_ok.then(|| answer[head_end + 4..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_at_a_glance() {
        let usd = |s: &str| money(s.parse().unwrap());
        assert_eq!(usd("4.2137"), "$4.21");
        assert_eq!(usd("12"), "$12.00");
        assert_eq!(usd("0.37"), "$0.37");
        assert_eq!(usd("0.003702"), "$0.0037");
        assert_eq!(usd("0"), "$0");
    }
}
