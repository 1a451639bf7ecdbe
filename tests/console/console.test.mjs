// The operator console in a real browser: headless Chromium (Debian's package) driven over
// CDP by puppeteer-core, against a real pool process (LLM_POOL_BIN) in front of fake model
// servers made here (so that one can die on cue). Checks that the page loads with no
// console error, goes live over SSE, draws the votes of recent decisions, shows a tripped
// breaker within 2 s of an endpoint dying, shows a rejected reload with its TOML path and
// the diff of the last accepted one, and opens a request in the Decision explorer. The
// screenshots go to $LLM_POOL_SCREENSHOTS (docs/ keeps the README's).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import puppeteer from "puppeteer-core";

const BIN = process.env.LLM_POOL_BIN ?? "target/debug/llm-pool";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = process.env.LLM_POOL_SCREENSHOTS;
const KEY = "console-admin-key-0123456789";

/** A fake OpenAI-compatible server: answers by the requested model after `delayMs` (gamma
 * first, and wrong: the vote hears every provider before it is decided). */
function upstream(delayMs) {
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      if (req.method === "GET") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ object: "list", data: [{ id: "m-alpha" }, { id: "m-beta" }, { id: "m-gamma" }] }));
        return;
      }
      const model = JSON.parse(body || "{}").model ?? "";
      const content = model === "m-gamma" ? "broken" : "ok";
      setTimeout(() => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({
          id: "x", object: "chat.completion", model,
          choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content } }],
          usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 },
        }));
      }, model === "m-gamma" ? 5 : delayMs);
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    /** Dies: no new connections, open ones cut. */
    kill: () => { server.close(); for (const s of sockets) s.destroy(); },
  })));
}

const dir = mkdtempSync(join(tmpdir(), "llm-pool-console-"));
const configPath = join(dir, "llm-pool.toml");
let up1, up2, pool, base, browser;
/** Requests that answered after a retry on another endpoint (when the endpoint died). */
const retried = [];
const poolLog = [];

function config(extra = "") {
  return `
[server]
grpc_addr = "127.0.0.1:0"
http_addr = "127.0.0.1:0"
log_format = "json"

[auth]
inference = true
admin = true

[tenants.ops]
api_key_env = ["LLM_POOL_CONSOLE_KEY"]
admin = true

[qos]
health_check_interval_ms = 0

[qos.breaker]
consecutive_failures = 2
cooldown_ms = 30000

[cache]
enabled = true

[providers.alpha]
kind = "openai"
model = "m-alpha"
endpoints = ["${up1.url}", "${up2.url}"]

[providers.beta]
kind = "openai"
model = "m-beta"
endpoints = ["${up1.url}"]

[providers.gamma]
kind = "openai"
model = "m-gamma"
endpoints = ["${up1.url}"]

[tasks.chat]
providers = ["alpha", "beta"]
cache_ttl_secs = 60
${extra}
[tasks.triage]
description = "Is the build ok?"
output = "label"
labels = ["ok", "broken"]
strategy = "voting"
providers = ["alpha", "beta", "gamma"]
cache_ttl_secs = 0
`;
}

async function query(task, input) {
  const resp = await fetch(`${base}/v1/query`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ task, input }),
  });
  return resp.json();
}

before(async () => {
  up1 = await upstream(40);
  up2 = await upstream(60);
  writeFileSync(configPath, config());
  pool = spawn(BIN, ["serve", "--config", configPath], {
    env: { ...process.env, LLM_POOL_CONSOLE_KEY: KEY, RUST_LOG: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the pool did not start:\n${poolLog.join("")}`)), 20_000);
    const read = (chunk) => {
      poolLog.push(chunk.toString());
      const m = poolLog.join("").match(/http_addr\W+(127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(`http://${m[1]}`);
      }
    };
    pool.stdout.on("data", read);
    pool.stderr.on("data", read);
  });
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await browser?.close();
  pool?.kill("SIGTERM");
  up1?.kill();
  up2?.kill();
});

/** A page with the admin key (HTTP Basic) that records console errors. */
async function open(path, errors) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 1000 });
  await page.authenticate({ username: "ops", password: KEY });
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  const resp = await page.goto(`${base}${path}`, { waitUntil: "domcontentloaded" });
  assert.equal(resp.status(), 200);
  return page;
}

test("the console is behind admin auth", async () => {
  const anonymous = await fetch(`${base}/ui`);
  assert.equal(anonymous.status, 401);
  assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Basic /);
  const basic = await fetch(`${base}/ui/state`, {
    headers: { authorization: `Basic ${Buffer.from(`ops:${KEY}`).toString("base64")}` },
  });
  assert.equal(basic.status, 200);
  assert.equal((await basic.json()).config.version, 1);
});

test("live overview: decisions, a dying endpoint's breaker, reloads", async () => {
  const errors = [];
  const page = await open("/ui", errors);
  await page.waitForFunction(() => document.getElementById("conn").textContent === "live", { timeout: 5_000 });

  // Traffic: a vote the three providers split 2 to 1, and chat answers (one cached).
  for (let i = 0; i < 3; i++) await query("triage", `build ${i}`);
  await query("chat", "hello");
  await query("chat", "hello");
  await page.waitForFunction(
    () => document.querySelectorAll('[data-task="triage"] .decision .bar').length >= 2,
    { timeout: 5_000 },
  );
  const bars = await page.$$eval('[data-task="triage"] .decision:first-child .bar .label', (els) => els.map((e) => e.textContent));
  assert.deepEqual(bars.sort(), ["broken", "ok"]);

  // Enough calls for latency percentiles (and tokens/s) to show.
  for (let i = 0; i < 24; i++) await query("triage", `more ${i}`);

  // An accepted reload: its diff is shown.
  writeFileSync(configPath, config("max_tokens = 64\n"));
  await page.waitForSelector("#reload-diff", { timeout: 10_000 });
  const diff = await page.$eval("#reload-diff", (e) => e.textContent);
  assert.match(diff, /\+max_tokens = 64/);

  // The endpoint dies; callers' requests fail over to the other endpoint and trip its
  // breaker: the page shows it open within 2 s.
  up2.kill();
  const died = Date.now();
  const traffic = setInterval(() => query("chat", `after ${Date.now()}`)
    .then((a) => { if (a.decision?.candidates?.some((c) => c.retries > 0)) retried.push(a.request_id); })
    .catch(() => {}), 100);
  try {
    await page.waitForFunction(
      (url) => {
        const row = document.querySelector(`tr.endpoint[data-endpoint="${url}"]`);
        return row && row.textContent.includes("breaker open");
      },
      { timeout: 10_000, polling: 50 },
      up2.url,
    );
  } finally {
    clearInterval(traffic);
  }
  const shown = Date.now() - died;
  console.log(`breaker open on the page ${shown} ms after the endpoint died`);
  assert.ok(shown <= 2_000, `shown after ${shown} ms`);
  assert.match(await page.$eval(`tr.endpoint[data-endpoint="${up2.url}"]`, (e) => e.textContent), /probe in \d/);

  // A rejected reload: the error with its TOML path; the old version keeps serving.
  writeFileSync(configPath, config('max_tokens = 64\nstrategy = "loudest"\n'));
  await page.waitForSelector("#reload-error", { timeout: 10_000 });
  const error = await page.$eval("#reload-error", (e) => e.textContent);
  assert.match(error, /tasks\.chat\.strategy/);
  assert.match(error, /version 2 keeps serving/);

  if (SHOTS) await page.screenshot({ path: join(SHOTS, "console.png"), fullPage: true });
  assert.deepEqual(errors, [], "no console errors");
  await page.close();
});

test("the Decision explorer shows a request's candidates, votes and timings", async () => {
  const answer = await query("triage", "explore me");
  const errors = [];
  const page = await open(`/ui/requests/${answer.request_id}`, errors);
  await page.waitForSelector("#waterfall .wf-bar", { timeout: 5_000 });
  const rows = await page.$$eval("#candidates tbody tr", (trs) => trs.map((tr) => tr.textContent));
  assert.equal(rows.length, 3, rows.join("\n"));
  assert.ok(rows.some((r) => r.includes("gamma") && r.includes("broken")));
  assert.equal(await page.$$eval("#waterfall .wf-bar", (b) => b.length), 3);
  assert.deepEqual(
    (await page.$$eval("#groups .bar .label", (els) => els.map((e) => e.textContent))).sort(),
    ["broken", "ok"],
  );
  if (SHOTS) await page.screenshot({ path: join(SHOTS, "console-request.png"), fullPage: true });
  // A call retried on another endpoint when one died is marked on the timeline.
  assert.ok(retried.length > 0, "a request answered after a retry");
  const again = await open(`/ui/requests/${retried[0]}`, errors);
  await again.waitForSelector("#waterfall .wf-bar.retried", { timeout: 5_000 });
  assert.match(await again.$eval("#waterfall", (e) => e.textContent), /\(1 retry\)/);
  await again.close();
  // A request no longer kept says so.
  const gone = await open("/ui/requests/not-a-request", errors);
  await gone.waitForSelector(".error-box", { timeout: 5_000 });
  assert.match(await gone.$eval(".error-box", (e) => e.textContent), /not among the recent/);
  // The 404 of the data fetch is the only console error, and it is expected.
  assert.ok(errors.every((e) => e.includes("404")), errors.join("\n"));
  await page.close();
  await gone.close();
});
