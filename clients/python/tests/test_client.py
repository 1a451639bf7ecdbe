"""The Python client against a real pool process in front of a real model server.

scripts/test.sh starts the pool (auth on: tenant `app` by API key, HMAC secret or HS256
JWT) and sets LLM_POOL_CLIENT_ADDR (its gRPC address), LLM_POOL_CLIENT_KEY,
LLM_POOL_CLIENT_HMAC_SECRET and LLM_POOL_CLIENT_JWT_SECRET; LLM_POOL_MODEL_NAME and
LLM_POOL_EMBED_MODEL_NAME name the chat and embedding providers.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time

import pytest

import llm_pool_client as lp

ADDR = os.environ["LLM_POOL_CLIENT_ADDR"]
KEY = os.environ["LLM_POOL_CLIENT_KEY"]
HMAC_SECRET = os.environ["LLM_POOL_CLIENT_HMAC_SECRET"]
JWT_SECRET = os.environ["LLM_POOL_CLIENT_JWT_SECRET"]
MODEL = os.environ.get("LLM_POOL_MODEL_NAME", "smollm2")
EMBED = os.environ.get("LLM_POOL_EMBED_MODEL_NAME", "smollm2-embed")


def hs256(claims):
    """A JWT signed with HS256 (what the caller's issuer would hand out)."""
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
    head = enc(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = enc(json.dumps(claims).encode())
    sig = hmac.new(JWT_SECRET.encode(), head + b"." + body, hashlib.sha256).digest()
    return (head + b"." + body + b"." + enc(sig)).decode()


@pytest.fixture
def pool():
    with lp.Client(ADDR, api_key=KEY, timeout=60) as client:
        yield client


def test_query_answers_with_its_decision(pool):
    answer = pool.query("chat", "Say hello", max_tokens=8, temperature=0.0)
    assert answer.text.strip(), answer
    assert answer.provider == MODEL
    assert answer.decision.winner == MODEL
    assert answer.decision.strategy == lp.pb.STRATEGY_FASTEST
    assert answer.decision.candidates[0].status == "ok"
    assert answer.request_id


def test_stream_ends_with_the_whole_answer(pool):
    chunks = list(pool.stream("chat", "Count to five", max_tokens=12, temperature=0.0))
    assert chunks[-1].done
    text = "".join(c.delta for c in chunks)
    assert text == chunks[-1].answer.text
    assert text.strip()


def test_health_lists_providers_and_breakers(pool):
    health = pool.health()
    assert health.status == "SERVING"
    names = {p.name for p in health.providers}
    assert MODEL in names
    model = next(p for p in health.providers if p.name == MODEL)
    assert model.endpoints and model.endpoints[0].breaker == "closed"


def test_embed(pool):
    resp = pool.embed(EMBED, ["hello", "world"])
    assert len(resp.embeddings) == 2
    assert len(resp.embeddings[0].values) > 8


def test_errors_are_exceptions_by_class(pool):
    with pytest.raises(lp.NotFound) as e:
        pool.query("no_such_task", "hi")
    assert e.value.code.name == "NOT_FOUND"
    assert "no_such_task" in e.value.message
    with pytest.raises(lp.InvalidArgument):
        pool.query("chat", "hi", max_tokens=1_000_000)
    with pytest.raises(ValueError):
        pool.query("chat", "hi", strategy="loudest")
    with pytest.raises(lp.Unauthenticated):
        with lp.Client(ADDR, api_key="wrong-key") as other:
            other.query("chat", "hi")
    with pytest.raises(lp.Unauthenticated):
        with lp.Client(ADDR) as anonymous:
            anonymous.query("chat", "hi")
    # Every class is an LlmPoolError.
    with pytest.raises(lp.LlmPoolError):
        pool.query("no_such_task", "hi")


def test_the_deadline_is_per_call(pool):
    # Far more tokens than 50 ms allow on this model: the call's deadline, not the
    # client's 60 s, decides.
    with pytest.raises(lp.DeadlineExceeded):
        pool.query("chat", "Write a long story", max_tokens=400, temperature=0.9, cache=1, timeout=0.05)
    # The connection is still good.
    assert pool.health().status == "SERVING"


def test_hmac_signing_is_done_for_the_caller():
    with lp.Client(ADDR, hmac=("app", HMAC_SECRET), timeout=60) as signed:
        # The same request twice in one second: each call has its own nonce.
        for _ in range(2):
            assert signed.query("chat", "Say hi", max_tokens=4, temperature=0.0).text
        chunks = list(signed.stream("chat", "Say hi", max_tokens=4, temperature=0.0))
        assert chunks[-1].done
    with pytest.raises(lp.Unauthenticated) as e:
        with lp.Client(ADDR, hmac=("app", "not-the-secret")) as forged:
            forged.health()
    assert "signature" in e.value.message


def test_jwt():
    token = hs256({"tenant": "app", "exp": int(time.time()) + 300})
    with lp.Client(ADDR, jwt=token, timeout=60) as client:
        assert client.query("chat", "Say hi", max_tokens=4).text
    expired = hs256({"tenant": "app", "exp": int(time.time()) - 3600})
    with pytest.raises(lp.Unauthenticated):
        with lp.Client(ADDR, jwt=expired) as client:
            client.health()


def test_asyncio_client():
    async def main():
        async with lp.AsyncClient(ADDR, api_key=KEY, timeout=60) as pool:
            answer, health = await asyncio.gather(
                pool.query("chat", "Say hello", max_tokens=6, temperature=0.0),
                pool.health(),
            )
            assert answer.text.strip()
            assert health.status == "SERVING"
            pieces = []
            async for chunk in pool.stream("chat", "Say hi", max_tokens=6, temperature=0.0):
                pieces.append(chunk)
            assert pieces[-1].done
            assert "".join(c.delta for c in pieces) == pieces[-1].answer.text
            with pytest.raises(lp.NotFound):
                await pool.query("no_such_task", "hi")
        async with lp.AsyncClient(ADDR, hmac=("app", HMAC_SECRET)) as signed:
            assert (await signed.health()).status == "SERVING"

    asyncio.run(main())


def test_a_stream_that_ends_without_its_last_chunk_is_an_error():
    # A stream cut short (here: a transport that ends after one piece) is never a shorter
    # answer.
    with lp.Client(ADDR, api_key=KEY) as client:
        client._calls["StreamQuery"] = lambda *a, **k: iter([lp.pb.StreamChunk(delta="Hel")])
        with pytest.raises(lp.Unavailable):
            list(client.stream("chat", "hi"))
