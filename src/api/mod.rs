//! Wire surfaces: gRPC (`grpc/`) and HTTP (`http/`). They translate wire formats into
//! [`crate::orchestrator::PoolRequest`] and back, and hold no business logic.

pub mod grpc;
pub mod http;
