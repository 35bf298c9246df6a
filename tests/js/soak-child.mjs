// The soak test's child process (spawned by soak.test.mjs with --expose-gc; not a test file).
//
// Drives thousands of calls through createRetryFetch, retry(fn) and createRetry(), ~150 at a
// time, with seeded faults: the parent's loopback server answers a seeded mix per (call,
// attempt), and retry(fn)'s callbacks throw a seeded mix of SDK-shaped errors. Some calls are
// aborted mid-way, some have an async onEvent that rejects, some an onExhausted whose result
// rejects. Each API runs as its own phase: a warm-up batch, then measured batches, with the JS
// heap (after gc) and the wasm memory read before and after each. Prints one JSON line (the
// report) and then returns without process.exit, so the parent also sees whether anything
// keeps it alive.
//
//   node --expose-gc soak-child.mjs <server url> <seed> '{"concurrency":150,"phases":{"retry":[warmup,batch,batches],…}}'

import { setImmediate as tick } from "node:timers/promises";

const [url, seedArg, plan] = process.argv.slice(2);
const SEED = Number(seedArg) >>> 0;
const { concurrency: CONCURRENCY, phases: SIZES } = JSON.parse(plan);
if (typeof gc !== "function") throw new Error("run with --expose-gc");

// ---------------------------------------------------------------------------------------------
// What the process saw that it should not have.
let unhandledCount = 0;
let uncaughtCount = 0;
const unhandled = [];
const uncaught = [];
const describeErr = (e) => {
  try {
    return `${e?.name ?? typeof e}: ${e?.message ?? String(e)}`.slice(0, 200);
  } catch {
    return typeof e;
  }
};
process.on("unhandledRejection", (e) => {
  unhandledCount++;
  if (unhandled.length < 5) unhandled.push(describeErr(e));
});
process.on("uncaughtException", (e) => {
  uncaughtCount++;
  if (uncaught.length < 5) uncaught.push(describeErr(e));
});

// ---------------------------------------------------------------------------------------------
// Seeded randomness: the same (seed, call, attempt) always draws the same fault.
function hash(...xs) {
  let h = SEED ^ 0x9e3779b9;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return (h >>> 0) / 2 ** 32;
}

// ---------------------------------------------------------------------------------------------
// The package, imported with its wasm instance caught as it is made (the technique of
// load.test.mjs), so its memory can be read.
const Instance = WebAssembly.Instance;
const made = [];
WebAssembly.Instance = function (module, imports) {
  const instance = new Instance(module, imports);
  made.push(instance);
  return instance;
};
let lib;
try {
  lib = await import("llm-retry");
} finally {
  WebAssembly.Instance = Instance;
}
if (made.length !== 1) throw new Error(`expected one wasm instance, saw ${made.length}`);
const memory = made[0].exports.memory ?? Object.values(made[0].exports).find((v) => v instanceof WebAssembly.Memory);
const { createRetryFetch, retry, createRetry, isRetryError, isCircuitOpenError } = lib;

async function measure() {
  // Finalizers (wasm-bindgen frees closures through a FinalizationRegistry) run between ticks.
  for (let i = 0; i < 4; i++) {
    gc();
    await tick();
  }
  gc();
  return { heap: process.memoryUsage().heapUsed, wasm: memory.buffer.byteLength };
}

// ---------------------------------------------------------------------------------------------
// Shared helpers for the calls.
const BACKOFF = Object.freeze({ initialMs: 1, maxMs: 5 });
const ABORT = new Error("soak-abort");
const LISTENER = new Error("soak-listener");
const EXHAUSTED = new Error("soak-exhausted");
const BUG = new Error("soak-bug");
const EXHAUSTED_VALUE = "soak-exhausted-value";
const body = JSON.stringify({ model: "a", messages: [{ role: "user", content: "soak" }] });

const NO_REJECT = process.env.SOAK_NO_REJECT === "1"; // calibration only: listeners that never reject
/** An async listener whose every n-th result rejects. */
const rejectingListener = (n) => {
  let i = 0;
  return async () => {
    if (++i % n === 0 && !NO_REJECT) throw LISTENER;
  };
};
/** A listener returning a thenable that rejects. */
const thenableListener = () => ({ then: (resolve, reject) => (NO_REJECT ? resolve() : reject(LISTENER)) });
const rejectingExhausted = () => (NO_REJECT ? EXHAUSTED_VALUE : Promise.reject(EXHAUSTED));
const valueExhausted = () => EXHAUSTED_VALUE;

/** Per phase: how each call ended. */
function newStats(total) {
  return {
    calls: 0,
    settled: new Uint8Array(total),
    resolved: 0,
    rejected: 0,
    kinds: Object.create(null),
    unexpected: [],
    lateFnCalls: 0,
  };
}

function note(stats, i, ok, kind, detail) {
  stats.settled[i]++;
  if (ok) stats.resolved++;
  else stats.rejected++;
  stats.kinds[kind] = (stats.kinds[kind] ?? 0) + 1;
  if (kind === "unexpected" && stats.unexpected.length < 5) stats.unexpected.push(detail);
}

/** Runs calls 0..n-1 (offset by `base` for seeding), `CONCURRENCY` at a time. */
async function pool(n, base, one) {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await one(i, base + i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, n) }, worker));
}

/** An AbortController that aborts `ms` after the call starts; `done()` clears its timer. */
function aborter(ms) {
  const controller = new AbortController();
  const id = setTimeout(() => controller.abort(ABORT), ms);
  return { signal: controller.signal, done: () => clearTimeout(id) };
}

// ---------------------------------------------------------------------------------------------
// createRetryFetch: one long-lived client. Over loopback, the server picks each attempt's answer
// (the real fetch: sockets, resets, aborts in flight). In process, a transport with the same
// seeded mix stands in for it, for the memory figures: Node's own fetch keeps growing its heap
// for thousands of calls (~400 B/call over the first ~5000, measured with plain fetch), which
// would drown the library's own.
function inProcessTransport(total) {
  const attempts = new Uint8Array(total); // preallocated: nothing of the harness grows per call
  const json = (status, headers = {}) =>
    new Response('{"id":"x","choices":[]}', { status, headers: { "content-type": "application/json", ...headers } });
  const later = (ms, signal, answer) =>
    new Promise((resolve, reject) => {
      const id = ms === undefined ? undefined : setTimeout(() => resolve(answer()), ms);
      signal?.addEventListener("abort", () => (clearTimeout(id), reject(signal.reason)), { once: true });
    });
  return (input, init) => {
    const path = String(input);
    const cut = path.lastIndexOf("/");
    const i = Number(path.slice(path.lastIndexOf("/", cut - 1) + 1, cut));
    const seq = Number(path.slice(cut + 1));
    const r = hash(seq, ++attempts[i], 77);
    if (r < 0.55) return Promise.resolve(json(200));
    if (r < 0.73) return Promise.resolve(json(503));
    if (r < 0.77) return Promise.resolve(json(429, { "retry-after-ms": String(1 + Math.floor(hash(seq, 78) * 5)) }));
    if (r < 0.87) return Promise.reject(new TypeError("fetch failed", { cause: Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" }) }));
    if (r < 0.94) return later(5, init.signal, () => json(200));
    if (r < 0.98) return Promise.resolve(json(400));
    return later(undefined, init.signal); // hangs until the attempt times out or the caller aborts
  };
}

function fetchPhase(total, inProcess) {
  let k = 0;
  const asyncListener = rejectingListener(5);
  const base = inProcess ? "http://127.0.0.1:9/v1/chat/completions" : `${url}/v1/chat/completions`;
  const retryFetch = createRetryFetch({
    maxAttempts: 3,
    backoff: BACKOFF,
    deadlineMs: 3000,
    attemptTimeoutMs: inProcess ? 50 : 1000,
    // Generous: the seeded mix fails ~45% of attempts, and calls should mostly retry, not all be
    // cut short (the breaker still opens now and then, and its probes run concurrently).
    budget: { maxTokens: 1000, tokenRatio: 5 },
    breaker: { failureThreshold: 25, cooldownMs: 10 },
    fallbacks: [{ model: "b" }],
    fetch: inProcess ? inProcessTransport(total) : undefined,
    // Every 5th event's listener result rejects (async function), every 7th a rejecting thenable.
    onEvent: (e) => (++k % 7 === 0 ? thenableListener() : asyncListener(e)),
    onExhausted: (report) => (report.attempts.length % 2 ? rejectingExhausted() : valueExhausted()),
  });
  return async (stats, i, seq) => {
    const abort = hash(seq, 9001) < 0.05 ? aborter(1 + Math.floor(hash(seq, 9002) * 20)) : undefined;
    stats.calls++;
    try {
      const res = await retryFetch(inProcess ? `${base}/${i}/${seq}` : `${base}?call=${seq}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: abort?.signal,
      });
      if (res === EXHAUSTED_VALUE) note(stats, i, true, "onExhausted-value");
      else if (res instanceof Response) {
        await res.arrayBuffer().catch(() => {});
        note(stats, i, true, `status-${res.status}`);
      } else note(stats, i, true, "unexpected", `resolved to ${typeof res}`);
    } catch (e) {
      note(stats, i, false, ...rejectionKind(e));
    } finally {
      abort?.done();
    }
  };
}

function rejectionKind(e) {
  if (e === ABORT) return ["aborted"];
  if (e === EXHAUSTED) return ["onExhausted-rejection"];
  if (e === BUG) return ["bug-rethrown"];
  if (isRetryError(e)) return [`RetryError-${e.reason}`];
  if (isCircuitOpenError(e)) return ["CircuitOpenError"];
  if (e?.soak === true) return [`sdk-error-${e.status}`];
  return ["unexpected", describeErr(e)];
}

// ---------------------------------------------------------------------------------------------
// retry(fn) and createRetry(): fn's seeded behaviour per (call, attempt).
function sdkError(status, headers) {
  // Half as plain objects (what `{ status: 503 }` means), half as Errors like the SDKs'.
  const fields = { soak: true, status, ...(headers ? { headers } : {}) };
  return status % 2 ? Object.assign(new Error(`status ${status}`), fields) : fields;
}

/** fn for call `seq`; `shared`: through one createRetry client, where each 429's hint cools the
 * route for every call (so there it is rarer, or most calls would be skipped, not attempted). */
function makeFn(stats, i, seq, shared = false) {
  return async ({ attempt, signal }) => {
    if (stats.settled[i]) stats.lateFnCalls++;
    const r = hash(seq, attempt);
    if (r < 0.08) await tick();
    if (r < 0.5) return `ok-${seq}`;
    if (r < 0.7) throw sdkError(503);
    // A 429 with a hint (through one createRetry client it cools the route for every call: rarer).
    if (r < 0.74 && (!shared || hash(seq, attempt, 5) < 0.1)) {
      throw sdkError(429, attempt % 2 ? { "retry-after-ms": "5" } : new Headers({ "retry-after-ms": "3" }));
    }
    if (r < 0.74) throw sdkError(503);
    if (r < 0.88) throw Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNRESET" } });
    if (r < 0.9) throw BUG;
    if (r < 0.94) throw sdkError(400);
    // Hangs until the attempt's signal fires (its timeout or the caller's abort).
    return new Promise((_, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  };
}

function fnOptions(seq) {
  const r = hash(seq, 7001);
  return {
    maxAttempts: 3,
    backoff: BACKOFF,
    deadlineMs: 2000,
    attemptTimeoutMs: 30,
    idempotent: hash(seq, 7002) < 0.5,
    budget: false,
    breaker: false,
    fallbacks: hash(seq, 7003) < 0.3 ? [{ model: "b" }] : undefined,
    onEvent: r < 0.2 ? rejectingListener(2) : r < 0.3 ? thenableListener : r < 0.6 ? () => {} : undefined,
    onExhausted: hash(seq, 7004) < 0.15 ? rejectingExhausted : hash(seq, 7004) < 0.3 ? valueExhausted : undefined,
  };
}

function retryPhase() {
  return async (stats, i, seq) => {
    const abort = hash(seq, 9001) < 0.05 ? aborter(1 + Math.floor(hash(seq, 9002) * 20)) : undefined;
    stats.calls++;
    try {
      const v = await retry(makeFn(stats, i, seq), { ...fnOptions(seq), signal: abort?.signal });
      note(stats, i, true, v === EXHAUSTED_VALUE ? "onExhausted-value" : v === `ok-${seq}` ? "value" : "unexpected", String(v));
    } catch (e) {
      note(stats, i, false, ...rejectionKind(e));
    } finally {
      abort?.done();
    }
  };
}

function createRetryPhase() {
  let k = 0;
  const asyncListener = rejectingListener(5);
  const run = createRetry({
    maxAttempts: 3,
    backoff: BACKOFF,
    deadlineMs: 2000,
    attemptTimeoutMs: 30,
    // Generous: the seeded mix fails ~45% of attempts, and calls should mostly retry, not all be
    // cut short (the breaker still opens now and then, and its probes run concurrently).
    budget: { maxTokens: 1000, tokenRatio: 5 },
    breaker: { failureThreshold: 25, cooldownMs: 10 },
    fallbacks: [{ model: "b" }],
    onEvent: (e) => (++k % 7 === 0 ? thenableListener() : asyncListener(e)),
    onExhausted: (report) => (report.attempts.length % 2 ? rejectingExhausted() : valueExhausted()),
  });
  return async (stats, i, seq) => {
    const abort = hash(seq, 9001) < 0.05 ? aborter(1 + Math.floor(hash(seq, 9002) * 20)) : undefined;
    stats.calls++;
    try {
      const v = await run(makeFn(stats, i, seq, true), abort ? { signal: abort.signal } : undefined);
      note(stats, i, true, v === EXHAUSTED_VALUE ? "onExhausted-value" : v === `ok-${seq}` ? "value" : "unexpected", String(v));
    } catch (e) {
      note(stats, i, false, ...rejectionKind(e));
    } finally {
      abort?.done();
    }
  };
}

// ---------------------------------------------------------------------------------------------
const PHASES = [
  ["createRetryFetch-loopback", (total) => fetchPhase(total, false), 1],
  ["createRetryFetch", (total) => fetchPhase(total, true), 4],
  ["retry", retryPhase, 2],
  ["createRetry", createRetryPhase, 3],
];

const report = { seed: SEED, concurrency: CONCURRENCY, phases: {} };
for (const [name, make, id] of PHASES) {
  const [warmup, batch, batches] = SIZES[name];
  const total = warmup + batch * batches;
  const one = make(total);
  const started = performance.now();
  const stats = newStats(total);
  if (process.env.SOAK_TRACE) console.error("phase", name);
  await pool(warmup, id * 1e6, (i, seq) => one(stats, i, seq));
  const marks = [await measure()];
  for (let b = 0; b < batches; b++) {
    const first = warmup + b * batch;
    await pool(batch, id * 1e6 + first, (i, seq) => one(stats, first + i, seq));
    marks.push(await measure());
  }
  // A few ticks for anything still running after its call settled (late fn calls, listeners).
  await new Promise((r) => setTimeout(r, 50));
  const counts = [0, 0, 0];
  for (const s of stats.settled) counts[Math.min(s, 2)]++;
  report.phases[name] = {
    calls: stats.calls,
    expected: total,
    batch,
    unsettled: counts[0],
    settledTwice: counts[2],
    resolved: stats.resolved,
    rejected: stats.rejected,
    kinds: stats.kinds,
    unexpected: stats.unexpected,
    lateFnCalls: stats.lateFnCalls,
    heap: marks.map((m) => m.heap),
    wasm: marks.map((m) => m.wasm),
    ms: Math.round(performance.now() - started),
  };
}

// Nothing of the library's should be left running: give the loop a few turns, then look.
for (let i = 0; i < 5; i++) await tick();
report.resources = process.getActiveResourcesInfo();
report.unhandledCount = unhandledCount;
report.unhandled = unhandled;
report.uncaughtCount = uncaughtCount;
report.uncaught = uncaught;
process.stdout.write(`${JSON.stringify(report)}\n`);
// No process.exit: the parent times how long the process lingers after this line.
