//! Single flight: concurrent identical misses make one upstream call; the others wait for
//! it (each within its own deadline) and share its answer or its error. The call keeps
//! running as long as anyone still waits for it, even if the first caller went away; when
//! every waiter is gone it is dropped (which cancels the upstream call), and the map only
//! holds a weak reference, so nothing leaks.

use std::collections::HashMap;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared, WeakShared};
use parking_lot::Mutex;

use super::Key;
use crate::error::PoolError;
use crate::types::Answer;

type Call = BoxFuture<'static, Result<Arc<Answer>, PoolError>>;
type Flight = Shared<Call>;

#[derive(Default)]
pub struct SingleFlight {
    flights: Mutex<HashMap<Key, WeakShared<Call>>>,
}

/// Whether this caller started the call or joined one in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlightPart {
    Leader,
    Joined,
}

impl SingleFlight {
    /// Runs `make()` for `key` unless a call for it is already in flight, and returns the
    /// shared result.
    pub fn run(self: &Arc<Self>, key: Key, make: impl FnOnce() -> Call) -> (FlightPart, Flight) {
        let mut flights = self.flights.lock();
        if let Some(f) = flights.get(&key).and_then(WeakShared::upgrade) {
            return (FlightPart::Joined, f);
        }
        let this = Arc::downgrade(self);
        let inner = make();
        let flight = async move {
            let result = inner.await;
            if let Some(this) = this.upgrade() {
                this.flights.lock().remove(&key);
            }
            result
        }
        .boxed()
        .shared();
        if let Some(weak) = flight.downgrade() {
            flights.insert(key, weak);
        }
        // Forget flights whose waiters all left.
        flights.retain(|_, f| f.upgrade().is_some());
        (FlightPart::Leader, flight)
    }

    /// Calls in flight.
    pub fn len(&self) -> usize {
        self.flights.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
