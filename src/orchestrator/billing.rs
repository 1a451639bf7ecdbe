//! What a request costs its tenant: admission against the tenant's limits, and settlement
//! to what its calls spent (a failed request's calls too; nothing for a cache hit or a
//! single-flight join; a cut stream for what it streamed).

use std::sync::Arc;

use super::log::log_outcome;
use crate::error::PoolError;
use crate::ratelimit::{Ask, Permit};
use crate::state::AppState;
use crate::types::{Answer, Plan};

/// What a streamed request costs its tenant, settled once: with the answer's usage when it
/// completes; otherwise (an error after the first token, or a caller that went away) with
/// the tokens generated so far, the prompt's estimate plus one token per streamed piece.
pub(super) struct Billing {
    pub(super) permit: Option<Permit>,
    pub(super) ledger: Arc<crate::usage::Ledger>,
    pub(super) config: Arc<crate::config::Config>,
    pub(super) tenant: Option<Arc<str>>,
    /// The provider streaming, once known.
    pub(super) provider: Option<String>,
    pub(super) prompt_tokens: u64,
    pub(super) pieces: u64,
}

impl Billing {
    /// This billing, leaving an empty one behind.
    pub(super) fn take(&mut self) -> Self {
        Self {
            permit: self.permit.take(),
            ledger: Arc::clone(&self.ledger),
            config: Arc::clone(&self.config),
            tenant: self.tenant.clone(),
            provider: None,
            prompt_tokens: self.prompt_tokens,
            pieces: 0,
        }
    }

    pub(super) fn answered(&mut self, answer: &Answer) {
        if let Some(p) = self.permit.take() {
            p.settle(used_tokens(answer));
            self.ledger
                .record(&self.config, self.tenant.as_ref(), answer);
        }
    }

    pub(super) fn failed(&mut self, e: &PoolError) {
        if let Some(p) = self.permit.take() {
            p.settle(failed_tokens(e));
            if let Some(d) = e.decision() {
                self.ledger
                    .record_spent(&self.config, self.tenant.as_ref(), d);
            }
        }
    }

    pub(super) fn cut(&mut self) {
        if let Some(p) = self.permit.take() {
            let Some(provider) = &self.provider else {
                p.settle(0);
                return;
            };
            p.settle(self.prompt_tokens + self.pieces);
            self.ledger.record_tokens(
                &self.config,
                self.tenant.as_ref(),
                provider,
                self.prompt_tokens,
                self.pieces,
            );
        }
    }
}

impl Drop for Billing {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Tokens a failed request spent upstream before failing (a lost vote still generated).
pub(super) fn failed_tokens(e: &PoolError) -> u64 {
    e.decision()
        .map_or(0, |d| u64::from(d.total_usage.total_tokens))
}

/// Tokens an answer cost upstream (a cache hit, or a join of an identical request's call,
/// cost none).
pub(super) fn used_tokens(a: &Answer) -> u64 {
    if a.billed() {
        u64::from(a.decision.total_usage.total_tokens)
    } else {
        0
    }
}

/// Admits the plan against its tenant's limits (a request without a tenant is not limited).
pub(super) async fn admit(state: &AppState, plan: &Plan) -> Result<Permit, PoolError> {
    let Some(tenant) = &plan.tenant else {
        return Ok(Permit::free());
    };
    let ask = Ask {
        tokens: plan.token_estimate(),
        lease: plan.deadline.saturating_duration_since(plan.started) + LEASE_MARGIN,
    };
    state
        .limiter
        .admit(tenant, ask)
        .await
        .inspect_err(|e| log_outcome(plan.who(), plan.started, Err(e)))
}

/// Leases of the in-flight limit outlive the request's deadline by this much.
const LEASE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);
