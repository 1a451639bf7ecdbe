//! The one internal request type every API layer builds, and its validation and resolution
//! into a [`Plan`]: which task, which providers, what exactly to send.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::raw::{OutputKind, StrategyKind};
use crate::config::{Config, Limits, Target, TaskConfig};
use crate::error::PoolError;
use crate::live::Snapshot;
use crate::providers::{
    Format, GenParams, Message, Part, Prompt, Provider, ProviderRequest, Role, Tool, ToolChoice,
};
use crate::types::{CacheMode, Plan};

/// A request, independent of the surface it arrived on.
#[derive(Debug, Clone, Default)]
pub struct PoolRequest {
    /// A task name.
    pub task: Option<String>,
    /// A provider, `task:NAME` or an alias (OpenAI/Ollama `model`).
    pub model: Option<String>,
    /// Free input (`{{input}}`).
    pub input: Option<String>,
    pub messages: Vec<Message>,
    /// System prompt given by the caller (Ollama `system`).
    pub system: Option<String>,
    /// Continue `input` as raw text, without a chat template (`/v1/completions`).
    pub raw: bool,
    pub variables: HashMap<String, String>,
    pub strategy: Option<StrategyKind>,
    /// Ensemble size, within the task's `max_n`.
    pub n: Option<u32>,
    /// Answers wanted (OpenAI `n`): an ensemble's valid candidates, winner first; for a
    /// task that runs FASTEST or CASCADE (or a provider called directly), that many samples
    /// gathered as VOTING does. Within the task's `max_n`.
    pub choices: Option<u32>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    /// The answer's form (JSON, or JSON under a schema), even if the task's kind is text.
    pub format: Format,
    /// The request's tools and how the model may use them.
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub logit_bias: Option<serde_json::Map<String, serde_json::Value>>,
    pub logprobs: bool,
    pub top_logprobs: Option<u32>,
    pub user: Option<String>,
    /// Ollama options beyond the common ones (`num_ctx`, `top_k` …).
    pub options: serde_json::Map<String, serde_json::Value>,
    pub keep_alive: Option<serde_json::Value>,
    pub think: Option<serde_json::Value>,
    /// Top-level fields the surface does not know (carried to OpenAI-kind upstreams).
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Requested deadline, capped by the task's maximum.
    pub timeout: Option<Duration>,
    pub cache: CacheMode,
    pub metadata: HashMap<String, String>,
    pub request_id: String,
    /// The authenticated caller, if any: what it may use and its limits. Not part of the
    /// cache key (an answer does not depend on who asked).
    pub tenant: Option<Arc<crate::config::security::Tenant>>,
    /// The priority class asked for (`priority` in the native body, else
    /// `x-llm-pool-priority`), within what the tenant may use.
    pub priority: Option<Arc<str>>,
    /// Label tasks: the k most probable labels to return with their probabilities.
    pub top_k: Option<u32>,
}

/// Most `stop` sequences accepted (OpenAI allows 4; llama.cpp more).
const MAX_STOP: usize = 16;
/// Most alternatives per token (OpenAI's limit).
const MAX_TOP_LOGPROBS: u32 = 20;

impl PoolRequest {
    /// The same request, made by `caller`.
    pub fn by(mut self, caller: &crate::auth::Caller) -> Self {
        self.tenant = caller.tenant.clone();
        if self.priority.is_none() {
            self.priority = caller.priority.clone();
        }
        self
    }

    /// Validates against the snapshot's limits and resolves task, providers and prompt.
    pub fn plan(mut self, snapshot: &Snapshot) -> Result<Plan, PoolError> {
        let started = Instant::now();
        let config = &snapshot.config;
        let limits = config.limits();
        self.check_limits(limits)?;
        let (task, task_name) = resolve(
            config,
            snapshot,
            self.task.as_deref(),
            self.model.as_deref(),
        )?;
        if let Some(t) = &self.tenant {
            authorise(t, task_name.as_deref(), &task)?;
        }
        let top_k = match self.top_k {
            None => 0,
            Some(_) if task.output() != OutputKind::Label => {
                return Err(PoolError::invalid(
                    "top_k",
                    "is for tasks whose output is a label",
                ));
            }
            Some(k) if k >= 1 && k as usize <= task.labels().len() => k as usize,
            Some(_) => {
                return Err(PoolError::invalid(
                    "top_k",
                    format!(
                        "must be between 1 and the task's {} labels",
                        task.labels().len()
                    ),
                ));
            }
        };
        let (strategy, n, judge, refused_overrides) = self.choose_strategy(&task, snapshot)?;
        let (strategy, n, choices) = with_choices(&task, strategy, n, self.choices)?;
        let prompt = build_prompt(&task, &mut self)?;
        let Candidates {
            providers,
            fallback_from,
            weights,
            costs,
        } = candidates(&task, snapshot)?;
        let format = match self.format {
            Format::Text if task.output() == OutputKind::Json => Format::Json,
            f => f,
        };
        let params = GenParams {
            max_tokens: self.max_tokens.or(task.max_tokens()),
            temperature: self.temperature.or(task.temperature()),
            top_p: self.top_p.or(task.top_p()),
            seed: self.seed,
            stop: self.stop,
            format,
            tools: self.tools,
            tool_choice: self.tool_choice,
            parallel_tool_calls: self.parallel_tool_calls,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            logit_bias: self.logit_bias,
            logprobs: self.logprobs,
            top_logprobs: self.top_logprobs,
            user: self.user,
            options: self.options,
            keep_alive: self.keep_alive,
            think: self.think,
            extra: self.extra,
        };
        let mut request = ProviderRequest::new(prompt, params);
        let cost = request.prompt_chars().div_ceil(4) as f64
            + request.params.max_tokens.map_or(
                crate::types::UNBOUNDED_COMPLETION_ESTIMATE as f64,
                f64::from,
            );
        request.ticket = ticket(
            config,
            self.tenant.as_deref(),
            self.priority.as_deref(),
            cost,
        )?;
        // `top_k` of a FASTEST answer: the upstream's log probabilities of the answer's first
        // token, where every candidate can give them; kept from the caller, who did not ask.
        let mut hidden_logprobs = false;
        if top_k > 0 && strategy == StrategyKind::Fastest && !request.params.logprobs {
            request.params.logprobs = true;
            request.params.top_logprobs = Some(MAX_TOP_LOGPROBS);
            hidden_logprobs = providers.iter().all(|p| p.refuse(&request).is_ok());
            if !hidden_logprobs {
                request.params.logprobs = false;
                request.params.top_logprobs = None;
            }
        }
        // Every candidate must carry the request whole, or the caller hears which field
        // cannot be.
        for p in &providers {
            p.refuse(&request).map_err(|r| {
                PoolError::invalid(
                    r.field,
                    format!("provider `{}` cannot take it: {}", p.name(), r.reason),
                )
            })?;
        }
        if strategy != StrategyKind::Fastest && n > 1 {
            // The ensemble's calls take their slots together (strategies::gather).
            request.ticket.gang = Some(Arc::default());
        }
        let request = Arc::new(request);
        let expect = crate::types::output::Expect::new(Arc::clone(&task), &request)
            .map_err(|e| PoolError::invalid("response_format.json_schema.schema", e))?;
        let timeout = self
            .timeout
            .unwrap_or(task.deadline())
            .min(task.max_deadline());
        Ok(Plan {
            refused_overrides,
            top_k,
            hidden_logprobs,
            strategy,
            providers,
            fallback_from,
            weights,
            costs,
            n,
            choices,
            reliability: Arc::clone(&snapshot.reliability),
            accuracy: Arc::clone(&snapshot.accuracy),
            judge,
            request,
            expect,
            started,
            deadline: started + timeout,
            request_id: self.request_id,
            cache: self.cache,
            tenant: self.tenant,
            task_name,
            task,
        })
    }

    /// The strategy, `n` and judge the request runs with: the task's, or what the request
    /// asks for when the task allows it and the caller has the right (refused overrides are
    /// returned, to be noted in the Decision).
    #[expect(
        clippy::type_complexity,
        reason = "one tuple, unpacked at its only caller"
    )]
    fn choose_strategy(
        &mut self,
        task: &TaskConfig,
        snapshot: &Snapshot,
    ) -> Result<
        (
            StrategyKind,
            usize,
            Option<Arc<dyn Provider>>,
            Vec<&'static str>,
        ),
        PoolError,
    > {
        let e = &task.ensemble();
        // A tenant may restate the task's own settings; changing them is a right.
        let mut refused_overrides = Vec::new();
        if let Some(t) = &self.tenant
            && !t.may_override()
        {
            if self.strategy.is_some_and(|s| s != task.strategy()) {
                refused_overrides.push("strategy");
                self.strategy = None;
            }
            if self.n.is_some_and(|n| n as usize != e.n()) {
                refused_overrides.push("n");
                self.n = None;
            }
        }
        if !e.allow_override() && (self.strategy.is_some() || self.n.is_some()) {
            return Err(PoolError::invalid(
                "strategy",
                "this task does not allow requests to choose the strategy or n",
            ));
        }
        let strategy = self.strategy.unwrap_or(task.strategy());
        let needs_judge = strategy == StrategyKind::Judge
            || (strategy == StrategyKind::Consensus
                && e.on_disagreement() == crate::config::raw::OnDisagreement::Judge)
            || (strategy == StrategyKind::Cascade
                && e.accept() == crate::config::raw::AcceptRule::Judge);
        let judge = e.judge().and_then(|j| snapshot.providers.get(j)).cloned();
        if needs_judge && (judge.is_none() || e.judge_template().is_none()) {
            return Err(PoolError::invalid(
                "strategy",
                "this task has no judge configured",
            ));
        }
        let n = match self.n {
            None => e.n(),
            Some(n) if n >= 1 && n as usize <= e.max_n() => n as usize,
            Some(_) => {
                return Err(PoolError::invalid(
                    "n",
                    format!("must be between 1 and the task's max_n ({})", e.max_n()),
                ));
            }
        };
        Ok((strategy, n, judge, refused_overrides))
    }

    fn check_limits(&self, limits: &Limits) -> Result<(), PoolError> {
        // Checked with the other limits so no work is done for a request over them.
        if self.messages.len() > limits.max_messages() {
            return Err(PoolError::invalid(
                "messages",
                format!("at most {} messages are accepted", limits.max_messages()),
            ));
        }
        let chars = self.input.as_deref().map_or(0, str::len)
            + self.system.as_deref().map_or(0, str::len)
            + self.messages.iter().map(|m| m.content.len()).sum::<usize>()
            + self.variables.values().map(String::len).sum::<usize>();
        // Byte length bounds character count from above; count chars only when it matters.
        if chars > limits.max_input_chars() {
            let real = self.input.as_deref().map_or(0, |s| s.chars().count())
                + self.system.as_deref().map_or(0, |s| s.chars().count())
                + self
                    .messages
                    .iter()
                    .map(|m| m.content.chars().count())
                    .sum::<usize>()
                + self
                    .variables
                    .values()
                    .map(|v| v.chars().count())
                    .sum::<usize>();
            if real > limits.max_input_chars() {
                return Err(PoolError::invalid(
                    "input",
                    format!(
                        "input is {real} characters; the limit is {}",
                        limits.max_input_chars()
                    ),
                ));
            }
        }
        if let Some(mt) = self.max_tokens
            && (mt == 0 || mt > limits.max_tokens())
        {
            return Err(PoolError::invalid(
                "max_tokens",
                format!("must be between 1 and {}", limits.max_tokens()),
            ));
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(PoolError::invalid("temperature", "must be between 0 and 2"));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(PoolError::invalid(
                "top_p",
                "must be greater than 0 and at most 1",
            ));
        }
        if self.stop.len() > MAX_STOP {
            return Err(PoolError::invalid(
                "stop",
                format!("at most {MAX_STOP} stop sequences"),
            ));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(PoolError::invalid("timeout", "must be greater than 0"));
        }
        self.check_tools()?;
        for (name, v) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if v.is_some_and(|v| !(-2.0..=2.0).contains(&v)) {
                return Err(PoolError::invalid(name, "must be between -2 and 2"));
            }
        }
        if self.top_logprobs.is_some_and(|n| n > MAX_TOP_LOGPROBS) {
            return Err(PoolError::invalid(
                "top_logprobs",
                format!("must be between 0 and {MAX_TOP_LOGPROBS}"),
            ));
        }
        Ok(())
    }

    /// Tools have distinct, non-empty names; a named `tool_choice` names one of them.
    fn check_tools(&self) -> Result<(), PoolError> {
        for (i, t) in self.tools.iter().enumerate() {
            if t.name.is_empty() {
                return Err(PoolError::invalid(
                    format!("tools[{i}].function.name"),
                    "must not be empty",
                ));
            }
            if self.tools[..i].iter().any(|u| u.name == t.name) {
                return Err(PoolError::invalid(
                    format!("tools[{i}].function.name"),
                    format!("`{}` is offered twice", t.name),
                ));
            }
        }
        match &self.tool_choice {
            Some(ToolChoice::Required | ToolChoice::Function(_)) if self.tools.is_empty() => {
                Err(PoolError::invalid("tool_choice", "no tools are offered"))
            }
            Some(ToolChoice::Function(name)) if !self.tools.iter().any(|t| t.name == *name) => {
                Err(PoolError::invalid(
                    "tool_choice",
                    format!("`{name}` is not one of the offered tools"),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// The providers a plan may call: the task's, then its fallbacks, with their weights and
/// costs.
struct Candidates {
    providers: Vec<Arc<dyn Provider>>,
    fallback_from: usize,
    weights: Vec<f64>,
    costs: Vec<f64>,
}

fn candidates(task: &TaskConfig, snapshot: &Snapshot) -> Result<Candidates, PoolError> {
    let mut entries: Vec<_> = task
        .providers()
        .iter()
        .filter_map(|name| snapshot.providers.entry(name))
        .collect();
    let fallback_from = entries.len();
    entries.extend(
        task.fallback()
            .iter()
            .filter_map(|name| snapshot.providers.entry(name)),
    );
    let providers: Vec<Arc<dyn Provider>> = entries.iter().map(|(_, p)| Arc::clone(p)).collect();
    let weights = entries.iter().map(|(c, _)| c.weight()).collect();
    let costs = entries
        .iter()
        .map(|(c, _)| c.cost_per_1k_tokens())
        .collect();
    if fallback_from == 0 {
        return Err(PoolError::Unavailable {
            summary: "the task has no configured providers".into(),
            decision: None,
        });
    }
    Ok(Candidates {
        providers,
        fallback_from,
        weights,
        costs,
    })
}

fn resolve(
    config: &Config,
    snapshot: &Snapshot,
    task: Option<&str>,
    model: Option<&str>,
) -> Result<(Arc<TaskConfig>, Option<String>), PoolError> {
    let target = match (
        task.filter(|t| !t.is_empty()),
        model.filter(|m| !m.is_empty()),
    ) {
        (Some(t), _) => Target::Task(t.to_owned()),
        (None, Some(m)) => config
            .resolve_model(m)
            .ok_or_else(|| PoolError::UnknownModel(m.to_owned()))?,
        (None, None) => return Err(PoolError::invalid("task", "give `task` or `model`")),
    };
    match target {
        Target::Task(name) => config
            .tasks()
            .get(&name)
            .map(|t| (Arc::clone(t), Some(name.clone())))
            .ok_or(PoolError::UnknownTask(name)),
        Target::Provider(name) => snapshot
            .direct_task(&name)
            .map(|t| (t, None))
            .ok_or(PoolError::UnknownModel(name)),
    }
}

/// The strategy and ensemble size that give `choices` answers: an ensemble's own candidates
/// (at most its `n`), or, for FASTEST and CASCADE (one answer by design), `choices` samples
/// gathered as VOTING gathers them.
fn with_choices(
    task: &TaskConfig,
    strategy: StrategyKind,
    n: usize,
    choices: Option<u32>,
) -> Result<(StrategyKind, usize, usize), PoolError> {
    let choices = choices.unwrap_or(1) as usize;
    if choices <= 1 {
        return Ok((strategy, n, 1));
    }
    let max = task.ensemble().max_n();
    if choices > max {
        return Err(PoolError::invalid(
            "n",
            format!("at most {max} choices (the task's max_n)"),
        ));
    }
    match strategy {
        StrategyKind::Fastest | StrategyKind::Cascade => {
            Ok((StrategyKind::Voting, choices, choices))
        }
        _ if choices > n => Err(PoolError::invalid(
            "n",
            format!("the task's ensemble has {n} candidates; ask for at most {n} choices"),
        )),
        _ => Ok((strategy, n, choices)),
    }
}

/// Moves the caller's text into the prompt (no copies of messages or input).
fn build_prompt(task: &TaskConfig, req: &mut PoolRequest) -> Result<Prompt, PoolError> {
    let input = req.input.take().filter(|s| !s.is_empty());
    let mut history = std::mem::take(&mut req.messages);
    if req.raw {
        if task.template().is_some() {
            return Err(PoolError::invalid(
                "prompt",
                "raw completion is not available for template tasks; use chat or /v1/query",
            ));
        }
        let text = input.ok_or_else(|| PoolError::invalid("prompt", "must not be empty"))?;
        return Ok(Prompt::Raw(text));
    }
    let system = task
        .system()
        .map(str::to_owned)
        .or_else(|| req.system.take());
    let mut media: Vec<Part> = Vec::new();
    let last = match task.template() {
        Some(template) => {
            // Chat surfaces: the last user message is the task's input.
            let input = match input {
                Some(i) => Some(i),
                None if history.last().is_some_and(|m| m.role == Role::User) => {
                    history.pop().map(|m| {
                        // Its images and audio go with the rendered prompt.
                        media = m
                            .parts
                            .into_iter()
                            .filter(|p| !matches!(p, Part::Text { .. }))
                            .collect();
                        m.content
                    })
                }
                None => None,
            };
            let rendered = template
                .render(input.as_deref(), &req.variables)
                .map_err(|e| {
                    if e.0 == "input" {
                        PoolError::invalid("input", "must not be empty")
                    } else {
                        PoolError::invalid(format!("variables.{}", e.0), e.to_string())
                    }
                })?;
            Some(rendered)
        }
        None => {
            if input.is_none() && !history.iter().any(|m| m.role != Role::System) {
                return Err(PoolError::invalid(
                    "input",
                    "must not be empty (give `input` or at least one message)",
                ));
            }
            input
        }
    };
    let mut messages = Vec::with_capacity(history.len() + 2);
    if let Some(content) = system {
        messages.push(Message::new(Role::System, content));
    }
    messages.append(&mut history);
    if let Some(content) = last {
        let mut m = Message::new(Role::User, content);
        if !media.is_empty() {
            m.parts.push(Part::Text {
                text: m.content.clone(),
            });
            m.parts.append(&mut media);
        }
        messages.push(m);
    }
    Ok(Prompt::Chat(messages))
}

/// The ticket a request's calls queue with: its class (the one it asks for, which may not
/// be above what its tenant may use; else its tenant's; else the default), its tenant as
/// the fair-share key with the tenant's weight, and its estimated tokens per call.
pub(crate) fn ticket(
    config: &crate::config::Config,
    tenant: Option<&crate::config::security::Tenant>,
    asked: Option<&str>,
    cost: f64,
) -> Result<crate::qos::Ticket, PoolError> {
    let overload = &config.qos().overload;
    let own = tenant
        .and_then(|t| t.priority())
        .and_then(|name| overload.class_index(name))
        .unwrap_or(overload.default_class);
    let ceiling = tenant
        .and_then(|t| t.max_priority())
        .and_then(|name| overload.class_index(name))
        .unwrap_or(own);
    let class = match asked {
        None => own,
        Some(name) => {
            let Some(i) = overload.class_index(name) else {
                let names: Vec<&str> = overload.classes.iter().map(|c| &*c.name).collect();
                return Err(PoolError::invalid(
                    "priority",
                    format!(
                        "unknown class `{name}`; the classes are {}",
                        names.join(", ")
                    ),
                ));
            };
            if i < ceiling {
                return Err(PoolError::PermissionDenied(format!(
                    "{} may not ask for priority `{name}` (at most `{}`)",
                    tenant.map_or("a caller without credentials".to_owned(), |t| format!(
                        "tenant `{}`",
                        t.name()
                    )),
                    overload.classes[ceiling].name
                )));
            }
            i
        }
    };
    Ok(crate::qos::Ticket {
        class: Some(class),
        tenant: tenant.map_or_else(|| Arc::from(""), |t| Arc::clone(t.name())),
        weight: tenant.map_or(1.0, |t| t.queue_weight()),
        cost,
        gang: None,
    })
}

/// May `tenant` use this task (or, for a provider called directly, that provider)?
fn authorise(
    tenant: &crate::config::security::Tenant,
    task_name: Option<&str>,
    task: &TaskConfig,
) -> Result<(), PoolError> {
    match task_name {
        Some(name) if !tenant.tasks().permits(name) => Err(PoolError::PermissionDenied(format!(
            "tenant `{}` may not use task `{name}`",
            tenant.name()
        ))),
        None if !task
            .providers()
            .iter()
            .all(|p| tenant.providers().permits(p)) =>
        {
            Err(PoolError::PermissionDenied(format!(
                "tenant `{}` may not call provider `{}` directly",
                tenant.name(),
                task.providers().join(", ")
            )))
        }
        _ => Ok(()),
    }
}
