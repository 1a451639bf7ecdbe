// The operator console: the overview (/ui), live from the pool's Server-Sent Events
// (/ui/events, one `state` event whenever something changed), and the Decision explorer
// (/ui/requests/{id}). No framework and no CDN: the binary serves this file. Text from the
// pool (answers, errors, names) is only ever set as text, never parsed as HTML.
"use strict";

const main = document.getElementById("main");
const conn = document.getElementById("conn");

/** An element: h("td", {class: "num"}, "3", child, ...). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v;
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function section(title, id, wide, ...body) {
  return h("section", { id, class: wide ? "wide" : undefined }, h("h2", {}, title), ...body);
}

const fmt = {
  ms: (v) => (v === null || v === undefined ? "–" : `${Math.round(v)} ms`),
  num: (v, d = 0) => (v === null || v === undefined ? "–" : Number(v).toFixed(d)),
  pct: (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)} %`),
  time: (ms) => (ms ? new Date(ms).toLocaleTimeString() : "–"),
  ago: (ms, now) => {
    if (!ms) return "–";
    const s = Math.max(0, Math.round((now - ms) / 1000));
    return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
  },
};

const STATE_CLASS = {
  serving: "ok", closed: "ok", ok: "ok",
  unknown: "muted", half_open: "warn", queued: "warn",
  open: "bad", unhealthy: "bad", model_missing: "bad",
};
const badge = (text, cls) => h("span", { class: `badge ${cls || STATE_CLASS[text] || "info"}` }, text);

/** A sparkline of the last values (an SVG polyline scaled to their range). */
function spark(values, title) {
  const w = 90, hgt = 18;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", hgt);
  const t = document.createElementNS("http://www.w3.org/2000/svg", "title");
  t.textContent = title;
  svg.append(t);
  const vs = values.filter((v) => v !== null && v !== undefined);
  if (vs.length > 1) {
    const max = Math.max(...vs), min = Math.min(...vs, 0);
    const span = max - min || 1;
    const pts = values.map((v, i) => {
      const x = (i / (values.length - 1)) * (w - 2) + 1;
      const y = hgt - 1 - (((v ?? min) - min) / span) * (hgt - 2);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", pts.join(" "));
    svg.append(line);
  }
  return svg;
}

// Per provider, the last 60 samples of p50, p95 and tokens/s (one per state event).
const history = new Map();
let lastTokens = new Map();
let lastAt = 0;

function remember(state) {
  const dt = lastAt ? (state.now_ms - lastAt) / 1000 : 0;
  for (const p of state.providers) {
    const hst = history.get(p.name) || { p50: [], p95: [], tps: [] };
    const prev = lastTokens.get(p.name);
    const tps = dt > 0 && prev !== undefined ? Math.max(0, (p.completion_tokens - prev) / dt) : null;
    hst.p50.push(p.p50_ms ?? null);
    hst.p95.push(p.p95_ms ?? null);
    hst.tps.push(tps);
    for (const k of ["p50", "p95", "tps"]) if (hst[k].length > 60) hst[k].shift();
    history.set(p.name, hst);
    lastTokens.set(p.name, p.completion_tokens);
  }
  lastAt = state.now_ms;
  const c = state.cache;
  cacheHistory.push(c.hit_rate ?? null);
  if (cacheHistory.length > 60) cacheHistory.shift();
}
const cacheHistory = [];

function configSection(state) {
  const c = state.config;
  const body = [
    h("dl", { class: "kv" },
      h("dt", {}, "version"), h("dd", { id: "config-version" }, c.version),
      h("dt", {}, "file"), h("dd", { class: "mono" }, c.path || "(in memory)"),
      h("dt", {}, "loaded"), h("dd", {}, `${fmt.time(c.loaded_at * 1000)} (${fmt.ago(c.loaded_at * 1000, state.now_ms)})`),
      h("dt", {}, "reloads"), h("dd", {}, `${c.reloads_ok} accepted, ${c.reloads_rejected} rejected`)),
  ];
  if (c.last_error) {
    body.push(h("div", { class: "error-box", id: "reload-error" },
      `Rejected at ${fmt.time(c.last_error_at * 1000)}; version ${c.version} keeps serving.\n${c.last_error}`));
  }
  if (c.diff) {
    const pre = h("pre", { class: "diff", id: "reload-diff" });
    for (const line of c.diff.split("\n")) {
      const cls = line.startsWith("@@") ? "hunk" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : undefined;
      pre.append(h("span", { class: cls }, line + "\n"));
    }
    body.push(h("div", { class: "muted" }, `Last reload (to version ${c.diff_version}):`), pre);
  } else {
    body.push(h("div", { class: "empty" }, "No reload yet."));
  }
  return section("Configuration", "config", false, ...body);
}

function providersSection(state) {
  const rows = [];
  for (const p of state.providers) {
    const hst = history.get(p.name) || { p50: [], p95: [], tps: [] };
    const q = p.queue;
    const tps = hst.tps[hst.tps.length - 1];
    rows.push(h("tr", { class: "provider", "data-provider": p.name },
      h("td", {}, h("strong", {}, p.name), h("div", { class: "muted" }, `${p.kind} · ${p.model}`)),
      h("td", { class: "num" }, fmt.ms(p.p50_ms), " ", spark(hst.p50, "p50 latency")),
      h("td", { class: "num" }, fmt.ms(p.p95_ms), " ", spark(hst.p95, "p95 latency")),
      h("td", { class: "num" }, tps === null || tps === undefined ? "–" : tps.toFixed(1), " ", spark(hst.tps, "completion tokens per second")),
      h("td", { class: "num" }, q ? `${q.in_flight} / ${q.capacity}` : "–"),
      h("td", { class: "num" }, q ? q.queued : "–"),
      h("td", {}, "")));
    for (const e of p.endpoints) {
      const probe = e.breaker === "open" && e.probe_in_ms !== null && e.probe_in_ms !== undefined
        ? ` probe in ${(e.probe_in_ms / 1000).toFixed(1)} s` : "";
      rows.push(h("tr", { class: "endpoint", "data-endpoint": e.url },
        h("td", { class: "mono" }, e.url),
        h("td", { colspan: 2 }, badge(e.state), " breaker ", badge(e.breaker, STATE_CLASS[e.breaker]), h("span", { class: "muted" }, probe)),
        h("td", { class: "num" }, `${e.calls} calls`),
        h("td", { class: "num" }, `${e.outstanding} out`),
        h("td", { class: "num" }, `${e.failures} failed`, e.trips ? `, ${e.trips} trips` : ""),
        h("td", { class: "bad" }, e.last_error || "")));
    }
  }
  return section("Providers and endpoints", "providers", true,
    h("table", {},
      h("thead", {}, h("tr", {},
        h("th", {}, "provider / endpoint"), h("th", { class: "num" }, "p50"), h("th", { class: "num" }, "p95"),
        h("th", { class: "num" }, "tokens/s"), h("th", { class: "num" }, "in flight"), h("th", { class: "num" }, "queued"), h("th", {}, ""))),
      h("tbody", {}, rows)));
}

function votes(groups) {
  const max = Math.max(...groups.map((g) => g.votes), 1e-9);
  return h("div", { class: "bars" }, groups.map((g) =>
    h("div", { class: "bar" },
      h("span", { class: "label", title: g.answer }, g.answer || "(empty)"),
      h("span", { class: "fill", style: `width:${Math.max(2, (g.votes / max) * 160)}px` }),
      h("span", { class: "muted" }, `${fmt.num(g.votes, 2)}${g.probability !== undefined && g.probability !== null ? `  p ${fmt.num(g.probability, 3)}` : ""}`))));
}

function decisionSummary(r, now) {
  return h("div", { class: "decision" },
    h("a", { href: `/ui/requests/${encodeURIComponent(r.request_id)}`, class: "mono" }, r.request_id.slice(0, 12)),
    " ", badge(r.status, r.status === "ok" ? "ok" : "bad"), " ",
    h("span", { class: "muted" }, `${fmt.ago(r.at_ms, now)} · ${fmt.ms(r.latency_ms)} · ${r.calls} call${r.calls === 1 ? "" : "s"}`),
    r.winner ? h("span", {}, ` · winner ${r.winner}`) : "",
    r.confidence !== null && r.confidence !== undefined ? h("span", {}, ` · confidence ${fmt.num(r.confidence, 3)}`) : "",
    r.groups && r.groups.length ? votes(r.groups) : "",
    r.weights && r.weights.length ? h("div", { class: "muted" }, "weights: " + r.weights.map((w) => `${w.provider} ${fmt.num(w.weight, 2)}`).join(", ")) : "",
    r.rationale ? h("div", { class: "muted" }, `judge: ${r.rationale}`) : "",
    r.error ? h("div", { class: "bad" }, r.error) : "");
}

function tasksSection(state) {
  const rows = state.tasks.map((t) => {
    const recent = state.recent.filter((r) => r.task === t.name).slice(0, 3);
    return h("tr", { "data-task": t.name },
      h("td", {}, h("strong", {}, t.name), h("div", { class: "muted" }, t.output)),
      h("td", {}, badge(t.strategy, "info")),
      h("td", {}, t.providers.join(", ") || h("span", { class: "muted" }, t.routed ? "routed" : "–")),
      h("td", {}, recent.length ? recent.map((r) => decisionSummary(r, state.now_ms)) : h("span", { class: "empty" }, "no recent requests")));
  });
  return section("Tasks and their last decisions", "tasks", true,
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "task"), h("th", {}, "strategy"), h("th", {}, "providers"), h("th", {}, "last decisions"))),
      h("tbody", {}, rows)));
}

function cacheSection(state) {
  const c = state.cache;
  return section("Cache", "cache", false,
    c.enabled
      ? h("dl", { class: "kv" },
        h("dt", {}, "hit rate"), h("dd", {}, fmt.pct(c.hit_rate), " ", spark(cacheHistory, "hit rate")),
        h("dt", {}, "hits / misses"), h("dd", {}, `${c.hits} / ${c.misses}`),
        h("dt", {}, "entries"), h("dd", {}, `${c.entries} (${fmt.num(c.bytes / 1024, 1)} KiB)`),
        h("dt", {}, "single-flight joins"), h("dd", {}, c.single_flight_joins))
      : h("div", { class: "empty" }, "The cache is off ([cache] enabled = false)."));
}

function usageSection(state) {
  const tenants = Object.entries(state.usage.tenants || {});
  return section("Usage by tenant", "usage", false,
    tenants.length
      ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "tenant"), h("th", { class: "num" }, "calls"), h("th", { class: "num" }, "prompt"), h("th", { class: "num" }, "completion"), h("th", { class: "num" }, "cost"))),
        h("tbody", {}, tenants.map(([name, u]) => h("tr", {},
          h("td", {}, name), h("td", { class: "num" }, u.total.calls),
          h("td", { class: "num" }, u.total.prompt_tokens), h("td", { class: "num" }, u.total.completion_tokens),
          h("td", { class: "num" }, fmt.num(u.total.cost, 4))))))
      : h("div", { class: "empty" }, "No usage recorded yet."));
}

function recentSection(state) {
  return section("Recent requests", "recent", true,
    state.recent.length
      ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "request"), h("th", {}, "time"), h("th", {}, "task"), h("th", {}, "tenant"), h("th", {}, "status"), h("th", { class: "num" }, "latency"), h("th", {}, "winner"))),
        h("tbody", {}, state.recent.slice(0, 20).map((r) => h("tr", {},
          h("td", {}, h("a", { class: "mono", href: `/ui/requests/${encodeURIComponent(r.request_id)}` }, r.request_id)),
          h("td", {}, fmt.time(r.at_ms)), h("td", {}, r.task || "–"), h("td", {}, r.tenant || "–"),
          h("td", {}, badge(r.status, r.status === "ok" ? "ok" : "bad")), h("td", { class: "num" }, fmt.ms(r.latency_ms)),
          h("td", {}, r.winner || "–")))))
      : h("div", { class: "empty" }, `Nothing yet (the last ${state.recent_capacity} requests are kept).`));
}

function renderOverview(state) {
  document.getElementById("version").textContent = `v${state.version} · config ${state.config.version}`;
  main.replaceChildren(configSection(state), cacheSection(state), providersSection(state), tasksSection(state), usageSection(state), recentSection(state));
}

function overview() {
  // EventSource reconnects by itself (the pool says after how long); the badge says so.
  const events = new EventSource("/ui/events");
  events.addEventListener("state", (ev) => {
    const state = JSON.parse(ev.data);
    remember(state);
    renderOverview(state);
    conn.textContent = "live";
    conn.className = "badge ok";
  });
  events.onerror = () => {
    conn.textContent = "reconnecting…";
    conn.className = "badge warn";
  };
}

// ---- Decision explorer ----------------------------------------------------------------

function waterfall(d, total) {
  const end = Math.max(total || 0, ...d.candidates.map((c) => (c.started_ms || 0) + c.latency_ms), 1);
  return h("div", { class: "waterfall", id: "waterfall" },
    d.candidates.map((c, i) => {
      const left = ((c.started_ms || 0) / end) * 100;
      const width = Math.max(0.5, (c.latency_ms / end) * 100);
      return h("div", { class: "wf-row" },
        h("span", { class: "mono" }, `${i} ${c.provider}${c.hedged ? " (hedge)" : ""}${c.sample ? ` #${c.sample}` : ""}${c.retries ? ` (${c.retries} ${c.retries === 1 ? "retry" : "retries"})` : ""}`),
        h("div", { class: "wf-track" },
          h("div", {
            class: `wf-bar ${c.status}${c.hedged ? " hedged" : ""}${c.retries ? " retried" : ""}`,
            style: `left:${left}%;width:${width}%`,
            title: `${c.status}: starts ${c.started_ms || 0} ms, takes ${c.latency_ms} ms${c.retries ? `, after ${c.retries} failed attempt(s) on other endpoints` : ""}`,
          })),
        h("span", { class: "num muted" }, `${c.started_ms || 0}+${c.latency_ms}`));
    }),
    h("div", { class: "muted" }, `0 – ${end} ms; striped: hedges; amber edge: answered after retries on other endpoints; red: failed calls`));
}

function renderRequest(r) {
  const d = r.decision;
  const parts = [
    section("Request", "request", true,
      h("dl", { class: "kv" },
        h("dt", {}, "id"), h("dd", { class: "mono" }, r.request_id),
        h("dt", {}, "time"), h("dd", {}, new Date(r.at_ms).toLocaleString()),
        h("dt", {}, "task"), h("dd", {}, r.task || "–"),
        h("dt", {}, "tenant"), h("dd", {}, r.tenant || "–"),
        h("dt", {}, "status"), h("dd", {}, badge(r.status, r.status === "ok" ? "ok" : "bad")),
        h("dt", {}, "latency"), h("dd", {}, fmt.ms(r.latency_ms)),
        d && h("dt", {}, "strategy"), d && h("dd", {}, d.strategy),
        d && h("dt", {}, "winner"), d && h("dd", {}, d.winner || "–"),
        d && d.confidence !== undefined && h("dt", {}, "confidence"), d && d.confidence !== undefined && h("dd", {}, fmt.num(d.confidence, 3)),
        d && d.agreement !== undefined && h("dt", {}, "agreement"), d && d.agreement !== undefined && h("dd", {}, fmt.num(d.agreement, 2)),
        d && d.stopped && h("dt", {}, "stopped"), d && d.stopped && h("dd", {}, d.stopped),
        d && d.degraded && d.degraded.length && h("dt", {}, "degraded"), d && d.degraded && d.degraded.length && h("dd", {}, d.degraded.join(", "))),
      r.error ? h("div", { class: "error-box" }, r.error) : "",
      d && d.formula ? h("div", { class: "muted mono" }, d.formula) : ""),
  ];
  if (d) {
    parts.push(section("Timings", "timings", true, waterfall(d, r.latency_ms)));
    parts.push(section("Candidates", "candidates", true,
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "provider"), h("th", {}, "endpoint"), h("th", {}, "status"), h("th", { class: "num" }, "ms"), h("th", { class: "num" }, "group"), h("th", { class: "num" }, "weight"), h("th", { class: "num" }, "accuracy"), h("th", {}, "answer / error"))),
        h("tbody", {}, d.candidates.map((c, i) => h("tr", {},
          h("td", {}, i), h("td", {}, c.provider, c.hedged ? h("span", { class: "muted" }, " (hedge)") : ""),
          h("td", { class: "mono" }, c.endpoint || "–", c.retries ? h("span", { class: "warn" }, ` after ${c.retries} ${c.retries === 1 ? "retry" : "retries"}`) : ""), h("td", {}, badge(c.status, c.status === "ok" ? "ok" : c.status === "cancelled" ? "muted" : "bad")),
          h("td", { class: "num" }, c.latency_ms), h("td", { class: "num" }, c.group ?? "–"),
          h("td", { class: "num" }, c.weight !== undefined ? fmt.num(c.weight, 2) : "–"),
          h("td", { class: "num" }, c.accuracy !== undefined ? fmt.num(c.accuracy, 3) : "–"),
          h("td", { class: c.error ? "bad" : undefined }, c.error || c.text || "")))))));
    if (d.groups && d.groups.length) parts.push(section("Groups and votes", "groups", false, votes(d.groups)));
    if (d.judge) {
      parts.push(section("Judge", "judge", false,
        h("dl", { class: "kv" },
          h("dt", {}, "judge"), h("dd", {}, d.judge.provider),
          h("dt", {}, "winner"), h("dd", {}, d.judge.winner ?? "–"),
          h("dt", {}, "scores"), h("dd", {}, Object.entries(d.judge.scores).map(([k, v]) => `#${k}: ${v}`).join(", ")),
          h("dt", {}, "shown in order"), h("dd", {}, d.judge.order.join(", ")),
          h("dt", {}, "attempts"), h("dd", {}, d.judge.attempts)),
        d.rationale ? h("p", {}, d.rationale) : ""));
    }
    if (d.tiers && d.tiers.length) {
      parts.push(section("Cascade tiers", "tiers", false,
        h("table", {}, h("tbody", {}, d.tiers.map((t) => h("tr", {}, h("td", {}, t.provider), h("td", {}, badge(t.accepted ? "accepted" : "passed on", t.accepted ? "ok" : "warn")), h("td", {}, t.reason)))))));
    }
  }
  main.replaceChildren(...parts);
}

async function request(id) {
  conn.textContent = "recorded";
  conn.className = "badge info";
  const resp = await fetch(`/ui/requests/${encodeURIComponent(id)}/data`);
  if (!resp.ok) {
    main.replaceChildren(section("Request", "request", true,
      h("div", { class: "error-box" }, resp.status === 404 ? `Request ${id} is not among the recent ones kept.` : `HTTP ${resp.status}`)));
    return;
  }
  renderRequest(await resp.json());
}

const m = location.pathname.match(/^\/ui\/requests\/([^/]+)$/);
if (m) request(decodeURIComponent(m[1]));
else overview();
