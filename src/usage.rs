//! Usage and cost per tenant and provider: requests, prompt and completion tokens, cost at
//! the provider's `cost_per_1k_tokens`, and the cost saved against `[usage]
//! reference_cost_per_1k_tokens`. Cache hits are counted apart: they cost nothing and save
//! the whole reference price of the tokens they stand for.
//!
//! Kept in memory (this process, since it started); with `[usage] redis_url`, every replica
//! also adds to one Redis hash per tenant (`HINCRBY`/`HINCRBYFLOAT`, fire and forget), and
//! `GET /v1/usage` reads the sum over replicas from there, falling back to memory if Redis
//! is unreachable. Callers without credentials are the tenant `anonymous`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

use crate::config::Config;
use crate::config::ops::UsageConfig;
use crate::redis_link::RedisLink;
use crate::telemetry::metrics as m;
use crate::types::{Answer, Decision};

/// The tenant of requests made without credentials.
pub const ANONYMOUS: &str = "anonymous";
/// The `tenant` label of usage metrics summed over tenants (see `[usage] tenant_metrics`).
pub const ALL_TENANTS: &str = "*";

/// Counters of one tenant at one provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counters {
    /// Answers this provider contributed to (each candidate call counts).
    pub calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Tokens answered from the cache instead of this provider.
    pub cached_tokens: u64,
    /// At the provider's `cost_per_1k_tokens`.
    pub cost: f64,
    /// Reference price of every token served (cached ones included) minus `cost`.
    pub cost_saved: f64,
}

impl Counters {
    pub fn add(&mut self, o: &Self) {
        self.calls += o.calls;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.cached_tokens += o.cached_tokens;
        self.cost += o.cost;
        self.cost_saved += o.cost_saved;
    }

    const FIELDS: [&'static str; 6] = [
        "calls",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "cost",
        "cost_saved",
    ];
}

/// Tenant → provider → counters.
pub type Report = BTreeMap<String, BTreeMap<String, Counters>>;

pub struct Ledger {
    local: Mutex<HashMap<(Arc<str>, String), Counters>>,
    redis: Option<Arc<(RedisLink, String)>>,
    reference: f64,
    /// [`ANONYMOUS`], allocated once.
    anonymous: Arc<str>,
    /// [`ALL_TENANTS`], allocated once.
    all_tenants: Arc<str>,
}

impl Ledger {
    pub fn new(cfg: &UsageConfig) -> Self {
        let redis = cfg.redis_url().and_then(|url| {
            match RedisLink::new(url, cfg.redis_timeout(), "usage") {
                Ok(link) => Some(Arc::new((link, cfg.key_prefix().to_owned()))),
                Err(error) => {
                    tracing::error!(%error, "Usage Redis unusable; counting in memory.");
                    None
                }
            }
        });
        Self {
            local: Mutex::new(HashMap::new()),
            redis,
            reference: cfg.reference_cost_per_1k_tokens(),
            anonymous: Arc::from(ANONYMOUS),
            all_tenants: Arc::from(ALL_TENANTS),
        }
    }

    /// Adds what `answer` cost to `tenant`.
    pub fn record(&self, config: &Config, tenant: Option<&Arc<str>>, answer: &Answer) {
        self.record_rows(config, tenant, rows(config, self.reference, answer));
    }

    /// Adds what the calls of a request that did not produce an answer (it failed, or its
    /// caller went away) spent.
    pub fn record_spent(&self, config: &Config, tenant: Option<&Arc<str>>, decision: &Decision) {
        self.record_rows(config, tenant, spent_rows(config, self.reference, decision));
    }

    /// Adds the tokens of one call that ended without a usage report (a stream cut off,
    /// or abandoned by its caller): counted as they were streamed.
    pub fn record_tokens(
        &self,
        config: &Config,
        tenant: Option<&Arc<str>>,
        provider: &str,
        prompt: u64,
        completion: u64,
    ) {
        let price = config
            .providers()
            .get(provider)
            .map_or(0.0, |p| p.cost_per_1k_tokens());
        let row = tokens_row(prompt, completion, price, self.reference);
        self.record_rows(config, tenant, vec![(provider.to_owned(), row)]);
    }

    fn record_rows(
        &self,
        config: &Config,
        tenant: Option<&Arc<str>>,
        rows: Vec<(String, Counters)>,
    ) {
        let tenant: Arc<str> = Arc::clone(tenant.unwrap_or(&self.anonymous));
        if rows.is_empty() {
            return;
        }
        // What each tenant spends is labelled only where `/metrics` is not open to all.
        let by_tenant = config.usage().tenant_metrics().unwrap_or_else(|| {
            config
                .auth()
                .required(crate::config::security::RouteGroup::Operations, "/metrics")
        });
        let shown: Arc<str> = if by_tenant {
            Arc::clone(&tenant)
        } else {
            Arc::clone(&self.all_tenants)
        };
        for (provider, c) in &rows {
            TENANT_HANDLES.with(
                [&shown, provider],
                || {
                    let labels = [
                        ("tenant", metrics::SharedString::from(Arc::clone(&shown))),
                        ("provider", metrics::SharedString::from(provider.clone())),
                    ];
                    TenantHandles {
                        tokens: metrics::counter!(m::TENANT_TOKENS, &labels),
                        cached: metrics::counter!(m::TENANT_CACHED_TOKENS, &labels),
                        cost: metrics::gauge!(m::COST, &labels),
                        saved: metrics::gauge!(m::COST_SAVED, &labels),
                    }
                },
                |h| {
                    h.tokens.increment(c.prompt_tokens + c.completion_tokens);
                    h.cached.increment(c.cached_tokens);
                    h.cost.increment(c.cost);
                    h.saved.increment(c.cost_saved);
                },
            );
        }
        {
            let mut local = self.local.lock();
            for (provider, c) in &rows {
                local
                    .entry((Arc::clone(&tenant), provider.clone()))
                    .or_default()
                    .add(c);
            }
        }
        if let Some(redis) = &self.redis
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let redis = Arc::clone(redis);
            rt.spawn(async move {
                let (link, prefix) = &*redis;
                let mut pipe = redis::pipe();
                let key = format!("{prefix}{tenant}");
                for (provider, c) in &rows {
                    let ints = [
                        c.calls,
                        c.prompt_tokens,
                        c.completion_tokens,
                        c.cached_tokens,
                    ];
                    for (field, v) in Counters::FIELDS.iter().zip(ints) {
                        if v > 0 {
                            pipe.hincr(&key, format!("{provider}|{field}"), v).ignore();
                        }
                    }
                    for (field, v) in [("cost", c.cost), ("cost_saved", c.cost_saved)] {
                        if v != 0.0 {
                            pipe.cmd("HINCRBYFLOAT")
                                .arg(&key)
                                .arg(format!("{provider}|{field}"))
                                .arg(v)
                                .ignore();
                        }
                    }
                }
                pipe.sadd(format!("{prefix}tenants"), &*tenant).ignore();
                link.run("usage HINCRBY", |mut c| async move {
                    pipe.query_async::<()>(&mut c).await
                })
                .await;
            });
        }
    }

    /// Usage so far, optionally of one tenant: from Redis (every replica) when configured
    /// and reachable, else this process's. The second value names the source.
    pub async fn report(&self, tenant: Option<&str>) -> (Report, &'static str) {
        if let Some(redis) = &self.redis
            && let Some(report) = redis_report(redis, tenant).await
        {
            return (report, "redis");
        }
        let mut out = Report::new();
        for ((t, p), c) in self.local.lock().iter() {
            if tenant.is_none_or(|want| want == &**t) {
                out.entry(t.to_string())
                    .or_default()
                    .entry(p.clone())
                    .or_default()
                    .add(c);
            }
        }
        (out, "memory")
    }
}

async fn redis_report(redis: &(RedisLink, String), tenant: Option<&str>) -> Option<Report> {
    let (link, prefix) = redis;
    let tenants: Vec<String> = match tenant {
        Some(t) => vec![t.to_owned()],
        None => {
            let key = format!("{prefix}tenants");
            link.run("usage SMEMBERS", |mut c| async move {
                redis::cmd("SMEMBERS").arg(key).query_async(&mut c).await
            })
            .await?
        }
    };
    let mut out = Report::new();
    for t in tenants {
        let key = format!("{prefix}{t}");
        let fields: HashMap<String, String> = link
            .run("usage HGETALL", |mut c| async move {
                redis::cmd("HGETALL").arg(key).query_async(&mut c).await
            })
            .await?;
        let providers = out.entry(t).or_default();
        for (field, value) in fields {
            let Some((provider, name)) = field.rsplit_once('|') else {
                continue;
            };
            let c = providers.entry(provider.to_owned()).or_default();
            let int = || value.parse::<u64>().unwrap_or(0);
            let float = || value.parse::<f64>().unwrap_or(0.0);
            match name {
                "calls" => c.calls = int(),
                "prompt_tokens" => c.prompt_tokens = int(),
                "completion_tokens" => c.completion_tokens = int(),
                "cached_tokens" => c.cached_tokens = int(),
                "cost" => c.cost = float(),
                "cost_saved" => c.cost_saved = float(),
                _ => {}
            }
        }
    }
    Some(out)
}

/// What one answer adds, per provider. A cache hit adds cached tokens to the winner only.
fn rows(config: &Config, reference: f64, answer: &Answer) -> Vec<(String, Counters)> {
    if !answer.billed() {
        // Served from a call this request did not make: the tokens it saved.
        let tokens = u64::from(answer.decision.total_usage.total_tokens);
        return vec![(
            answer.provider.clone(),
            Counters {
                cached_tokens: tokens,
                cost_saved: tokens as f64 / 1000.0 * reference,
                ..Counters::default()
            },
        )];
    }
    spent_rows(config, reference, &answer.decision)
}

/// Tokens and cost of every call recorded in `decision`.
fn spent_rows(config: &Config, reference: f64, decision: &Decision) -> Vec<(String, Counters)> {
    let price = |provider: &str| {
        config
            .providers()
            .get(provider)
            .map_or(0.0, |p| p.cost_per_1k_tokens())
    };
    let mut out: Vec<(String, Counters)> = Vec::new();
    let mut counted = (0u64, 0u64);
    for c in &decision.candidates {
        let Some(u) = c.usage else { continue };
        let (p, q) = (u64::from(u.prompt_tokens), u64::from(u.completion_tokens));
        counted = (counted.0 + p, counted.1 + q);
        out.push((
            c.provider.clone(),
            tokens_row(p, q, price(&c.provider), reference),
        ));
    }
    // The judge's tokens are in the total but on no candidate.
    let total = &decision.total_usage;
    let rest = (
        u64::from(total.prompt_tokens).saturating_sub(counted.0),
        u64::from(total.completion_tokens).saturating_sub(counted.1),
    );
    if let Some(judge) = &decision.judge
        && rest != (0, 0)
    {
        let mut row = tokens_row(rest.0, rest.1, price(&judge.provider), reference);
        row.calls = u64::from(judge.attempts.max(1));
        out.push((judge.provider.clone(), row));
    }
    out
}

fn tokens_row(prompt: u64, completion: u64, price: f64, reference: f64) -> Counters {
    let k = (prompt + completion) as f64 / 1000.0;
    Counters {
        calls: 1,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: 0,
        cost: k * price,
        cost_saved: k * (reference - price),
    }
}

/// What a tenant spent at a provider, as metric handles.
#[derive(Clone)]
struct TenantHandles {
    tokens: metrics::Counter,
    cached: metrics::Counter,
    cost: metrics::Gauge,
    saved: metrics::Gauge,
}

static TENANT_HANDLES: std::sync::LazyLock<m::Resolved<2, TenantHandles>> =
    std::sync::LazyLock::new(m::Resolved::default);
