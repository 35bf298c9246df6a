// The storm benchmark: how retry clients behave when an LLM provider is rate-limiting or down.
//
// A loopback mock of an OpenAI-style provider (bench/storm-mock.mjs, in its own process) with a
// token bucket of 200 requests/s (burst 20) answers 200 or 429 (Retry-After: 1, retry-after-ms:
// 1000) and sends OpenAI's x-ratelimit-* headers on every answer. An open-loop load generator
// starts calls at a fixed rate, whatever earlier calls are doing, through each client in turn,
// each against a fresh mock:
//
//   no retry     plain global fetch
//   llm-retry    createRetryFetch() with its defaults (the package under test)
//   openai SDK   new OpenAI({ apiKey, baseURL }) with its defaults (maxRetries 2, honours Retry-After)
//   p-retry      pRetry(fetch that throws on non-2xx) with its defaults (10 retries, 1 s × 2^n)
//   cockatiel    retry(handleAll, { maxAttempts: 3, backoff: new ExponentialBackoff() })
//
// Scenarios (one table each, a column per client):
//   overload   300 new calls/s for 15 s (1.5× capacity); calls still running are waited for
//              (reported: how many had settled by 30 s)
//   bare       the same, from a provider that sends no rate-limit headers (as many gateways and
//              self-hosted servers): only its 429s tell a client where the limit is
//   outage     100 new calls/s for 25 s; every request gets 503 from t = 5 s to t = 15 s
//   burst429   20 concurrent calls; each call's first attempt gets 429 (Retry-After: 1), its
//              second 200
//   shared     a limit with room to spare (2,000 requests, refilled at 100/s) shared with another
//              consumer: 150 new calls/s for 10 s; at 3 s the other consumer takes 1,700 at once
//              (llm-retry reads a roomy limit's headers on one response in 8: this is where a
//              sudden drain must still be noticed)
// then a targets block for llm-retry. Figures, not pass/fail: the script exits 0 unless the
// harness itself broke.
//
// Run:  make bench               (builds pkg/, installs bench/node_modules, runs every bench)
//       node bench/storm.mjs     (after `make package` and `cd bench && npm ci`)
//
// Knobs (environment variables):
//   STORM_ONLY=llm-retry,no-retry       clients to run: no-retry, llm-retry, openai, p-retry, cockatiel
//   STORM_SCENARIOS=overload,bare,outage,burst429,shared
//   STORM_SCALE=0.3                     multiplies every duration (load, outage window, waits) for
//                                       quick runs; rates, Retry-After and the 1 s target do not scale
//   STORM_ROUNDS=3                      runs each scenario × client this many times (default 1),
//                                       reporting the median of each figure
//   STORM_LATENCY_MS=5                  the mock's fixed latency for a 200
//   PKG=/some/dir                       import llm-retry from another built package dir (its
//                                       node.js); default ../pkg beside this script
//
// Below each table, harness rows: how late calls started against their schedule (start lag) and
// the event-loop delay in this process and the mock's. The clients run in this process, so a
// CPU-heavy client delays its own starts; with the openai SDK in overload this process is near one
// full core, and other load on the machine then shows up as lag (a warning is printed when a
// start lag p99 exceeds 50 ms: late starts bunch calls, which a token bucket punishes).
//
// Every server listens on 127.0.0.1 port 0 and is closed at the end; calls still unsettled when
// the wait ends are aborted (and counted "pending"), so the process exits by itself.
import { fork } from "node:child_process";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

// ---- knobs ---------------------------------------------------------------------------------
const CLIENT_KEYS = ["no-retry", "llm-retry", "openai", "p-retry", "cockatiel"];
const SCENARIO_KEYS = ["overload", "bare", "outage", "burst429", "shared"];

function listKnob(name, all) {
  const raw = process.env[name];
  if (!raw) return all;
  const picked = raw.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = picked.filter((k) => !all.includes(k));
  if (unknown.length) throw new Error(`${name}: unknown ${unknown.join(", ")} (known: ${all.join(", ")})`);
  return all.filter((k) => picked.includes(k)); // keep the canonical order
}
function numberKnob(name, dflt, ok) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return dflt;
  const n = Number(raw);
  if (!ok(n)) throw new Error(`${name}: bad value ${JSON.stringify(raw)}`);
  return n;
}

const ONLY = listKnob("STORM_ONLY", CLIENT_KEYS);
const SCENARIOS = listKnob("STORM_SCENARIOS", SCENARIO_KEYS);
const SCALE = numberKnob("STORM_SCALE", 1, (n) => n > 0 && n <= 10);
const ROUNDS = numberKnob("STORM_ROUNDS", 1, (n) => Number.isInteger(n) && n >= 1 && n <= 20);
const LATENCY_MS = numberKnob("STORM_LATENCY_MS", 5, (n) => n >= 0 && n <= 10_000);
const PKG_DIR = process.env.PKG ? resolve(process.env.PKG) : new URL("../pkg/", import.meta.url).pathname;

// The provider's limits (not scaled).
const RATE = 200;
const BURST = 20;
// The shared scenario's: a roomy limit, and what the other consumer takes of it, and when.
const SHARED = { rate: 100, burst: 2000, drain: 1700, drainAtMs: 3000 };
// Wait for calls at most this long after the last one started; the rest count as "pending".
const SETTLE_BOUND_MS = 70_000 * SCALE;
const s = (ms) => ms * SCALE; // a scenario duration, scaled

const now = () => performance.timeOrigin + performance.now(); // absolute ms, same clock in the mock
const LOOP_RES_MS = 5; // event-loop delay sampling period; the figures exclude it
const LAG_WARN_MS = 50; // a start lag p99 above this is reported as a harness warning

// ---- the mock provider, one fresh process per run -------------------------------------------
async function startMock() {
  const child = fork(new URL("./storm-mock.mjs", import.meta.url), [], {
    serialization: "advanced", // typed arrays over IPC
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    execArgv: [],
  });
  const exited = new Promise((res) => child.once("exit", (code, sig) => res({ code, sig })));
  const next = (type) =>
    new Promise((res, rej) => {
      const onMsg = (m) => {
        if (m.type !== type) return;
        child.off("message", onMsg);
        child.off("exit", onExit);
        res(m);
      };
      const onExit = (code) => rej(new Error(`mock exited (${code}) while waiting for "${type}"`));
      child.on("message", onMsg);
      child.once("exit", onExit);
    });
  const { port } = await next("ready");
  return {
    base: `http://127.0.0.1:${port}`,
    async start(config) {
      const started = next("started");
      child.send({ type: "start", config });
      await started;
    },
    /** Stops the mock and returns its request log (times in ms since t0, statuses). */
    async stop() {
      const log = next("log");
      child.send({ type: "stop" });
      const l = await log;
      await exited;
      return l;
    },
  };
}

// ---- clients -------------------------------------------------------------------------------
// Each factory gets the mock's base URL and returns call({ id, signal }) → outcome, where an
// outcome is { ok: true } or { ok: false, kind }. A call resolving with a non-2xx Response is a
// failure of kind "final <status>"; a thrown error is classified by classifyError. Every body is
// read to the end, so a call's latency includes it (as the SDK's does) and sockets are freed.
const BODY = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Say hi" }] });
const headersFor = (id) => ({
  "content-type": "application/json",
  authorization: "Bearer sk-bench",
  "x-call-id": id, // lets the burst429 mock tell a call's first attempt from its retry
});
const initFor = (id, signal) => ({ method: "POST", headers: headersFor(id), body: BODY, signal });
const chatUrl = (base) => `${base}/v1/chat/completions`;

async function outcomeOf(res) {
  await res.arrayBuffer();
  return res.ok ? { ok: true } : { ok: false, kind: `final ${res.status}` };
}

class HttpStatusError extends Error {
  constructor(status) {
    super(`HTTP ${status}`);
    this.name = "HttpStatusError";
    this.status = status;
  }
}
/** fetch that throws on a non-2xx answer: what p-retry and cockatiel need to see a failure. */
async function fetchOrThrow(url, init) {
  const res = await fetch(url, init);
  const buf = await res.arrayBuffer();
  if (!res.ok) throw new HttpStatusError(res.status);
  return buf;
}

let llmRetry = null; // the imported package, once
function classifyError(e) {
  if (llmRetry?.isCircuitOpenError(e)) return "CircuitOpenError";
  if (llmRetry?.isRetryError(e)) return `RetryError (${e.reason})`;
  if (e?.name === "CircuitOpenError" || e?.name === "RetryError") return `${e.name} (unbranded)`;
  if (typeof e?.status === "number") return `final ${e.status}`; // openai's APIError, HttpStatusError
  const code = e?.cause?.code ?? e?.code;
  return `other: ${e?.name ?? typeof e}${code ? ` ${code}` : ""}`;
}

const CLIENTS = {
  "no-retry": {
    label: "no retry",
    async make(base) {
      const url = chatUrl(base);
      return ({ id, signal }) => fetch(url, initFor(id, signal)).then(outcomeOf);
    },
  },
  "llm-retry": {
    label: "llm-retry",
    async make(base) {
      llmRetry ??= await import(pathToFileURL(resolve(PKG_DIR, "node.js")).href);
      const retryFetch = llmRetry.createRetryFetch(); // DEFAULT options: that is what is measured
      const url = chatUrl(base);
      return ({ id, signal }) => retryFetch(url, initFor(id, signal)).then(outcomeOf);
    },
  },
  openai: {
    label: "openai SDK",
    async make(base) {
      const { default: OpenAI } = await import("openai");
      const client = new OpenAI({ apiKey: "sk-bench", baseURL: `${base}/v1` }); // its defaults
      return async ({ id, signal }) => {
        await client.chat.completions.create(
          { model: "gpt-4o-mini", messages: [{ role: "user", content: "Say hi" }] },
          { headers: { "x-call-id": id }, signal },
        );
        return { ok: true };
      };
    },
  },
  "p-retry": {
    label: "p-retry",
    async make(base) {
      const { default: pRetry } = await import("p-retry");
      const url = chatUrl(base);
      // p-retry's defaults: retries 10, factor 2, minTimeout 1000 ms, no jitter. The signal only
      // lets the bench abort calls still waiting when it stops waiting.
      return async ({ id, signal }) => {
        await pRetry(() => fetchOrThrow(url, initFor(id, signal)), { signal });
        return { ok: true };
      };
    },
  },
  cockatiel: {
    label: "cockatiel",
    async make(base) {
      const { retry, handleAll, ExponentialBackoff } = await import("cockatiel");
      const url = chatUrl(base);
      // The configuration cockatiel's README shows. Its maxAttempts counts retries (3 retries,
      // 4 attempts); ExponentialBackoff defaults to decorrelated jitter from 128 ms, cap 30 s.
      const policy = retry(handleAll, { maxAttempts: 3, backoff: new ExponentialBackoff() });
      return async ({ id, signal }) => {
        await policy.execute(({ signal: s }) => fetchOrThrow(url, initFor(id, s)), signal);
        return { ok: true };
      };
    },
  },
};

// ---- the open-loop load generator -----------------------------------------------------------
/**
 * Starts calls at t0 + i·(1000/rate) ms (i = 0 … n−1), each when due, however earlier calls are
 * doing (a late timer starts every overdue call at once and the lag is recorded). Then waits
 * until every call settled, or until SETTLE_BOUND_MS after the last start: calls still running
 * then are marked "pending" and aborted. Returns one record per call, times in ms since t0.
 */
async function openLoop({ t0, rate, count, call }) {
  const interval = 1000 / rate;
  const recs = [];
  let unsettled = 0;
  let launchedAll = false;
  let onAllSettled;
  const allSettled = new Promise((r) => (onAllSettled = r));

  const launch = (i) => {
    const rec = { start: now() - t0, due: i * interval, end: NaN, ok: false, kind: null, ac: new AbortController() };
    recs.push(rec);
    unsettled++;
    const settle = (o) => {
      if (rec.kind === "pending") return; // given up on: already counted
      rec.end = now() - t0;
      rec.ok = o.ok;
      rec.kind = o.ok ? null : o.kind;
    };
    Promise.resolve()
      .then(() => call({ id: `c${i}`, signal: rec.ac.signal }))
      .then(settle, (e) => settle({ ok: false, kind: classifyError(e) }))
      .finally(() => {
        rec.settled = true;
        if (--unsettled === 0 && launchedAll) onAllSettled();
      });
  };

  // Start each call when due. setTimeout to the next due time; catch up if the timer is late.
  await new Promise((done) => {
    let i = 0;
    const tick = () => {
      const t = now();
      while (i < count && t0 + i * interval <= t) launch(i++);
      if (i >= count) return done();
      setTimeout(tick, Math.max(0, t0 + i * interval - now()));
    };
    setTimeout(tick, Math.max(0, t0 - now()));
  });
  launchedAll = true;
  if (unsettled === 0) onAllSettled();

  let boundTimer;
  const bound = new Promise((r) => (boundTimer = setTimeout(r, SETTLE_BOUND_MS)));
  await Promise.race([allSettled, bound]);
  clearTimeout(boundTimer);
  const pending = recs.filter((r) => !r.settled);
  for (const r of pending) {
    r.kind = "pending";
    r.ac.abort(new Error("storm: stopped waiting"));
  }
  if (pending.length) {
    // Give the aborted calls a moment to unwind, so nothing of theirs leaks into the next run.
    let t;
    await Promise.race([allSettled, new Promise((r) => (t = setTimeout(r, 5000)))]);
    clearTimeout(t);
  }
  return recs;
}

// ---- statistics ----------------------------------------------------------------------------
function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
function median(xs) {
  const v = xs.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
const pct = (num, den) => (den ? (100 * num) / den : null);

/** Figures every scenario shares: failure kinds (as "kind:<name>" counts) and harness health. */
function commonFigures(recs, log, health) {
  const f = {};
  for (const r of recs) if (!r.ok) f[`kind:${r.kind}`] = (f[`kind:${r.kind}`] ?? 0) + 1;
  const lags = recs.map((r) => r.start - r.due).sort((a, b) => a - b);
  f.lagP99 = percentile(lags, 99);
  f.lagMax = lags.length ? lags[lags.length - 1] : null;
  f.benchLoopP99 = health.benchLoopP99;
  f.mockLoopP99 = log.loopDelayP99Ms;
  return f;
}

/** The shared scenario's other consumer: at `at` (absolute ms), takes SHARED.drain requests of
 * the limit as fast as 50 connections go (plain fetch). Its request and 429 counts. */
async function drain(base, at) {
  await new Promise((r) => setTimeout(r, Math.max(0, at - now())));
  const url = chatUrl(base);
  let requests = 0;
  let rejected = 0;
  const worker = async () => {
    while (requests < SHARED.drain) {
      requests++;
      const res = await fetch(url, initFor("other"));
      await res.arrayBuffer();
      if (res.status === 429) rejected++;
    }
  };
  await Promise.all(Array.from({ length: 50 }, worker));
  return { requests, rejected };
}

// ---- one run: a fresh mock, a fresh client, one scenario ------------------------------------
async function runOnce(scenario, clientKey) {
  const mock = await startMock();
  const loop = monitorEventLoopDelay({ resolution: LOOP_RES_MS });
  let other = { requests: 0, rejected: 0 }; // the other consumer's (shared)
  try {
    const call = await CLIENTS[clientKey].make(mock.base);
    const t0 = now() + 100; // a moment for the mock to arm
    const outage = scenario === "outage" ? { fromMs: s(5000), toMs: s(15000) } : null;
    const shared = scenario === "shared";
    await mock.start({
      t0,
      mode: scenario === "burst429" ? "burst429" : "bucket",
      rate: shared ? SHARED.rate : RATE,
      burst: shared ? SHARED.burst : BURST,
      latencyMs: LATENCY_MS,
      outage,
      limitHeaders: scenario !== "bare",
    });
    loop.enable();
    let recs;
    if (scenario === "overload" || scenario === "bare") {
      recs = await openLoop({ t0, rate: 300, count: Math.round(300 * s(15)), call });
    } else if (scenario === "outage") {
      recs = await openLoop({ t0, rate: 100, count: Math.round(100 * s(25)), call });
    } else if (shared) {
      const drained = drain(mock.base, t0 + s(SHARED.drainAtMs));
      recs = await openLoop({ t0, rate: 150, count: Math.round(150 * s(10)), call });
      other = await drained;
    } else {
      // 20 concurrent calls: all due at t0 (the generator starts every overdue call at once).
      recs = await openLoop({ t0, rate: 1e9, count: 20, call });
    }
    loop.disable();
    const log = await mock.stop();
    const health = { benchLoopP99: Math.max(0, loop.percentile(99) / 1e6 - LOOP_RES_MS) };
    return figuresOf(scenario, recs, log, health, outage, other);
  } catch (e) {
    try {
      await mock.stop();
    } catch {}
    throw e;
  }
}

function figuresOf(scenario, recs, log, health, outage, other) {
  const f = commonFigures(recs, log, health);
  const n = recs.length;
  const ok = recs.filter((r) => r.ok);
  const lat = ok.map((r) => r.end - r.start).sort((a, b) => a - b);
  f.calls = n;
  f.succeededPct = pct(ok.length, n);
  // The client's own requests and 429s: the other consumer's (shared) are not its.
  f.requests = log.times.length - other.requests;
  f.reqPerCall = n ? f.requests / n : null;
  f.rejected = log.statuses.filter((st) => st === 429).length - other.rejected;
  f.p50 = percentile(lat, 50);
  f.p99 = percentile(lat, 99);
  if (scenario === "overload" || scenario === "bare" || scenario === "shared") {
    const by = s(30_000);
    f.settledBy30Pct = pct(recs.filter((r) => r.kind !== "pending" && r.end <= by).length, n);
    f.succeededBy30Pct = pct(ok.filter((r) => r.end <= by).length, n);
  } else if (scenario === "outage") {
    const { fromMs, toMs } = outage;
    let reqsIn = 0;
    let first200 = null;
    for (let i = 0; i < log.times.length; i++) {
      const t = log.times[i];
      if (t >= fromMs && t < toMs) reqsIn++;
      if (t >= toMs && log.statuses[i] === 200 && (first200 === null || t < first200)) first200 = t;
    }
    const during = recs.filter((r) => r.start >= fromMs && r.start < toMs);
    const after = recs.filter((r) => r.start >= toMs);
    f.outageReqPerCall = during.length ? reqsIn / during.length : null;
    f.firstOkAfterMs = first200 === null ? null : first200 - toMs;
    f.watchedAfterMs = log.stoppedAt - toMs; // how long after recovery the mock was watched
    f.duringOkPct = pct(during.filter((r) => r.ok).length, during.length);
    f.afterOkPct = pct(after.filter((r) => r.ok).length, after.length);
  } else {
    f.okCount = ok.length;
    const ends = recs.filter((r) => r.kind !== "pending").map((r) => r.end);
    f.takenMs = ends.length ? Math.max(...ends) - Math.min(...recs.map((r) => r.start)) : null;
  }
  return f;
}

// ---- printing ------------------------------------------------------------------------------
const fmt = {
  int: (v) => (v === null ? "—" : String(Math.round(v))),
  pct: (v) => (v === null ? "—" : `${v.toFixed(1)} %`),
  ratio: (v) => (v === null ? "—" : v.toFixed(2)),
  ms: (v) => (v === null ? "—" : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`),
  msOrNone: (v) => (v === null ? "none" : fmt.ms(v)),
};
/** The time to the first 200 after recovery, or, when none came, the bound the run gives. */
const firstOk = (f) =>
  f.firstOkAfterMs !== null && f.firstOkAfterMs !== undefined
    ? fmt.ms(f.firstOkAfterMs)
    : `none in ${secs(f.watchedAfterMs ?? 0)}`;
const secs = (ms) => `${+(ms / 1000).toFixed(2)} s`;

const ROWS = {
  overload: [
    ["calls", "calls", fmt.int],
    ["succeeded", "succeededPct", fmt.pct],
    [`settled by ${secs(s(30_000))}`, "settledBy30Pct", fmt.pct],
    [`succeeded by ${secs(s(30_000))}`, "succeededBy30Pct", fmt.pct],
    ["requests per call", "reqPerCall", fmt.ratio],
    ["429s the provider sent", "rejected", fmt.int],
    ["latency p50 (successes)", "p50", fmt.ms],
    ["latency p99 (successes)", "p99", fmt.ms],
  ],
  outage: [
    ["calls", "calls", fmt.int],
    ["succeeded (all)", "succeededPct", fmt.pct],
    ["requests per call in outage", "outageReqPerCall", fmt.ratio],
    ["first 200 after recovery", "firstOkAfterMs", fmt.msOrNone, (f) => firstOk(f)],
    ["succeeded, started in outage", "duringOkPct", fmt.pct],
    ["succeeded, started after", "afterOkPct", fmt.pct],
    ["requests per call (all)", "reqPerCall", fmt.ratio],
    ["latency p99 (successes)", "p99", fmt.ms],
  ],
  shared: [
    ["calls", "calls", fmt.int],
    ["succeeded", "succeededPct", fmt.pct],
    [`succeeded by ${secs(s(30_000))}`, "succeededBy30Pct", fmt.pct],
    ["requests per call", "reqPerCall", fmt.ratio],
    ["429s the provider sent it", "rejected", fmt.int],
    ["latency p50 (successes)", "p50", fmt.ms],
    ["latency p99 (successes)", "p99", fmt.ms],
  ],
  burst429: [
    ["succeeded (of 20)", "okCount", fmt.int],
    ["time taken (all settled)", "takenMs", fmt.ms],
    ["requests", "requests", fmt.int],
  ],
};
ROWS.bare = ROWS.overload;
const HEALTH_ROWS = [
  ["harness: start lag p99 / max", (f) => `${fmt.int(f.lagP99)} / ${fmt.int(f.lagMax)} ms`],
  ["harness: loop delay bench/mock", (f) => `${fmt.int(f.benchLoopP99)} / ${fmt.int(f.mockLoopP99)} ms`],
];

const TITLES = {
  overload: () => `overload — 300 new calls/s for ${secs(s(15_000))} against 200 req/s (burst ${BURST})`,
  bare: () => `bare — the overload from a provider that sends no rate-limit headers, only 429s (Retry-After: 1)`,
  outage: () =>
    `outage — 100 new calls/s for ${secs(s(25_000))}; 503 to everything from ${secs(s(5000))} to ${secs(s(15_000))}`,
  burst429: () => "burst429 — 20 concurrent calls; each call's first attempt 429 (Retry-After: 1), then 200",
  shared: () =>
    `shared — 150 new calls/s for ${secs(s(10_000))} against ${SHARED.rate} req/s (burst ${SHARED.burst}); ` +
    `another consumer takes ${SHARED.drain} at ${secs(s(SHARED.drainAtMs))}`,
};

function printTable(scenario, byClient) {
  const keys = ONLY.filter((k) => byClient[k]);
  const kinds = new Map();
  for (const k of keys)
    for (const [name, v] of Object.entries(byClient[k]))
      if (name.startsWith("kind:")) kinds.set(name, (kinds.get(name) ?? 0) + (v ?? 0));
  const kindRows = [...kinds.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([name]) => [`  ${name.slice(5)}`, name, (v) => (v === null ? "0" : fmt.int(v))]);
  const rows = [
    ...ROWS[scenario],
    ["failures by kind", null, null],
    ...(kindRows.length ? kindRows : [["  (none)", null, null]]),
  ];
  const cell = (k, key, f, whole) => (whole ? whole(byClient[k]) : key ? f(byClient[k][key] ?? null) : "");
  const cells = rows.map(([label, key, f, whole]) => [label, ...keys.map((k) => cell(k, key, f, whole))]);
  for (const [label, f] of HEALTH_ROWS) cells.push([label, ...keys.map((k) => f(byClient[k]))]);
  const header = ["", ...keys.map((k) => CLIENTS[k].label)];
  const w = header.map((h, c) => Math.max(h.length, ...cells.map((r) => r[c].length)));
  const line = (r) => r.map((v, c) => (c === 0 ? v.padEnd(w[c]) : v.padStart(w[c]))).join("  ");
  console.log(`\n${TITLES[scenario]()}${ROUNDS > 1 ? ` (median of ${ROUNDS} rounds)` : ""}`);
  console.log(line(header));
  console.log(w.map((n) => "─".repeat(n)).join("  "));
  for (const r of cells) console.log(line(r));
}

function printTargets(results) {
  const l = (sc) => results[sc]?.["llm-retry"];
  const lines = [];
  const check = (ok, text) => lines.push(`${ok ? "✓" : "✗"} ${text}`);
  const num = (v) => (v === null || v === undefined ? NaN : v);
  if (l("overload")) {
    const f = l("overload");
    check(num(f.succeededPct) >= 99, `overload: ${fmt.pct(f.succeededPct ?? null)} of calls succeeded (target ≥ 99 %)`);
    check(num(f.reqPerCall) <= 1.2, `overload: ${fmt.ratio(f.reqPerCall ?? null)} requests per call (target ≤ 1.2)`);
  }
  if (l("bare")) {
    const f = l("bare");
    check(num(f.succeededPct) >= 99, `bare: ${fmt.pct(f.succeededPct ?? null)} of calls succeeded (target ≥ 99 %)`);
    check(num(f.reqPerCall) <= 1.2, `bare: ${fmt.ratio(f.reqPerCall ?? null)} requests per call (target ≤ 1.2)`);
  }
  if (l("outage")) {
    const f = l("outage");
    check(num(f.outageReqPerCall) <= 1.1, `outage: ${fmt.ratio(f.outageReqPerCall ?? null)} requests per call during the outage (target ≤ 1.1)`);
    check(num(f.firstOkAfterMs) <= 1000, `outage: first 200 after recovery: ${firstOk(f)} (target ≤ 1 s)`);
    check(num(f.afterOkPct) >= 99, `outage: ${fmt.pct(f.afterOkPct ?? null)} of calls started after recovery succeeded (target ≥ 99 %)`);
  }
  if (l("burst429")) {
    const f = l("burst429");
    check(num(f.okCount) >= 20, `burst429: ${fmt.int(f.okCount ?? null)} of 20 succeeded (target 20 of 20)`);
  }
  if (l("shared")) {
    const f = l("shared");
    check(num(f.succeededPct) >= 99, `shared: ${fmt.pct(f.succeededPct ?? null)} of calls succeeded (target ≥ 99 %)`);
    check(num(f.reqPerCall) <= 1.2, `shared: ${fmt.ratio(f.reqPerCall ?? null)} requests per call (target ≤ 1.2)`);
  }
  if (!lines.length) return;
  console.log(`\ntargets for llm-retry (defaults)${ROUNDS > 1 ? `, medians of ${ROUNDS} rounds` : ""}:`);
  for (const x of lines) console.log(`  ${x}`);
}

/** The load generator is only as punctual as this process's event loop: say when it was not. */
function printHealth(results) {
  const late = [];
  for (const [sc, byClient] of Object.entries(results))
    for (const [k, f] of Object.entries(byClient))
      if ((f.lagP99 ?? 0) > LAG_WARN_MS) late.push(`${sc}/${CLIENTS[k].label} ${fmt.int(f.lagP99)} ms`);
  if (late.length)
    console.log(
      `\nharness warning: calls started late (start lag p99 > ${LAG_WARN_MS} ms: ${late.join(", ")}); ` +
        "late starts bunch calls — is something else using the CPU?",
    );
}

/** Warms up fetch (undici), the JIT and each client's own code (a throwaway instance of it)
 * against a throwaway mock with no limit, so that no client pays for a cold start in its
 * measured runs (the first one measured would otherwise). */
async function warmUp() {
  const mock = await startMock();
  await mock.start({ t0: now(), mode: "bucket", rate: 1e9, burst: 1e9, latencyMs: LATENCY_MS, outage: null });
  const url = chatUrl(mock.base);
  const plain = async ({ id }) => fetch(url, initFor(id)).then((r) => r.arrayBuffer());
  for (const call of [plain, ...(await Promise.all(ONLY.map((k) => CLIENTS[k].make(mock.base))))]) {
    for (let i = 0; i < 30; i++) {
      await Promise.all(Array.from({ length: 10 }, (_, j) => call({ id: `w${i}-${j}` })));
    }
  }
  await mock.stop();
}

// ---- main ----------------------------------------------------------------------------------
const wall0 = performance.now();
console.log(
  `storm: clients ${ONLY.join(", ")}; scenarios ${SCENARIOS.join(", ")}; scale ${SCALE}; rounds ${ROUNDS}; ` +
    `mock ${RATE} req/s burst ${BURST}, ${LATENCY_MS} ms per 200; llm-retry from ${PKG_DIR}`,
);
await warmUp();
const results = {};
for (const sc of SCENARIOS) {
  const runs = Object.fromEntries(ONLY.map((k) => [k, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const k of ONLY) {
      const t = performance.now();
      runs[k].push(await runOnce(sc, k));
      console.error(`  ${sc} · ${CLIENTS[k].label}${ROUNDS > 1 ? ` · round ${round}` : ""}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
    }
  }
  // The median of each figure over the rounds (a kind missing in a round counts 0 there).
  results[sc] = {};
  for (const k of ONLY) {
    const names = new Set(runs[k].flatMap((f) => Object.keys(f)));
    results[sc][k] = {};
    for (const name of names)
      results[sc][k][name] = median(runs[k].map((f) => f[name] ?? (name.startsWith("kind:") ? 0 : null)));
  }
  printTable(sc, results[sc]);
}
printTargets(results);
printHealth(results);
console.log(`\nstorm: wall time ${((performance.now() - wall0) / 1000).toFixed(1)} s`);

// The process should now exit by itself. If something still holds it open after a few seconds
// (a client's timer, a socket), say what, and exit anyway: that is a finding, not a harness failure.
setTimeout(() => {
  console.error(`storm: still running 5 s after the end, held by: ${process.getActiveResourcesInfo().join(", ")}`);
  process.exit(0);
}, 5000).unref();
