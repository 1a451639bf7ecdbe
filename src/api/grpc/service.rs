//! `llmpool.v1.LlmPool`: thin handlers over the orchestrator.

use futures::StreamExt;
use futures::stream::BoxStream;
use tonic::{Request, Response, Status};

use super::convert;
use super::pb;
use crate::orchestrator::{self, StreamItem};
use crate::state::AppState;

/// The service; holds the shared state.
#[derive(Clone)]
pub struct GrpcService {
    state: AppState,
    max_message_bytes: usize,
}

impl GrpcService {
    pub fn new(state: AppState, max_message_bytes: usize) -> Self {
        Self {
            state,
            max_message_bytes,
        }
    }

    fn check_size<M: prost::Message>(&self, request: &Request<M>) -> Result<(), Status> {
        let len = request.get_ref().encoded_len();
        if len > self.max_message_bytes {
            return Err(convert::status(crate::error::PoolError::BodyTooLarge {
                limit: self.max_message_bytes,
            }));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl pb::llm_pool_server::LlmPool for GrpcService {
    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::Answer>, Status> {
        self.check_size(&request)?;
        let snapshot = self.state.config.load();
        let caller = caller(&request);
        let req = convert::request(request).map_err(convert::status)?;
        let answer = orchestrator::handle_cached(&self.state, &snapshot, req.by(&caller))
            .await
            .map_err(convert::status)?;
        Ok(Response::new(convert::answer(answer)))
    }

    type StreamQueryStream = BoxStream<'static, Result<pb::StreamChunk, Status>>;

    async fn stream_query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<Self::StreamQueryStream>, Status> {
        self.check_size(&request)?;
        let snapshot = self.state.config.load();
        let caller = caller(&request);
        let req = convert::request(request).map_err(convert::status)?;
        let items = orchestrator::stream_cached(&self.state, &snapshot, req.by(&caller))
            .await
            .map_err(convert::status)?;
        let chunks = items.map(|item| match item {
            StreamItem::Delta(delta) => Ok(pb::StreamChunk {
                delta,
                ..Default::default()
            }),
            StreamItem::Reasoning(reasoning) => Ok(pb::StreamChunk {
                reasoning,
                ..Default::default()
            }),
            StreamItem::ToolCall(call) => Ok(pb::StreamChunk {
                tool_call: Some(convert::tool_call(call)),
                ..Default::default()
            }),
            StreamItem::Done(answer) => Ok(pb::StreamChunk {
                done: true,
                answer: Some(convert::answer(*answer)),
                ..Default::default()
            }),
            StreamItem::Error(e) => Err(convert::status(e)),
        });
        Ok(Response::new(chunks.boxed()))
    }

    async fn embed(
        &self,
        request: Request<pb::EmbedRequest>,
    ) -> Result<Response<pb::EmbedResponse>, Status> {
        self.check_size(&request)?;
        let snapshot = self.state.config.load();
        let caller = caller(&request);
        let mut call = convert::embed_call(request).map_err(convert::status)?;
        call.tenant = caller.tenant.clone();
        call.priority = caller.priority.clone();
        let a = orchestrator::embed(&self.state, &snapshot, call)
            .await
            .map_err(convert::status)?;
        let e = &a.embeddings;
        Ok(Response::new(pb::EmbedResponse {
            embeddings: e
                .vectors
                .iter()
                .map(|v| pb::Embedding { values: v.clone() })
                .collect(),
            provider: a.provider,
            model: e.model.clone(),
            prompt_tokens: e.prompt_tokens,
            cache_hit: a.cache_hit,
        }))
    }

    async fn feedback(
        &self,
        request: Request<pb::FeedbackRequest>,
    ) -> Result<Response<pb::FeedbackReply>, Status> {
        self.check_size(&request)?;
        let snapshot = self.state.config.load();
        let caller = caller(&request);
        let call =
            convert::feedback_call(request.into_inner(), &caller).map_err(convert::status)?;
        let reply = orchestrator::feedback(&snapshot, call).map_err(convert::status)?;
        Ok(Response::new(convert::feedback_reply(reply)))
    }

    async fn health(
        &self,
        _request: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        let status = self.state.config.status();
        let providers = crate::api::convert::provider_health(&self.state)
            .into_iter()
            .map(|p| pb::ProviderHealth {
                name: p.name,
                kind: format!("{:?}", p.kind).to_lowercase(),
                model: p.model,
                endpoints: p
                    .endpoints
                    .into_iter()
                    .map(|e| pb::EndpointHealth {
                        url: e.url,
                        state: e.state.to_owned(),
                        outstanding: e.outstanding as u64,
                        last_error: e.last_error.unwrap_or_default(),
                        breaker: e.breaker.as_str().to_owned(),
                        trips: e.trips,
                        calls: e.calls,
                        failures: e.failures,
                        models: e.models,
                    })
                    .collect(),
            })
            .collect();
        // As `/health`: degraded while the config file on disk is rejected, not serving
        // once draining.
        let overall = if !self.state.is_ready() {
            "NOT_SERVING"
        } else if status.last_error.is_some() {
            "DEGRADED"
        } else {
            "SERVING"
        };
        Ok(Response::new(pb::HealthResponse {
            status: overall.to_owned(),
            providers,
            config_version: status.version,
            config_error: status.last_error.unwrap_or_default(),
        }))
    }
}

/// The caller set by the auth layer (tonic keeps the HTTP request's extensions).
fn caller<T>(request: &Request<T>) -> crate::auth::Caller {
    request
        .extensions()
        .get::<crate::auth::Caller>()
        .cloned()
        .unwrap_or_default()
}
