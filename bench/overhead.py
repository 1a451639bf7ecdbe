#!/usr/bin/env python3
"""The gateway-overhead benchmark behind scripts/bench-overhead.sh (read that first).

Targets are measured in interleaved rounds (direct, pool, [peers], direct, pool, ...) so
that a noisy neighbour hurts every target alike; the report quotes medians over rounds.
The pool (and any peer) is pinned to core 0; nginx, wrk, the gRPC load client and this
script to the other cores.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
POOL_CORE = "0"
LOAD_CORES = "1" if NCPU == 2 else (f"1-{NCPU - 1}" if NCPU > 2 else "0")
# Where the origin (nginx serving the fixed answers) runs: "split" puts it with the load
# generator, so the gateway has core 0 to itself; "shared" puts it on the gateway's core, the
# way most published gateway benchmarks run (gateway and origin on one core, load on the other).
ORIGIN_CORES = {"split": LOAD_CORES, "shared": POOL_CORE}

CHAT = json.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
)
OPENAI_BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "bench",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello there, friend."},
             "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
    }
)
OLLAMA_BODY = json.dumps(
    {"model": "bench", "created_at": "2024-01-01T00:00:00Z",
     "message": {"role": "assistant", "content": "Hello there, friend."}, "done": True,
     "done_reason": "stop", "prompt_eval_count": 9, "eval_count": 4}
)
STREAM_CHUNKS = 32


def sse_body():
    out = []
    for i in range(STREAM_CHUNKS):
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "bench",
                 "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}]}
        out.append(f"data: {json.dumps(chunk)}\n\n")
    last = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "bench",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": STREAM_CHUNKS, "total_tokens": 41}}
    out.append(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n")
    return "".join(out)


def ndjson_body():
    out = []
    for i in range(STREAM_CHUNKS):
        out.append(json.dumps({"model": "bench", "created_at": "2024-01-01T00:00:00Z",
                               "message": {"role": "assistant", "content": f"tok{i} "},
                               "done": False}) + "\n")
    out.append(json.dumps({"model": "bench", "created_at": "2024-01-01T00:00:00Z",
                           "message": {"role": "assistant", "content": ""}, "done": True,
                           "done_reason": "stop", "prompt_eval_count": 9,
                           "eval_count": STREAM_CHUNKS}) + "\n")
    return "".join(out)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(cores):
    return ["taskset", "-c", cores] if shutil.which("taskset") and NCPU > 1 else []


def wait_http(url, timeout=30.0):
    deadline = time.time() + timeout
    host, port, path = parse(url)
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection(host, port, timeout=1)
            c.request("GET", path)
            if c.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"not ready: {url}")


def wait_http_post(url, body, timeout=30.0):
    """Until a chat completion through the target answers 200 (a peer's readiness)."""
    deadline = time.time() + timeout
    host, port, path = parse(url)
    last = None
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection(host, port, timeout=2)
            c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            last = (r.status, r.read()[:300])
            if r.status == 200:
                return
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise SystemExit(f"not ready: {url}: {last}")


def parse(url):
    m = re.match(r"http://([^:/]+):(\d+)(.*)", url)
    return m.group(1), int(m.group(2)), (m.group(3) or "/")


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=kw.pop("stderr", subprocess.DEVNULL), **kw)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def nginx(procs, work, cores=LOAD_CORES):
    # Apart from the gateways' config files: the pool watches its config's folder, and
    # nginx opening the bodies there would wake its watcher on every request.
    work = work / "origin"
    work.mkdir()
    work.chmod(0o755)
    (work / "openai.json").write_text(OPENAI_BODY)
    (work / "ollama.json").write_text(OLLAMA_BODY)
    (work / "sse.txt").write_text(sse_body())
    (work / "ndjson.txt").write_text(ndjson_body())
    (work / "models.json").write_text(json.dumps({"object": "list", "data": [{"id": "bench"}]}))
    ports = {"plain": free_port(), "stream": free_port(), "slow": free_port()}

    def loc(path, file, ctype, extra=""):
        # Static files answer POST with 405; the error_page turns that into the file.
        return (f"location = {path} {{ default_type {ctype}; alias {work}/{file}; "
                f"error_page 405 =200 $uri; {extra} }}\n")

    conf = f"""
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path {work}/body;
  server {{
    listen 127.0.0.1:{ports['plain']} backlog=4096;
    {loc('/v1/chat/completions', 'openai.json', 'application/json')}
    {loc('/api/chat', 'ollama.json', 'application/json')}
    {loc('/v1/models', 'models.json', 'application/json')}
  }}
  server {{
    listen 127.0.0.1:{ports['stream']} backlog=4096;
    {loc('/v1/chat/completions', 'sse.txt', 'text/event-stream')}
    {loc('/api/chat', 'ndjson.txt', 'application/x-ndjson')}
  }}
  server {{
    listen 127.0.0.1:{ports['slow']} backlog=4096;
    {loc('/v1/chat/completions', 'sse.txt', 'text/event-stream', 'limit_rate 64;')}
  }}
}}
"""
    (work / "nginx.conf").write_text(conf)
    procs.start(pin(cores) + ["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)])
    wait_http(f"http://127.0.0.1:{ports['plain']}/v1/models")
    return ports


def nginx_proxy(procs, work, ng, name="nginx-proxy"):
    """nginx as a reverse proxy in front of the origin, on the gateway's core: the same
    transport work as the pool (two keep-alive connections per request), no JSON work.
    Without `procs`, the argv of one process doing it all (for callgrind)."""
    d = work / name
    d.mkdir()
    port, sse_port = free_port(), free_port()
    conf = f"""
worker_processes 1;
daemon off;
{'master_process off;' if procs is None else ''}
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  upstream origin {{ server 127.0.0.1:{ng['plain']}; keepalive 128; keepalive_requests 10000000; }}
  upstream stream {{ server 127.0.0.1:{ng['stream']}; keepalive 16; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
  # Streams, passed on as they come (as a gateway must: no buffering).
  server {{
    listen 127.0.0.1:{sse_port};
    location / {{
      proxy_pass http://stream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""
    (d / "nginx.conf").write_text(conf)
    argv = ["nginx", "-c", str(d / "nginx.conf"), "-p", str(d)]
    if procs is None:
        return {"name": name, "http": f"http://127.0.0.1:{port}", "argv": argv}
    procs.start(pin(POOL_CORE) + argv)
    wait_http(f"http://127.0.0.1:{port}/v1/models")
    master = int((d / "nginx.pid").read_text())
    # The worker does the work; the master only waits.
    worker = int(subprocess.run(["pgrep", "-P", str(master)], capture_output=True,
                                text=True, check=True).stdout.split()[0])
    return {"name": "nginx-proxy", "pid": worker, "http": f"http://127.0.0.1:{port}",
            "sse": f"http://127.0.0.1:{sse_port}"}


def pool(procs, binary, work, ng, name, tracing=None, runtime=None):
    """The pool on core 0; with `runtime` (`serve --runtime`), on every core instead."""
    http_port, grpc_port = free_port(), free_port()
    trace = ""
    if tracing:
        endpoint, ratio = tracing
        trace = (f'[tracing]\nenabled = true\notlp_endpoint = "{endpoint}"\n'
                 f'protocol = "http/protobuf"\nsampling_ratio = {ratio}\n')

    def provider(pname, kind, port):
        return (f'[providers.{pname}]\nkind = "{kind}"\nmodel = "bench"\n'
                f'endpoints = ["http://127.0.0.1:{port}"]\nmax_concurrency = 100000\n'
                f'first_byte_timeout_ms = 120000\n\n')

    conf = f"""
[server]
http_addr = "127.0.0.1:{http_port}"
grpc_addr = "127.0.0.1:{grpc_port}"
prompts_dir = "{Path.cwd() / 'prompts'}"

[auth]
inference = false
admin = false

[qos]
health_check_interval_ms = 0

[cache]
enabled = true

{trace}
{provider('bench', 'openai', ng['plain'])}
{provider('bench-ollama', 'ollama', ng['plain'])}
{provider('bench-sse', 'openai', ng['stream'])}
{provider('bench-ndjson', 'ollama', ng['stream'])}
{provider('bench-slow', 'openai', ng['slow'])}
[tasks.bench]
providers = ["bench"]

# Cacheable (temperature 0, a TTL): the cache-hit target asks it the same thing every time.
[tasks.bench-cached]
providers = ["bench"]
temperature = 0.0
cache_ttl_secs = 3600
"""
    path = work / f"{name}.toml"
    path.write_text(conf)
    target = {"name": name, "http": f"http://127.0.0.1:{http_port}",
              "grpc": f"http://127.0.0.1:{grpc_port}",
              "argv": [binary, "serve", "--config", str(path)]
              + (["--runtime", runtime] if runtime else [])}
    if procs is None:
        return target
    env = dict(os.environ, RUST_LOG=os.environ.get("BENCH_RUST_LOG", "info"))
    cores = f"0-{NCPU - 1}" if runtime else POOL_CORE
    p = procs.start(pin(cores) + target["argv"], env=env)
    wait_http(f"http://127.0.0.1:{http_port}/readyz")
    return dict(target, pid=p.pid)


def litellm(procs, work, ng):
    venv = Path.home() / ".cache/llm-pool/venv-litellm"
    if not (venv / "bin/litellm").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", "litellm[proxy]"], check=True)
    port = free_port()
    cfg = work / "litellm.yaml"
    cfg.write_text(
        "model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/bench\n"
        f"      api_base: http://127.0.0.1:{ng['plain']}/v1\n      api_key: unused\n"
        "litellm_settings:\n  telemetry: false\n"
    )
    # LiteLLM refuses to start without a master key; requests then carry it.
    key = "sk-bench-" + "0" * 32
    env = dict(os.environ, LITELLM_LOG="ERROR", LITELLM_MASTER_KEY=key)
    p = procs.start(pin(POOL_CORE) + [str(venv / "bin/litellm"), "--config", str(cfg),
                                      "--port", str(port), "--num_workers", "1"], env=env)
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", timeout=180)
    version = subprocess.run([str(venv / "bin/pip"), "show", "litellm"], capture_output=True,
                             text=True).stdout
    version = re.search(r"Version: (\S+)", version)
    print(f"litellm {version.group(1) if version else '?'}", file=sys.stderr)
    return {"name": "litellm", "pid": p.pid, "http": f"http://127.0.0.1:{port}",
            "headers": {"Authorization": f"Bearer {key}"}}


def peer_binary(name):
    """The peer's binary, built by bench/peers/build.sh (outside the repository)."""
    out = subprocess.run(["bench/peers/build.sh", name], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr.strip() or f"bench/peers/build.sh {name} failed")
    return out.stdout.strip().splitlines()[-1]


def agentgateway(procs, work, ng):
    """agentgateway, one process with two listeners: an LLM route (its OpenAI `ai` backend,
    which parses the request and the answer for token accounting) and a plain HTTP route
    (a reverse proxy, no JSON work). Its defaults otherwise (access log on, jemalloc)."""
    binary = peer_binary("agentgateway")
    llm, plain, sse = free_port(), free_port(), free_port()
    admin, stats, ready = free_port(), free_port(), free_port()
    cfg = work / f"agentgateway-{llm}.yaml"
    cfg.write_text(f"""
config:
  adminAddr: "127.0.0.1:{admin}"
  statsAddr: "127.0.0.1:{stats}"
  readinessAddr: "127.0.0.1:{ready}"
binds:
- port: {llm}
  listeners:
  - protocol: HTTP
    routes:
    - backends:
      - ai:
          name: bench
          hostOverride: "127.0.0.1:{ng['plain']}"
          provider:
            openAI:
              model: bench
- port: {plain}
  listeners:
  - protocol: HTTP
    routes:
    - backends:
      - host: "127.0.0.1:{ng['plain']}"
- port: {sse}
  listeners:
  - protocol: HTTP
    routes:
    - backends:
      - ai:
          name: bench-sse
          hostOverride: "127.0.0.1:{ng['stream']}"
          provider:
            openAI:
              model: bench
""")
    argv = [binary, "-f", str(cfg)]
    # Its sampling heap profiler (pprof-alloc, on by default at this commit) walks frame
    # pointers through the prebuilt standard library, which has none, and crashes at start
    # in this build: sampling off (a rate of 0), the allocator otherwise as shipped.
    env = dict(os.environ, PPROF_ALLOC_SAMPLE_RATE="0")
    targets = [{"name": "agentgateway-llm", "http": f"http://127.0.0.1:{llm}", "argv": argv,
                "sse": f"http://127.0.0.1:{sse}", "env": env},
               {"name": "agentgateway-http", "http": f"http://127.0.0.1:{plain}", "argv": argv,
                "env": env}]
    if procs is None:
        return targets
    p = procs.start(pin(POOL_CORE) + argv, env=env)
    for t in targets:
        wait_http_post(t["http"] + "/v1/chat/completions", CHAT)
    return [dict(t, pid=p.pid) for t in targets]


def helicone(procs, work, ng):
    """Helicone's AI gateway: its unified API (`/ai/chat/completions`, `provider/model`),
    the OpenAI provider pointed at the origin, no Helicone features (no auth, no
    observability upload), its defaults otherwise (logs to stdout at info)."""
    binary = peer_binary("helicone")
    port = free_port()
    cfg = work / f"helicone-{port}.yaml"
    cfg.write_text(f"""
server:
  address: 127.0.0.1
  port: {port}
providers:
  openai:
    base-url: "http://127.0.0.1:{ng['plain']}/"
""")
    target = {"name": "helicone", "http": f"http://127.0.0.1:{port}",
              "path": "/ai/chat/completions", "body": CHAT.replace('"bench"', '"openai/gpt-4o-mini"'),
              "argv": [binary, "--config", str(cfg)],
              "env": dict(os.environ, OPENAI_API_KEY="sk-unused")}
    if procs is None:
        return target
    p = procs.start(pin(POOL_CORE) + target["argv"], env=target["env"])
    wait_http_post(target["http"] + target["path"], target["body"], timeout=60)
    return dict(target, pid=p.pid)


def cpu_ticks(pid):
    """(user, system) clock ticks the process has used."""
    if pid is None:
        return (0, 0)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]), int(fields[12]))


def rss_kb(pid, key="VmRSS"):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def wrk(url, path, body, conns, secs, work, headers=None):
    script = work / "post.lua"
    extra = "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n"
                    for k, v in (headers or {}).items())
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body)}\n" + extra
    )
    out = subprocess.run(
        pin(LOAD_CORES) + ["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency", "-s",
                           str(script), url + path],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    lat = {}
    for pct, val, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[pct] = float(val) * UNITS[unit] * 1e6
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}{path}: {errors.group(1)} non-2xx answers\n{out}")
    return {"rps": rps, "requests": reqs, "p50_us": lat.get("50"), "p99_us": lat.get("99")}


def measure_http(target, secs, work, direct_port=None):
    """c=32 throughput and c=1 latency; the target's CPU µs per request when it has a pid."""
    url = target["http"] if direct_port is None else f"http://127.0.0.1:{direct_port}"
    body = target.get("body", CHAT)
    path = target.get("path", "/v1/chat/completions")
    pid = target.get("pid")
    t0 = cpu_ticks(pid)
    headers = target.get("headers")
    hi = wrk(url, path, body, 32, secs, work, headers)
    t1 = cpu_ticks(pid)
    lo = wrk(url, path, body, 1, secs, work, headers)
    per = lambda ticks: ticks * 1e6 / CLK_TCK / hi["requests"] if pid else None
    user, system = per(t1[0] - t0[0]), per(t1[1] - t0[1])
    return {"rps_c32": hi["rps"], "p50_c32_us": hi["p50_us"], "p99_c32_us": hi["p99_us"],
            "p50_c1_us": lo["p50_us"], "p99_c1_us": lo["p99_us"],
            "cpu_us_per_req": user + system if pid else None,
            "user_us_per_req": user, "sys_us_per_req": system}


def stream_times(url, path, body, n):
    """Median time to first body byte and to the end, over n requests on one connection."""
    host, port, _ = parse(url)
    c = http.client.HTTPConnection(host, port, timeout=30)
    ttfb, total = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read(1)
        t1 = time.perf_counter()
        r.read()
        t2 = time.perf_counter()
        if r.status != 200:
            raise SystemExit(f"{url}{path}: status {r.status}")
        ttfb.append((t1 - t0) * 1e6)
        total.append((t2 - t0) * 1e6)
    return statistics.median(ttfb), statistics.median(total)


def grpc_load(binary, addr, conns, secs):
    out = subprocess.run(pin(LOAD_CORES) + [binary, "--addr", addr, "--concurrency", str(conns),
                                            "--seconds", str(secs)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def open_streams(target, n, work):
    """Peak RSS (KiB) of the target while n streams are open (a slow upstream holds them)."""
    body = json.dumps({"model": "bench-slow", "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]})
    script = work / "slow.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = {json.dumps(body)}\n")
    wrk_p = subprocess.Popen(pin(LOAD_CORES) + ["wrk", "-t1", f"-c{n}", "-d6s", "--timeout", "60s",
                                                "-s", str(script),
                                                target["http"] + "/v1/chat/completions"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    deadline = time.time() + 6
    while time.time() < deadline:
        peak = max(peak, rss_kb(target["pid"]))
        time.sleep(0.1)
    wrk_p.wait()
    return peak


def callgrind_ir(argv, url, body, secs, work, name, headers=None, path="/v1/chat/completions",
                 env=None):
    """Instructions per request: the target under callgrind (which counts instructions, so
    the figure does not move with the machine's speed), zeroed after a warm-up, then wrk at
    c=4 for `secs`; the total Ir of the dump divided by the requests served."""
    out = work / f"callgrind.{name}"
    p = subprocess.Popen(pin(POOL_CORE) + ["valgrind", "--tool=callgrind", "--dump-instr=no",
                                           f"--callgrind-out-file={out}.%p"] + argv,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(
                             env or os.environ, RUST_LOG=os.environ.get("BENCH_RUST_LOG", "info")))
    try:
        wait_http_post(url + path, body, timeout=180)
        wrk(url, path, body, 4, 2, work, headers)
        subprocess.run(["callgrind_control", "-z", str(p.pid)], check=True,
                       capture_output=True)
        served = wrk(url, path, body, 4, secs, work, headers)["requests"]
        subprocess.run(["callgrind_control", "-d", str(p.pid)], check=True,
                       capture_output=True)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    total = 0
    dumps = sorted(work.glob(f"callgrind.{name}.*"))
    # The dump asked for after zeroing is the one with a part number ("….pid.1").
    for f in dumps:
        if re.search(r"\.\d+\.\d+$", f.name):
            m = re.search(r"^(?:summary|totals): (\d+)", f.read_text(errors="replace"), re.M)
            total += int(m.group(1)) if m else 0
    return total / max(served, 1)


def ratio(a, b):
    """a ÷ b, readable however far apart they are (1/227× rather than 0.00×)."""
    r = a / b
    return f"{r:.2f}×" if r >= 0.1 else f"1/{1 / r:,.0f}×"


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, unit=""):
    if v is None:
        return "–"
    return f"{v:,.0f}{unit}" if abs(v) >= 100 else f"{v:,.1f}{unit}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--grpc-load", default="")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--peer", action="append", default=[])
    ap.add_argument("--tracing", action="store_true")
    # Another llm-pool build (say, the last release) measured in the same interleaved
    # rounds, so a change's cost is read inside one run.
    ap.add_argument("--baseline", default="")
    ap.add_argument("--placement", choices=sorted(ORIGIN_CORES), default="split")
    # Instructions per request (callgrind) of the pool, its cache hits and nginx-proxy.
    ap.add_argument("--instructions", action="store_true")
    # Keep the callgrind dumps here (for `callgrind_annotate --inclusive=yes FILE`).
    ap.add_argument("--callgrind-dir", default="")
    # The pool on every core, multi-threaded vs thread-per-core (`serve --runtime`), in the
    # same rounds; wrk and the origin share those cores.
    ap.add_argument("--runtimes", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    if a.smoke:
        a.rounds, a.duration, a.peer, a.tracing, a.runtimes = 1, 1, ["nginx-proxy"], True, True
    work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    # nginx's workers run as another user: they must be able to read the bodies.
    work.chmod(0o755)
    procs = Procs()
    try:
        return run(a, work, procs)
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)


def otlp_sink(procs):
    """A collector that accepts OTLP/HTTP exports and drops them (on the load cores)."""
    port = free_port()
    code = (
        "import http.server\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_POST(self):\n"
        "        self.rfile.read(int(self.headers.get('content-length', 0)))\n"
        "        self.send_response(200); self.send_header('content-length', '0'); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        f"http.server.ThreadingHTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    procs.start(pin(LOAD_CORES) + [sys.executable, "-c", code])
    time.sleep(0.3)
    return f"http://127.0.0.1:{port}"


def run(a, work, procs):
    ng = nginx(procs, work, ORIGIN_CORES[a.placement])
    p = pool(procs, a.bin, work, ng, "pool")
    time.sleep(1.0)
    idle_rss = rss_kb(p["pid"])
    cached = dict(p, name="pool-cache-hit", body=CHAT.replace('"bench"', '"task:bench-cached"'))
    targets = [{"name": "direct", "http": f"http://127.0.0.1:{ng['plain']}"}, p, cached]
    if a.baseline:
        b = pool(procs, a.baseline, work, ng, "baseline")
        targets += [b, dict(b, name="baseline-cache-hit", body=cached["body"])]
    if a.runtimes:
        targets.append(pool(procs, a.bin, work, ng, "pool-all-cores-multi-thread",
                            runtime="multi-thread"))
        targets.append(pool(procs, a.bin, work, ng, "pool-all-cores-thread-per-core",
                            runtime="thread-per-core"))
    if a.tracing:
        sink = otlp_sink(procs)
        targets.append(pool(procs, a.bin, work, ng, "pool-trace-100", (sink, 1.0)))
        targets.append(pool(procs, a.bin, work, ng, "pool-trace-1", (sink, 0.01)))
    for peer in a.peer:
        if peer == "litellm":
            targets.append(litellm(procs, work, ng))
        elif peer == "nginx-proxy":
            targets.append(nginx_proxy(procs, work, ng))
        elif peer == "agentgateway":
            targets += agentgateway(procs, work, ng)
        elif peer == "helicone":
            targets.append(helicone(procs, work, ng))
        else:
            raise SystemExit(f"unknown peer {peer} (known: nginx-proxy, agentgateway, "
                             "helicone, litellm)")

    rows = {t["name"]: [] for t in targets}
    streams = {k: [] for k in ("direct-sse", "pool-sse", "direct-ndjson", "pool-ndjson")}
    grpc = []
    n_stream = 20 if a.smoke else 300
    sse_req = json.dumps({"model": "bench-sse", "stream": True,
                          "messages": [{"role": "user", "content": "hi"}]})
    nd_req = json.dumps({"model": "bench-ndjson", "stream": True,
                         "messages": [{"role": "user", "content": "hi"}]})
    for r in range(a.rounds):
        for t in targets:
            m = measure_http(t, a.duration, work)
            rows[t["name"]].append(m)
            print(f"round {r + 1} {t['name']:>30}: {m['rps_c32']:>9,.0f} req/s c=32, "
                  f"p50 c=1 {fmt(m['p50_c1_us'], ' µs')}, p99 c=1 {fmt(m['p99_c1_us'], ' µs')}, "
                  f"cpu {fmt(m['cpu_us_per_req'], ' µs/req')}", file=sys.stderr)
        direct_stream = f"http://127.0.0.1:{ng['stream']}"
        streams["direct-sse"].append(stream_times(direct_stream, "/v1/chat/completions", sse_req, n_stream))
        streams["pool-sse"].append(stream_times(p["http"], "/v1/chat/completions", sse_req, n_stream))
        streams["direct-ndjson"].append(stream_times(direct_stream, "/api/chat", nd_req, n_stream))
        streams["pool-ndjson"].append(stream_times(p["http"], "/api/chat", nd_req, n_stream))
        for t in targets:
            if "sse" in t:
                streams.setdefault(f"{t['name']}-sse", []).append(
                    stream_times(t["sse"], "/v1/chat/completions", sse_req, n_stream))
        if a.grpc_load:
            t0 = cpu_ticks(p["pid"])
            hi = grpc_load(a.grpc_load, p["grpc"], 32, a.duration)
            t1 = cpu_ticks(p["pid"])
            lo = grpc_load(a.grpc_load, p["grpc"], 1, a.duration)
            per = lambda i: (t1[i] - t0[i]) * 1e6 / CLK_TCK / max(hi["requests"], 1)
            grpc.append({"rps_c32": hi["rps"], "p50_c32_us": hi["p50_us"], "p99_c32_us": hi["p99_us"],
                         "p50_c1_us": lo["p50_us"], "p99_c1_us": lo["p99_us"],
                         "cpu_us_per_req": per(0) + per(1), "user_us_per_req": per(0),
                         "sys_us_per_req": per(1)})

    streams_rss = open_streams(p, 50 if a.smoke else 1000, work)
    peak_rss = rss_kb(p["pid"], "VmHWM")

    instructions = {}
    if a.instructions:
        ir_secs = 2 if a.smoke else max(a.duration, 5)
        runs = [("pool", pool(None, a.bin, work, ng, "pool-ir"), CHAT),
                ("pool-cache-hit", pool(None, a.bin, work, ng, "pool-ir-hit"), cached["body"])]
        # A whole SSE stream (STREAM_CHUNKS pieces of text) per request.
        runs.append(("pool-sse", pool(None, a.bin, work, ng, "pool-ir-sse"), sse_req))
        runs.append(("pool-ndjson", pool(None, a.bin, work, ng, "pool-ir-ndjson"), nd_req))
        if a.baseline:
            runs.append(("baseline", pool(None, a.baseline, work, ng, "baseline-ir"), CHAT))
            runs.append(("baseline-cache-hit", pool(None, a.baseline, work, ng, "baseline-ir-hit"),
                         cached["body"]))
            runs.append(("baseline-sse", pool(None, a.baseline, work, ng, "baseline-ir-sse"),
                         sse_req))
            runs.append(("baseline-ndjson", pool(None, a.baseline, work, ng,
                                                 "baseline-ir-ndjson"), nd_req))
        if "nginx-proxy" in a.peer:
            runs.append(("nginx-proxy", nginx_proxy(None, work, ng, "nginx-proxy-ir"), CHAT))
        if "agentgateway" in a.peer:
            runs.append(("agentgateway-llm", agentgateway(None, work, ng)[0], CHAT))
        if "helicone" in a.peer:
            h = helicone(None, work, ng)
            runs.append(("helicone", h, h["body"]))
        for name, t, body in runs:
            instructions[name] = callgrind_ir(t["argv"], t["http"], body, ir_secs, work, name,
                                              path=t.get("path", "/v1/chat/completions"),
                                              env=t.get("env"))
            print(f"instructions {name}: {instructions[name]:,.0f} per request", file=sys.stderr)
        if a.callgrind_dir:
            os.makedirs(a.callgrind_dir, exist_ok=True)
            for f in work.glob("callgrind.*"):
                shutil.copy(f, a.callgrind_dir)

    print()
    print(f"machine: {NCPU} cores, {os.uname().release}; placement {a.placement}: pool and peers "
          f"on core {POOL_CORE}, origin on {ORIGIN_CORES[a.placement]}, load on {LOAD_CORES}; "
          f"{a.rounds} rounds × {a.duration} s; medians over rounds")
    print()
    print("| target | req/s c=32 | p50 c=1 | p99 c=1 | p50 c=32 | p99 c=32 | CPU/req | user | system | instructions/req |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    shown = dict(rows, **({"pool gRPC Query": grpc} if grpc else {}))
    for name, rs in shown.items():
        ir = instructions.get(name)
        print(f"| {name} | {fmt(med(rs, 'rps_c32'))} | {fmt(med(rs, 'p50_c1_us'), ' µs')} | "
              f"{fmt(med(rs, 'p99_c1_us'), ' µs')} | {fmt(med(rs, 'p50_c32_us'), ' µs')} | "
              f"{fmt(med(rs, 'p99_c32_us'), ' µs')} | {fmt(med(rs, 'cpu_us_per_req'), ' µs')} | "
              f"{fmt(med(rs, 'user_us_per_req'), ' µs')} | {fmt(med(rs, 'sys_us_per_req'), ' µs')} | "
              f"{fmt(ir)} |")
    d, q = rows["direct"], rows["pool"]
    added = lambda rs, k: med(rs, k) - med(d, k)
    print()
    print(f"added latency (pool − direct, medians): p50 c=1 {fmt(added(q, 'p50_c1_us'), ' µs')}, "
          f"p99 c=1 {fmt(added(q, 'p99_c1_us'), ' µs')}")
    print()
    print("ratios, same run (pool ÷ peer; below 1 the pool is cheaper or faster):")
    for peer in [n for n in rows if n != "direct" and "pool" not in n and "cache-hit" not in n]:
        pr = rows[peer]
        parts = [f"req/s c=32 {ratio(med(q, 'rps_c32'), med(pr, 'rps_c32'))} (pool ÷ peer)"]
        if med(pr, "cpu_us_per_req"):
            parts.insert(0, f"CPU/req {ratio(med(q, 'cpu_us_per_req'), med(pr, 'cpu_us_per_req'))}")
        for k in ("p50_c1_us", "p99_c1_us"):
            # A ratio only means something when both add latency; otherwise say what each
            # added (a median under direct's is noise on a shared core, not a gain).
            if added(pr, k) > 0 and added(q, k) > 0:
                parts.append(f"added {k[:3]} c=1 {ratio(added(q, k), added(pr, k))}")
            else:
                parts.append(f"added {k[:3]} c=1 pool {fmt(added(q, k), ' µs')}, "
                             f"peer {fmt(added(pr, k), ' µs')}")
        if peer in instructions:
            parts.append(f"instructions/req {instructions['pool'] / instructions[peer]:.2f}×")
        print(f"  {peer}: " + ", ".join(parts))
        if peer == "baseline":
            hit, old = rows["pool-cache-hit"], rows["baseline-cache-hit"]
            print(f"  baseline cache hit: CPU/req "
                  f"{med(hit, 'cpu_us_per_req') / med(old, 'cpu_us_per_req'):.2f}×, req/s c=32 "
                  f"{med(hit, 'rps_c32') / med(old, 'rps_c32'):.2f}×")
        if peer == "nginx-proxy" and med(pr, "cpu_us_per_req"):
            hit = rows["pool-cache-hit"]
            print(f"  pool cache hit ÷ nginx-proxy CPU/req: "
                  f"{med(hit, 'cpu_us_per_req') / med(pr, 'cpu_us_per_req'):.2f}×")
    if a.runtimes:
        mt, tpc = rows["pool-all-cores-multi-thread"], rows["pool-all-cores-thread-per-core"]
        print(f"  thread-per-core ÷ multi-thread (every core): CPU/req "
              f"{ratio(med(tpc, 'cpu_us_per_req'), med(mt, 'cpu_us_per_req'))}, req/s c=32 "
              f"{ratio(med(tpc, 'rps_c32'), med(mt, 'rps_c32'))}")
    if grpc:
        print(f"  pool gRPC Query ÷ pool HTTP: req/s {med(grpc, 'rps_c32') / med(q, 'rps_c32'):.2f}×, "
              f"CPU/req {med(grpc, 'cpu_us_per_req') / med(q, 'cpu_us_per_req'):.2f}×")
    print()
    print(f"streaming ({STREAM_CHUNKS} chunks), medians of {n_stream} requests per round:")
    kinds = [("sse", "pool"), ("ndjson", "pool")] + [
        ("sse", k[:-4]) for k in streams if k.endswith("-sse") and k[:-4] not in ("direct", "pool")]
    for kind, who in kinds:
        dt = statistics.median(x[0] for x in streams[f"direct-{kind}"])
        pt = statistics.median(x[0] for x in streams[f"{who}-{kind}"])
        dT = statistics.median(x[1] for x in streams[f"direct-{kind}"])
        pT = statistics.median(x[1] for x in streams[f"{who}-{kind}"])
        print(f"  {kind:>6} {who}: TTFB direct {fmt(dt, ' µs')}, {who} {fmt(pt, ' µs')} "
              f"(+{fmt(pt - dt, ' µs')}); total direct {fmt(dT, ' µs')}, {who} {fmt(pT, ' µs')} "
              f"(+{fmt(pT - dT, ' µs')}); per chunk after the first "
              f"{fmt(((pT - dT) - (pt - dt)) / STREAM_CHUNKS, ' µs')}")
    for who in ("pool", "baseline"):
        for kind in ("sse", "ndjson"):
            if f"{who}-{kind}" in instructions:
                per_stream = instructions[f"{who}-{kind}"]
                print(f"  instructions per {kind} stream, {who}: {per_stream:,.0f}; per chunk "
                      f"beyond an uncached request "
                      f"{(per_stream - instructions[who]) / STREAM_CHUNKS:,.0f}")
    print()
    peaks = {t["name"]: rss_kb(t["pid"], "VmHWM") for t in targets
             if t.get("pid") and "pool" not in t["name"] and "cache-hit" not in t["name"]}
    if peaks:
        print("peers' peak RSS over the run: " + ", ".join(
            f"{n} {kb / 1024:.1f} MiB" for n, kb in peaks.items()))
    print(f"pool RSS: idle {idle_rss / 1024:.1f} MiB; with {50 if a.smoke else 1000} open streams "
          f"{streams_rss / 1024:.1f} MiB; peak over the run {peak_rss / 1024:.1f} MiB")
    ok = all(r["rps_c32"] > 0 for rs in rows.values() for r in rs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
