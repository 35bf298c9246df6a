// The llm-retry demo.
//
//   node demo/run.mjs           serve the demo page (www/) and run a 20-call scenario in the terminal
//   node demo/run.mjs --once    run the scenario and exit (tests, CI)
//
// Needs both builds: pkg/ (`make package`, the Node entry used here) and www/pkg/
// (`make www/pkg/package.json`, the browser build with the simulation exports).
//
// The scenario runs against two scripted mock providers (tests/js/mock-provider.mjs): a flaky
// primary (rate limits with wait hints, 5xx bursts, then an outage) and a healthy fallback.
// With LLM_API_KEY and LLM_BASE_URL set (optional LLM_MODEL, LLM_FALLBACK_MODEL) the same 20
// calls go to that OpenAI-compatible provider instead. The page always uses its own mocks.
//
// Environment: DEMO_PORT (default 0: any free port), NO_COLOR.

import http from "node:http";
import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { startMockProvider } from "../tests/js/mock-provider.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const WWW = join(ROOT, "www");
const CHAT = "/v1/chat/completions";
const PRIMARY_MODEL = "main-model";
const FALLBACK_MODEL = "backup-model";

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".ts": "text/plain; charset=utf-8",
};

// ---------------------------------------------------------------------------------------------
// Mock scripts

const ok = { status: 200, delayMs: 60 };
const e503 = { status: 503, delayMs: 30 };
const rateLimited = (headers) => ({ status: 429, headers, delayMs: 20 });

/** The page's live run: one step per request in arrival order (the page resets it per run). */
export const LIVE_SCRIPT = [
  ok,
  rateLimited({ "retry-after-ms": "700" }), // the route cools down: calls meanwhile use the fallback
  ok,
  e503,
  ok,
  { status: 502, delayMs: 30 },
  ok,
  ...Array(4).fill(e503), // an outage: the breaker opens, calls go to the fallback until a probe
  ok,
];
const FALLBACK_SCRIPT = [{ status: 200, delayMs: 150 }];

/** The page's streamed call, Anthropic's format: the first stream fails in-band after its 200
 * and before its first token (`overloaded_error` after `message_start`); the second streams a
 * reply token by token. */
const sseEvent = (name, data) => `event: ${name}\ndata: ${JSON.stringify({ type: name, ...data })}\n\n`;
const sseText = (t) => sseEvent("content_block_delta", { index: 0, delta: { type: "text_delta", text: t } });
const SSE_START = sseEvent("message_start", { message: { id: "msg", model: PRIMARY_MODEL, content: [] } });
const SSE = { "content-type": "text/event-stream" };
export const STREAM_SCRIPT = [
  { status: 200, headers: SSE, chunks: [SSE_START, sseEvent("ping", {}), sseEvent("error", { error: { type: "overloaded_error", message: "Overloaded" } })], chunkDelayMs: 150 },
  {
    status: 200,
    headers: SSE,
    chunks: [SSE_START, ..."Hello from the second stream, read once.".split(/(?<= )/).map(sseText), sseEvent("message_stop", {})],
    chunkDelayMs: 120,
  },
];

/** The terminal scenario: the primary's responses for each of the 20 calls (one step per attempt). */
const PLAN = [
  [ok],
  [ok],
  [rateLimited({ "retry-after": "1" }), ok],
  [e503, e503, ok],
  [ok],
  [rateLimited({ "retry-after-ms": "600" }), ok],
  [{ status: 502, delayMs: 30 }, ok],
  [ok],
  [rateLimited({ "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "800ms" }), ok],
  [ok],
  ...Array(6).fill([e503]), // calls 11–16: the primary model is down
  [ok],
  [ok],
  [{ status: 529, delayMs: 30 }, ok], // Anthropic-style "overloaded"
  [ok],
];

// ---------------------------------------------------------------------------------------------
// The page's servers

/** Starts the page's mocks and the static server for www/. Resolves to { url, mockUrls, close() }. */
export async function startDemo({ port = 0, host = "127.0.0.1" } = {}) {
  const primary = await startMockProvider({ script: LIVE_SCRIPT, cors: "expose", host });
  const fallback = await startMockProvider({ script: FALLBACK_SCRIPT, cors: "expose", host });
  const stream = await startMockProvider({ script: STREAM_SCRIPT, cors: "expose", host });
  const config = {
    primary: { url: primary.url + CHAT, model: PRIMARY_MODEL },
    fallback: { url: fallback.url + CHAT, model: FALLBACK_MODEL },
    stream: { url: stream.url + "/v1/messages", model: PRIMARY_MODEL },
    reset: "/api/live/reset",
    streamReset: "/api/stream/reset",
  };

  const server = http.createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://demo").pathname);
    const send = (status, type, body) => {
      res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
      res.end(body);
    };
    if (path === "/config.json") return send(200, MIME[".json"], JSON.stringify(config));
    if (path === config.reset && req.method === "POST") {
      primary.setScript(LIVE_SCRIPT);
      fallback.setScript(FALLBACK_SCRIPT);
      return send(204, "text/plain", "");
    }
    if (path === config.streamReset && req.method === "POST") {
      stream.setScript(STREAM_SCRIPT);
      return send(204, "text/plain", "");
    }
    if (req.method !== "GET" && req.method !== "HEAD") return send(405, "text/plain", "method not allowed");
    const file = normalize(join(WWW, path.endsWith("/") ? path + "index.html" : path));
    if (!file.startsWith(WWW + sep)) return send(403, "text/plain", "forbidden");
    try {
      const body = await readFile(file);
      send(200, MIME[extname(file)] ?? "application/octet-stream", req.method === "HEAD" ? undefined : body);
    } catch {
      send(404, "text/plain", "not found");
    }
  });
  const sockets = new Set();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });

  return {
    url: `http://${host}:${server.address().port}/`,
    mockUrls: { primary: primary.url, fallback: fallback.url, stream: stream.url },
    mocks: { primary, fallback, stream },
    async close() {
      await Promise.all([
        new Promise((resolve) => {
          server.close(() => resolve());
          for (const s of sockets) s.destroy();
        }),
        primary.close(),
        fallback.close(),
        stream.close(),
      ]);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The terminal scenario

const paint = (on) => {
  const c = (code) => (s) => (on ? `\x1b[${code}m${s}\x1b[0m` : String(s));
  return { dim: c(2), bold: c(1), red: c(31), green: c(32), yellow: c(33), blue: c(34), magenta: c(35), cyan: c(36) };
};

const statusColour = (c, status) =>
  status === 200 ? c.green : status === 429 ? c.yellow : status >= 500 ? c.red : (s) => s;

/** The real provider from the environment, or null. */
function providerFromEnv(env = process.env) {
  if (!env.LLM_API_KEY || !env.LLM_BASE_URL) return null;
  return {
    url: env.LLM_BASE_URL.replace(/\/+$/, "") + "/chat/completions",
    key: env.LLM_API_KEY,
    model: env.LLM_MODEL || "gpt-4o-mini",
    fallbackModel: env.LLM_FALLBACK_MODEL || null,
  };
}

/**
 * Runs 20 chat calls through createRetryFetch, printing every event as it happens and a summary
 * at the end. Resolves to the summary numbers.
 */
export async function runScenario({ out = process.stdout, color = out.isTTY && !process.env.NO_COLOR, calls = 20 } = {}) {
  const c = paint(color);
  const print = (line = "") => out.write(line + "\n");
  let createRetryFetch, retryReport;
  try {
    ({ createRetryFetch, retryReport } = await import("../pkg/node.js"));
  } catch (e) {
    throw new Error(`cannot load pkg/node.js (run \`make package\` first): ${e.message}`);
  }

  const real = providerFromEnv();
  let primary, fallback, target;
  if (real) {
    target = { url: real.url, model: real.model, fallbacks: real.fallbackModel ? [{ model: real.fallbackModel }] : [] };
    print(c.bold(`Scenario: ${calls} calls to ${new URL(real.url).host} (model ${real.model}` +
      (real.fallbackModel ? `, fallback ${real.fallbackModel})` : ")")));
  } else {
    primary = await startMockProvider({ script: PLAN[0] });
    fallback = await startMockProvider({ script: FALLBACK_SCRIPT });
    target = {
      url: primary.url + CHAT,
      model: PRIMARY_MODEL,
      fallbacks: [{ url: fallback.url + CHAT, model: FALLBACK_MODEL }],
    };
    print(c.bold(`Scenario: ${calls} calls to a flaky mock provider (${PRIMARY_MODEL}), ` +
      `falling back to a second mock (${FALLBACK_MODEL})`));
    print(c.dim("  scripted: rate limits with wait hints, 5xx bursts, and an outage of the primary in calls 11–16"));
  }
  print();

  let call = 0;
  let success; // the success line of the current call
  let skipped; // why the current call passed over the primary, if it did
  const tag = () => c.dim(`call ${String(call).padStart(2)}`);
  const model = (route, name) => (route > 0 ? c.magenta : c.cyan)((name ?? `route ${route}`).padEnd(13));
  const status = (s) => statusColour(c, s)(String(s ?? "---"));
  const onEvent = (e) => {
    switch (e.type) {
      case "retry": // an attempt failed, and after a wait the same route is tried again
        print(`${tag()}  ${model(e.route, e.model)} ${status(e.status)}  ${e.reason.padEnd(18)} ` +
          `→ waited ${String(e.delayMs).padStart(4)} ms ${c.dim(`(${e.hint ?? e.wait})`)}`);
        break;
      case "fallback": // the route failed (or was skipped): the next one is tried
        print(`${tag()}  ${model(e.from, e.fromModel)} ${status(e.status)}  ` +
          `${e.reason.padEnd(18)} → ${c.magenta(`fallback to ${e.toModel ?? `route ${e.to}`}`)}`);
        break;
      case "breaker": // the key is "<origin> <model>": print the model only
        print(`${tag()}  ${c.blue("breaker".padEnd(13))} ${e.key.split(" ").slice(1).join(" ") || "primary"}: ${e.from} → ${c.bold(e.to)}`);
        break;
      case "giveUp":
        print(`${tag()}  ${c.red("gave up".padEnd(13))} ${e.reason} after ${e.attempts} attempts`);
        break;
      case "skip": // the primary was passed over for the fallback: printed with the result
        skipped = e.reason;
        break;
      case "success": // printed once the call returns, after a note on any skipped route
        success = `${tag()}  ${model(e.route, e.model)} ${status(200)}  ${"ok".padEnd(18)} ` +
          c.dim(`after ${e.attempts} attempt${e.attempts > 1 ? "s" : ""}, ${Math.round(e.totalMs)} ms`);
        break;
    }
  };

  const retryFetch = createRetryFetch({
    maxAttempts: 4,
    backoff: { initialMs: 250, maxMs: 2000 },
    breaker: { failureThreshold: 5, cooldownMs: 1500 },
    deadlineMs: 15000,
    fallbacks: target.fallbacks,
    onEvent,
  });

  const results = [];
  const started = performance.now();
  for (call = 1; call <= calls; call++) {
    primary?.setScript(PLAN[(call - 1) % PLAN.length]);
    const headers = { "content-type": "application/json" };
    if (real) headers.authorization = `Bearer ${real.key}`;
    const body = JSON.stringify({
      model: target.model,
      messages: [{ role: "user", content: `Say "ok" (${call}).` }],
      max_tokens: 5,
    });
    success = undefined;
    skipped = undefined;
    try {
      const res = await retryFetch(target.url, { method: "POST", headers, body });
      const report = retryReport(res);
      await res.arrayBuffer();
      if (skipped) {
        const why = { "circuit-open": "its breaker is open", cooling: "cooling down after a wait hint", pacing: "no pacing slot yet" };
        print(`${tag()}  ${model(0, target.model)} ---  ${"skipped".padEnd(18)} ` + c.dim(`(${why[skipped] ?? skipped})`));
      }
      if (success) print(success);
      if (!res.ok) print(`${tag()}  ${c.red(`failed with HTTP ${res.status}`)}`);
      results.push({ ok: res.ok, status: res.status, report });
    } catch (e) {
      print(`${tag()}  ${c.red(`${e.name}: ${e.message}`)}`);
      results.push({ ok: false, error: e, report: e.report });
    }
    if (!real) await new Promise((r) => setTimeout(r, 350)); // pace the calls, so breaker cool-downs pass
  }
  const elapsedMs = performance.now() - started;
  await primary?.close();
  await fallback?.close();

  const attempts = results.map((r) => r.report?.attempts.length ?? 1);
  const summary = {
    calls: results.length,
    succeeded: results.filter((r) => r.ok).length,
    failed: results.filter((r) => !r.ok).length,
    attempts: attempts.reduce((a, b) => a + b, 0),
    retries: attempts.reduce((a, b) => a + b - 1, 0),
    fallbacks: results.filter((r) => r.report?.route > 0).length,
    totalWaitMs: results.reduce((a, r) => a + (r.report?.totalWaitMs ?? 0), 0),
    elapsedMs,
  };
  print();
  print(c.bold("Summary"));
  print(`  summary: ${summary.calls} calls, ${summary.succeeded} succeeded, ${summary.failed} failed, ` +
    `${summary.attempts} attempts (${summary.retries} ${summary.retries === 1 ? "retry" : "retries"}), ${summary.fallbacks} served by the fallback, ` +
    `total wait ${(summary.totalWaitMs / 1000).toFixed(1)} s, run ${(elapsedMs / 1000).toFixed(1)} s`);
  print(`  attempts per call: ${attempts.join(" ")}`);
  if (!real) summary.stream = await streamedCall(print, c, { createRetryFetch, retryReport });
  return summary;
}

/** One streamed call whose first stream fails in-band before its first token (Anthropic's
 * `overloaded_error` after `message_start`): retried, and the caller reads one clean stream. */
async function streamedCall(print, c, { createRetryFetch, retryReport }) {
  const sse = { "content-type": "text/event-stream" };
  const event = (name, data) => `event: ${name}\ndata: ${JSON.stringify({ type: name, ...data })}\n\n`;
  const text = (t) => event("content_block_delta", { index: 0, delta: { type: "text_delta", text: t } });
  const start = event("message_start", { message: { id: "msg", content: [] } });
  const mock = await startMockProvider({
    script: [
      { status: 200, headers: sse, chunks: [start, event("ping", {}), event("error", { error: { type: "overloaded_error", message: "Overloaded" } })] },
      { status: 200, headers: sse, chunks: [start, text("Hello"), text(" from"), text(" the"), text(" retry"), event("message_stop", {})], chunkDelayMs: 40 },
    ],
  });
  const events = [];
  const retryFetch = createRetryFetch({ backoff: { initialMs: 200, maxMs: 400 }, onEvent: (e) => events.push(e) });
  print();
  print(c.bold("A streamed call: the first stream fails after its 200, before its first token"));
  const res = await retryFetch(`${mock.url}/v1/messages`, { method: "POST", body: JSON.stringify({ model: PRIMARY_MODEL, stream: true }) });
  let shown = "";
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    for (const m of decoder.decode(chunk, { stream: true }).matchAll(/"text":"([^"]*)"/g)) shown += m[1];
  }
  const report = retryReport(res);
  for (const a of report.attempts) {
    print(`  attempt ${report.attempts.indexOf(a) + 1}  ${statusColour(c, a.status)(String(a.status))}  ${a.reason.padEnd(18)}` +
      c.dim(a.inStream ? "(in-band error before the first token: retried)" : `(committed at ${report.firstTokenMs} ms)`));
  }
  print(`  the caller read: "${shown}" — one stream, each token once (${mock.requests.length} requests)`);
  await mock.close();
  return { text: shown, requests: mock.requests.length, commits: events.filter((e) => e.type === "commit").length };
}

// ---------------------------------------------------------------------------------------------
// CLI

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === normalize(process.argv[1]);
if (isMain) {
  const once = process.argv.includes("--once");
  for (const [dir, make] of [["pkg", "make package"], ["www/pkg", "make www/pkg/package.json"]]) {
    if (!existsSync(join(ROOT, dir, "package.json"))) {
      console.error(`demo: ${dir}/ is missing: run \`${make}\` first`);
      process.exit(1);
    }
  }
  const demo = await startDemo({ port: Number(process.env.DEMO_PORT ?? 0) });
  const shutdown = async () => {
    await demo.close();
    process.exit(0);
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
  console.log(`Demo page: ${demo.url}\n`);
  try {
    await runScenario();
  } catch (e) {
    console.error(`demo: ${e.stack ?? e}`);
    await demo.close();
    process.exit(1);
  }
  if (once) {
    await demo.close();
  } else {
    console.log(`\nDemo page: ${demo.url}  (Ctrl-C to stop)`);
  }
}
