//! The gRPC surface over a real socket: Query, StreamQuery, Health, grpc.health.v1,
//! reflection, deadlines and error codes.

mod common;

use std::time::Duration;

use common::*;
use llm_pool::api::grpc::pb;
use llm_pool::api::grpc::pb::llm_pool_client::LlmPoolClient;
use llm_pool::testing::Step;
use tokio_stream::StreamExt;
use tonic::Code;

async fn client(pool: &Pool) -> LlmPoolClient<tonic::transport::Channel> {
    LlmPoolClient::connect(pool.grpc.clone())
        .await
        .expect("connect")
}

fn query(task: &str, input: &str) -> pb::QueryRequest {
    pb::QueryRequest {
        task: task.into(),
        input: input.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn query_and_stream_query() {
    let mut up = fake("gRPC works fine").await;
    let pool = start_pool(&basic_config("ollama", &up.url())).await;
    let mut c = client(&pool).await;

    let mut req = query("echo", "hi");
    req.variables.insert("lang".into(), "French".into());
    req.max_tokens = Some(12);
    let answer = c.query(req).await.expect("query").into_inner();
    assert_eq!(answer.text, "gRPC works fine");
    assert_eq!(answer.provider, "up");
    assert_eq!(answer.task, "echo");
    assert_eq!(answer.usage.unwrap().completion_tokens, 3);
    let d = answer.decision.unwrap();
    assert_eq!(d.strategy, pb::Strategy::Fastest as i32);
    assert_eq!(d.winner, "up");
    assert_eq!(d.candidates[0].status, "ok");
    let seen = up.next_request().await;
    assert_eq!(seen.body["messages"][0]["content"], "Say hi in French");
    assert_eq!(seen.body["options"]["num_predict"], 12);

    let mut stream = c
        .stream_query(query("chat", "hi"))
        .await
        .expect("stream")
        .into_inner();
    let mut text = String::new();
    let mut last = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        text.push_str(&chunk.delta);
        if chunk.done {
            last = chunk.answer;
        }
    }
    assert_eq!(text, "gRPC works fine");
    assert_eq!(
        last.expect("final answer").usage.unwrap().completion_tokens,
        3
    );
}

#[tokio::test]
async fn errors_map_to_grpc_codes() {
    let up = fake("x").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let mut c = client(&pool).await;
    let cases = [
        (query("nope", "x"), Code::NotFound),
        (query("chat", ""), Code::InvalidArgument),
        (
            pb::QueryRequest {
                model: "ghost".into(),
                input: "x".into(),
                ..Default::default()
            },
            Code::NotFound,
        ),
        (
            pb::QueryRequest {
                temperature: Some(9.0),
                ..query("chat", "x")
            },
            Code::InvalidArgument,
        ),
        (
            pb::QueryRequest {
                strategy: pb::Strategy::Judge as i32,
                ..query("chat", "x")
            },
            Code::InvalidArgument,
        ),
        (
            pb::QueryRequest {
                strategy: 99,
                ..query("chat", "x")
            },
            Code::InvalidArgument,
        ),
    ];
    for (req, code) in cases {
        let err = c.query(req.clone()).await.expect_err("error");
        assert_eq!(err.code(), code, "{req:?}: {}", err.message());
        assert!(!err.message().is_empty());
    }
    up.set_default(Step::Status(503, "overloaded".into()));
    let err = c.query(query("chat", "x")).await.expect_err("unavailable");
    assert_eq!(err.code(), Code::Unavailable);
    // What happened, without the upstream's own words (they are for operators' logs).
    assert!(err.message().contains("503"), "{}", err.message());
    assert!(!err.message().contains("overloaded"));
}

#[tokio::test]
async fn the_grpc_deadline_becomes_the_request_deadline() {
    let up = fake("x").await;
    up.set_default(Step::Hang);
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let mut c = client(&pool).await;
    let mut req = tonic::Request::new(query("chat", "x"));
    // The header a client's deadline travels as (set directly, so the client's own timer
    // does not race the server's answer).
    req.metadata_mut()
        .insert("grpc-timeout", "300m".parse().unwrap());
    let t0 = tokio::time::Instant::now();
    let err = c.query(req).await.expect_err("deadline");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The pool dropped its upstream call when the deadline passed.
    tokio::time::timeout(WAIT, async {
        while up.in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the upstream call was cancelled");
}

#[tokio::test]
async fn health_services_and_reflection() {
    let up = fake("x").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let mut c = client(&pool).await;
    let health = c.health(pb::HealthRequest {}).await.unwrap().into_inner();
    assert_eq!(health.status, "SERVING");
    assert_eq!(health.config_version, 1);
    assert_eq!(health.providers[0].name, "up");
    assert_eq!(health.providers[0].endpoints[0].url, up.url());
    assert_eq!(health.providers[0].endpoints[0].breaker, "closed");

    let channel = tonic::transport::Endpoint::from_shared(pool.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut hc = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let resp = hc
        .check(tonic_health::pb::HealthCheckRequest {
            service: "llmpool.v1.LlmPool".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut rc = ServerReflectionClient::new(channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = rc
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let first = resp.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"llmpool.v1.LlmPool"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");

    // The older protocol version, which many tools still speak, answers too.
    use tonic_reflection::pb::v1alpha;
    let mut old = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let req = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "llmpool.v1.LlmPool".into(),
            ),
        ),
    };
    let mut resp = old
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let first = resp.next().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        first.message_response
    else {
        panic!("unexpected v1alpha reflection answer: {first:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let up = fake("x").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let mut c = client(&pool).await;
    let err = c
        .query(query("chat", &"x".repeat(70_000)))
        .await
        .expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
}

#[tokio::test]
async fn tools_and_tool_calls_travel_over_grpc() {
    let mut up = llm_pool::testing::FakeUpstream::start(
        llm_pool::testing::Step::Reply(llm_pool::testing::Reply::tool_call(
            "get_weather",
            r#"{"city":"Paris"}"#,
        )),
        &["up-model"],
    )
    .await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let mut c = client(&pool).await;
    let req = pb::QueryRequest {
        model: "up".into(),
        messages: vec![pb::ChatMessage {
            role: "user".into(),
            content: "Weather?".into(),
            ..Default::default()
        }],
        tools: vec![pb::Tool {
            name: "get_weather".into(),
            description: "Weather of a city".into(),
            parameters_json: r#"{"type":"object"}"#.into(),
        }],
        tool_choice: "get_weather".into(),
        ..Default::default()
    };
    let answer = c.query(req.clone()).await.unwrap().into_inner();
    assert_eq!(answer.finish_reason, "tool_calls");
    assert_eq!(answer.tool_calls[0].name, "get_weather");
    assert_eq!(answer.tool_calls[0].arguments_json, r#"{"city":"Paris"}"#);
    let sent = up.next_request().await.body;
    assert_eq!(
        sent["tools"],
        serde_json::json!([{"type": "function", "function": {
            "name": "get_weather", "description": "Weather of a city", "parameters": {"type": "object"}}}])
    );
    assert_eq!(
        sent["tool_choice"],
        serde_json::json!({"type": "function", "function": {"name": "get_weather"}})
    );
    // Streamed: the call arrives as its own chunk before the end.
    let mut stream = c
        .stream_query(pb::QueryRequest {
            cache: pb::CacheMode::Bypass as i32,
            ..req
        })
        .await
        .unwrap()
        .into_inner();
    let mut calls = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        calls.extend(chunk.tool_call);
    }
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, "get_weather");
}

#[tokio::test]
async fn embeddings_over_grpc() {
    let up = fake("unused").await;
    let pool = start_pool(&basic_config("ollama", &up.url())).await;
    let mut c = client(&pool).await;
    let resp = c
        .embed(pb::EmbedRequest {
            model: "up".into(),
            input: vec!["abc".into(), "hello".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.embeddings.len(), 2);
    assert_eq!(resp.embeddings[0].values, [3.0, f32::from(b'a'), 1.0]);
    assert_eq!(resp.provider, "up");
    let bad = c
        .embed(pb::EmbedRequest {
            model: "up".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
}
