//! Fidelity: what an OpenAI or Ollama client sends reaches the model server (asserted field
//! by field on what the fake upstream received), what the server answers comes back (tool
//! calls, log probabilities), across dialect conversion both ways, and a field that cannot
//! be carried is refused with a 400 naming it.

mod common;

use common::*;
use llm_pool::testing::{FakeUpstream, Reply, Step};
use serde_json::{Value, json};

const KINDS: [&str; 2] = ["openai", "ollama"];

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

async fn tool_upstream() -> FakeUpstream {
    FakeUpstream::start(
        Step::Reply(Reply::tool_call("get_weather", r#"{"city": "Paris"}"#)),
        &["up-model"],
    )
    .await
}

/// `basic_config` with extra lines in the provider's table.
fn config_with(kind: &str, url: &str, provider_lines: &str) -> String {
    basic_config(kind, url).replacen(
        "endpoints = [",
        &format!("{provider_lines}\nendpoints = ["),
        1,
    )
}

async fn error_of(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("a JSON error body");
    let message = body["error"]["message"]
        .as_str()
        .or_else(|| body["error"].as_str())
        .unwrap_or_default()
        .to_owned();
    (status, message)
}

#[tokio::test]
async fn tools_reach_both_dialects_and_calls_come_back() {
    for kind in KINDS {
        let mut up = tool_upstream().await;
        let pool = start_pool(&basic_config(kind, &up.url())).await;
        let resp = pool
            .post_json(
                "/v1/chat/completions",
                json!({"model": "up", "messages": [{"role": "user", "content": "Weather in Paris?"}],
                    "tools": [weather_tool()], "tool_choice": "auto"}),
            )
            .await;
        assert_eq!(resp.status(), 200, "{kind}");
        let body: Value = resp.json().await.unwrap();
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{kind}");
        assert_eq!(choice["message"]["content"], Value::Null, "{kind}");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "Paris"}), "{kind}");
        assert!(call["id"].as_str().is_some_and(|id| !id.is_empty()));

        let sent = up.next_request().await.body;
        assert_eq!(sent["tools"], json!([weather_tool()]), "{kind}");
        if kind == "openai" {
            assert_eq!(sent["tool_choice"], "auto");
            assert_eq!(call["id"], "call_up0", "the upstream's call id is kept");
        } else {
            // Ollama has no tool_choice; `auto` is its only behaviour.
            assert!(sent.get("tool_choice").is_none());
        }
    }
}

#[tokio::test]
async fn streamed_tool_calls_arrive_as_deltas_the_sdks_assemble() {
    for kind in KINDS {
        let up = tool_upstream().await;
        let pool = start_pool(&basic_config(kind, &up.url())).await;
        let resp = pool
            .post_json(
                "/v1/chat/completions",
                json!({"model": "up", "messages": [{"role": "user", "content": "Weather?"}],
                    "tools": [weather_tool()], "stream": true}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        let data = sse_data(&resp.text().await.unwrap());
        assert_eq!(data.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        // Assemble as the SDKs do: by index, names set once, arguments appended.
        let mut name = String::new();
        let mut arguments = String::new();
        let mut finish = Value::Null;
        for c in &chunks {
            for d in c["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                assert_eq!(d["index"], 0);
                name.push_str(d["function"]["name"].as_str().unwrap_or_default());
                arguments.push_str(d["function"]["arguments"].as_str().unwrap_or_default());
            }
            if !c["choices"][0]["finish_reason"].is_null() {
                finish = c["choices"][0]["finish_reason"].clone();
            }
        }
        assert_eq!(name, "get_weather", "{kind}");
        let args: Value = serde_json::from_str(&arguments).unwrap();
        assert_eq!(args, json!({"city": "Paris"}), "{kind}");
        assert_eq!(finish, "tool_calls", "{kind}");
    }
}

#[tokio::test]
async fn a_two_turn_tool_loop_reaches_the_upstream_intact() {
    let history = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_7", "content": "18C and sunny"}
    ]);
    for kind in KINDS {
        let mut up = fake("It is 18C and sunny.").await;
        let pool = start_pool(&basic_config(kind, &up.url())).await;
        let resp = pool
            .post_json(
                "/v1/chat/completions",
                json!({"model": "up", "messages": history, "tools": [weather_tool()]}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "It is 18C and sunny."
        );
        let sent = up.next_request().await.body;
        let m = &sent["messages"];
        if kind == "openai" {
            assert_eq!(m[1], history[1]);
            assert_eq!(m[2], history[2]);
        } else {
            assert_eq!(
                m[1],
                json!({"role": "assistant", "content": "", "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]})
            );
            // Ollama names the tool a result came from; the pool finds it by the call id.
            assert_eq!(
                m[2],
                json!({"role": "tool", "content": "18C and sunny", "tool_name": "get_weather"})
            );
        }
    }
}

#[tokio::test]
async fn legacy_functions_are_carried_and_answered_in_their_shape() {
    let mut up = tool_upstream().await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let resp = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "up", "messages": [{"role": "user", "content": "Weather?"}],
                "functions": [weather_tool()["function"]], "function_call": "auto"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "function_call");
    assert_eq!(
        body["choices"][0]["message"]["function_call"]["name"],
        "get_weather"
    );
    let sent = up.next_request().await.body;
    assert_eq!(sent["tools"], json!([weather_tool()]));
    assert_eq!(sent["tool_choice"], "auto");
}

#[tokio::test]
async fn images_reach_vision_providers_in_each_dialect() {
    let png = "iVBORw0KGgoAAAANSUhEUg==";
    let data_url = format!("data:image/png;base64,{png}");
    for kind in KINDS {
        let mut up = fake("A cat.").await;
        let pool = start_pool(&config_with(kind, &up.url(), "capabilities = [\"vision\"]")).await;
        let resp = pool
            .post_json(
                "/v1/chat/completions",
                json!({"model": "up", "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": data_url, "detail": "low"}}]}]}),
            )
            .await;
        assert_eq!(resp.status(), 200, "{kind}");
        let sent = up.next_request().await.body;
        if kind == "openai" {
            assert_eq!(
                sent["messages"][0]["content"],
                json!([{"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": data_url, "detail": "low"}}])
            );
        } else {
            assert_eq!(
                sent["messages"][0],
                json!({"role": "user", "content": "What is this?", "images": [png]})
            );
        }
    }
}

#[tokio::test]
async fn images_are_refused_where_they_cannot_be_seen() {
    let image = |url: &str| {
        json!({"model": "up", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": url}}]}]})
    };
    // A provider without the vision capability would answer blind.
    let up = fake("A cat.").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let resp = pool
        .post_json("/v1/chat/completions", image("https://example.com/cat.png"))
        .await;
    let (status, message) = error_of(resp).await;
    assert_eq!(status, 400);
    assert!(
        message.contains("messages[0].content[1]") && message.contains("vision"),
        "{message}"
    );
    // Ollama takes image data, not URLs.
    let pool = start_pool(&config_with(
        "ollama",
        &up.url(),
        "capabilities = [\"vision\"]",
    ))
    .await;
    let resp = pool
        .post_json("/v1/chat/completions", image("https://example.com/cat.png"))
        .await;
    let (status, message) = error_of(resp).await;
    assert_eq!(status, 400);
    assert!(message.contains("messages[0].content[1]"), "{message}");
    assert_eq!(up.take_requests_count(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn json_schema_is_sent_upstream_and_enforced() {
    let schema =
        json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
    let body = json!({"model": "up", "messages": [{"role": "user", "content": "A number"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "num", "schema": schema, "strict": true}}});
    for kind in KINDS {
        let mut up = fake(r#"{"n": 3}"#).await;
        let pool = start_pool(&basic_config(kind, &up.url())).await;
        let resp = pool.post_json("/v1/chat/completions", body.clone()).await;
        assert_eq!(resp.status(), 200, "{kind}");
        let sent = up.next_request().await.body;
        if kind == "openai" {
            assert_eq!(
                sent["response_format"],
                json!({"type": "json_schema", "json_schema": {"name": "num", "schema": schema, "strict": true}})
            );
        } else {
            assert_eq!(sent["format"], schema);
        }
        // An answer that violates the schema is not an answer.
        up.set_default(Step::Reply(Reply::text(r#"{"n": "three"}"#)));
        let resp = pool.post_json("/v1/chat/completions", body.clone()).await;
        let (status, message) = error_of(resp).await;
        assert_eq!(status, 502, "{kind}: {message}");
        assert!(message.contains("schema"), "{message}");
    }
}

#[tokio::test]
async fn sampling_extras_and_logprobs_reach_openai_upstreams() {
    let up = FakeUpstream::start(
        Step::Reply(Reply::text("Hi there").with_logprobs()),
        &["up-model"],
    )
    .await;
    let mut up = up;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let resp = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "up", "messages": [{"role": "user", "content": "Hi"}],
                "presence_penalty": 0.5, "frequency_penalty": -0.5, "logit_bias": {"50256": -100},
                "user": "u-1", "seed": 9, "max_completion_tokens": 12,
                "logprobs": true, "top_logprobs": 2, "reasoning_effort": "low"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["logprobs"]["content"][0]["token"], "Hi",
        "{body}"
    );
    let sent = up.next_request().await.body;
    assert_eq!(sent["presence_penalty"], 0.5);
    assert_eq!(sent["frequency_penalty"], -0.5);
    assert_eq!(sent["logit_bias"], json!({"50256": -100}));
    assert_eq!(sent["user"], "u-1");
    assert_eq!(sent["seed"], 9);
    assert_eq!(sent["max_tokens"], 12);
    assert_eq!(sent["logprobs"], true);
    assert_eq!(sent["top_logprobs"], 2);
    // Unknown fields are carried verbatim.
    assert_eq!(sent["reasoning_effort"], "low");

    // Streamed: the log probabilities come with the finish chunk.
    let resp = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "up", "messages": [{"role": "user", "content": "Hi"}],
                "logprobs": true, "stream": true}),
        )
        .await;
    let data = sse_data(&resp.text().await.unwrap());
    let tokens: Vec<String> = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .flat_map(|c| {
            c["choices"][0]["logprobs"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|e| e["token"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(tokens, ["Hi", " there"]);
}

#[tokio::test]
async fn fields_that_cannot_be_carried_are_refused_by_name() {
    let up = fake("x").await;
    let cases: [(&str, &str, Value, &str); 6] = [
        ("ollama", "", json!({"logit_bias": {"1": 2}}), "logit_bias"),
        ("ollama", "", json!({"logprobs": true}), "logprobs"),
        (
            "ollama",
            "",
            json!({"reasoning_effort": "low"}),
            "reasoning_effort",
        ),
        (
            "ollama",
            "",
            json!({"tools": [weather_tool()], "tool_choice": "required"}),
            "tool_choice",
        ),
        (
            "openai",
            "forward_unknown_fields = false",
            json!({"reasoning_effort": "low"}),
            "reasoning_effort",
        ),
        (
            "openai",
            "",
            json!({"messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]}),
            "messages[0].content[0].type",
        ),
    ];
    for (kind, lines, extra, field) in cases {
        let pool = start_pool(&config_with(kind, &up.url(), lines)).await;
        let mut body = json!({"model": "up", "messages": [{"role": "user", "content": "Hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, message) = error_of(pool.post_json("/v1/chat/completions", body).await).await;
        assert_eq!(status, 400, "{kind} {field}: {message}");
        assert!(message.contains(field), "{kind} {field}: {message}");
    }
    assert_eq!(up.take_requests_count(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn ollama_clients_reach_ollama_upstreams_verbatim() {
    let mut up = tool_upstream().await;
    let pool = start_pool(&config_with(
        "ollama",
        &up.url(),
        "capabilities = [\"vision\"]",
    ))
    .await;
    let schema = json!({"type": "object"});
    let resp = pool
        .post_json(
            "/api/chat",
            json!({"model": "up", "stream": false,
                "messages": [{"role": "user", "content": "Look", "images": ["iVBORw0KGgo="]}],
                "tools": [weather_tool()], "format": schema, "keep_alive": "5m", "think": false,
                "options": {"num_ctx": 4096, "top_k": 20, "repeat_penalty": 1.1, "temperature": 0.1}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["message"]["tool_calls"],
        json!([{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}])
    );
    assert_eq!(body["done_reason"], "stop");
    let sent = up.next_request().await.body;
    assert_eq!(sent["messages"][0]["images"], json!(["iVBORw0KGgo="]));
    assert_eq!(sent["tools"], json!([weather_tool()]));
    assert_eq!(sent["format"], schema);
    assert_eq!(sent["keep_alive"], "5m");
    assert_eq!(sent["think"], false);
    assert_eq!(
        sent["options"],
        json!({"num_ctx": 4096, "top_k": 20, "repeat_penalty": 1.1, "temperature": 0.1})
    );
}

#[tokio::test]
async fn ollama_clients_reach_openai_upstreams_converted() {
    let mut up = tool_upstream().await;
    let pool = start_pool(&config_with(
        "openai",
        &up.url(),
        "capabilities = [\"vision\"]",
    ))
    .await;
    let schema = json!({"type": "object"});
    let resp = pool
        .post_json(
            "/api/chat",
            json!({"model": "up", "stream": true,
                "messages": [{"role": "user", "content": "Look", "images": ["/9j/4AAQ"]}],
                "tools": [weather_tool()], "format": schema,
                "options": {"top_k": 20, "temperature": 0.1}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let lines = ndjson(&resp.text().await.unwrap());
    let calls: Vec<&Value> = lines
        .iter()
        .filter_map(|l| l["message"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(
        calls,
        [&json!({"function": {"name": "get_weather", "arguments": {"city": "Paris"}}})]
    );
    assert_eq!(lines.last().unwrap()["done"], true);
    let sent = up.next_request().await.body;
    assert_eq!(
        sent["messages"][0]["content"],
        json!([{"type": "text", "text": "Look"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}])
    );
    assert_eq!(sent["tools"], json!([weather_tool()]));
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema}})
    );
    assert_eq!(sent["top_k"], 20);
    // An option an OpenAI-kind server cannot set per request is refused by name.
    let resp = pool
        .post_json(
            "/api/chat",
            json!({"model": "up", "messages": [{"role": "user", "content": "Hi"}],
                "options": {"num_ctx": 4096}}),
        )
        .await;
    let (status, message) = error_of(resp).await;
    assert_eq!(status, 400);
    assert!(message.contains("options.num_ctx"), "{message}");
}

#[tokio::test]
async fn ollama_clients_find_a_running_server_and_its_models() {
    let up = fake("x").await;
    let pool = start_pool(&config_with(
        "ollama",
        &up.url(),
        "capabilities = [\"vision\"]",
    ))
    .await;
    let root = pool.get("/").await;
    assert_eq!(root.status(), 200);
    assert_eq!(root.text().await.unwrap(), "Ollama is running");
    let head = reqwest::Client::new()
        .head(pool.url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let ps: Value = pool.get("/api/ps").await.json().await.unwrap();
    assert_eq!(ps["models"][0]["name"], "up");
    assert_eq!(ps["models"][0]["details"]["parent_model"], "up-model");
    let show: Value = pool
        .post_json("/api/show", json!({"model": "up"}))
        .await
        .json()
        .await
        .unwrap();
    let caps = show["capabilities"].as_array().unwrap();
    assert!(
        caps.contains(&json!("tools")) && caps.contains(&json!("vision")),
        "{caps:?}"
    );
}

#[tokio::test]
async fn ollama_durations_are_the_model_servers_own() {
    // Ollama reports nanoseconds; llama-server reports `timings` in milliseconds.
    for (kind, prompt_ns, eval_ns) in [
        ("ollama", 1_000_000, 2_000_000),
        ("openai", 3_000_000, 4_000_000),
    ] {
        let up = fake("Hi there").await;
        let pool = start_pool(&basic_config(kind, &up.url())).await;
        let body: Value = pool
            .post_json(
                "/api/chat",
                json!({"model": "up", "stream": false, "messages": [{"role": "user", "content": "Hi"}]}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["prompt_eval_duration"], prompt_ns, "{kind}: {body}");
        assert_eq!(body["eval_duration"], eval_ns, "{kind}: {body}");
    }
}

#[tokio::test]
async fn api_show_says_what_the_model_server_says() {
    for kind in KINDS {
        let up = fake("x").await;
        let pool = start_pool(&basic_config(kind, &up.url())).await;
        let show: Value = pool
            .post_json("/api/show", json!({"model": "up"}))
            .await
            .json()
            .await
            .unwrap();
        let caps = show["capabilities"].as_array().unwrap().clone();
        assert!(caps.contains(&json!("tools")), "{kind}: {caps:?}");
        assert_eq!(
            show["details"]["quantization_level"], "Q4_1",
            "{kind}: {show}"
        );
        assert_eq!(show["model_info"]["llm_pool.upstream_model"], "up-model");
        if kind == "ollama" {
            assert_eq!(show["template"], "{{ .Prompt }}");
            assert_eq!(show["model_info"]["general.architecture"], "llama");
            assert!(caps.contains(&json!("thinking")), "{caps:?}");
        } else {
            assert_eq!(show["template"], "{{ messages }}");
            assert_eq!(show["model_info"]["llama-server.context_length"], 2048);
            assert_eq!(show["details"]["format"], "gguf");
        }
    }
}

#[tokio::test]
async fn an_ensemble_decides_the_tool_call_then_streams_it() {
    let ups = [
        FakeUpstream::start(
            Step::Reply(Reply::tool_call("get_weather", r#"{"city":"Paris"}"#)),
            &["m"],
        )
        .await,
        FakeUpstream::start(
            Step::Reply(Reply::tool_call("get_weather", r#"{"city": "Paris"}"#)),
            &["m"],
        )
        .await,
        FakeUpstream::start(
            Step::Reply(Reply::tool_call("get_weather", r#"{"city":"Rome"}"#)),
            &["m"],
        )
        .await,
    ];
    let mut config = String::new();
    for (name, up) in ["a", "b", "c"].iter().zip(&ups) {
        config.push_str(&format!(
            "[providers.{name}]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [\"{}\"]\n\n",
            up.url()
        ));
    }
    config.push_str(
        "[tasks.agent]\nproviders = [\"a\", \"b\", \"c\"]\nstrategy = \"voting\"\noutput = \"tool_call\"\nearly_stop = false\n",
    );
    let pool = start_pool(&config).await;
    let resp = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "task:agent", "messages": [{"role": "user", "content": "Weather?"}],
                "tools": [weather_tool()], "stream": true}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let data = sse_data(&resp.text().await.unwrap());
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(calls.len(), 1, "{chunks:?}");
    let args: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    let finish = chunks
        .iter()
        .find(|c| !c["choices"][0]["finish_reason"].is_null())
        .unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    let groups = finish["llm_pool"]["decision"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "Paris (two votes) and Rome");
}

#[tokio::test]
async fn a_streamed_answer_that_violates_the_schema_is_refused_before_it_starts() {
    for kind in KINDS {
        let up = fake(r#"{"n": "three"}"#).await;
        let pool = start_pool(&basic_config(kind, &up.url())).await;
        let resp = pool
            .post_json(
                "/v1/chat/completions",
                json!({"model": "up", "messages": [{"role": "user", "content": "A number"}], "stream": true,
                    "response_format": {"type": "json_schema", "json_schema": {"name": "n",
                        "schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}}}),
            )
            .await;
        let (status, message) = error_of(resp).await;
        assert_eq!(status, 502, "{kind}: {message}");
    }
}

#[tokio::test]
async fn n_choices_are_n_upstream_samples() {
    for kind in KINDS {
        let up = fake("A sample").await;
        let pool = start_pool(&basic_config(kind, &up.url())).await;
        let resp = pool
            .post_json(
                "/v1/chat/completions",
                json!({"model": "up", "messages": [{"role": "user", "content": "Hi"}], "n": 3}),
            )
            .await;
        assert_eq!(resp.status(), 200, "{kind}");
        let body: Value = resp.json().await.unwrap();
        let choices = body["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 3, "{kind}: {body}");
        for (i, c) in choices.iter().enumerate() {
            assert_eq!(c["index"], i);
            assert_eq!(c["message"]["content"], "A sample");
        }
        assert_eq!(
            up.take_requests_count(),
            3,
            "{kind}: one upstream call per choice"
        );
        // Several choices are answered whole.
        let resp = pool
            .post_json(
                "/v1/chat/completions",
                json!({"model": "up", "messages": [{"role": "user", "content": "Hi"}], "n": 2, "stream": true}),
            )
            .await;
        let (status, message) = error_of(resp).await;
        assert_eq!(status, 400);
        assert!(message.contains('n'), "{message}");
    }
}

#[tokio::test]
async fn a_tool_call_answer_is_cached_like_any_complete_answer() {
    let up = tool_upstream().await;
    let config = basic_config("openai", &up.url()).replace(
        "[tasks.chat]\nproviders = [\"up\"]",
        "[tasks.chat]\nproviders = [\"up\"]\ncache_ttl_secs = 60",
    );
    let pool = start_pool(&config).await;
    let ask = json!({"model": "task:chat", "messages": [{"role": "user", "content": "Weather?"}],
        "tools": [weather_tool()]});
    let first: Value = pool
        .post_json("/v1/chat/completions", ask.clone())
        .await
        .json()
        .await
        .unwrap();
    let second: Value = pool
        .post_json("/v1/chat/completions", ask.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["llm_pool"]["cache_hit"], false, "{first}");
    assert_eq!(second["llm_pool"]["cache_hit"], true, "{second}");
    assert_eq!(
        second["choices"][0]["message"]["tool_calls"],
        first["choices"][0]["message"]["tool_calls"]
    );
    assert_eq!(second["choices"][0]["finish_reason"], "tool_calls");
    // Other tools are another question.
    let mut other = ask;
    other["tools"][0]["function"]["description"] = json!("Weather, in kelvin");
    let third: Value = pool
        .post_json("/v1/chat/completions", other)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(third["llm_pool"]["cache_hit"], false, "{third}");
    assert_eq!(up.take_requests_count(), 2);
}

#[tokio::test]
async fn reasoning_comes_back_in_each_dialect_and_goes_back_upstream() {
    for kind in KINDS {
        for stream in [false, true] {
            let mut up = FakeUpstream::start(
                Step::Reply(Reply::text("Four.").with_reasoning("Two plus two is four.")),
                &["up-model"],
            )
            .await;
            let pool = start_pool(&basic_config(kind, &up.url())).await;
            let history = json!([
                {"role": "user", "content": "1+1?"},
                {"role": "assistant", "content": "Two.", "reasoning_content": "One and one."},
                {"role": "user", "content": "2+2?"}
            ]);
            // OpenAI clients: `reasoning_content`.
            let resp = pool
                .post_json(
                    "/v1/chat/completions",
                    json!({"model": "up", "messages": history, "stream": stream}),
                )
                .await;
            assert_eq!(resp.status(), 200);
            let reasoning = if stream {
                sse_data(&resp.text().await.unwrap())
                    .iter()
                    .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                    .filter_map(|c| {
                        c["choices"][0]["delta"]["reasoning_content"]
                            .as_str()
                            .map(str::to_owned)
                    })
                    .collect::<String>()
            } else {
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["choices"][0]["message"]["content"], "Four.");
                body["choices"][0]["message"]["reasoning_content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            };
            assert_eq!(reasoning, "Two plus two is four.", "{kind} stream={stream}");
            let sent = up.next_request().await.body;
            let earlier = &sent["messages"][1];
            if kind == "openai" {
                assert_eq!(earlier["reasoning_content"], "One and one.");
            } else {
                assert_eq!(earlier["thinking"], "One and one.");
            }
            // Ollama clients: `thinking`.
            let resp = pool
                .post_json(
                    "/api/chat",
                    json!({"model": "up", "messages": [{"role": "user", "content": "2+2?"}],
                        "stream": stream}),
                )
                .await;
            assert_eq!(resp.status(), 200);
            let lines = if stream {
                ndjson(&resp.text().await.unwrap())
            } else {
                vec![resp.json().await.unwrap()]
            };
            let thinking: String = lines
                .iter()
                .filter_map(|l| l["message"]["thinking"].as_str())
                .collect();
            assert_eq!(thinking, "Two plus two is four.", "{kind} stream={stream}");
        }
    }
}

#[tokio::test]
async fn every_choice_keeps_its_reasoning() {
    let up = FakeUpstream::start(
        Step::Reply(Reply::text("Four.").with_reasoning("Two and two.")),
        &["up-model"],
    )
    .await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let body: Value = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "up", "messages": [{"role": "user", "content": "2+2?"}], "n": 2}),
        )
        .await
        .json()
        .await
        .unwrap();
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2, "{body}");
    for c in choices {
        assert_eq!(c["message"]["reasoning_content"], "Two and two.", "{body}");
    }
}

/// The upstream answers this body, whole.
fn json_step(body: &str) -> Step {
    Step::Raw {
        content_type: "application/json",
        pieces: vec![(std::time::Duration::ZERO, body.to_owned())],
    }
}

/// An OpenAI upstream's answer as llama-server and OpenAI write it, with members the pool
/// has no field for.
const UPSTREAM_CHAT: &str = r#"{"id":"up-1","object":"chat.completion","created":7,"model":"up-model","system_fingerprint":"fp_1","choices":[{"index":0,"message":{"role":"assistant","content":"Hi \"there\""},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":1}},"timings":{"prompt_ms":1.5,"predicted_ms":2.0}}"#;

#[tokio::test]
async fn an_openai_upstream_s_answer_reaches_openai_callers_whole() {
    let up = FakeUpstream::start(json_step(UPSTREAM_CHAT), &["up-model"]).await;
    let config = format!(
        "{}\n[tasks.cached]\nproviders = [\"up\"]\ncache_ttl_secs = 600\n",
        basic_config("openai", &up.url())
    );
    let pool = start_pool(&config).await;
    let ask =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hello"}]});
    let resp = pool.post_json("/v1/chat/completions", ask("up")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-llm-pool-provider"], "up");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    // The members the pool has no field for arrive as the upstream sent them …
    assert_eq!(body["system_fingerprint"], "fp_1");
    assert_eq!(
        body["timings"],
        json!({"prompt_ms": 1.5, "predicted_ms": 2.0})
    );
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
    assert_eq!(body["choices"][0]["message"]["content"], "Hi \"there\"");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // … and those the pool owns are its own.
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-") && id != "up-1", "{id}");
    assert_eq!(body["model"], "up");
    assert_eq!(body["llm_pool"]["provider"], "up");
    assert_eq!(body["llm_pool"]["decision"]["strategy"], "fastest");

    // A cache hit cost this caller nothing: the upstream's usage is not handed on with it.
    for expect_hit in [false, true] {
        let resp = pool
            .post_json("/v1/chat/completions", ask("task:cached"))
            .await;
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["llm_pool"]["cache_hit"], expect_hit);
        assert_eq!(body["model"], "task:cached");
        let spent = if expect_hit { 0 } else { 5 };
        assert_eq!(body["usage"]["total_tokens"], spent, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], "Hi \"there\"");
    }
}

#[tokio::test]
async fn an_answer_the_pool_reshapes_is_not_handed_on_as_it_came() {
    // A label task's answer is normalised, and a legacy caller gets `function_call`: the
    // upstream's body is not theirs.
    let label = UPSTREAM_CHAT.replace(r#"Hi \"there\""#, " medicine.");
    let up = FakeUpstream::start(json_step(&label), &["up-model"]).await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let resp = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "task:classify", "messages": [{"role": "user", "content": "a cough"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "MEDICINE");
    assert!(body.get("system_fingerprint").is_none(), "{body}");

    let call = r#"{"id":"up-2","object":"chat.completion","created":7,"model":"up-model","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
    up.set_default(json_step(call));
    let resp = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "up", "messages": [{"role": "user", "content": "Weather?"}],
                "functions": [weather_tool()["function"]]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["finish_reason"], "function_call",
        "{body}"
    );
    assert_eq!(
        body["choices"][0]["message"]["function_call"]["name"],
        "get_weather"
    );
    // The same answer to a caller of `tools` is the upstream's own.
    let resp = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "up", "messages": [{"role": "user", "content": "Weather?"}],
                "tools": [weather_tool()]}),
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["id"],
        "call_1"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn an_openai_upstream_s_text_completion_reaches_callers_whole() {
    let text = r#"{"id":"cmpl-up","object":"text_completion","created":7,"model":"up-model","system_fingerprint":"fp_2","choices":[{"index":0,"text":" world","logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
    let up = FakeUpstream::start(json_step(text), &["up-model"]).await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let resp = pool
        .post_json("/v1/completions", json!({"model": "up", "prompt": "hello"}))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["system_fingerprint"], "fp_2");
    assert_eq!(body["choices"][0]["text"], " world");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"), "{body}");
    assert_ne!(body["id"], "cmpl-up");
    assert_eq!(body["llm_pool"]["decision"]["strategy"], "fastest");
}

#[tokio::test]
async fn callers_that_join_another_s_call_are_not_handed_its_usage() {
    let up = FakeUpstream::start(
        Step::Raw {
            content_type: "application/json",
            pieces: vec![(std::time::Duration::from_millis(200), UPSTREAM_CHAT.into())],
        },
        &["up-model"],
    )
    .await;
    let config = format!(
        "{}\n[tasks.cached]\nproviders = [\"up\"]\ncache_ttl_secs = 600\n",
        basic_config("openai", &up.url())
    );
    let pool = start_pool(&config).await;
    let ask = json!({"model": "task:cached", "messages": [{"role": "user", "content": "same"}]});
    let calls: Vec<_> = (0..8)
        .map(|_| pool.post_json("/v1/chat/completions", ask.clone()))
        .collect();
    let mut spent = Vec::new();
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "Hi \"there\"");
        spent.push(body["usage"]["total_tokens"].as_u64().unwrap());
    }
    assert_eq!(up.take_requests_count(), 1, "single flight");
    spent.sort_unstable();
    // The leader spent the tokens; the seven who joined it spent none.
    assert_eq!(spent, [0, 0, 0, 0, 0, 0, 0, 5]);
}
