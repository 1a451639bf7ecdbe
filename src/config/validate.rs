//! `RawConfig` → `Config`: every check, every error with its TOML path.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::Template;
use super::checked::{
    Config, Ensemble, Limits, ProviderConfig, Routing, ServerConfig, Target, TaskConfig,
    url_like::BaseUrl,
};
use super::raw::{
    AcceptRule, OnDisagreement, OutputKind, RawConfig, RawProvider, RawTask, StrategyKind,
};

/// One problem in the file, at a TOML path such as `tasks.judge.providers[1]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub(crate) fn one(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

struct Checker {
    errors: Vec<ConfigError>,
}

impl Checker {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }
}

pub(super) fn validate(raw: RawConfig, base: &Path) -> Result<Config, ConfigErrors> {
    let mut c = Checker { errors: Vec::new() };

    let server = check_server(&mut c, &raw, base);
    let limits = check_limits(&mut c, &raw);
    let qos = Arc::new(check_qos(&mut c, &raw.qos));
    let cache = check_cache(&mut c, &raw.cache);

    let mut providers = BTreeMap::new();
    for (name, p) in &raw.providers {
        if let Some(p) = check_provider(&mut c, name, p, &qos) {
            providers.insert(name.clone(), Arc::new(p));
        }
    }

    let mut tasks = BTreeMap::new();
    for (name, t) in &raw.tasks {
        if let Some(t) = check_task(&mut c, name, t, &raw, &server.prompts_dir, &limits) {
            tasks.insert(name.clone(), Arc::new(t));
        }
    }

    let mut aliases = BTreeMap::new();
    for (alias, value) in &raw.aliases {
        let path = format!("aliases.{alias}");
        if raw.providers.contains_key(alias) {
            c.err(&path, "an alias may not have the name of a provider");
            continue;
        }
        if let Some(task) = value.strip_prefix("task:") {
            if raw.tasks.contains_key(task) {
                aliases.insert(alias.clone(), Target::Task(task.to_owned()));
            } else {
                c.err(&path, format!("unknown task `{task}`"));
            }
        } else if raw.providers.contains_key(value) {
            aliases.insert(alias.clone(), Target::Provider(value.clone()));
        } else {
            c.err(
                &path,
                format!("`{value}` is neither a provider nor `task:NAME`"),
            );
        }
    }

    let security = super::security::check(
        &mut |p, m| c.err(p, m),
        &raw.auth,
        &raw.tenants,
        &raw.rate_limit,
        &|t| raw.tasks.contains_key(t),
        &|p| raw.providers.contains_key(p),
        base,
    );

    for (name, t) in &security.tenants {
        for (field, class) in [
            ("priority", t.priority()),
            ("max_priority", t.max_priority()),
        ] {
            if let Some(class) = class
                && qos.overload.class_index(class).is_none()
            {
                c.err(
                    format!("tenants.{name}.{field}"),
                    format!("`{class}` is not a class of qos.overload"),
                );
            }
        }
        if !(t.queue_weight() > 0.0 && t.queue_weight().is_finite()) {
            c.err(format!("tenants.{name}.queue_weight"), "must be above 0");
        }
    }

    let usage = super::ops::check_usage(&mut |p, m| c.err(p, m), &raw.usage);
    let learning = super::ops::check_learning(&mut |p, m| c.err(p, m), &raw.learning);
    let console = super::ops::check_console(&mut |p, m| c.err(p, m), &raw.console);
    let registry = raw
        .registry
        .as_ref()
        .and_then(|r| super::ops::check_registry(&mut |p, m| c.err(p, m), r));
    let tracing = super::ops::check_tracing(&mut |p, m| c.err(p, m), &raw.tracing);

    if c.errors.is_empty() {
        Ok(Config {
            usage,
            learning,
            console,
            registry,
            tracing,
            auth: Arc::new(security.auth),
            tenants: security.tenants,
            rate_limit: security.rate_limit,
            server,
            limits,
            providers,
            tasks,
            aliases,
            qos,
            cache,
        })
    } else {
        Err(ConfigErrors(c.errors))
    }
}

fn check_server(c: &mut Checker, raw: &RawConfig, base: &Path) -> ServerConfig {
    let s = &raw.server;
    let mut addr = |key: &str, v: &str| -> SocketAddr {
        v.parse().unwrap_or_else(|e| {
            c.err(
                format!("server.{key}"),
                format!("`{v}` is not a socket address: {e}"),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    };
    let grpc_addr = addr("grpc_addr", &s.grpc_addr);
    let http_addr = addr("http_addr", &s.http_addr);
    if s.max_body_bytes < 1024 {
        c.err("server.max_body_bytes", "must be at least 1024");
    }
    if s.header_read_timeout_ms == 0 {
        c.err("server.header_read_timeout_ms", "must be greater than 0");
    }
    check_ms(
        c,
        "server.header_read_timeout_ms".to_owned(),
        s.header_read_timeout_ms,
    );
    if s.max_header_bytes < 8192 {
        c.err("server.max_header_bytes", "must be at least 8192");
    }
    let tls = s.tls.as_ref().map(|t| super::security::check_tls(t, base));
    ServerConfig {
        grpc_addr,
        http_addr,
        prompts_dir: base.join(&s.prompts_dir),
        max_body_bytes: s.max_body_bytes,
        shutdown_grace: Duration::from_secs(s.shutdown_grace_secs),
        log_format: s.log_format,
        header_read_timeout: Duration::from_millis(s.header_read_timeout_ms),
        max_header_bytes: s.max_header_bytes,
        tls,
        max_in_flight: s.max_in_flight,
        max_connections: s.max_connections,
    }
}

fn check_limits(c: &mut Checker, raw: &RawConfig) -> Limits {
    let l = &raw.limits;
    if !(2..=1024).contains(&l.max_json_depth) {
        c.err("limits.max_json_depth", "must be between 2 and 1024");
    }
    if l.max_input_chars == 0 {
        c.err("limits.max_input_chars", "must be greater than 0");
    }
    if l.max_messages == 0 {
        c.err("limits.max_messages", "must be greater than 0");
    }
    if l.max_tokens == 0 {
        c.err("limits.max_tokens", "must be greater than 0");
    }
    if l.default_deadline_ms == 0 {
        c.err("limits.default_deadline_ms", "must be greater than 0");
    }
    check_ms(c, "limits.max_deadline_ms".into(), l.max_deadline_ms);
    if l.max_deadline_ms < l.default_deadline_ms {
        c.err(
            "limits.max_deadline_ms",
            "must be at least limits.default_deadline_ms",
        );
    }
    Limits {
        max_input_chars: l.max_input_chars,
        max_messages: l.max_messages,
        max_tokens: l.max_tokens,
        default_deadline: Duration::from_millis(l.default_deadline_ms),
        max_deadline: Duration::from_millis(l.max_deadline_ms),
        max_json_depth: l.max_json_depth,
    }
}

fn check_cache(c: &mut Checker, r: &super::raw::RawCache) -> super::checked::CacheConfig {
    use super::raw::CacheBackend;
    if r.max_entries == 0 {
        c.err("cache.max_entries", "must be at least 1");
    }
    let needs_redis = matches!(r.backend, CacheBackend::Redis | CacheBackend::TwoLevel);
    match &r.redis_url {
        None if needs_redis && r.enabled => {
            c.err(
                "cache.redis_url",
                "the redis and two_level backends need a redis_url",
            );
        }
        Some(url) if redis::Client::open(url.as_str()).is_err() => {
            // Not echoed: the URL may hold a password.
            c.err("cache.redis_url", "not a valid redis:// URL");
        }
        _ => {}
    }
    if r.redis_timeout_ms == 0 {
        c.err("cache.redis_timeout_ms", "must be greater than 0");
    }
    check_ms(c, "cache.redis_timeout_ms".to_owned(), r.redis_timeout_ms);
    super::checked::CacheConfig {
        enabled: r.enabled,
        backend: r.backend,
        max_entries: r.max_entries,
        max_bytes: r.max_bytes,
        redis_url: r.redis_url.clone(),
        key_prefix: r.key_prefix.clone(),
        redis_timeout: Duration::from_millis(r.redis_timeout_ms),
    }
}

fn check_qos(c: &mut Checker, q: &super::raw::RawQos) -> crate::qos::QosConfig {
    use crate::qos::{BreakerConfig, QosConfig, RetryConfig};
    let b = &q.breaker;
    let r = &q.retry;
    for (key, ms) in [
        ("qos.health_check_interval_ms", q.health_check_interval_ms),
        ("qos.health_check_timeout_ms", q.health_check_timeout_ms),
        ("qos.breaker.window_ms", b.window_ms),
        ("qos.breaker.cooldown_ms", b.cooldown_ms),
        ("qos.breaker.max_cooldown_ms", b.max_cooldown_ms),
        ("qos.retry.backoff_base_ms", r.backoff_base_ms),
        ("qos.retry.backoff_max_ms", r.backoff_max_ms),
    ] {
        check_ms(c, key.to_owned(), ms);
    }
    if q.health_check_interval_ms > 0 && q.health_check_timeout_ms == 0 {
        c.err("qos.health_check_timeout_ms", "must be greater than 0");
    }
    if !(0.0..=100.0).contains(&q.hedge_budget_percent) {
        c.err("qos.hedge_budget_percent", "must be between 0 and 100");
    }
    if b.consecutive_failures == 0 {
        c.err("qos.breaker.consecutive_failures", "must be at least 1");
    }
    if !(b.failure_rate > 0.0 && b.failure_rate <= 1.0) {
        c.err(
            "qos.breaker.failure_rate",
            "must be greater than 0 and at most 1",
        );
    }
    if b.cooldown_ms == 0 {
        c.err("qos.breaker.cooldown_ms", "must be greater than 0");
    }
    if b.max_cooldown_ms < b.cooldown_ms {
        c.err(
            "qos.breaker.max_cooldown_ms",
            "must be at least cooldown_ms",
        );
    }
    if b.half_open_probes == 0 {
        c.err("qos.breaker.half_open_probes", "must be at least 1");
    }
    if r.max_attempts == 0 || r.max_attempts > 10 {
        c.err("qos.retry.max_attempts", "must be between 1 and 10");
    }
    if r.backoff_max_ms < r.backoff_base_ms {
        c.err(
            "qos.retry.backoff_max_ms",
            "must be at least backoff_base_ms",
        );
    }
    if !(0.0..=100.0).contains(&r.budget_percent) {
        c.err("qos.retry.budget_percent", "must be between 0 and 100");
    }
    QosConfig {
        breaker: BreakerConfig {
            consecutive_failures: b.consecutive_failures,
            failure_rate: b.failure_rate,
            min_calls: b.min_calls,
            window: Duration::from_millis(b.window_ms),
            cooldown: Duration::from_millis(b.cooldown_ms),
            max_cooldown: Duration::from_millis(b.max_cooldown_ms),
            half_open_probes: b.half_open_probes,
        },
        retry: RetryConfig {
            max_attempts: r.max_attempts,
            backoff_base: Duration::from_millis(r.backoff_base_ms),
            backoff_max: Duration::from_millis(r.backoff_max_ms),
            budget_percent: r.budget_percent,
            budget_min_per_sec: r.budget_min_per_sec,
            jitter: r.jitter,
        },
        health_check_interval: Duration::from_millis(q.health_check_interval_ms),
        health_check_timeout: Duration::from_millis(q.health_check_timeout_ms),
        hedge_budget_percent: q.hedge_budget_percent,
        hedge_budget_min_per_sec: q.hedge_budget_min_per_sec,
        overload: Arc::new(check_overload(c, &q.overload)),
    }
}

fn check_overload(c: &mut Checker, o: &super::raw::RawOverload) -> crate::qos::OverloadConfig {
    use crate::qos::{ClassConfig, OverloadConfig};
    if o.classes.is_empty() {
        c.err("qos.overload.classes", "must name at least one class");
        return OverloadConfig::default();
    }
    let mut reserved = 0.0;
    for (i, class) in o.classes.iter().enumerate() {
        let path = format!("qos.overload.classes[{i}]");
        if !valid_name(&class.name) {
            c.err(
                format!("{path}.name"),
                "must be letters, digits, `_`, `-` or `.`",
            );
        }
        if o.classes[..i].iter().any(|k| k.name == class.name) {
            c.err(
                format!("{path}.name"),
                format!("`{}` is named twice", class.name),
            );
        }
        if !(0.0..1.0).contains(&class.reserved) {
            c.err(format!("{path}.reserved"), "must be at least 0 and below 1");
        }
        reserved += class.reserved;
        check_ms(c, format!("{path}.max_wait_ms"), class.max_wait_ms);
        check_ms(
            c,
            format!("{path}.promote_after_ms"),
            class.promote_after_ms,
        );
    }
    if reserved >= 1.0 {
        c.err(
            "qos.overload.classes",
            "the reserved shares add up to 1 or more: some class could never run",
        );
    }
    let default_class = o
        .classes
        .iter()
        .position(|k| k.name == o.default_class)
        .unwrap_or_else(|| {
            c.err(
                "qos.overload.default_class",
                format!("`{}` is not one of the classes", o.default_class),
            );
            0
        });
    OverloadConfig {
        classes: o
            .classes
            .iter()
            .map(|k| ClassConfig {
                name: Arc::from(k.name.as_str()),
                reserved: k.reserved,
                max_queue: k.max_queue,
                max_wait: Duration::from_millis(k.max_wait_ms),
                promote_after: Duration::from_millis(k.promote_after_ms),
            })
            .collect(),
        default_class,
        unready_queue_depth: o.unready_queue_depth,
    }
}

fn check_provider(
    c: &mut Checker,
    name: &str,
    p: &RawProvider,
    qos: &Arc<crate::qos::QosConfig>,
) -> Option<ProviderConfig> {
    let path = format!("providers.{name}");
    let before = c.errors.len();
    if !valid_name(name) {
        c.err(
            &path,
            "names may hold letters, digits, `_`, `-`, `.` and `:` only",
        );
    }
    if p.model.trim().is_empty() {
        c.err(format!("{path}.model"), "must not be empty");
    }
    if p.endpoints.is_empty() {
        c.err(
            format!("{path}.endpoints"),
            "give at least one endpoint URL",
        );
    }
    let mut endpoints = Vec::with_capacity(p.endpoints.len());
    let mut seen = HashSet::new();
    for (i, e) in p.endpoints.iter().enumerate() {
        match BaseUrl::parse(e) {
            Ok(u) if !seen.insert(u.clone()) => {
                c.err(
                    format!("{path}.endpoints[{i}]"),
                    format!("duplicate endpoint `{u}`"),
                );
            }
            Ok(u) => endpoints.push(u),
            Err(m) => c.err(format!("{path}.endpoints[{i}]"), m),
        }
    }
    if !(p.weight.is_finite() && p.weight > 0.0) {
        c.err(format!("{path}.weight"), "must be a number greater than 0");
    }
    if !(p.cost_per_1k_tokens.is_finite() && p.cost_per_1k_tokens >= 0.0) {
        c.err(format!("{path}.cost_per_1k_tokens"), "must be 0 or more");
    }
    if p.max_concurrency == 0 {
        c.err(format!("{path}.max_concurrency"), "must be at least 1");
    }
    if p.connect_timeout_ms == 0 {
        c.err(
            format!("{path}.connect_timeout_ms"),
            "must be greater than 0",
        );
    }
    if p.first_byte_timeout_ms == 0 {
        c.err(
            format!("{path}.first_byte_timeout_ms"),
            "must be greater than 0",
        );
    }
    if p.idle_timeout_ms == 0 {
        c.err(format!("{path}.idle_timeout_ms"), "must be greater than 0");
    }
    let api_key = match &p.api_key_env {
        None => None,
        // Not echoed: a value that is not a variable name may be a pasted key.
        Some(var) if !is_env_name(var) => {
            c.err(
                format!("{path}.api_key_env"),
                "must name an environment variable (A-Z, 0-9, _), not hold the key itself",
            );
            None
        }
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(SecretString::from(v)),
            _ => {
                c.err(
                    format!("{path}.api_key_env"),
                    format!("environment variable `{var}` is not set"),
                );
                None
            }
        },
    };
    if let Some(proxy) = p.proxy.as_deref().filter(|p| !p.is_empty()) {
        let ok = proxy.parse::<http::Uri>().ok().is_some_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
        });
        if !ok {
            // The value may hold credentials: not repeated in the error.
            c.err(
                format!("{path}.proxy"),
                "must be an http:// or https:// URL with a host",
            );
        }
    }
    (c.errors.len() == before).then(|| ProviderConfig {
        proxy: p.proxy.clone().map(SecretString::from),
        name: name.to_owned(),
        kind: p.kind,
        model: p.model.clone(),
        endpoints,
        weight: p.weight,
        cost_per_1k_tokens: p.cost_per_1k_tokens,
        max_concurrency: p.max_concurrency,
        connect_timeout: Duration::from_millis(p.connect_timeout_ms),
        first_byte_timeout: Duration::from_millis(p.first_byte_timeout_ms),
        idle_timeout: Duration::from_millis(p.idle_timeout_ms),
        api_key_env: p.api_key_env.clone(),
        api_key,
        capabilities: p.capabilities.clone(),
        forward_unknown_fields: p.forward_unknown_fields,
        qos: Arc::clone(qos),
    })
}

fn check_task(
    c: &mut Checker,
    name: &str,
    t: &RawTask,
    raw: &RawConfig,
    prompts_dir: &Path,
    limits: &Limits,
) -> Option<TaskConfig> {
    let path = format!("tasks.{name}");
    let before = c.errors.len();
    if !valid_name(name) {
        c.err(
            &path,
            "names may hold letters, digits, `_`, `-`, `.` and `:` only",
        );
    }
    let template = check_template(c, &path, t, prompts_dir);
    check_task_providers(c, &path, t, raw);
    check_labels(c, &path, t);
    check_generation(c, &path, t, limits);
    let (deadline, max_deadline) = check_timing(c, &path, t, limits);
    let schema = check_schema(c, &path, t);
    let ensemble = check_ensemble(c, &path, t, raw, prompts_dir);
    let routing = check_routing(c, &path, t, raw);
    (c.errors.len() == before).then(|| TaskConfig {
        name: name.to_owned(),
        description: t.description.clone(),
        template,
        system: t.system.clone(),
        variables: t.variables.clone(),
        output: t.output,
        labels: t.labels.clone(),
        strategy: t.strategy,
        providers: t.providers.clone(),
        max_tokens: t.max_tokens,
        temperature: t.temperature,
        top_p: t.top_p,
        deadline,
        max_deadline,
        cache_ttl: Duration::from_secs(t.cache_ttl_secs),
        hedge_delay: t.hedge_delay_ms.map(Duration::from_millis),
        fanout: t.fanout as usize,
        hedge_percentile: t.hedge_percentile,
        hedge_calls: t.hedge_calls,
        fallback: t.fallback.clone(),
        schema_source: schema.as_ref().map(|(_, source)| source.clone()),
        schema: schema.map(|(v, _)| v),
        cache_sampled: t.cache_sampled,
        ensemble,
        routing,
    })
}

/// Routing by classification: the router is a label task without a router of its own,
/// every one of its labels routes to a task that routes no further, and the safe route is
/// one of them.
fn check_routing(c: &mut Checker, path: &str, t: &RawTask, raw: &RawConfig) -> Option<Routing> {
    let Some(router) = &t.router else {
        if !t.routes.is_empty() || t.safe_route.is_some() || t.route_confidence.is_some() {
            c.err(
                format!("{path}.router"),
                "routes, safe_route and route_confidence need a router",
            );
        }
        return None;
    };
    let Some(r) = raw.tasks.get(router) else {
        c.err(format!("{path}.router"), format!("unknown task `{router}`"));
        return None;
    };
    if r.output != OutputKind::Label {
        c.err(
            format!("{path}.router"),
            format!("`{router}` must be a label task (its answer picks the route)"),
        );
    }
    if r.router.is_some() {
        c.err(
            format!("{path}.router"),
            format!("`{router}` is routed itself: a router answers on its own"),
        );
    }
    for label in &r.labels {
        if !t.routes.contains_key(label) {
            c.err(
                format!("{path}.routes"),
                format!("no route for the router's label `{label}`"),
            );
        }
    }
    for (label, target) in &t.routes {
        if !r.labels.contains(label) {
            c.err(
                format!("{path}.routes.{label}"),
                format!("`{label}` is not a label of `{router}`"),
            );
        }
        match raw.tasks.get(target) {
            None => c.err(
                format!("{path}.routes.{label}"),
                format!("unknown task `{target}`"),
            ),
            Some(x) if x.router.is_some() => c.err(
                format!("{path}.routes.{label}"),
                format!("`{target}` is routed itself: routes go to tasks that answer"),
            ),
            Some(_) => {}
        }
    }
    if t.route_confidence.is_some_and(|x| !(x > 0.0 && x < 1.0)) {
        c.err(
            format!("{path}.route_confidence"),
            "must be greater than 0 and less than 1",
        );
    }
    let Some(safe) = &t.safe_route else {
        c.err(
            format!("{path}.safe_route"),
            "name the route taken when the router is unsure or fails",
        );
        return None;
    };
    if !t.routes.contains_key(safe) {
        c.err(
            format!("{path}.safe_route"),
            format!("`{safe}` is not one of the routes"),
        );
    }
    Some(Routing {
        router: router.clone(),
        routes: t.routes.clone(),
        confidence: t.route_confidence,
        safe: safe.clone(),
    })
}

/// The task's prompt template (a file in `prompts_dir`, or inline), with every variable
/// it uses declared.
fn check_template(
    c: &mut Checker,
    path: &str,
    t: &RawTask,
    prompts_dir: &Path,
) -> Option<Template> {
    let template_text = match (&t.prompt, &t.template) {
        (Some(_), Some(_)) => {
            c.err(
                path,
                "give `prompt` (a file) or `template` (inline), not both",
            );
            None
        }
        (Some(file), None) => {
            let full = prompts_dir.join(file);
            match std::fs::read_to_string(&full) {
                Ok(text) => Some(text),
                Err(e) => {
                    c.err(
                        format!("{path}.prompt"),
                        format!("cannot read {}: {e}", full.display()),
                    );
                    None
                }
            }
        }
        (None, Some(text)) => Some(text.clone()),
        (None, None) => None,
    };
    template_text.and_then(|text| match Template::parse(&text) {
        Ok(tpl) => {
            for var in tpl.variables() {
                if var != "input" && !t.variables.iter().any(|v| v == var) {
                    c.err(
                        format!("{path}.variables"),
                        format!("the template uses `{{{{{var}}}}}`, which is not declared here"),
                    );
                }
            }
            Some(tpl)
        }
        Err(m) => {
            c.err(format!("{path}.prompt"), m);
            None
        }
    })
}

/// The task's providers and fallbacks name configured providers.
fn check_task_providers(c: &mut Checker, path: &str, t: &RawTask, raw: &RawConfig) {
    if t.providers.is_empty() && t.router.is_none() {
        c.err(format!("{path}.providers"), "give at least one provider");
    }
    for (i, p) in t.providers.iter().enumerate() {
        if !raw.providers.contains_key(p) {
            c.err(
                format!("{path}.providers[{i}]"),
                format!("unknown provider `{p}`"),
            );
        }
    }
    for (i, f) in t.fallback.iter().enumerate() {
        if !raw.providers.contains_key(f) {
            c.err(
                format!("{path}.fallback[{i}]"),
                format!("unknown provider `{f}`"),
            );
        } else if t.providers.contains(f) {
            c.err(
                format!("{path}.fallback[{i}]"),
                format!("`{f}` is already in providers"),
            );
        }
    }
}

/// Labels belong to `label` tasks, and stay distinct after normalisation.
fn check_labels(c: &mut Checker, path: &str, t: &RawTask) {
    match t.output {
        OutputKind::Label if t.labels.is_empty() => {
            c.err(
                format!("{path}.labels"),
                "a `label` task needs at least one label",
            );
        }
        OutputKind::Label => {
            let mut seen = HashSet::new();
            for (i, l) in t.labels.iter().enumerate() {
                // Up the floors on purpose: labels must stay distinct in the very normal
                // form answers are compared in, and `types::normalize` imports nothing.
                let norm = crate::types::normalize::normalize_label(l);
                if norm.is_empty() {
                    c.err(
                        format!("{path}.labels[{i}]"),
                        "a label needs a letter or digit",
                    );
                } else if !seen.insert(norm) {
                    c.err(
                        format!("{path}.labels[{i}]"),
                        format!("`{l}` repeats another label"),
                    );
                }
            }
        }
        _ if !t.labels.is_empty() => {
            c.err(
                format!("{path}.labels"),
                "labels are only for `output = \"label\"`",
            );
        }
        _ => {}
    }
}

/// Generation defaults within the limits.
fn check_generation(c: &mut Checker, path: &str, t: &RawTask, limits: &Limits) {
    if let Some(mt) = t.max_tokens
        && (mt == 0 || mt > limits.max_tokens)
    {
        c.err(
            format!("{path}.max_tokens"),
            format!(
                "must be between 1 and limits.max_tokens ({})",
                limits.max_tokens
            ),
        );
    }
    if let Some(temp) = t.temperature
        && !(0.0..=2.0).contains(&temp)
    {
        c.err(format!("{path}.temperature"), "must be between 0 and 2");
    }
    if let Some(p) = t.top_p
        && !(p > 0.0 && p <= 1.0)
    {
        c.err(
            format!("{path}.top_p"),
            "must be greater than 0 and at most 1",
        );
    }
}

/// Deadlines, fan-out and hedging; returns the task's deadline and its maximum.
fn check_timing(c: &mut Checker, path: &str, t: &RawTask, limits: &Limits) -> (Duration, Duration) {
    let max_deadline = t
        .max_deadline_ms
        .map_or(limits.max_deadline, Duration::from_millis)
        .min(limits.max_deadline);
    let deadline = t
        .deadline_ms
        .map_or(limits.default_deadline, Duration::from_millis);
    if deadline.is_zero() {
        c.err(format!("{path}.deadline_ms"), "must be greater than 0");
    }
    if deadline > max_deadline {
        c.err(
            format!("{path}.deadline_ms"),
            "must not exceed max_deadline_ms (or limits.max_deadline_ms)",
        );
    }
    if t.fanout == 0 {
        c.err(format!("{path}.fanout"), "must be at least 1");
    } else if t.fanout as usize > t.providers.len().max(1) {
        c.err(
            format!("{path}.fanout"),
            "cannot exceed the number of providers",
        );
    }
    for (key, v) in [
        ("deadline_ms", t.deadline_ms),
        ("max_deadline_ms", t.max_deadline_ms),
        ("hedge_delay_ms", t.hedge_delay_ms),
    ] {
        if let Some(ms) = v {
            check_ms(c, format!("{path}.{key}"), ms);
        }
    }
    if let Some(p) = t.hedge_percentile
        && !(p > 0.0 && p <= 100.0)
    {
        c.err(
            format!("{path}.hedge_percentile"),
            "must be greater than 0 and at most 100",
        );
    }
    if t.hedge_delay_ms == Some(0) {
        c.err(
            format!("{path}.hedge_delay_ms"),
            "must be greater than 0 (or omitted)",
        );
    }
    (deadline, max_deadline)
}

/// The JSON Schema of a `json` task, compiled, with its source.
fn check_schema(
    c: &mut Checker,
    path: &str,
    t: &RawTask,
) -> Option<(Arc<jsonschema::Validator>, serde_json::Value)> {
    match (&t.schema, t.output) {
        (None, _) => None,
        (Some(_), kind) if kind != OutputKind::Json => {
            c.err(
                format!("{path}.schema"),
                "a schema is only for `output = \"json\"`",
            );
            None
        }
        (Some(table), _) => {
            let value = serde_json::to_value(table).unwrap_or_default();
            match jsonschema::validator_for(&value) {
                Ok(v) => Some((Arc::new(v), value)),
                Err(e) => {
                    c.err(
                        format!("{path}.schema"),
                        format!("not a valid JSON Schema: {e}"),
                    );
                    None
                }
            }
        }
    }
}

/// Ensemble settings; the judge's template is read when a judge may be called.
fn check_ensemble(
    c: &mut Checker,
    path: &str,
    t: &RawTask,
    raw: &RawConfig,
    prompts_dir: &Path,
) -> Ensemble {
    if t.max_n == 0 || t.max_n > 64 {
        c.err(format!("{path}.max_n"), "must be between 1 and 64");
    }
    let n = t.n.unwrap_or(t.providers.len().max(1) as u32);
    if n == 0 || n > t.max_n {
        c.err(
            format!("{path}.n"),
            format!("must be between 1 and max_n ({})", t.max_n),
        );
    }
    if !(0.0..=2.0).contains(&t.sample_temperature) {
        c.err(
            format!("{path}.sample_temperature"),
            "must be between 0 and 2",
        );
    }
    if let Some(sim) = t.similarity {
        if !(sim > 0.0 && sim <= 1.0) {
            c.err(
                format!("{path}.similarity"),
                "must be greater than 0 and at most 1",
            );
        }
        if t.output != OutputKind::Text {
            c.err(
                format!("{path}.similarity"),
                "similarity is for `text` output only",
            );
        }
    }
    if t.min_agreement.is_some_and(|m| !(0.0..=1.0).contains(&m)) {
        c.err(format!("{path}.min_agreement"), "must be between 0 and 1");
    }
    for (name, v) in [
        ("confidence", t.confidence),
        ("min_confidence", t.min_confidence),
    ] {
        if v.is_some_and(|x| !(x > 0.0 && x < 1.0)) {
            c.err(
                format!("{path}.{name}"),
                "must be greater than 0 and less than 1",
            );
        }
    }
    if t.strategy == StrategyKind::Cascade
        && t.accept == AcceptRule::Confidence
        && t.min_confidence.is_none()
    {
        c.err(
            format!("{path}.min_confidence"),
            "accept = \"confidence\" needs the least confidence a tier must reach",
        );
    }
    if t.answer_space.is_some_and(|k| k < 2) {
        c.err(format!("{path}.answer_space"), "must be at least 2");
    }
    if t.min_votes == 0 {
        c.err(format!("{path}.min_votes"), "must be at least 1");
    }
    if !(0.0..=10.0).contains(&t.accept_threshold) {
        c.err(
            format!("{path}.accept_threshold"),
            "must be between 0 and 10",
        );
    }
    let voting = matches!(
        t.strategy,
        StrategyKind::Voting | StrategyKind::Weighted | StrategyKind::Consensus
    );
    let needs_judge = t.strategy == StrategyKind::Judge
        || (t.strategy == StrategyKind::Consensus && t.on_disagreement == OnDisagreement::Judge)
        || (voting
            && t.min_confidence.is_some()
            && t.on_low_confidence == crate::config::raw::OnLowConfidence::Escalate)
        || (t.strategy == StrategyKind::Cascade && t.accept == AcceptRule::Judge);
    match &t.judge {
        None if needs_judge => {
            c.err(
                format!("{path}.judge"),
                "this strategy needs a judge provider",
            );
        }
        Some(j) if !raw.providers.contains_key(j) => {
            c.err(format!("{path}.judge"), format!("unknown provider `{j}`"));
        }
        _ => {}
    }
    let judge_template = t.judge.as_ref().and_then(|_| {
        let full = prompts_dir.join(&t.judge_prompt);
        let text = std::fs::read_to_string(&full)
            .map_err(|e| c.err(format!("{path}.judge_prompt"), format!("cannot read {}: {e}", full.display())))
            .ok()?;
        let tpl = super::Template::parse(&text).map_err(|m| c.err(format!("{path}.judge_prompt"), m)).ok()?;
        for var in tpl.variables() {
            if var != "input" && var != "candidates" {
                c.err(
                    format!("{path}.judge_prompt"),
                    format!("the judge template may use {{{{input}}}} and {{{{candidates}}}} only, not `{{{{{var}}}}}`"),
                );
            }
        }
        Some(tpl)
    });
    Ensemble {
        n: n as usize,
        max_n: t.max_n as usize,
        sample_temperature: t.sample_temperature,
        similarity: t.similarity,
        early_stop: t.early_stop,
        min_agreement: t.min_agreement,
        min_votes: t.min_votes as usize,
        on_disagreement: t.on_disagreement,
        confidence: t.confidence,
        min_confidence: t.min_confidence,
        on_low_confidence: t.on_low_confidence,
        answer_space: t.answer_space,
        judge: t.judge.clone(),
        judge_template,
        accept: t.accept,
        accept_threshold: t.accept_threshold,
        allow_override: t.allow_override,
    }
}

pub(super) fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Longest duration any setting may hold: a day. Bounds arithmetic on instants and catches
/// a unit mistake (seconds written where milliseconds are meant, times 1000).
const MAX_DURATION_MS: u64 = 24 * 60 * 60 * 1000;

fn check_ms(c: &mut Checker, path: String, ms: u64) {
    if ms > MAX_DURATION_MS {
        c.err(
            path,
            format!("must be at most {MAX_DURATION_MS} ms (a day)"),
        );
    }
}

/// A path from the config file: relative paths are relative to the file's folder.
pub(super) fn resolve(base: &Path, file: &str) -> std::path::PathBuf {
    base.join(file)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use super::*;

    const BASE: &str = r#"
[providers.a]
kind = "openai"
model = "m"
endpoints = ["http://127.0.0.1:1"]

[tasks.t]
template = "Say {{input}}"
providers = ["a"]
"#;

    fn errors(text: &str) -> Vec<String> {
        match load_str(text, Path::new(".")) {
            Ok(_) => vec![],
            Err(e) => e.0.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn minimal_config_is_valid() {
        let cfg = load_str(BASE, Path::new(".")).unwrap();
        assert_eq!(cfg.tasks()["t"].providers, vec!["a"]);
        assert_eq!(cfg.resolve_model("task:t"), Some(Target::Task("t".into())));
        assert_eq!(cfg.resolve_model("a"), Some(Target::Provider("a".into())));
        assert_eq!(cfg.resolve_model("m"), Some(Target::Provider("a".into())));
        assert_eq!(cfg.resolve_model("nope"), None);
    }

    #[test]
    fn unknown_keys_are_errors_with_location() {
        let errs = errors(&format!("{BASE}\n[server]\nport = 1\n"));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("unknown field `port`"), "{errs:?}");
        // The key's path, then where it is in the file.
        assert!(errs[0].starts_with("server.port (line "), "{errs:?}");
    }

    #[test]
    fn reports_every_error_with_its_path() {
        let text = r#"
[providers.a]
kind = "ollama"
model = ""
endpoints = ["ftp://x"]
weight = 0

[tasks.t]
template = "{{input}} {{lang}}"
providers = ["a", "b"]
temperature = 3
output = "label"
"#;
        let errs = errors(text);
        for want in [
            "providers.a.model: must not be empty",
            "providers.a.endpoints[0]: `ftp://x` must start with http:// or https://",
            "providers.a.weight:",
            "tasks.t.variables: the template uses `{{lang}}`",
            "tasks.t.providers[1]: unknown provider `b`",
            "tasks.t.temperature:",
            "tasks.t.labels:",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in {errs:?}"
            );
        }
    }

    #[test]
    fn unset_api_key_env_is_an_error() {
        let text = BASE.replace(
            "model = \"m\"",
            "model = \"m\"\napi_key_env = \"LLM_POOL_TEST_SURELY_UNSET_KEY\"",
        );
        let errs = errors(&text);
        assert_eq!(
            errs,
            vec![
                "providers.a.api_key_env: environment variable `LLM_POOL_TEST_SURELY_UNSET_KEY` is not set"
            ]
        );
    }

    #[test]
    fn secrets_stay_out_of_endpoints_and_errors() {
        let text = BASE.replace(
            "http://127.0.0.1:1",
            "https://user:sk-secret@api.example.com",
        );
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("credentials in endpoint URLs are refused"),
            "{errs:?}"
        );
        assert!(!errs[0].contains("sk-secret"), "{errs:?}");
        let text = BASE.replace(
            "model = \"m\"",
            "model = \"m\"\napi_key_env = \"sk-live-123\"",
        );
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(!errs[0].contains("sk-live-123"), "{errs:?}");
    }

    #[test]
    fn durations_are_bounded() {
        let text = BASE.replace(
            "providers = [\"a\"]",
            "providers = [\"a\"]\nhedge_delay_ms = 99999999999",
        );
        let errs = errors(&text);
        assert_eq!(
            errs,
            vec!["tasks.t.hedge_delay_ms: must be at most 86400000 ms (a day)"]
        );
    }

    #[test]
    fn aliases_must_resolve() {
        let errs = errors(&format!("{BASE}\n[aliases]\nx = \"task:zz\"\ny = \"a\"\n"));
        assert_eq!(errs, vec!["aliases.x: unknown task `zz`"]);
    }
}
