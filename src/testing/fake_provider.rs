//! `FakeProvider`: an in-process [`Provider`] whose calls follow a script on tokio's clock,
//! so strategy tests run on a paused clock and assert exact timings and cancellations.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::providers::{
    Completion, EndpointHealth, Provider, ProviderError, ProviderRequest, StartedStream,
    StreamEvent, Usage,
};

/// Computes a reply from the request (a fake judge reads the candidates it was shown).
pub type Responder = Arc<dyn Fn(&ProviderRequest) -> String + Send + Sync>;

/// One scripted call.
#[derive(Clone)]
pub enum Call {
    /// Answer `text` after `delay`.
    Reply { delay: Duration, text: String },
    /// Fail with a 5xx after `delay`.
    Fail { delay: Duration, status: u16 },
    /// Never answer.
    Hang,
    /// Answer what `respond` makes of the request, after `delay`.
    With { delay: Duration, respond: Responder },
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Reply { delay, text } => write!(f, "Reply({delay:?}, {text:?})"),
            Self::Fail { delay, status } => write!(f, "Fail({delay:?}, {status})"),
            Self::Hang => f.write_str("Hang"),
            Self::With { delay, .. } => write!(f, "With({delay:?})"),
        }
    }
}

impl Call {
    pub fn reply_after(ms: u64, text: &str) -> Self {
        Self::Reply {
            delay: Duration::from_millis(ms),
            text: text.to_owned(),
        }
    }
    pub fn fail_after(ms: u64, status: u16) -> Self {
        Self::Fail {
            delay: Duration::from_millis(ms),
            status,
        }
    }
}

/// A reply written `tool:NAME:ARGUMENTS` is an answer that calls tool NAME with the JSON
/// ARGUMENTS (`complete` only).
fn tool_reply(text: String) -> (String, Vec<crate::providers::ToolCall>) {
    let Some(rest) = text.strip_prefix("tool:") else {
        return (text, Vec::new());
    };
    let (name, arguments) = rest.split_once(':').unwrap_or((rest, "{}"));
    let call = crate::providers::ToolCall::from_text(0, name, arguments);
    (String::new(), vec![call])
}

/// A scripted provider.
pub struct FakeProvider {
    name: String,
    script: Mutex<VecDeque<Call>>,
    default: Call,
    calls: Arc<AtomicUsize>,
    /// Calls dropped before they finished.
    cancelled: Arc<AtomicUsize>,
    /// Requests received.
    pub requests: Mutex<Vec<Arc<ProviderRequest>>>,
    /// What `latency_percentile` answers (any percentile).
    percentile: Mutex<Option<Duration>>,
    /// Whether the hedge budget has room.
    hedges_allowed: std::sync::atomic::AtomicBool,
}

struct CancelGuard {
    cancelled: Arc<AtomicUsize>,
    done: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.done {
            self.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl FakeProvider {
    pub fn new(name: &str, default: Call) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            script: Mutex::new(VecDeque::new()),
            default,
            calls: Arc::new(AtomicUsize::new(0)),
            cancelled: Arc::new(AtomicUsize::new(0)),
            requests: Mutex::new(Vec::new()),
            percentile: Mutex::new(None),
            hedges_allowed: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// Pretends the recent latency percentile is `d`.
    pub fn set_latency_percentile(&self, d: Option<Duration>) {
        *self.percentile.lock() = d;
    }

    /// Pretends the hedge budget is spent (or not).
    pub fn set_hedges_allowed(&self, allowed: bool) {
        self.hedges_allowed.store(allowed, Ordering::SeqCst);
    }

    pub fn push(&self, step: Call) {
        self.script.lock().push_back(step);
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn cancelled(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn next_step(&self, req: Arc<ProviderRequest>) -> Call {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.requests.lock().push(Arc::clone(&req));
        let step = self
            .script
            .lock()
            .pop_front()
            .unwrap_or_else(|| self.default.clone());
        match step {
            Call::With { delay, respond } => Call::Reply {
                delay,
                text: respond(&req),
            },
            other => other,
        }
    }

    fn endpoint(&self) -> Arc<str> {
        Arc::from(format!("fake://{}", self.name))
    }
}

async fn play(step: Call, endpoint: Arc<str>, deadline: Instant) -> Result<String, ProviderError> {
    match step {
        Call::Reply { delay, text } => {
            if tokio::time::timeout_at(deadline, tokio::time::sleep(delay))
                .await
                .is_err()
            {
                return Err(ProviderError::DeadlineExceeded { endpoint });
            }
            Ok(text)
        }
        Call::Fail { delay, status } => {
            let _ = tokio::time::timeout_at(deadline, tokio::time::sleep(delay)).await;
            Err(ProviderError::Status {
                endpoint,
                status,
                message: "scripted failure".into(),
            })
        }
        Call::Hang => {
            let _ = tokio::time::sleep_until(deadline).await;
            Err(ProviderError::DeadlineExceeded { endpoint })
        }
        Call::With { .. } => unreachable!("resolved in next_step"),
    }
}

impl FakeProvider {
    /// Plays the next scripted step; a call dropped before it finished counts as
    /// cancelled.
    fn call(
        &self,
        req: Arc<ProviderRequest>,
        deadline: Instant,
    ) -> impl std::future::Future<Output = Result<(String, Arc<str>), ProviderError>> + Send + 'static
    {
        let step = self.next_step(req);
        let endpoint = self.endpoint();
        let cancelled = Arc::clone(&self.cancelled);
        async move {
            let mut guard = CancelGuard {
                cancelled,
                done: false,
            };
            let result = play(step, Arc::clone(&endpoint), deadline).await;
            guard.done = true;
            result.map(|text| (text, endpoint))
        }
    }
}

impl Provider for FakeProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn model(&self) -> &str {
        "fake-model"
    }

    fn complete(
        &self,
        req: Arc<ProviderRequest>,
        deadline: Instant,
    ) -> BoxFuture<'static, Result<Completion, ProviderError>> {
        let call = self.call(req, deadline);
        async move {
            let (text, endpoint) = call.await?;
            let completion_tokens = text.split_whitespace().count() as u32;
            let (text, tool_calls) = tool_reply(text);
            Ok(Completion {
                text,
                model: "fake-model".into(),
                usage: Usage {
                    prompt_tokens: 3,
                    completion_tokens,
                },
                finish_reason: Some(
                    if tool_calls.is_empty() {
                        "stop"
                    } else {
                        "tool_calls"
                    }
                    .into(),
                ),
                endpoint,
                tool_calls,
                logprobs: None,
                timings: None,
                reasoning: None,
                retries: 0,
                verbatim: None,
            })
        }
        .boxed()
    }

    fn stream(
        &self,
        req: Arc<ProviderRequest>,
        deadline: Instant,
    ) -> BoxFuture<'static, Result<StartedStream, ProviderError>> {
        let call = self.call(req, deadline);
        async move {
            let (text, endpoint) = call.await?;
            let n = text.split_whitespace().count() as u32;
            let events: Vec<Result<StreamEvent, ProviderError>> = vec![
                Ok(StreamEvent::Delta(text)),
                Ok(StreamEvent::Done {
                    usage: Usage {
                        prompt_tokens: 3,
                        completion_tokens: n,
                    },
                    finish_reason: Some("stop".into()),
                    logprobs: None,
                    timings: None,
                }),
            ];
            Ok(StartedStream {
                endpoint,
                model: "fake-model".into(),
                events: futures::stream::iter(events).boxed(),
                retries: 0,
            })
        }
        .boxed()
    }

    fn health(&self) -> Vec<EndpointHealth> {
        Vec::new()
    }

    fn latency_percentile(&self, _p: f64, _streaming: bool) -> Option<Duration> {
        *self.percentile.lock()
    }

    fn try_hedge(&self) -> bool {
        self.hedges_allowed.load(Ordering::SeqCst)
    }
}

/// A judge that finds `preferred` among the numbered candidates it was shown (`[N] text`
/// lines) and names it the winner, after `delay`; candidate 1 when it is not there.
pub fn judge_preferring(name: &str, preferred: &'static str, delay: Duration) -> Arc<FakeProvider> {
    let respond: Responder = Arc::new(move |req: &ProviderRequest| {
        let crate::providers::Prompt::Chat(messages) = &req.prompt else {
            return "{}".into();
        };
        let prompt = messages.last().map_or("", |m| m.content.as_str());
        let pos = prompt
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix('[')?;
                let (n, text) = rest.split_once("] ")?;
                (text.trim() == preferred).then(|| n.to_owned())
            })
            .unwrap_or_else(|| "1".into());
        format!(
            r#"{{"winner": {pos}, "scores": {{"{pos}": 9}}, "rationale": "{preferred} is right"}}"#
        )
    });
    FakeProvider::new(name, Call::With { delay, respond })
}
