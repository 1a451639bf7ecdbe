//! Wire surfaces: gRPC (`grpc/`) and HTTP (`http/`). They translate wire formats into
//! [`crate::orchestrator::PoolRequest`] and back, and hold no business logic.

pub(crate) mod convert;
pub mod grpc;
pub mod http;
