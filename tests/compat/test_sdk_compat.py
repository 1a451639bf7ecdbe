"""The official `openai` and `ollama` Python clients against a running llm-pool.

The pool must already be running in front of a real (tiny) model, e.g. config/quickstart.toml
in front of llama-server serving SmolLM2-135M-Instruct as `smollm2`.

Environment:
  LLM_POOL_HTTP         HTTP base of the pool, e.g. http://127.0.0.1:7071 (module skipped if unset)
  LLM_POOL_MODEL_NAME   the `model` to ask for: a provider, alias or task:NAME (default "smollm2")

Run:
  python3 -m venv .venv && .venv/bin/pip install openai ollama pytest
  LLM_POOL_HTTP=http://127.0.0.1:7071 .venv/bin/pytest -q tests/compat

The model is real, so nothing here asserts particular words: only non-empty text, response
shapes, token counts and finish reasons.
"""

import os

import pytest

BASE = os.environ.get("LLM_POOL_HTTP", "").strip().rstrip("/")
if not BASE:
    pytest.skip("LLM_POOL_HTTP is not set: no running pool to test", allow_module_level=True)

# Imported after the skip so a machine without a pool need not have the SDKs; with a pool,
# a missing SDK is a loud collection error, never a silent skip.
import ollama  # noqa: E402
import openai  # noqa: E402

MODEL = os.environ.get("LLM_POOL_MODEL_NAME", "smollm2")
UNKNOWN_MODEL = "no-such-model-llm-pool-test"
TIMEOUT_SECS = 30.0
MAX_TOKENS = 16
FINISH_REASONS = ("stop", "length")
MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]


@pytest.fixture(scope="module")
def oai():
    # No retries: a failure must show as it happened, not be hidden by a second try.
    return openai.OpenAI(
        base_url=f"{BASE}/v1", api_key="unused", timeout=TIMEOUT_SECS, max_retries=0
    )


@pytest.fixture(scope="module")
def oll():
    return ollama.Client(host=BASE, timeout=TIMEOUT_SECS)


def _check_openai_usage(usage, max_completion):
    assert usage is not None, "usage missing"
    assert usage.prompt_tokens > 0, usage
    assert 0 < usage.completion_tokens <= max_completion, usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, usage


# ── OpenAI SDK ──────────────────────────────────────────────────────────────────────────


def test_openai_chat_completion(oai):
    resp = oai.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS)
    assert resp.id
    assert resp.object == "chat.completion"
    assert resp.model
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert choice.finish_reason in FINISH_REASONS
    _check_openai_usage(resp.usage, MAX_TOKENS)


def test_openai_chat_completion_stream(oai):
    stream = oai.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True
    )
    chunks = list(stream)
    assert chunks, "no chunks streamed"
    for chunk in chunks:
        assert chunk.object == "chat.completion.chunk"
        assert chunk.id
    with_choices = [c for c in chunks if c.choices]
    assert with_choices, "no chunk carried a choice"
    text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert text.strip(), "streamed deltas are empty"
    # Every chunk but the last choice-carrying one is unfinished; the last one says why it ended.
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    assert with_choices[-1].choices[0].finish_reason in FINISH_REASONS
    # One response: every chunk shares the id.
    assert len({c.id for c in chunks}) == 1


def test_openai_completion(oai):
    resp = oai.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8)
    assert resp.id
    assert resp.object == "text_completion"
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert isinstance(choice.text, str) and choice.text, "empty completion text"
    assert choice.finish_reason in FINISH_REASONS
    _check_openai_usage(resp.usage, 8)


def test_openai_models_list(oai):
    models = list(oai.models.list())
    ids = [m.id for m in models]
    assert MODEL in ids, ids
    for m in models:
        assert m.object == "model"


def test_openai_unknown_model_is_not_found(oai):
    with pytest.raises(openai.NotFoundError) as err:
        oai.chat.completions.create(model=UNKNOWN_MODEL, messages=MESSAGES, max_tokens=4)
    assert err.value.status_code == 404
    # The SDK unwraps OpenAI's {"error": {...}} shape into `body`.
    assert isinstance(err.value.body, dict) and err.value.body.get("message"), err.value.body


def test_openai_bad_parameter_is_bad_request(oai):
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=4, temperature=5
        )
    assert err.value.status_code == 400
    assert isinstance(err.value.body, dict) and err.value.body.get("message"), err.value.body


# ── Ollama client ───────────────────────────────────────────────────────────────────────


def _model_names(listing):
    names = set()
    for m in listing.models:
        name = getattr(m, "model", None) or m.get("name")
        if name:
            names.add(name)
    return names


def test_ollama_generate(oll):
    r = oll.generate(
        model=MODEL, prompt="Why is the sky blue?", options={"num_predict": MAX_TOKENS}
    )
    assert isinstance(r.response, str) and r.response.strip()
    assert r.done is True
    assert r.done_reason in FINISH_REASONS
    assert r.eval_count is not None and 0 < r.eval_count <= MAX_TOKENS
    assert r.model


def test_ollama_generate_stream(oll):
    chunks = list(
        oll.generate(
            model=MODEL,
            prompt="Why is the sky blue?",
            options={"num_predict": MAX_TOKENS},
            stream=True,
        )
    )
    assert len(chunks) >= 2, f"expected several NDJSON chunks, got {len(chunks)}"
    assert all(c.done is False for c in chunks[:-1]), "a chunk before the last says done"
    last = chunks[-1]
    assert last.done is True
    assert last.done_reason in FINISH_REASONS
    assert last.eval_count is not None and last.eval_count > 0
    text = "".join(c.response or "" for c in chunks)
    assert text.strip(), "streamed response is empty"


def test_ollama_chat(oll):
    r = oll.chat(model=MODEL, messages=MESSAGES, options={"num_predict": MAX_TOKENS})
    assert r.message.role == "assistant"
    assert isinstance(r.message.content, str) and r.message.content.strip()
    assert r.done is True
    assert r.done_reason in FINISH_REASONS
    assert r.eval_count is not None and 0 < r.eval_count <= MAX_TOKENS


def test_ollama_chat_stream(oll):
    chunks = list(
        oll.chat(
            model=MODEL, messages=MESSAGES, options={"num_predict": MAX_TOKENS}, stream=True
        )
    )
    assert len(chunks) >= 2, f"expected several NDJSON chunks, got {len(chunks)}"
    assert all(c.done is False for c in chunks[:-1]), "a chunk before the last says done"
    last = chunks[-1]
    assert last.done is True
    assert last.done_reason in FINISH_REASONS
    assert last.eval_count is not None and last.eval_count > 0
    text = "".join((c.message.content or "") for c in chunks if c.message)
    assert text.strip(), "streamed message is empty"


def test_ollama_list(oll):
    names = _model_names(oll.list())
    assert MODEL in names or f"{MODEL}:latest" in names, names


def test_ollama_show(oll):
    # Only the status matters: every field of ShowResponse is optional.
    oll.show(MODEL)


def test_ollama_unknown_model_generate_is_404(oll):
    with pytest.raises(ollama.ResponseError) as err:
        oll.generate(model=UNKNOWN_MODEL, prompt="hi", options={"num_predict": 4})
    assert err.value.status_code == 404
    assert err.value.error


def test_ollama_unknown_model_chat_is_404(oll):
    with pytest.raises(ollama.ResponseError) as err:
        oll.chat(model=UNKNOWN_MODEL, messages=MESSAGES, options={"num_predict": 4})
    assert err.value.status_code == 404
    assert err.value.error


# ── Fidelity against the real model server ─────────────────────────────────────────────
# llama-server constrains decoding to a JSON schema and reports log probabilities; a second
# instance started with --embeddings serves vectors. Tools are carried to it (the answer may
# be text: SmolLM2's template has no tool-call format for llama-server to parse).

EMBED_MODEL = os.environ.get("LLM_POOL_EMBED_MODEL_NAME", "")
NUMBER_SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer"}},
    "required": ["n"],
    "additionalProperties": False,
}


def test_openai_json_schema_is_constrained_by_the_real_server(oai):
    import json

    resp = oai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Give me a number."}],
        response_format={"type": "json_schema", "json_schema": {"name": "num", "schema": NUMBER_SCHEMA}},
        max_tokens=64,
        temperature=0,
    )
    value = json.loads(resp.choices[0].message.content)
    assert isinstance(value["n"], int) and set(value) == {"n"}, value


def test_ollama_format_schema_is_constrained_by_the_real_server(oll):
    import json

    resp = oll.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "Give me a number."}],
        format=NUMBER_SCHEMA,
        options={"num_predict": 64, "temperature": 0},
    )
    value = json.loads(resp.message.content)
    assert isinstance(value["n"], int), value


def test_openai_logprobs_come_from_the_real_server(oai):
    resp = oai.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=4, logprobs=True, top_logprobs=2
    )
    entries = resp.choices[0].logprobs.content
    assert entries, "no log probabilities"
    assert all(e.logprob <= 0 for e in entries), entries
    assert all(len(e.top_logprobs) == 2 for e in entries), entries


def test_openai_tools_are_carried_to_the_real_server(oai):
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    resp = oai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[tool],
        max_tokens=MAX_TOKENS,
    )
    choice = resp.choices[0]
    assert choice.finish_reason in (*FINISH_REASONS, "tool_calls")
    assert choice.message.content or choice.message.tool_calls


@pytest.fixture
def embed_model():
    if not EMBED_MODEL:
        pytest.skip("LLM_POOL_EMBED_MODEL_NAME is not set: no embeddings server (scripts/test.sh sets it)")
    return EMBED_MODEL


def test_openai_embeddings_from_the_real_server(oai, embed_model):
    resp = oai.embeddings.create(model=embed_model, input=["hello world", "goodbye"])
    assert [d.index for d in resp.data] == [0, 1]
    dims = {len(d.embedding) for d in resp.data}
    assert len(dims) == 1 and dims.pop() > 8, dims
    assert resp.data[0].embedding != resp.data[1].embedding
    assert resp.usage.prompt_tokens > 0


def test_ollama_embed_from_the_real_server(oll, embed_model):
    resp = oll.embed(model=embed_model, input="hello world")
    assert len(resp.embeddings) == 1 and len(resp.embeddings[0]) > 8
