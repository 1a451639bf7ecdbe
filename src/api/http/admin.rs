//! Admin routes: `GET /admin/config` (the serving version, the last reload error, and what
//! is configured, without secrets).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

pub(crate) async fn config(State(state): State<AppState>) -> Response {
    let snapshot = state.config.load();
    let providers: Vec<_> = snapshot
        .config
        .providers()
        .values()
        .map(|p| {
            serde_json::json!({
                "name": p.name(),
                "kind": p.kind(),
                "model": p.model(),
                "endpoints": p.endpoints().iter().map(ToString::to_string).collect::<Vec<_>>(),
                // The variable's name only; never its value.
                "api_key_env": p.api_key_env(),
            })
        })
        .collect();
    let mut body = reload_status(&state);
    body["providers"] = providers.into();
    body["tasks"] = serde_json::json!(snapshot.config.tasks().keys().collect::<Vec<_>>());
    body["aliases"] = serde_json::json!(snapshot.config.aliases().keys().collect::<Vec<_>>());
    body["auth"] = auth_summary(&snapshot.config);
    Json(body).into_response()
}

/// The serving config's version and file, and how its reloads went.
pub(super) fn reload_status(state: &AppState) -> serde_json::Value {
    let status = state.config.status();
    serde_json::json!({
        "version": status.version,
        "path": state.config.path().map(|p| p.display().to_string()),
        "loaded_at": status.loaded_at,
        "last_error": status.last_error,
        "last_error_at": status.last_error_at,
        "reloads_ok": status.reloads_ok,
        "reloads_rejected": status.reloads_rejected,
    })
}

/// The body of `POST /admin/cache/clear`; empty or `{}` clears everything.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClearBody {
    /// Only answers of this task.
    #[serde(default)]
    task: Option<String>,
    /// Only keys (hex SHA-256) starting with this.
    #[serde(default)]
    prefix: Option<String>,
}

pub(crate) async fn cache_clear(
    State(state): State<AppState>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let limit = super::BodyLimits::of(&state.config.load().config);
    let clear = match &body {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(ClearBody::default()),
        _ => super::parse_json::<ClearBody>(body, limit),
    };
    let clear = match clear {
        Ok(c) => c,
        Err(e) => return super::native::NativeError(e).into_response(),
    };
    if let Some(p) = &clear.prefix
        && !p.chars().all(|c| c.is_ascii_hexdigit())
    {
        let e = crate::error::PoolError::invalid("prefix", "must be hexadecimal");
        return super::native::NativeError(e).into_response();
    }
    match state
        .cache
        .clear(clear.task.as_deref(), clear.prefix.as_deref())
        .await
    {
        Ok(()) => Json(serde_json::json!({ "cleared": true })).into_response(),
        Err(e) => super::native::NativeError(crate::error::PoolError::Internal(e)).into_response(),
    }
}

pub(crate) async fn cache_stats(State(state): State<AppState>) -> Response {
    Json(serde_json::json!({
        "enabled": state.cache.enabled(),
        "stats": state.cache.stats().await,
    }))
    .into_response()
}

/// `GET /admin/accuracy`: every provider's learned accuracy per task, with the sums behind
/// it, the prior and the feedback window.
pub(crate) async fn accuracy(State(state): State<AppState>) -> Response {
    let snapshot = state.config.load();
    let learning = snapshot.config.learning();
    Json(serde_json::json!({
        "prior": {
            "mean": crate::providers::accuracy::PRIOR_MEAN,
            "strength": crate::providers::accuracy::PRIOR_STRENGTH,
        },
        "formula": "accuracy = (prior mean × strength + credit) / (strength + graded answers)",
        "feedback_window": learning.feedback_window(),
        "accuracy": snapshot.accuracy.all(),
    }))
    .into_response()
}

/// Who may call and how much; never a key, hash or secret (only how many of each).
fn auth_summary(config: &crate::config::Config) -> serde_json::Value {
    use crate::config::security::Allow;
    let allow = |a: &Allow| match a {
        Allow::All => serde_json::json!(["*"]),
        Allow::Only(v) => serde_json::json!(v),
    };
    let auth = config.auth();
    let tenants: Vec<_> = config
        .tenants()
        .values()
        .map(|t| {
            serde_json::json!({
                "name": &**t.name(),
                "admin": t.admin(),
                "tasks": allow(t.tasks()),
                "providers": allow(t.providers()),
                "api_keys": auth.api_keys().iter().filter(|k| *k.tenant() == *t.name()).count(),
                "hmac": auth.hmac_secrets().contains_key(t.name()),
                "requests_per_minute": t.requests_per_minute(),
                "tokens_per_minute": t.tokens_per_minute(),
                "max_concurrent": t.max_concurrent(),
            })
        })
        .collect();
    serde_json::json!({
        "required": { "inference": auth.inference(), "admin": auth.admin(), "operations": auth.operations() },
        "allow_unauthenticated": auth.allow_unauthenticated(),
        "jwt": auth.jwt().is_some(),
        "tenants": tenants,
    })
}

#[derive(serde::Deserialize)]
pub(crate) struct UsageQuery {
    tenant: Option<String>,
}

/// `GET /v1/usage[?tenant=NAME]`: tokens and cost per tenant and provider, with totals.
pub(crate) async fn usage(
    State(state): State<AppState>,
    query: Result<axum::extract::Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let tenant = match query {
        Ok(q) => q.0.tenant,
        Err(e) => {
            return super::native::NativeError(crate::error::PoolError::invalid(
                "query",
                e.body_text(),
            ))
            .into_response();
        }
    };
    let (report, source) = state.usage.report(tenant.as_deref()).await;
    let tenants = usage_tenants(report);
    let reference = state
        .config
        .load()
        .config
        .usage()
        .reference_cost_per_1k_tokens();
    Json(serde_json::json!({
        "source": source,
        "reference_cost_per_1k_tokens": reference,
        "tenants": tenants,
    }))
    .into_response()
}

/// Per tenant: its counters by provider and their total.
pub(super) fn usage_tenants(
    report: crate::usage::Report,
) -> serde_json::Map<String, serde_json::Value> {
    report
        .into_iter()
        .map(|(name, providers)| {
            let mut total = crate::usage::Counters::default();
            for c in providers.values() {
                total.add(c);
            }
            (
                name,
                serde_json::json!({ "providers": providers, "total": total }),
            )
        })
        .collect()
}
