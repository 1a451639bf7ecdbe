// The TypeScript client against a real pool process in front of a real model server:
// scripts/test-clients.sh starts it and sets LLM_POOL_CLIENT_ADDR, LLM_POOL_CLIENT_KEY,
// LLM_POOL_CLIENT_HMAC_SECRET and LLM_POOL_CLIENT_JWT_SECRET.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, test } from "node:test";

import {
  Client,
  DeadlineExceeded,
  InvalidArgument,
  LlmPoolError,
  NotFound,
  Strategy,
  StreamChunkSchema,
  Unauthenticated,
  Unavailable,
} from "../src/index.js";
import { create } from "@bufbuild/protobuf";

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (scripts/test-clients.sh sets it)`);
  return value;
};
const ADDR = `http://${env("LLM_POOL_CLIENT_ADDR")}`;
const KEY = env("LLM_POOL_CLIENT_KEY");
const HMAC_SECRET = env("LLM_POOL_CLIENT_HMAC_SECRET");
const JWT_SECRET = env("LLM_POOL_CLIENT_JWT_SECRET");
const MODEL = process.env.LLM_POOL_MODEL_NAME ?? "smollm2";
const EMBED = process.env.LLM_POOL_EMBED_MODEL_NAME ?? "smollm2-embed";

const clients: Client[] = [];
const client = (options: ConstructorParameters<typeof Client>[1] = {}) => {
  const c = new Client(ADDR, options);
  clients.push(c);
  return c;
};
after(() => clients.forEach((c) => c.close()));

const pool = client({ apiKey: KEY, timeoutMs: 60_000 });

function hs256(claims: object): string {
  const enc = (b: Buffer) => b.toString("base64url");
  const head = enc(Buffer.from(JSON.stringify({ alg: "HS256", typ: "JWT" })));
  const body = enc(Buffer.from(JSON.stringify(claims)));
  const sig = createHmac("sha256", JWT_SECRET).update(`${head}.${body}`).digest();
  return `${head}.${body}.${enc(sig)}`;
}

async function rejects<T extends LlmPoolError>(p: Promise<unknown>, Class: new (...a: never[]) => T): Promise<T> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof Class, `expected ${Class.name}, got ${e}`);
    assert.ok(e instanceof LlmPoolError);
    return e;
  }
  assert.fail(`expected ${Class.name}, got an answer`);
}

test("query answers with its Decision", async () => {
  const answer = await pool.query("chat", "Say hello", { maxTokens: 8, temperature: 0 });
  assert.ok(answer.text.trim().length > 0);
  assert.equal(answer.provider, MODEL);
  assert.equal(answer.decision?.winner, MODEL);
  assert.equal(answer.decision?.strategy, Strategy.FASTEST);
  assert.equal(answer.decision?.candidates[0]?.status, "ok");
  assert.ok(answer.requestId);
});

test("a stream ends with the whole answer", async () => {
  const chunks = [];
  for await (const chunk of pool.stream("chat", "Count to five", { maxTokens: 12, temperature: 0 })) {
    chunks.push(chunk);
  }
  const last = chunks[chunks.length - 1];
  assert.ok(last?.done);
  assert.equal(chunks.map((c) => c.delta).join(""), last.answer?.text);
});

test("health lists providers and breakers", async () => {
  const health = await pool.health();
  assert.equal(health.status, "SERVING");
  const model = health.providers.find((p) => p.name === MODEL);
  assert.ok(model, "the chat provider is listed");
  assert.equal(model.endpoints[0]?.breaker, "closed");
});

test("embed", async () => {
  const resp = await pool.embed(EMBED, ["hello", "world"]);
  assert.equal(resp.embeddings.length, 2);
  assert.ok((resp.embeddings[0]?.values.length ?? 0) > 8);
});

test("errors are exceptions by class", async () => {
  const e = await rejects(pool.query("no_such_task", "hi"), NotFound);
  assert.match(e.rawMessage, /no_such_task/);
  await rejects(pool.query("chat", "hi", { maxTokens: 1_000_000 }), InvalidArgument);
  await rejects(pool.query("chat", "hi", { strategy: "loudest" as never }), InvalidArgument);
  await rejects(client({ apiKey: "wrong-key" }).query("chat", "hi"), Unauthenticated);
  await rejects(client().query("chat", "hi"), Unauthenticated);
});

test("the deadline is per call", async () => {
  await rejects(
    pool.query("chat", "Write a long story", { maxTokens: 400, temperature: 0.9, timeoutMs: 50 }),
    DeadlineExceeded,
  );
  assert.equal((await pool.health()).status, "SERVING");
});

test("HMAC signing is done for the caller", async () => {
  const signed = client({ hmac: { tenant: "app", secret: HMAC_SECRET }, timeoutMs: 60_000 });
  // The same request twice in one second: each call has its own nonce.
  for (let i = 0; i < 2; i++) {
    assert.ok((await signed.query("chat", "Say hi", { maxTokens: 4, temperature: 0 })).text);
  }
  const chunks = [];
  for await (const chunk of signed.stream("chat", "Say hi", { maxTokens: 4, temperature: 0 })) chunks.push(chunk);
  assert.ok(chunks[chunks.length - 1]?.done);
  const forged = client({ hmac: { tenant: "app", secret: "not-the-secret" } });
  const e = await rejects(forged.health(), Unauthenticated);
  assert.match(e.rawMessage, /signature/);
});

test("JWT", async () => {
  const now = Math.floor(Date.now() / 1000);
  const ok = client({ jwt: hs256({ tenant: "app", exp: now + 300 }), timeoutMs: 60_000 });
  assert.ok((await ok.query("chat", "Say hi", { maxTokens: 4 })).text);
  const expired = client({ jwt: hs256({ tenant: "app", exp: now - 3600 }) });
  await rejects(expired.health(), Unauthenticated);
});

test("a stream that ends without its last chunk is an error", async () => {
  // A stream cut short (here: a transport that ends after one piece) is never a shorter answer.
  const c = client();
  (c.raw as { streamQuery: unknown }).streamQuery = async function* () {
    yield create(StreamChunkSchema, { delta: "Hel" });
  };
  const read = async () => {
    for await (const _ of c.stream("chat", "hi")) {
      // consume
    }
  };
  await rejects(read(), Unavailable);
});
