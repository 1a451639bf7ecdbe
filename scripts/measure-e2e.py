#!/usr/bin/env python3
"""Time one streamed chat completion direct to the model server and through the pool.

Usage: scripts/measure-e2e.py DIRECT_BASE POOL_BASE [MODEL] [ROUNDS]
  e.g. scripts/measure-e2e.py http://127.0.0.1:8080 http://127.0.0.1:7071 smollm2 5

Runs the two interleaved (direct, pool, direct, pool, ...) so both see the same machine
load, and prints medians of time to first token (TTFT), total time and tokens/s. Tokens are
the content chunks received (llama-server sends one token per chunk). Standard library only.
"""
import http.client
import json
import statistics
import sys
import time
import urllib.parse


def stream_once(base, model, max_tokens=64):
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    body = json.dumps({
        "model": model,
        "messages": [{"role": "user", "content": "Write a short story about a lighthouse."}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 1,
        "stream": True,
    })
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit(f"{base}: status {resp.status}: {resp.read()[:200]!r}")
    ttft = None
    tokens = 0
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        choices = chunk.get("choices") or []
        if choices and (choices[0].get("delta") or {}).get("content"):
            tokens += 1
            if ttft is None:
                ttft = time.perf_counter() - t0
    total = time.perf_counter() - t0
    conn.close()
    gen = total - (ttft or 0)
    return ttft or total, total, (tokens - 1) / gen if tokens > 1 and gen > 0 else 0.0, tokens


def main():
    direct, pool = sys.argv[1], sys.argv[2]
    model = sys.argv[3] if len(sys.argv) > 3 else "smollm2"
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    stream_once(direct, model, 8)  # warm up both paths
    stream_once(pool, model, 8)
    results = {"direct": [], "pool": []}
    for _ in range(rounds):
        results["direct"].append(stream_once(direct, model))
        results["pool"].append(stream_once(pool, model))
    print(f"{'path':8} {'TTFT ms':>9} {'total ms':>9} {'tok/s':>7} {'tokens':>7}   (medians of {rounds})")
    for name, rs in results.items():
        ttft = statistics.median(r[0] for r in rs) * 1000
        total = statistics.median(r[1] for r in rs) * 1000
        tps = statistics.median(r[2] for r in rs)
        toks = statistics.median(r[3] for r in rs)
        print(f"{name:8} {ttft:9.1f} {total:9.1f} {tps:7.1f} {toks:7.0f}")
    d = statistics.median(r[0] for r in results["direct"])
    p = statistics.median(r[0] for r in results["pool"])
    print(f"TTFT added by the pool (median): {(p - d) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
