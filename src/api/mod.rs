//! Wire surfaces: gRPC (`grpc/`) and HTTP (`http/`). They translate wire formats into
//! [`crate::orchestrator::PoolRequest`] and back, and hold no business logic.
//!
//! May import everything below it (orchestrator, state, live, types, error, auth); nothing
//! imports it but `app.rs`.

pub(crate) mod convert;
pub mod grpc;
pub mod http;
