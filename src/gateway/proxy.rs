//! One inference request through the gateway, in order: read and check the body (`request`),
//! route, refuse what cannot be charged, translate, admit (`limits`), send upstream
//! (`dispatch`), and answer: a whole answer here, a stream through `relay`; `life` records it.
//! A Responses turn continues from and is kept in stored state (`responses`).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rust_decimal::Decimal;

use super::AppState;
use super::auth;
use super::count::count_locally;
use super::dispatch::{self, Answer, Outgoing};
use super::errors::ApiError;
use super::identity::Client;
use super::ledger::Output;
use super::life::{Asked, Life};
use super::limits::{Admission, Refusal};
use super::relay::relay_stream;
use super::request::{check_shape, read_body, route};
use super::routing::Route;
use super::rules::{self, Rule};
use super::upstream::Forwarded;
use crate::attribution::Attribution;
use crate::catalog::Pricing;
use crate::protocol::json::Body;
use crate::protocol::{Format, Kind};
use crate::store::Outcome;
use crate::translate::{self, Target};

/// `POST /chat/completions`, `/messages`, `/responses`.
pub(crate) async fn inference(
    State(state): State<Arc<AppState>>,
    format: Format,
    request: Request,
) -> Response {
    match handle(state, format, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn handle(
    state: Arc<AppState>,
    format: Format,
    request: Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let client = auth::client(&parts.extensions)?;
    let bytes = read_body(body, &parts.headers, &state.config.server).await?;
    // A Responses turn may continue a stored one, and be stored itself.
    let (bytes, turn) = match format {
        Format::Responses => super::responses::begin(&state, &parts.headers, bytes).await?,
        Format::Chat | Format::Messages => (bytes, None),
    };
    let body = Body::parse(&bytes).map_err(|e| ApiError::invalid(e.0))?;
    let shape = check_shape(format, &body)?;
    let attribution = Attribution::of(&parts.headers);
    let rule = state.router.rules().pick(&rules::Request::new(
        &shape.model,
        attribution.tool,
        &client.name,
        &body,
        &bytes,
    ));
    let wanted = rule.map_or(shape.model.as_str(), |rule| &rule.to[0]);
    let route = route(&state, wanted)?;
    let priced_only = client.has_money_limits();
    if priced_only && route.model.pricing == Pricing::Unpriced {
        super::metrics::refused(super::metrics::Reason::UnpricedModel);
        return Err(ApiError::invalid(format!(
            "The model `{wanted}` has no price, and this key has credits or a budget, so izzi cannot charge for it. Add a `[[models]]` entry for it with `input_per_mtok` and `output_per_mtok` (or set `[default_price]`) in config.toml."
        )));
    }
    // A route to several models tries them in order instead of the first one's fallbacks.
    let model = Arc::clone(&route.model);
    let fallbacks = match rule {
        Some(rule) if rule.to.len() > 1 => &rule.to[1..],
        _ => &model.fallbacks[..],
    };
    let forwarded = Forwarded::from_headers(&parts.headers);
    let outgoing = Outgoing {
        format,
        body: &body,
        raw: &bytes,
        client_model: &shape.model,
        stream: shape.stream,
        forwarded: &forwarded,
        priced_only,
        fallbacks,
        session: attribution.session.as_deref(),
    };
    // A request the provider cannot carry is a shape error: refused before it counts.
    let prepared = dispatch::prepare(&state, &outgoing, &route)?;
    let admission = match admit(&state, &client, &route, &body, &bytes).await {
        Ok(admission) => admission,
        Err(refusal) => return Ok(ApiError::from(refusal).into_response()),
    };
    let rate = admission.headers();
    let asked = Asked {
        attribution: attribution.clone(),
        model: shape.model.clone(),
        route: rule.map(|rule| Arc::clone(&rule.name)),
        stream: shape.stream,
    };
    let mut life = Life::new(&state, admission, asked, &route, started, bytes.clone());
    let served = Served { rule, model: None };
    let sent = match dispatch::send(&state, &outgoing, route, prepared).await {
        Ok(sent) => sent,
        Err(failure) => {
            life.failed(failure.error.status, failure.outcome);
            return Ok(served.attach(rate.attach(failure.error.into_response())));
        }
    };
    let served = Served {
        model: HeaderValue::try_from(sent.route.model.id.as_str()).ok(),
        ..served
    };
    life.model = Arc::clone(&sent.route.model);
    life.provider.clone_from(&sent.route.provider.name);
    let target = dispatch::target(&state, &sent.route, &outgoing);
    let kind = sent.route.provider.kind;
    let mut response = match sent.answer {
        Answer::Whole(answer) => match whole(format, kind, &target, answer, life) {
            Ok(response) => response,
            Err(err) => return Ok(served.attach(rate.attach(err.into_response()))),
        },
        Answer::Stream { first, rest } => relay_stream(
            format,
            kind,
            &target,
            first,
            rest,
            life,
            &state.config.server,
        ),
    };
    response.headers_mut().extend(sent.headers);
    if let Some(turn) = turn {
        response = turn.keep(Arc::clone(&state), response).await;
    }
    Ok(served.attach(rate.attach(response)))
}

/// What served a request, told in every answer: `x-izzi-model` (the model that answered) and
/// `x-izzi-route` (the `[[routes]]` rule that picked it, when one did).
struct Served<'a> {
    rule: Option<&'a Rule>,
    model: Option<HeaderValue>,
}

impl Served<'_> {
    fn attach(self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        if let Some(model) = self.model {
            headers.insert(HeaderName::from_static("x-izzi-model"), model);
        }
        if let Some(rule) = self.rule {
            headers.insert(HeaderName::from_static("x-izzi-route"), rule.header.clone());
        }
        response
    }
}

/// The limits step. A key with a balance or a budget holds the request's worst-case cost: its
/// input plus the most output it asks for, every input token at the dearest input price (a
/// cache write). The input is first bounded without tokenizing ([`crate::tokens::input_bound`]:
/// bytes, images at their largest, the context window), which costs nothing; only when that
/// bound is refused for money is the prompt tokenized for a tighter hold.
async fn admit(
    state: &AppState,
    client: &Client,
    route: &Route,
    body: &Body<'_>,
    bytes: &Bytes,
) -> Result<Admission, Refusal> {
    if !client.has_money_limits() {
        return state.limits.admit(client, Decimal::ZERO).await;
    }
    let model = &route.model;
    let most = u64::from(model.max_output);
    let asked = crate::tokens::max_output(|name| body.field::<u64>(name, "").ok().flatten());
    let output = match asked {
        Some(asked) if most > 0 => asked.min(most),
        Some(asked) => asked,
        None => most,
    };
    // A one-hour cache write costs twice the input price; only a body that asks for one pays it.
    let hour_cache = memchr::memmem::find(bytes, b"\"1h\"").is_some();
    let hold = |input_tokens: u64| model.worst_cost(input_tokens, output, hour_cache);
    let bound = crate::tokens::input_bound(model, bytes);
    match state.limits.admit(client, hold(bound)).await {
        Err(refusal) if refusal.is_money() => match count_locally(model, bytes).await {
            Some(counted) if counted.tokens < bound => {
                state.limits.admit(client, hold(counted.tokens)).await
            }
            _ => Err(refusal),
        },
        decided => decided,
    }
}

/// A non-streamed answer, translated if the formats differ.
fn whole(
    format: Format,
    kind: Kind,
    target: &Target<'_>,
    answer: Bytes,
    mut life: Life,
) -> Result<Response, ApiError> {
    life.output = Some(Output::Body(answer.clone()));
    let (out, usage) = translate::response(format, kind, &answer, target).map_err(|e| {
        let err = ApiError::upstream(format!("The upstream answer could not be read: {e}"));
        life.failed(err.status, Outcome::UpstreamInvalid);
        err
    })?;
    life.usage = usage;
    life.status = StatusCode::OK;
    life.outcome = Outcome::Completed;
    let out = match out {
        Cow::Borrowed(_) => answer.clone(),
        Cow::Owned(owned) => Bytes::from(owned),
    };
    let mut response = (StatusCode::OK, out).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
