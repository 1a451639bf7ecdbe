// Ask a running pool, stream an answer, and handle its errors by class.
//
//   node dist/examples/query.js http://127.0.0.1:7070 chat "Say hello"
//   LLM_POOL_API_KEY=... node dist/examples/query.js https://pool.internal:7070 classify_domain "..."

import { Client, LlmPoolError, NoConsensus, RateLimited, Strategy } from "../src/index.js";

const [address = "http://127.0.0.1:7070", task = "chat", text = "Say hello"] = process.argv.slice(2);
const pool = new Client(address, { apiKey: process.env.LLM_POOL_API_KEY, timeoutMs: 30_000 });

try {
  const answer = await pool.query(task, text, { maxTokens: 32 });
  console.log(answer.text);
  console.log(`-- ${answer.decision?.winner} won (${Strategy[answer.decision?.strategy ?? 0]}), ${answer.latencyMs} ms`);

  for await (const chunk of pool.stream(task, text, { maxTokens: 32 })) process.stdout.write(chunk.delta);
  process.stdout.write("\n");
} catch (e) {
  if (e instanceof RateLimited) console.error(`busy, retry in ${e.retryAfter}s`);
  else if (e instanceof NoConsensus) console.error("the models disagreed:", e.decision?.candidates.map((c) => c.text));
  else if (e instanceof LlmPoolError) console.error(e.message);
  else throw e;
  process.exitCode = 1;
} finally {
  pool.close();
}
