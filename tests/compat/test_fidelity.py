"""Fidelity through the official `openai` and `ollama` Python clients, in front of a fake.

The pool binary (LLM_POOL_BIN, default target/debug/llm-pool) is started here in front of a
scripted OpenAI-compatible upstream written below, so the tests can assert both sides: what
the upstream received, field by field, and what the SDKs made of the pool's answers (tool
calls assembled from stream deltas, a two-turn tool loop, images, JSON schemas, embeddings
in the SDK's default base64 encoding, log probabilities).

Environment:
  LLM_POOL_BIN   the llm-pool binary (module skipped if it does not exist)
"""

import base64
import http.server
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

BIN = os.environ.get("LLM_POOL_BIN", "target/debug/llm-pool")
if not os.path.exists(BIN):
    pytest.skip(f"{BIN} is not built", allow_module_level=True)

import ollama  # noqa: E402
import openai  # noqa: E402

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


class Fake(http.server.ThreadingHTTPServer):
    """An OpenAI-compatible upstream: a user question with tools offered is answered with a
    call of the first tool (city Paris); a tool result is answered in words; anything else
    with a JSON object. Every request body is kept in `received`."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.received = []


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _json(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._json({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.received.append((self.path, body))
        if self.path == "/v1/embeddings":
            data = [
                {"object": "embedding", "index": i, "embedding": [float(len(t)), 0.5, -1.0]}
                for i, t in enumerate(body["input"])
            ]
            usage = {"prompt_tokens": len(data), "total_tokens": len(data)}
            return self._json({"object": "list", "data": data, "model": body["model"], "usage": usage})
        last = body["messages"][-1]
        if body.get("tools") and last["role"] == "user":
            call = {"name": body["tools"][0]["function"]["name"], "arguments": '{"city": "Paris"}'}
            message = {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": call}]}
            finish = "tool_calls"
        elif last["role"] == "tool":
            message = {"role": "assistant", "content": f"It is {last['content']}."}
            finish = "stop"
        else:
            message = {"role": "assistant", "content": '{"n": 3}'}
            finish = "stop"
        logprobs = None
        if body.get("logprobs"):
            logprobs = {"content": [{"token": "x", "logprob": -0.25, "bytes": [120], "top_logprobs": []}]}
        usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        if not body.get("stream"):
            return self._json({
                "id": "up", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": logprobs}],
                "usage": usage,
            })
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()

        def send(delta, finish_reason=None, extra=None):
            chunk = {"id": "up", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
            chunk.update(extra or {})
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())

        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            # Incremental pieces, as OpenAI streams them.
            send({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                  "function": {"name": call["function"]["name"], "arguments": ""}}]})
            args = call["function"]["arguments"]
            for piece in (args[: len(args) // 2], args[len(args) // 2:]):
                send({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        else:
            send({"role": "assistant", "content": message["content"]})
        send({}, finish)
        self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def pool():
    fake = Fake()
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    http_port, grpc_port = free_port(), free_port()
    config = f"""
[server]
http_addr = "127.0.0.1:{http_port}"
grpc_addr = "127.0.0.1:{grpc_port}"

# One local test caller: no credentials.
[auth]
inference = false
admin = false

[providers.up]
kind = "openai"
model = "fake-model"
endpoints = ["http://127.0.0.1:{fake.server_address[1]}"]
capabilities = ["vision"]

[tasks.chat]
providers = ["up"]
"""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(config)
    proc = subprocess.Popen([BIN, "serve", "--config", f.name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{http_port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{base}/readyz", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail(f"the pool did not start: {proc.stderr.read().decode()[-2000:]}")
    yield base, fake
    proc.terminate()
    proc.wait(timeout=10)
    fake.shutdown()
    os.unlink(f.name)


@pytest.fixture
def oai(pool):
    return openai.OpenAI(base_url=f"{pool[0]}/v1", api_key="unused", timeout=10, max_retries=0)


@pytest.fixture
def oll(pool):
    return ollama.Client(host=pool[0], timeout=10)


def last_request(pool):
    return pool[1].received[-1]


def test_openai_two_turn_tool_loop(pool, oai):
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = oai.chat.completions.create(model="up", messages=messages, tools=[WEATHER], tool_choice="auto")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    _, sent = last_request(pool)
    assert sent["tools"] == [WEATHER] and sent["tool_choice"] == "auto"

    # The SDK's own message object goes back into the conversation, then the tool's result.
    messages.append(choice.message)
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18C"})
    second = oai.chat.completions.create(model="up", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "It is 18C."
    _, sent = last_request(pool)
    assert sent["messages"][1]["tool_calls"][0]["id"] == call.id
    assert sent["messages"][2] == {"role": "tool", "content": "18C", "tool_call_id": call.id}


def test_openai_streamed_tool_calls_assemble(oai):
    name, arguments, finish = "", "", None
    stream = oai.chat.completions.create(
        model="up", messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER], stream=True
    )
    for chunk in stream:
        if not chunk.choices:
            continue
        for d in chunk.choices[0].delta.tool_calls or []:
            name += d.function.name or ""
            arguments += d.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "Paris"}
    assert finish == "tool_calls"


def test_openai_image_parts_reach_the_upstream(pool, oai):
    url = f"data:image/png;base64,{PNG}"
    oai.chat.completions.create(model="up", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": url}}]}])
    _, sent = last_request(pool)
    assert sent["messages"][0]["content"][1] == {"type": "image_url", "image_url": {"url": url}}


def test_openai_json_schema_and_logprobs(pool, oai):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    resp = oai.chat.completions.create(
        model="up", messages=[{"role": "user", "content": "A number"}],
        response_format={"type": "json_schema", "json_schema": {"name": "num", "schema": schema}},
        logprobs=True, top_logprobs=1,
    )
    assert json.loads(resp.choices[0].message.content) == {"n": 3}
    assert resp.choices[0].logprobs.content[0].logprob == -0.25
    _, sent = last_request(pool)
    assert sent["response_format"]["json_schema"]["schema"] == schema
    assert sent["logprobs"] is True and sent["top_logprobs"] == 1


def test_openai_embeddings_in_the_sdks_default_encoding(pool, oai):
    # The SDK asks for base64 unless told otherwise, and decodes it.
    resp = oai.embeddings.create(model="up", input=["abc", "hello"])
    assert [d.embedding for d in resp.data] == [[3.0, 0.5, -1.0], [5.0, 0.5, -1.0]]
    floats = oai.embeddings.create(model="up", input="abcd", encoding_format="float")
    assert floats.data[0].embedding == [4.0, 0.5, -1.0]
    path, sent = last_request(pool)
    assert path == "/v1/embeddings" and sent["input"] == ["abcd"]


def test_ollama_tools_images_format_and_embed(pool, oll):
    resp = oll.chat(model="up", messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER])
    call = resp.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments == {"city": "Paris"}

    oll.chat(model="up", messages=[{"role": "user", "content": "Look", "images": [PNG]}])
    _, sent = last_request(pool)
    assert sent["messages"][0]["content"][1]["image_url"]["url"] == f"data:image/png;base64,{PNG}"

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    resp = oll.chat(model="up", messages=[{"role": "user", "content": "A number"}], format=schema)
    assert json.loads(resp.message.content) == {"n": 3}
    _, sent = last_request(pool)
    assert sent["response_format"]["json_schema"]["schema"] == schema

    emb = oll.embed(model="up", input=["ab", "abc"])
    assert emb.embeddings == [[2.0, 0.5, -1.0], [3.0, 0.5, -1.0]]


def test_ollama_clients_find_the_server(pool):
    with urllib.request.urlopen(pool[0] + "/") as r:
        assert r.read() == b"Ollama is running"


def test_fields_that_cannot_be_carried_are_400(oai):
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(
            model="up", messages=[{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]
        )
    assert "messages[0].content[0].type" in str(e.value)
