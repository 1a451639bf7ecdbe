#!/usr/bin/env python3
"""Overload: llm-pool in front of an upstream of fixed capacity, offered 1x to 10x of it.

The upstream answers every chat completion after a fixed delay (200 ms); the pool's provider
has `max_concurrency = 4`, so capacity is 4 / 0.2 s = 20 answers per second. Open-loop
Poisson arrivals from five tenants (API keys):

  ui       interactive   a fixed 10 % of capacity at every level (people at a screen)
  a, b     default       each 20 % of the bulk load (equal tenants)
  greedy   default       40 % of the bulk load (a burst twice theirs)
  nightly  batch         20 % of the bulk load

where the bulk load is (level - 0.1) x capacity. Reported per level and class: requests
sent, admitted share, p50/p99 latency of admitted requests, refusal latency, goodput
(answers per second / capacity), Jain's index between the equal tenants a and b and among
the three default-class tenants, the most calls the upstream ever had at once, and the
pool's RSS over the run. `--soak` adds a long run at 80 % of capacity (RSS steadiness, no
errors). Standard library only: the client is a small HTTP/1.1 keep-alive client.

  bench/overload.py --bin target/release/llm-pool [--duration 60] [--soak 600] [--smoke]
"""
import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CAPACITY_SLOTS = 4
SERVICE_S = 0.2
CAPACITY = CAPACITY_SLOTS / SERVICE_S  # answers per second
LEVELS = [1, 2, 5, 10]

TENANTS = {
    # name: (class, share of bulk load or None for the fixed interactive rate, deadline)
    "ui": ("interactive", None, "5s"),
    "a": ("default", 0.2, "5s"),
    "b": ("default", 0.2, "5s"),
    "greedy": ("default", 0.4, "5s"),
    # Batch work has time: it waits, is promoted, and runs between the others.
    "nightly": ("batch", 0.2, "60s"),
}
UI_RATE = 0.1 * CAPACITY


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# === The upstream: fixed delay, counts concurrency. ===

class Upstream:
    def __init__(self):
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0

    async def handle(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                path = head.split(b" ")[1]
                if path.startswith(b"/v1/models"):
                    body = b'{"object":"list","data":[{"id":"m","object":"model"}]}'
                elif path.startswith(b"/stats"):
                    # The most calls at once since the last look, then reset.
                    body = json.dumps({"max_in_flight": self.max_in_flight,
                                       "calls": self.calls}).encode()
                    self.max_in_flight = self.in_flight
                else:
                    self.calls += 1
                    self.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                    try:
                        await asyncio.sleep(SERVICE_S)
                    finally:
                        self.in_flight -= 1
                    body = json.dumps({
                        "id": "x", "object": "chat.completion", "model": "m",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "ok"}}],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
                    }).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


# === A small HTTP/1.1 keep-alive client. ===

class Client:
    def __init__(self, port):
        self.port = port
        self.idle = []

    async def post(self, path, body, headers):
        conn = self.idle.pop() if self.idle else None
        for attempt in (0, 1):
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", self.port)
            reader, writer = conn
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write((f"POST {path} HTTP/1.1\r\nhost: pool\r\ncontent-type: application/json\r\n"
                          f"content-length: {len(body)}\r\n{head}\r\n").encode() + body)
            try:
                await writer.drain()
                status_line = await reader.readuntil(b"\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                # A kept-alive connection the server closed: once more on a new one.
                writer.close()
                conn = None
                if attempt:
                    raise
                continue
            status = int(status_line.split(b" ")[1])
            rest = await reader.readuntil(b"\r\n\r\n")
            length, close = 0, False
            for line in rest.split(b"\r\n"):
                low = line.lower()
                if low.startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                elif low.startswith(b"connection:") and b"close" in low:
                    close = True
            payload = await reader.readexactly(length) if length else b""
            if close:
                writer.close()
            else:
                self.idle.append(conn)
            return status, payload
        raise RuntimeError("unreachable")


async def offer(port, level, duration, records, rng, ui_only=False):
    """Open-loop arrivals for `duration` seconds; appends (tenant, class, start, latency,
    status) to `records`; returns once every request has answered."""
    clients = {t: Client(port) for t in TENANTS}
    body = json.dumps({"task": "chat", "input": "hello"}).encode()
    tasks = []
    t0 = time.monotonic()

    async def one(tenant, cls):
        start = time.monotonic()
        try:
            status, _ = await clients[tenant].post(
                "/v1/query", body,
                {"authorization": f"Bearer key-{tenant}",
                 "x-request-timeout": TENANTS[tenant][2]})
        except Exception:  # noqa: BLE001 - a broken connection is a failed request
            status = 0
        records.append((tenant, cls, start - t0, time.monotonic() - start, status))

    async def arrivals(tenant, cls, rate):
        if rate <= 0:
            return
        next_at = t0 + rng.expovariate(rate)
        while next_at < t0 + duration:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            tasks.append(asyncio.ensure_future(one(tenant, cls)))
            next_at += rng.expovariate(rate)

    bulk = max(0.0, level - 0.1) * CAPACITY
    gens = []
    for tenant, (cls, share, _) in TENANTS.items():
        rate = UI_RATE if share is None else (0.0 if ui_only else share * bulk)
        gens.append(arrivals(tenant, cls, rate))
    await asyncio.gather(*gens)
    if tasks:
        await asyncio.gather(*tasks)


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def jain(xs):
    xs = [x for x in xs]
    if not xs or sum(x * x for x in xs) == 0:
        return None
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs))


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


async def sample_rss(pid, out, stop):
    while not stop.is_set():
        r = rss_kib(pid)
        if r:
            out.append(r)
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass


def summarise(name, level, duration, records, upstream_max, rss):
    by_class = {}
    for tenant, cls, start, lat, status in records:
        by_class.setdefault(cls, []).append((tenant, start, lat, status))
    rows = []
    for cls in ("interactive", "default", "batch"):
        rs = by_class.get(cls, [])
        if not rs:
            continue
        ok = [lat for _, _, lat, s in rs if s == 200]
        refused = [lat for _, _, lat, s in rs if s in (429, 503)]
        other = {}
        for *_, s in rs:
            if s not in (200, 429, 503):
                other[s] = other.get(s, 0) + 1
        rows.append({
            "class": cls, "sent": len(rs), "admitted": len(ok) / len(rs),
            "p50_ms": ms(pct(ok, 50)), "p99_ms": ms(pct(ok, 99)),
            "refused": len(refused), "refusal_p50_ms": ms(pct(refused, 50)),
            "refusal_p99_ms": ms(pct(refused, 99)),
            "slow_refusals": sum(1 for lat in refused if lat > 0.005), "errors": other,
        })
    # Goodput: answers completed per second once the queues filled (after the first
    # second), until arrivals stop.
    window = (1.0, duration) if duration > 2 else (0.0, duration)
    done = [(t, start + lat) for t, _, start, lat, s in records if s == 200]
    in_window = [t for t, end in done if window[0] <= end < window[1]]
    span = window[1] - window[0]
    ok_total = len(in_window)
    per_tenant = {t: sum(1 for x in in_window if x == t) / span for t in TENANTS}
    return {
        "run": name, "level": level, "duration_s": duration,
        "goodput": ok_total / span / CAPACITY,
        "jain_a_b": jain([per_tenant["a"], per_tenant["b"]]),
        "jain_default_tenants": jain([per_tenant["a"], per_tenant["b"], per_tenant["greedy"]]),
        "per_tenant_rps": per_tenant,
        "upstream_max_in_flight": upstream_max,
        # Over the run after its first quarter (queues and connections fill first).
        "rss_mib": rss_summary(rss[len(rss) // 4:] or rss),
        "classes": rows,
    }


def rss_summary(rss):
    if not rss:
        return {"min": None, "mean": None, "max": None, "spread": None}
    mean = statistics.mean(rss)
    return {"min": mib(min(rss)), "mean": mib(mean), "max": mib(max(rss)),
            "spread": (max(rss) - min(rss)) / 2 / mean}


def ms(x):
    return None if x is None else round(x * 1000, 1)


def mib(k):
    return round(k / 1024, 1)


def config_text(http_port, grpc_port, upstream_port):
    tenants = "\n".join(
        f'[tenants.{t}]\napi_key_env = ["KEY_{t.upper()}"]\npriority = "{cls}"\n'
        for t, (cls, _, _) in TENANTS.items())
    return f"""
[server]
http_addr = "127.0.0.1:{http_port}"
grpc_addr = "127.0.0.1:{grpc_port}"
log_format = "json"

[auth]
inference = true
admin = false

[limits]
max_deadline_ms = 60000

[providers.up]
kind = "openai"
model = "m"
endpoints = ["http://127.0.0.1:{upstream_port}"]
max_concurrency = {CAPACITY_SLOTS}
first_byte_timeout_ms = 30000

[tasks.chat]
providers = ["up"]

[cache]
enabled = false

[qos]
health_check_interval_ms = 0

[qos.retry]
max_attempts = 1

{tenants}
"""


async def serve_upstream(port):
    upstream = Upstream()
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def upstream_stats(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /stats HTTP/1.1\r\nhost: up\r\ncontent-length: 0\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0]
                 .split(b":")[1])
    body = json.loads(await reader.readexactly(length))
    writer.close()
    return body


async def main_async(args):
    # Upstream connections still open when the run ends are cancelled; that is expected.
    asyncio.get_running_loop().set_exception_handler(
        lambda loop, ctx: None if isinstance(ctx.get("exception"), asyncio.CancelledError)
        else loop.default_exception_handler(ctx))
    # The upstream runs in its own process, so the load generator's event loop does not
    # delay its answers.
    up_port = free_port()
    up_proc = subprocess.Popen([sys.executable, __file__, "--upstream", str(up_port)])
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", up_port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    http_port, grpc_port = free_port(), free_port()
    work = tempfile.mkdtemp(prefix="llm-pool-overload-")
    os.makedirs(os.path.join(work, "prompts"), exist_ok=True)
    path = os.path.join(work, "llm-pool.toml")
    with open(path, "w") as f:
        f.write(config_text(http_port, grpc_port, up_port))
    env = dict(os.environ, RUST_LOG="warn")
    for t in TENANTS:
        env[f"KEY_{t.upper()}"] = f"key-{t}"
    log = open(os.path.join(work, "pool.log"), "w")
    pool = subprocess.Popen([args.bin, "serve", "--config", path], env=env, stdout=log, stderr=log)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=0.2).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise SystemExit("the pool did not start; see " + log.name)
        rng = random.Random(7)
        results = []
        runs = [("unloaded", 0.1, True)] + [(f"{lv:g}x", lv, False) for lv in args.levels]
        if args.soak:
            runs.append(("soak 80%", 0.8, False))
        for name, level, ui_only in runs:
            duration = args.soak if name.startswith("soak") else args.duration
            records, rss, stop = [], [], asyncio.Event()
            await upstream_stats(up_port)
            sampler = asyncio.ensure_future(sample_rss(pool.pid, rss, stop))
            await offer(http_port, level, duration, records, rng, ui_only=ui_only)
            stop.set()
            await sampler
            stats = await upstream_stats(up_port)
            results.append(summarise(name, level, duration, records,
                                     stats["max_in_flight"], rss))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        report(results)
        if any(r["upstream_max_in_flight"] > CAPACITY_SLOTS for r in results):
            raise SystemExit("the upstream saw more calls at once than max_concurrency")
    finally:
        pool.terminate()
        pool.wait(timeout=10)
        up_proc.terminate()
        up_proc.wait(timeout=10)


def report(results):
    unloaded = results[0]["classes"][0]["p99_ms"] if results[0]["classes"] else None
    print(f"capacity {CAPACITY_SLOTS} slots x {int(SERVICE_S * 1000)} ms = {CAPACITY:.0f}/s; "
          f"deadlines 5 s (60 s batch); interactive offered {UI_RATE:.0f}/s at every level")
    print(f"{'run':<10}{'class':<13}{'sent':>6}{'admit':>7}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'refused':>8}{'ref p50':>9}{'ref p99':>9}{'>5 ms':>7}  other statuses")
    for r in results:
        for c in r["classes"]:
            print(f"{r['run']:<10}{c['class']:<13}{c['sent']:>6}{c['admitted']:>7.2f}"
                  f"{fmt(c['p50_ms']):>9}{fmt(c['p99_ms']):>9}{c['refused']:>8}"
                  f"{fmt(c['refusal_p50_ms']):>9}{fmt(c['refusal_p99_ms']):>9}{c['slow_refusals']:>7}"
                  f"  {' '.join(f'{k}:{v}' for k, v in c['errors'].items()) or '-'}")
    print()
    print(f"{'run':<10}{'goodput':>8}{'jain a,b':>10}{'jain a,b,greedy':>17}"
          f"{'upstream max':>14}{'RSS MiB min/mean/max':>24}{'+/-':>7}"
          f"{'interactive p99 / unloaded':>28}")
    for r in results:
        inter = next((c for c in r["classes"] if c["class"] == "interactive"), None)
        ratio = (inter["p99_ms"] / unloaded) if inter and inter["p99_ms"] and unloaded else None
        rss = r["rss_mib"]
        print(f"{r['run']:<10}{r['goodput']:>8.2f}{fmt(r['jain_a_b'], 3):>10}"
              f"{fmt(r['jain_default_tenants'], 3):>17}{r['upstream_max_in_flight']:>14}"
              f"{fmt(rss['min']) + '/' + fmt(rss['mean']) + '/' + fmt(rss['max']):>24}"
              f"{fmt(rss['spread'] * 100 if rss['spread'] is not None else None, 0) + '%':>7}"
              f"{fmt(ratio, 2):>28}")


def fmt(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin")
    ap.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--soak", type=float, default=0.0, help="seconds at 80 %% of capacity")
    ap.add_argument("--smoke", action="store_true", help="3 s per level")
    ap.add_argument("--levels", type=float, nargs="+", default=LEVELS,
                    help="offered load as multiples of capacity")
    args = ap.parse_args()
    if args.upstream:
        asyncio.run(serve_upstream(args.upstream))
        return
    if not args.bin:
        ap.error("--bin is required")
    if args.smoke:
        args.duration = 3.0
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
