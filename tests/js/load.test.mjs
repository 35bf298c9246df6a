// Many concurrent calls through one client: every retry honours its server's hint, nothing is
// sent twice or lost, and during an outage the retry budget keeps the load near one request per
// call instead of maxAttempts per call.
import { test } from "node:test";
import { spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import { createRetryFetch } from "llm-retry";
import { T, mockFor, chatInit } from "./helpers.mjs";

const CALLS = 200;

test("200 concurrent calls, 150 rate-limited with a 100 ms hint: all succeed, retries wait", T, async (t) => {
  const limited = Array.from({ length: 150 }, () => ({ status: 429, headers: { "retry-after-ms": "100" } }));
  const mock = await mockFor(t, { script: [...limited, { status: 200 }] });
  const retryFetch = createRetryFetch({ budget: false, backoff: { initialMs: 10, maxMs: 50 } });
  const started = performance.now();
  const responses = await Promise.all(
    Array.from({ length: CALLS }, () => retryFetch(`${mock.url}/v1/chat/completions`, chatInit())),
  );
  assert.deepEqual(new Set(responses.map((r) => r.status)), new Set([200]));
  assert.equal(mock.requests.length, CALLS + 150, "each rate-limited call retried exactly once");
  const firstLimited = Math.min(...mock.requests.slice(0, 150).map((q) => q.t));
  const earliestRetry = Math.min(...mock.requests.slice(CALLS).map((q) => q.t));
  assert.ok(earliestRetry - firstLimited >= 95, `a retry came ${(earliestRetry - firstLimited).toFixed(1)} ms after a 100 ms hint`);
  assert.ok(performance.now() - started < 3000, "and promptly");
});

test("200 concurrent calls during an outage: the budget keeps retries to a handful", T, async (t) => {
  const mock = await mockFor(t, { script: [{ status: 503 }] });
  const retryFetch = createRetryFetch({ backoff: { initialMs: 10, maxMs: 50 }, breaker: false });
  const responses = await Promise.all(
    Array.from({ length: CALLS }, () => retryFetch(`${mock.url}/v1/chat/completions`, chatInit())),
  );
  assert.deepEqual(new Set(responses.map((r) => r.status)), new Set([503]), "each caller gets the 503");
  // Without a budget this would be 4 × 200 = 800 requests; the default budget pauses retries
  // after 50 straight failures: about 250.
  assert.ok(mock.requests.length <= CALLS + 55, `${mock.requests.length} requests for ${CALLS} calls`);
});

test("memory stays flat over 20 000 calls with retries and fallbacks", T, async () => {
  // A fresh copy of the package (a new module URL), whose wasm instance is caught as it is made,
  // so the memory watched is the one its calls use.
  const Instance = WebAssembly.Instance;
  const made = [];
  WebAssembly.Instance = function (module, imports) {
    const instance = new Instance(module, imports);
    made.push(instance);
    return instance;
  };
  let createFresh;
  try {
    ({ createRetryFetch: createFresh } = await import(new URL("./node_modules/llm-retry/node.js?memory", import.meta.url)));
  } finally {
    WebAssembly.Instance = Instance;
  }
  assert.equal(made.length, 1, "the package made one wasm instance");
  const { memory } = made[0].exports;
  let n = 0;
  const transport = async () => new Response("{}", { status: ++n % 7 === 0 ? 503 : 200 });
  const retryFetch = createFresh({ fetch: transport, budget: false, backoff: { initialMs: 0, maxMs: 0 }, fallbacks: [{ model: "b" }] });
  const body = JSON.stringify({ model: "a", messages: [{ role: "user", content: "x".repeat(3000) }] });
  const batch = async () => {
    for (let i = 0; i < 50; i++) {
      await Promise.all(Array.from({ length: 200 }, () => retryFetch("http://127.0.0.1:9/v1/chat/completions", { method: "POST", body })));
    }
  };
  await batch(); // 10 000 calls to reach a steady state
  const steady = memory.buffer.byteLength;
  await batch();
  assert.equal(memory.buffer.byteLength, steady, "the second 10 000 calls grew the wasm memory");
});

test("the budget's own settings are the ones used: a larger bucket allows more retries", T, async (t) => {
  // Sequential calls against an outage, so the count depends only on the bucket: retries stop
  // when tokens fall to half of maxTokens, each failure costing one.
  const outage = async (budget) => {
    const mock = await mockFor(t, { script: [{ status: 503 }] });
    const retryFetch = createRetryFetch({ maxAttempts: 3, backoff: { initialMs: 0, maxMs: 0 }, breaker: false, budget });
    for (let i = 0; i < 40; i++) await retryFetch(`${mock.url}/v1/chat/completions`, chatInit());
    return mock.requests.length;
  };
  const small = await outage({ maxTokens: 4 });
  const defaults = await outage(undefined);
  const large = await outage({ maxTokens: 1000, tokenRatio: 0.5 });
  assert.equal(large, 120, "maxTokens 1000: every call makes its 3 attempts");
  assert.ok(small < defaults && defaults < large, `requests: maxTokens 4 → ${small}, default 100 → ${defaults}, 1000 → ${large}`);
});

test("10,000 calls at once through a stub transport, three rounds: all served, the process alive", T, () => {
  // In a process of its own: Node 20's V8 aborted the process here (an optimised caller of the
  // wasm deoptimized mid-call), which would take the test runner down with it.
  const script = `
    import { createRetryFetch } from "llm-retry";
    const f = createRetryFetch({ fetch: async () => new Response("ok") });
    let served = 0;
    for (let round = 0; round < 3; round++) {
      const all = Array.from({ length: 10000 }, () => f("https://api.example/v1/chat/completions", { method: "POST", body: "{}" }));
      for (const r of await Promise.all(all)) served += r.status === 200;
    }
    console.log(served);`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: import.meta.dirname, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr.slice(0, 2000));
  assert.equal(r.stdout.trim(), "30000");
});

