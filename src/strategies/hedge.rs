//! Hedging one call of an ensemble (`hedge_calls = true`): when the call has not answered
//! within the hedge delay, the same call goes to another endpoint of the same provider
//! (the balancer prefers the less loaded one), budget permitting; the first answer counts
//! and the other call is dropped. FASTEST hedges across providers itself (`fastest.rs`).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::providers::{Completion, Provider, ProviderError, ProviderRequest};

pub fn complete(
    provider: Arc<dyn Provider>,
    req: Arc<ProviderRequest>,
    deadline: Instant,
    delay: Option<Duration>,
) -> BoxFuture<'static, Result<Completion, ProviderError>> {
    Box::pin(async move {
        let mut first = super::traced(
            provider.as_ref(),
            false,
            0,
            provider.complete(Arc::clone(&req), deadline),
        );
        let Some(delay) = delay.filter(|_| provider.endpoints() > 1) else {
            return first.await;
        };
        tokio::select! {
            r = &mut first => return r,
            () = tokio::time::sleep(delay) => {}
        }
        if !provider.try_hedge() {
            return first.await;
        }
        let mut second =
            super::traced(provider.as_ref(), true, 0, provider.complete(req, deadline));
        tokio::select! {
            r = &mut first => match r {
                Ok(c) => Ok(c),
                Err(_) => second.await,
            },
            r = &mut second => match r {
                Ok(c) => Ok(c),
                Err(_) => first.await,
            },
        }
    })
}
