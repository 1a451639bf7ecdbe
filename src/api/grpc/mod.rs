//! The gRPC surface: `llmpool.v1.LlmPool`, plus `grpc.health.v1` and server reflection
//! (`grpc.reflection.v1` and `v1alpha`) so grpcurl-style tools work without the .proto.

pub(crate) mod auth;
mod convert;
mod service;

use tonic::service::Routes;

use crate::state::AppState;

/// Generated protobuf types and service stubs.
pub mod pb {
    #![allow(
        clippy::allow_attributes,
        clippy::all,
        clippy::pedantic,
        unreachable_pub
    )]
    tonic::include_proto!("llmpool.v1");
}

/// The encoded descriptor set, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/llmpool_descriptor.bin"));

pub use convert::DECISION_TYPE_URL;
pub(crate) use convert::status;
pub use service::GrpcService;

/// All gRPC services, ready to serve.
pub async fn routes(state: AppState) -> Result<Routes, tonic_reflection::server::Error> {
    let max = state.config.load().config.server().max_body_bytes();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<pb::llm_pool_server::LlmPoolServer<GrpcService>>()
        .await;
    // `grpc.health.v1` turns NOT_SERVING as soon as draining begins, so clients with
    // connections still open (and health-checking load balancers) stop sending.
    let shutdown = state.shutdown.clone();
    state.tasks.spawn(async move {
        shutdown.cancelled().await;
        reporter
            .set_not_serving::<pb::llm_pool_server::LlmPoolServer<GrpcService>>()
            .await;
        reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    });
    // Reflection in both protocol versions: many tools and client libraries still speak
    // only `v1alpha`.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let reflection = reflection().build_v1()?;
    // tonic refuses messages over its limit with OUT_OF_RANGE; DESIGN.md wants
    // RESOURCE_EXHAUSTED, so tonic's hard ceiling sits above the configured limit and the
    // service checks the limit itself.
    let pool = pb::llm_pool_server::LlmPoolServer::new(GrpcService::new(state, max))
        .max_decoding_message_size(max.saturating_mul(4));
    Ok(Routes::new(pool)
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_v1alpha))
}
