//! Ollama request bodies into the pool's request: `options`, `format`, messages, and model
//! names with or without `:latest`.

use http::HeaderMap;

use super::wire;
use crate::api::convert::{Stop, message};
use crate::error::PoolError;
use crate::live::Snapshot;
use crate::orchestrator::PoolRequest;

/// `/api/generate`: the request, the model asked for, whether to stream, and whether the
/// prompt was empty (a preload).
pub(super) fn generate_request(
    b: wire::GenerateRequest,
    snapshot: &Snapshot,
    headers: &HeaderMap,
) -> Result<(PoolRequest, String, bool, bool), PoolError> {
    let model = model_name(snapshot, &b.model);
    let empty = b.prompt.as_deref().is_none_or(str::is_empty);
    let mut req = PoolRequest {
        model: Some(model),
        input: b.prompt,
        system: b.system,
        raw: b.raw,
        json: wants_json(b.format.as_ref())?,
        timeout: crate::api::http::header_timeout(headers)?,
        cache: crate::api::http::header_cache_mode(headers)?,
        request_id: crate::api::http::request_id(headers),
        ..Default::default()
    };
    options(b.options, &mut req)?;
    Ok((req, b.model, b.stream.unwrap_or(true), empty))
}

/// `/api/chat`: the request, the model asked for, and whether to stream.
pub(super) fn chat_request(
    b: wire::ChatRequest,
    snapshot: &Snapshot,
    headers: &HeaderMap,
) -> Result<(PoolRequest, String, bool), PoolError> {
    let messages = b
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| message(i, &m.role, m.content))
        .collect::<Result<Vec<_>, _>>()?;
    let mut req = PoolRequest {
        model: Some(model_name(snapshot, &b.model)),
        messages,
        json: wants_json(b.format.as_ref())?,
        timeout: crate::api::http::header_timeout(headers)?,
        cache: crate::api::http::header_cache_mode(headers)?,
        request_id: crate::api::http::request_id(headers),
        ..Default::default()
    };
    options(b.options, &mut req)?;
    Ok((req, b.model, b.stream.unwrap_or(true)))
}

fn options(o: wire::Options, req: &mut PoolRequest) -> Result<(), PoolError> {
    req.temperature = o.temperature;
    req.top_p = o.top_p;
    // Ollama: -1 = no limit, -2 = fill the context; both mean "the pool's default".
    req.max_tokens = match o.num_predict {
        None | Some(-1 | -2) => None,
        Some(n) if n > 0 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        Some(_) => {
            return Err(PoolError::invalid(
                "options.num_predict",
                "must be positive",
            ));
        }
    };
    req.seed = o.seed.map(|s| s.unsigned_abs());
    req.stop = o.stop.map(Stop::into_vec).unwrap_or_default();
    Ok(())
}

fn wants_json(format: Option<&serde_json::Value>) -> Result<bool, PoolError> {
    match format {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(false),
        Some(serde_json::Value::String(s)) if s == "json" => Ok(true),
        // A JSON Schema: ask for JSON.
        Some(serde_json::Value::Object(_)) => Ok(true),
        Some(_) => Err(PoolError::invalid(
            "format",
            "must be \"json\" or a JSON Schema",
        )),
    }
}

/// Ollama model names may carry `:latest`; a name configured without it still matches.
pub(super) fn model_name(snapshot: &Snapshot, model: &str) -> String {
    let config = &snapshot.config;
    if config.resolve_model(model).is_none()
        && let Some(base) = model.strip_suffix(":latest")
        && config.resolve_model(base).is_some()
    {
        return base.to_owned();
    }
    model.to_owned()
}
