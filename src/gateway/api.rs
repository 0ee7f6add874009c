//! The usage dashboard's JSON API, `GET /izzi/api/…` (docs/gateway.md): summary, usage, sessions,
//! the request log from the ledger through `store::query` (the numbers `izzi usage --json`
//! prints); limits and upstreams live from this process. From loopback always; from elsewhere
//! only with `[dashboard].admin_key` as a bearer token (a client key never opens it).
//!
//! Reads never queue behind the ledger thread's writes and never block the runtime: they run on
//! a blocking thread, on a connection of their own (`izzi.db` in WAL mode is read while the
//! ledger writes; PostgreSQL through its own pool).

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Json;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::errors::ApiError;
use crate::store::Database;
use crate::store::query::{self, Dims, RequestFilter, Since};

/// The API's routes, behind the access rule.
pub(crate) fn routes(state: &Arc<AppState>) -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/summary", get(summary))
        .route("/usage", get(usage))
        .route("/sessions", get(sessions))
        .route("/requests", get(requests))
        .route("/limits", get(limits))
        .route("/upstreams", get(upstreams))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(state),
            super::dashboard::access,
        ))
}

/// The API's own connection to the ledger, opened at the first read.
#[derive(Debug)]
pub(crate) struct Reader {
    state: crate::config::State,
    db: Mutex<Option<Database>>,
}

impl Reader {
    pub(crate) fn new(state: &crate::config::State) -> Self {
        Self {
            state: state.clone(),
            db: Mutex::new(None),
        }
    }

    /// Runs `read` on a blocking thread with the connection.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Database) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let reader = Arc::clone(self);
        let result = tokio::task::spawn_blocking(move || {
            let mut db = reader.db.lock().unwrap_or_else(PoisonError::into_inner);
            if db.is_none() {
                *db = Some(Database::open(&reader.state)?);
            }
            let Some(db) = db.as_ref() else {
                anyhow::bail!("no database");
            };
            read(db)
        })
        .await;
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "the dashboard API cannot read the ledger"
                );
                Err(ApiError::internal(
                    "The usage ledger cannot be read; see the gateway's log.",
                ))
            }
            Err(_) => Err(ApiError::internal("The ledger read failed.")),
        }
    }
}

/// A query string that does not parse is a 400 in the usual error shape.
fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::invalid(e.body_text()))
}

fn parse<T: std::str::FromStr<Err = String>>(
    text: Option<&str>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    text.map(|t| {
        t.parse()
            .map_err(|e| ApiError::invalid(format!("`{name}`: {e}")))
    })
    .transpose()
}

/// `GET /izzi/api/summary`: the ledger's totals and the alerts standing.
#[derive(Debug, Serialize)]
struct SummaryAnswer {
    #[serde(flatten)]
    summary: query::Summary,
    alerts: Vec<super::alerts::Alert>,
}

async fn summary(State(state): State<Arc<AppState>>) -> Result<Json<SummaryAnswer>, ApiError> {
    let now = jiff::Timestamp::now();
    let summary = state
        .reader
        .read(move |db| query::summary(&**db, now))
        .await?;
    Ok(Json(SummaryAnswer {
        summary,
        alerts: super::alerts::standing(&state),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    by: Option<String>,
    since: Option<String>,
    key: Option<String>,
}

async fn usage(
    State(state): State<Arc<AppState>>,
    asked: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<query::UsageReport>, ApiError> {
    let asked = query(asked)?;
    let by = parse::<Dims>(Some(asked.by.as_deref().unwrap_or("key,model")), "by")?
        .map(|d| d.0)
        .unwrap_or_default();
    let since = parse::<Since>(asked.since.as_deref(), "since")?;
    let now = jiff::Timestamp::now();
    let report = state
        .reader
        .read(move |db| query::usage(&**db, &by, since.as_ref(), asked.key.as_deref(), now))
        .await?;
    Ok(Json(report))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionsQuery {
    since: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Sessions {
    sessions: Vec<query::Session>,
}

async fn sessions(
    State(state): State<Arc<AppState>>,
    asked: Result<Query<SessionsQuery>, QueryRejection>,
) -> Result<Json<Sessions>, ApiError> {
    let asked = query(asked)?;
    let since = parse::<Since>(asked.since.as_deref(), "since")?;
    let start = since.map(|s| s.start(jiff::Timestamp::now()));
    let limit = asked.limit.unwrap_or(100).clamp(1, query::MAX_LIMIT);
    let sessions = state
        .reader
        .read(move |db| db.sessions(start, limit))
        .await?;
    Ok(Json(Sessions { sessions }))
}

async fn requests(
    State(state): State<Arc<AppState>>,
    asked: Result<Query<RequestFilter>, QueryRejection>,
) -> Result<Json<query::RequestPage>, ApiError> {
    let filter = query(asked)?;
    let page = state
        .reader
        .read(move |db| query::requests(&**db, &filter))
        .await?;
    Ok(Json(page))
}

#[derive(Debug, Serialize)]
struct Used {
    used: u32,
    limit: u32,
}

#[derive(Debug, Serialize)]
struct Budget {
    #[serde(with = "rust_decimal::serde::str")]
    spent_usd: rust_decimal::Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    limit_usd: rust_decimal::Decimal,
}

#[derive(Debug, Serialize)]
struct Balance {
    #[serde(with = "rust_decimal::serde::str")]
    remaining_usd: rust_decimal::Decimal,
}

#[derive(Debug, Serialize)]
struct KeyLimits {
    key: String,
    rpm: Used,
    concurrent: Used,
    daily: Used,
    budget: Option<Budget>,
    balance: Option<Balance>,
}

#[derive(Debug, Serialize)]
struct AllLimits {
    keys: Vec<KeyLimits>,
}

/// Every accepted key's limits and what this process has counted of them.
async fn limits(State(state): State<Arc<AppState>>) -> Json<AllLimits> {
    let keys = state
        .keys
        .clients()
        .iter()
        .map(|client| {
            let gauge = state.limits.gauge(client);
            let limits = &client.limits;
            KeyLimits {
                key: client.name.clone(),
                rpm: Used {
                    used: gauge.minute,
                    limit: limits.rpm,
                },
                concurrent: Used {
                    used: gauge.in_flight,
                    limit: limits.concurrent,
                },
                daily: Used {
                    used: gauge.today,
                    limit: limits.daily,
                },
                budget: client.budget.map(|limit_usd| Budget {
                    spent_usd: gauge.month_spent,
                    limit_usd,
                }),
                balance: client.credits.map(|credits| Balance {
                    remaining_usd: credits - gauge.spent,
                }),
            }
        })
        .collect();
    Json(AllLimits { keys })
}

#[derive(Debug, Serialize)]
struct Upstreams {
    upstreams: Vec<UpstreamLine>,
}

/// A provider's traffic since start, and its circuit breaker's state now.
#[derive(Debug, Serialize)]
struct UpstreamLine {
    #[serde(flatten)]
    traffic: super::upstream_stats::Upstream,
    circuit: super::breaker::State,
}

async fn upstreams(State(state): State<Arc<AppState>>) -> Json<Upstreams> {
    let providers = state.router.providers();
    let traffic = state
        .ledger
        .upstreams()
        .report(providers.iter().map(|p| p.name.as_str()));
    let circuits = state
        .breakers
        .statuses(traffic.iter().map(|t| t.provider.as_str()))
        .into_iter()
        .map(|(_, status)| status.state)
        .collect::<Vec<_>>();
    let upstreams = traffic
        .into_iter()
        .zip(circuits)
        .map(|(traffic, circuit)| UpstreamLine { traffic, circuit })
        .collect();
    Json(Upstreams { upstreams })
}
