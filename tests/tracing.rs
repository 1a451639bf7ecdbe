//! OpenTelemetry traces end to end: the real binary exports over OTLP (HTTP/protobuf and
//! gRPC) to an in-test receiver, which must get the span tree of a VOTING request with its
//! parent/child links, under the caller's `traceparent`; the upstream calls carry the trace
//! context on.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use llm_pool::testing::{FakeUpstream, Reply, Step};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// Every span any export delivered.
#[derive(Clone, Default)]
struct Received(Arc<parking_lot::Mutex<Vec<Span>>>);

impl Received {
    fn add(&self, req: ExportTraceServiceRequest) {
        let mut spans = self.0.lock();
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP receiver on a free port; returns its base URL.
async fn receiver(received: Received, grpc: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    if grpc {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(received))
                .serve_with_incoming(incoming),
        );
    } else {
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let received = received.clone();
                async move {
                    let req = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    received.add(req);
                    axum::body::Bytes::from(ExportTraceServiceResponse::default().encode_to_vec())
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    url
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

async fn voting_request_is_traced(grpc: bool) {
    let received = Received::default();
    let otlp = receiver(received.clone(), grpc).await;
    let mut up = FakeUpstream::start(Step::Reply(Reply::text("MEDICINE")), &["up-model"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let http_port = free_port();
    let config = format!(
        r#"
[server]
grpc_addr = "127.0.0.1:{grpc_port}"
http_addr = "127.0.0.1:{http_port}"

[auth]
inference = false

[qos]
health_check_interval_ms = 0

[tracing]
enabled = true
otlp_endpoint = "{otlp}"
protocol = "{protocol}"
sampling_ratio = 0.0

[providers.a]
kind = "openai"
model = "up-model"
endpoints = ["{up}"]

[providers.b]
kind = "openai"
model = "up-model"
endpoints = ["{up}"]

[providers.c]
kind = "openai"
model = "up-model"
endpoints = ["{up}"]

[tasks.vote]
template = "Classify {{{{input}}}}"
output = "label"
labels = ["MEDICINE", "LAW"]
strategy = "voting"
providers = ["a", "b", "c"]
n = 3
early_stop = false
"#,
        grpc_port = free_port(),
        up = up.url(),
        protocol = if grpc { "grpc" } else { "http/protobuf" },
    );
    let path = dir.path().join("llm-pool.toml");
    std::fs::write(&path, config).expect("config");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_llm-pool"))
        .args(["serve", "--config"])
        .arg(&path)
        // Export promptly instead of every 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn llm-pool");
    let base = format!("http://127.0.0.1:{http_port}");
    let client = reqwest::Client::new();
    tokio::time::timeout(WAIT, async {
        while client.get(format!("{base}/readyz")).send().await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("pool up");

    // Sampling ratio 0: only a sampled caller's trace is recorded, and it is.
    let r = client
        .post(format!("{base}/v1/query"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .json(&serde_json::json!({"task": "vote", "input": "aspirin"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let unsampled = client
        .post(format!("{base}/v1/query"))
        .json(&serde_json::json!({"task": "vote", "input": "no trace"}))
        .send()
        .await
        .expect("request");
    assert_eq!(unsampled.status(), 200);

    // The upstream calls carry the trace on.
    let seen = up.next_request().await;
    let tp = seen.headers["traceparent"].to_str().expect("ascii");
    assert!(tp.starts_with(&format!("00-{TRACE_ID}-")), "{tp}");

    // Stop: the exporter flushes on shutdown.
    let pid = child.id().expect("pid");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(status.success());

    let spans = received.0.lock().clone();
    let hex = |b: &[u8]| hex::encode(b);
    assert!(
        spans.iter().all(|s| hex(&s.trace_id) == TRACE_ID),
        "only the sampled caller's trace: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let named = |prefix: &str| -> Vec<&Span> {
        spans
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .collect()
    };
    let request = named("POST /v1/query");
    assert_eq!(request.len(), 1, "one request span");
    let request = request[0];
    assert_eq!(
        hex(&request.parent_span_id),
        PARENT_ID,
        "child of the caller"
    );
    let strategy = named("strategy voting");
    assert_eq!(strategy.len(), 1);
    assert_eq!(strategy[0].parent_span_id, request.span_id);
    let upstream = named("upstream ");
    assert_eq!(upstream.len(), 3, "one per candidate");
    for u in &upstream {
        assert_eq!(u.parent_span_id, strategy[0].span_id);
        let attr = |k: &str| {
            u.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
        };
        assert!(attr("provider").is_some() && attr("outcome").is_some());
        assert!(attr("completion_tokens").is_some());
        let attempts: Vec<_> = named("attempt")
            .into_iter()
            .filter(|a| a.parent_span_id == u.span_id)
            .collect();
        assert_eq!(attempts.len(), 1, "one attempt under each call");
    }
    // The traceparent sent upstream is one of the attempts.
    let sent_parent = tp.split('-').nth(2).expect("span id");
    assert!(
        named("attempt")
            .iter()
            .any(|a| hex(&a.span_id) == sent_parent),
        "upstream's parent is an attempt span"
    );
}

#[tokio::test]
async fn voting_request_traced_over_otlp_http() {
    voting_request_is_traced(false).await;
}

#[tokio::test]
async fn voting_request_traced_over_otlp_grpc() {
    voting_request_is_traced(true).await;
}
