//! Protobuf ⇄ internal types, and errors to `Status`.

use std::time::Duration;

use tonic::{Code, Request, Status};

use super::pb;
use crate::api::convert::message;
use crate::config::raw::StrategyKind;
use crate::error::PoolError;
use crate::orchestrator::PoolRequest;
use crate::providers::{Format, Tool, ToolCall, ToolChoice};
use crate::types::{Answer, CacheMode};

/// Time kept back from the caller's gRPC deadline so that the pool answers
/// DEADLINE_EXCEEDED itself, before tonic's own timer (which also reads `grpc-timeout`)
/// cancels the call with a bare CANCELLED.
const GRPC_DEADLINE_MARGIN: Duration = Duration::from_millis(20);

pub(super) fn request(request: Request<pb::QueryRequest>) -> Result<PoolRequest, PoolError> {
    let grpc_timeout = grpc_timeout(&request);
    let request_id = request
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(crate::types::new_request_id, str::to_owned);
    let q = request.into_inner();
    let messages = q
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let mut out = message(i, &m.role, m.content)?;
            out.tool_calls = m
                .tool_calls
                .into_iter()
                .map(|c| ToolCall {
                    id: c.id,
                    name: c.name,
                    arguments: c.arguments_json,
                })
                .collect();
            out.tool_call_id = Some(m.tool_call_id).filter(|s| !s.is_empty());
            out.name = Some(m.name).filter(|s| !s.is_empty());
            Ok(out)
        })
        .collect::<Result<Vec<_>, PoolError>>()?;
    let tools = q
        .tools
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let parameters =
                json_field(&t.parameters_json, &format!("tools[{i}].parameters_json"))?;
            Ok(Tool {
                name: t.name,
                description: Some(t.description).filter(|d| !d.is_empty()),
                parameters,
                strict: None,
            })
        })
        .collect::<Result<Vec<_>, PoolError>>()?;
    let tool_choice = match q.tool_choice.as_str() {
        "" => None,
        "none" => Some(ToolChoice::None),
        "auto" => Some(ToolChoice::Auto),
        "required" => Some(ToolChoice::Required),
        name => Some(ToolChoice::Function(name.to_owned())),
    };
    let format = match json_field(&q.response_schema_json, "response_schema_json")? {
        None => Format::Text,
        Some(schema) => Format::Schema {
            name: "response".to_owned(),
            schema: std::sync::Arc::new(schema),
            strict: None,
        },
    };
    let strategy = match pb::Strategy::try_from(q.strategy) {
        Ok(pb::Strategy::Unspecified) => None,
        Ok(pb::Strategy::Fastest) => Some(StrategyKind::Fastest),
        Ok(pb::Strategy::Voting) => Some(StrategyKind::Voting),
        Ok(pb::Strategy::Weighted) => Some(StrategyKind::Weighted),
        Ok(pb::Strategy::Consensus) => Some(StrategyKind::Consensus),
        Ok(pb::Strategy::Judge) => Some(StrategyKind::Judge),
        Ok(pb::Strategy::Cascade) => Some(StrategyKind::Cascade),
        Err(_) => return Err(PoolError::invalid("strategy", "unknown strategy value")),
    };
    let cache = cache_mode(q.cache)?;
    // The gRPC deadline and the body's timeout: the shorter wins.
    let timeout = shorter(grpc_timeout, q.timeout_ms.map(Duration::from_millis));
    Ok(PoolRequest {
        task: Some(q.task).filter(|t| !t.is_empty()),
        model: Some(q.model).filter(|m| !m.is_empty()),
        input: Some(q.input).filter(|i| !i.is_empty()),
        messages,
        variables: q.variables.into_iter().collect(),
        strategy,
        n: q.n,
        max_tokens: q.max_tokens,
        temperature: q.temperature,
        top_p: q.top_p,
        seed: q.seed,
        stop: q.stop,
        tools,
        tool_choice,
        format,
        timeout,
        cache,
        metadata: q.metadata.into_iter().collect(),
        request_id,
        top_k: q.top_k,
        ..Default::default()
    })
}

pub(super) fn embed_call(
    request: Request<pb::EmbedRequest>,
) -> Result<crate::orchestrator::EmbedCall, PoolError> {
    let grpc_timeout = grpc_timeout(&request);
    let q = request.into_inner();
    let cache = cache_mode(q.cache)?;
    let timeout = shorter(grpc_timeout, q.timeout_ms.map(Duration::from_millis));
    Ok(crate::orchestrator::EmbedCall {
        model: q.model,
        request: crate::providers::EmbedRequest {
            input: q.input,
            dimensions: q.dimensions,
            ..Default::default()
        },
        cache,
        timeout,
        tenant: None,
        priority: None,
    })
}

/// The caller's gRPC deadline, less the margin the pool keeps to answer it itself.
fn grpc_timeout<T>(request: &Request<T>) -> Option<Duration> {
    request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map(|t| {
            t.saturating_sub(GRPC_DEADLINE_MARGIN)
                .max(Duration::from_millis(1))
        })
}

/// The gRPC deadline and the body's timeout: the shorter wins.
fn shorter(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn cache_mode(mode: i32) -> Result<CacheMode, PoolError> {
    match pb::CacheMode::try_from(mode) {
        Ok(pb::CacheMode::Default) => Ok(CacheMode::Default),
        Ok(pb::CacheMode::Bypass) => Ok(CacheMode::Bypass),
        Ok(pb::CacheMode::Refresh) => Ok(CacheMode::Refresh),
        Ok(pb::CacheMode::Only) => Ok(CacheMode::Only),
        Err(_) => Err(PoolError::invalid("cache", "unknown cache mode")),
    }
}

/// A JSON object given as text (`""`: none).
fn json_field(text: &str, field: &str) -> Result<Option<serde_json::Value>, PoolError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(Some(v)),
        Ok(_) => Err(PoolError::invalid(field, "must be a JSON object")),
        Err(e) => Err(PoolError::invalid(field, format!("not JSON: {e}"))),
    }
}

pub(super) fn tool_call(c: ToolCall) -> pb::ToolCall {
    pb::ToolCall {
        id: c.id,
        name: c.name,
        arguments_json: c.arguments,
    }
}

/// `grpc-timeout`: an integer of at most 8 digits and a unit (H M S m u n).
pub(crate) fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (num, unit) = v.split_at(v.len() - 1);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The type URL of the Decision packed into error details.
pub const DECISION_TYPE_URL: &str = "type.googleapis.com/llmpool.v1.Decision";

/// The error as a gRPC status. Its details (`grpc-status-details-bin`, a `google.rpc.Status`)
/// carry a standard `google.rpc.RetryInfo` when the caller should wait (rate limits, as
/// DESIGN.md says), and the Decision (`llmpool.v1.Decision`) with every candidate when one
/// was made (no consensus, invalid answers, unavailable, deadline).
pub(crate) fn status(e: PoolError) -> Status {
    use prost::Message as _;
    let code: Code = e.kind().grpc_code();
    let message = e.to_string();
    let mut details = Vec::new();
    if let Some(secs) = e.retry_after_secs() {
        let info = tonic_types::pb::RetryInfo {
            retry_delay: Some(prost_types::Duration {
                seconds: i64::try_from(secs).unwrap_or(i64::MAX),
                nanos: 0,
            }),
        };
        details.push(prost_types::Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".to_owned(),
            value: info.encode_to_vec(),
        });
    }
    let retry_after = e.retry_after_secs();
    let decision_pb = match e {
        PoolError::NoConsensus { decision, .. } | PoolError::LowConfidence { decision, .. } => {
            Some(to_decision(*decision))
        }
        PoolError::DeadlineExceeded { decision, .. }
        | PoolError::Unavailable { decision, .. }
        | PoolError::InvalidAnswer { decision, .. }
        | PoolError::Rejected { decision, .. } => decision.map(|d| to_decision(*d)),
        _ => None,
    };
    if let Some(d) = decision_pb {
        details.push(prost_types::Any {
            type_url: DECISION_TYPE_URL.to_owned(),
            value: d.encode_to_vec(),
        });
    }
    let mut status = if details.is_empty() {
        Status::new(code, message)
    } else {
        let rich = tonic_types::pb::Status {
            code: code as i32,
            message: message.clone(),
            details,
        };
        Status::with_details(code, message, rich.encode_to_vec().into())
    };
    if let Some(secs) = retry_after {
        status
            .metadata_mut()
            .insert("retry-after", tonic::metadata::MetadataValue::from(secs));
    }
    status
}

fn strategy(name: &str) -> i32 {
    let s = match name {
        "fastest" => pb::Strategy::Fastest,
        "voting" => pb::Strategy::Voting,
        "weighted" => pb::Strategy::Weighted,
        "consensus" => pb::Strategy::Consensus,
        "judge" => pb::Strategy::Judge,
        "cascade" => pb::Strategy::Cascade,
        _ => pb::Strategy::Unspecified,
    };
    s as i32
}

pub(super) fn answer(a: Answer) -> pb::Answer {
    let decision = to_decision(a.decision);
    pb::Answer {
        text: a.text,
        provider: a.provider,
        model: a.model,
        usage: Some(pb::Usage {
            prompt_tokens: a.usage.prompt_tokens,
            completion_tokens: a.usage.completion_tokens,
            total_tokens: a.usage.total_tokens,
        }),
        latency_ms: a.latency_ms,
        cache_hit: a.cache_hit,
        decision: Some(decision),
        finish_reason: a.finish_reason.unwrap_or_default(),
        task: a.task.unwrap_or_default(),
        request_id: a.request_id,
        tool_calls: a.tool_calls.into_iter().map(tool_call).collect(),
        reasoning: a.reasoning.unwrap_or_default(),
        top_k: a
            .top_k
            .into_iter()
            .map(|l| pb::LabelProbability {
                label: l.label,
                probability: l.probability,
            })
            .collect(),
    }
}

/// A `FeedbackRequest` as the orchestrator takes it.
pub(super) fn feedback_call(
    r: pb::FeedbackRequest,
    caller: &crate::auth::Caller,
) -> Result<crate::orchestrator::FeedbackCall, PoolError> {
    use crate::orchestrator::Verdict;
    use pb::feedback_request::Truth;
    let verdict = match r.truth {
        Some(Truth::Answer(a)) => Verdict::Answer(a),
        Some(Truth::Verdict(v)) => match pb::Verdict::try_from(v) {
            Ok(pb::Verdict::Good) => Verdict::Good,
            Ok(pb::Verdict::Bad) => Verdict::Bad,
            _ => {
                return Err(PoolError::invalid(
                    "verdict",
                    "must be VERDICT_GOOD or VERDICT_BAD",
                ));
            }
        },
        None => {
            return Err(PoolError::invalid(
                "answer",
                "give `answer` (the right answer) or `verdict`",
            ));
        }
    };
    Ok(crate::orchestrator::FeedbackCall {
        request_id: r.request_id,
        verdict,
        tenant: caller.tenant.clone(),
    })
}

pub(super) fn feedback_reply(r: crate::orchestrator::FeedbackReply) -> pb::FeedbackReply {
    pb::FeedbackReply {
        request_id: r.request_id,
        task: r.task,
        answer: r.answer.unwrap_or_default(),
        graded: r
            .graded
            .into_iter()
            .map(|g| pb::GradedAnswer {
                provider: g.provider,
                answer: g.answer,
                credit_before: g.credit_before,
                credit: g.credit,
                accuracy: g.accuracy.accuracy,
                evidence: g.accuracy.evidence,
            })
            .collect(),
    }
}

fn to_decision(d: crate::types::Decision) -> pb::Decision {
    pb::Decision {
        strategy: strategy(&d.strategy),
        candidates: d
            .candidates
            .into_iter()
            .map(|c| pb::Candidate {
                provider: c.provider,
                model: c.model,
                endpoint: c.endpoint.unwrap_or_default(),
                status: c.status.as_str().to_owned(),
                text: c.text.unwrap_or_default(),
                latency_ms: c.latency_ms,
                started_ms: c.started_ms,
                retries: c.retries,
                error: c.error.unwrap_or_default(),
                usage: c.usage.map(|u| pb::Usage {
                    prompt_tokens: u.prompt_tokens,
                    completion_tokens: u.completion_tokens,
                    total_tokens: u.total(),
                }),
                hedged: c.hedged,
                sample: c.sample,
                weight: c.weight,
                group: c.group.map(|g| g as u32),
                accuracy: c.accuracy,
                evidence: c.evidence,
                credit: c.credit,
            })
            .collect(),
        votes: d.votes.into_iter().collect(),
        winner: d.winner.unwrap_or_default(),
        agreement: d.agreement.unwrap_or_default(),
        rationale: d.rationale.unwrap_or_default(),
        fallbacks: d.fallbacks,
        groups: d
            .groups
            .into_iter()
            .map(|g| pb::Group {
                answer: g.answer,
                members: g.members.into_iter().map(|m| m as u32).collect(),
                votes: g.votes,
                probability: g.probability,
            })
            .collect(),
        formula: d
            .formula
            .map(std::borrow::Cow::into_owned)
            .unwrap_or_default(),
        judge: d.judge.map(|j| pb::JudgeVerdict {
            provider: j.provider,
            seed: j.seed,
            order: j.order.into_iter().map(|i| i as u32).collect(),
            scores: j.scores.into_iter().map(|(k, v)| (k as u32, v)).collect(),
            winner: j.winner.map(|w| w as u32),
            attempts: j.attempts,
            errors: j.errors,
        }),
        tiers: d
            .tiers
            .into_iter()
            .map(|t| pb::Tier {
                provider: t.provider,
                cost_per_1k_tokens: t.cost_per_1k_tokens,
                accepted: t.accepted,
                reason: t.reason,
                candidates: t.candidates.into_iter().map(|i| i as u32).collect(),
            })
            .collect(),
        total_usage: Some(pb::Usage {
            prompt_tokens: d.total_usage.prompt_tokens,
            completion_tokens: d.total_usage.completion_tokens,
            total_tokens: d.total_usage.total_tokens,
        }),
        confidence: d.confidence,
        stopped: d
            .stopped
            .map(std::borrow::Cow::into_owned)
            .unwrap_or_default(),
        degraded: d
            .degraded
            .into_iter()
            .map(std::borrow::Cow::into_owned)
            .collect(),
        route: d.route.map(|r| pb::RouteRecord {
            router: r.router,
            label: r.label,
            confidence: r.confidence,
            route: r.route,
            task: r.task,
            reason: r.reason.into_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("123456789m"), None);
    }
}
