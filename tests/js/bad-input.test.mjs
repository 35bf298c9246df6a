// Bad input gets a TypeError or RangeError naming what was wrong — never a panic, which would
// surface as a WebAssembly.RuntimeError and abort the instance for every caller in the isolate.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRetryFetch, retry, createRetry, retryReport } from "llm-retry";
import { T, mockFor } from "./helpers.mjs";

const junk = [
  undefined, null, true, 0, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 1e308, "", "3", "x".repeat(10_000),
  [], [1, "a"], {}, { a: 1 }, () => {}, Symbol("s"), 10n, new Date(0), new Map(), Object.create(null),
  new Proxy({}, { get() { throw new Error("trap"); }, ownKeys() { throw new Error("trap"); } }),
];
const paths = [
  "maxAttempts", "deadlineMs", "attemptTimeoutMs", "maxRetryAfterMs", "idempotent", "retryOn", "fetch", "onEvent",
  "onExhausted", "sensitiveHeaders", "fallbacks", "budget", "breaker", "backoff", "signal",
  "backoff.initialMs", "backoff.maxMs", "backoff.multiplier", "backoff.jitter",
  "budget.maxTokens", "budget.tokenRatio", "breaker.failureThreshold", "breaker.cooldownMs",
  "fallbacks.0", "fallbacks.0.model", "fallbacks.0.url", "fallbacks.0.headers", "fallbacks.0.maxAttempts",
];

function optionsWith(path, value) {
  const keys = path.split(".");
  const root = {};
  let o = root;
  for (const k of keys.slice(0, -1)) o = o[k] = /^\d+$/.test(keys[keys.indexOf(k) + 1] ?? "") ? [] : {};
  o[keys.at(-1)] = value;
  return root;
}

function describe(v) {
  try {
    return typeof v === "symbol" ? "symbol" : String(v).slice(0, 20);
  } catch {
    return typeof v;
  }
}

function expectCleanError(e, what) {
  assert.ok(!(e instanceof WebAssembly.RuntimeError), `${what}: panicked (${e})`);
  assert.ok(e instanceof TypeError || e instanceof RangeError || e?.message === "trap", `${what}: ${e?.name}: ${e?.message}`);
}

test("every option with every kind of junk: a clean TypeError/RangeError or success", T, () => {
  let errors = 0;
  for (const path of paths) {
    for (const value of junk) {
      const what = `${path} = ${describe(value)}`;
      try {
        createRetryFetch(optionsWith(path, value));
      } catch (e) {
        errors++;
        expectCleanError(e, what);
        if (!(e?.message === "trap")) assert.match(e.message, new RegExp(path.split(".")[0]), `${what}: names the option`);
      }
    }
    for (const value of junk) {
      try {
        createRetryFetch(value);
      } catch (e) {
        expectCleanError(e, `options = ${typeof value}`);
      }
    }
  }
  assert.ok(errors > paths.length * 10, "most junk is refused");
});

test("what fetch would reject is rejected at once with a TypeError, sending nothing", T, async (t) => {
  const mock = await mockFor(t, { script: [{ status: 200 }] });
  const retryFetch = createRetryFetch({ backoff: { initialMs: 1000 } });
  const url = `${mock.url}/v1/chat/completions`;
  for (const [input, init] of [
    [undefined, undefined], [5, {}], [{}, {}], ["not a url", {}], [url, 5],
    [url, { headers: 5 }], [url, { headers: { "bad header": "x" } }],
    [url, { method: "GET", body: "x" }], [url, { method: "get", body: "x" }], [url, { method: "HEAD", body: "x" }],
    [url, { method: "CONNECT" }], [url, { method: "PO ST" }], [url, { signal: "no" }],
    // Header values fetch refuses: a line break, a NUL, a character above U+00FF.
    [url, { headers: { "x-a": "a\nb" } }], [url, { headers: { "x-a": "a\u0000b" } }],
    [url, { headers: { authorization: "Bearer \u0100" } }],
  ]) {
    const started = performance.now();
    const e = await retryFetch(input, init).then(() => null, (e) => e);
    const what = `retryFetch(${describe(input)}, ${JSON.stringify(init)})`;
    assert.ok(e instanceof TypeError, `${what}: ${e?.name}: ${e?.message}`);
    assert.ok(performance.now() - started < 500, `${what}: at once, not after retries`);
  }
  assert.equal(mock.requests.length, 0);
  // Still alive after all that:
  const res = await retryFetch(url, { method: "POST", body: "{}" });
  assert.equal(res.status, 200);
});

test("a header value fetch refuses is named in the error, never quoted (it may be a key)", T, async () => {
  const retryFetch = createRetryFetch({ fetch: async () => new Response("{}") });
  const secret = "sk-live-0123456789";
  for (const headers of [
    { authorization: `Bearer ${secret}\u0000x` },
    { "x-api-key": `${secret}\nx-evil: 1` },
    [["x-a", "b"], ["authorization", `Bearer ${secret}\r\nx`]],
  ]) {
    const e = await retryFetch("https://api.example/v1/chat/completions", { method: "POST", body: "{}", headers }).then(() => null, (e) => e);
    assert.ok(e instanceof TypeError, `${e}`);
    assert.ok(!`${e.message} ${e.cause ?? ""}`.includes(secret), e.message);
    assert.match(e.message, /init\.headers: the value of "(authorization|x-api-key)"/);
  }
});

test("sensitiveHeaders and fallback URLs fetch could never use are refused when the client is made", () => {
  for (const [options, pattern] of [
    [{ sensitiveHeaders: ["x api key"] }, /^sensitiveHeaders\[0\] must be a header name/],
    [{ sensitiveHeaders: ["x-ok", ""] }, /^sensitiveHeaders\[1\] must be a header name/],
    [{ fallbacks: [{ url: "ftp://backup.example/v1" }] }, /^fallbacks\[0\]\.url must be an http: or https: URL/],
    [{ fallbacks: [{ model: "m" }, { url: "https://user:hunter2@backup.example/v1" }] }, /^fallbacks\[1\]\.url may not include credentials/],
  ]) {
    assert.throws(() => createRetryFetch(options), (e) => e instanceof TypeError && pattern.test(e.message) && !e.message.includes("hunter2"), JSON.stringify(options));
  }
});

test("a number out of range is printed in the message as given, however large or small", () => {
  for (const [options, shown] of [
    [{ backoff: { multiplier: 1e20 } }, "(got 1e+20)"],
    [{ backoff: { multiplier: 100.0000001 } }, "(got 100.0000001)"],
    [{ budget: { maxTokens: 1e30 } }, "(got 1e+30)"],
    [{ budget: { maxTokens: 10, tokenRatio: -1e-10 } }, "(got -1e-10)"],
  ]) {
    assert.throws(() => createRetryFetch(options), (e) => e instanceof RangeError && e.message.endsWith(shown), JSON.stringify(options));
  }
});

test("what Node's fetch refuses only as it sends ends the call at once with fetch's own error", T, async (t) => {
  const mock = await mockFor(t, { script: [{ status: 200 }] });
  const url = `${mock.url}/v1/chat/completions`;
  // undici takes a DEL or a control character into a Request, then rejects the send ("fetch
  // failed", cause InvalidArgumentError): raw fetch fails at once, and so must a retryFetch.
  for (const value of ["a\x7fb", "a\x01b"]) {
    const init = { method: "POST", body: "{}", headers: { "x-a": value } };
    const raw = await fetch(url, init).then(() => null, (e) => e);
    // The first attempt's path, and the driver's (an attempt timeout takes it).
    for (const options of [{}, { attemptTimeoutMs: 5_000 }]) {
      let sends = 0;
      const retryFetch = createRetryFetch({ ...options, backoff: { initialMs: 1000 }, fetch: (u, i) => (sends++, fetch(u, i)) });
      const started = performance.now();
      const e = await retryFetch(url, init).then(() => null, (e) => e);
      const what = `${JSON.stringify(value)} with ${JSON.stringify(options)}`;
      assert.ok(e instanceof TypeError, `${what}: ${e?.name}: ${e?.message}`);
      assert.equal(e.cause?.code, raw.cause.code, what);
      assert.equal(sends, 1, `${what}: not retried`);
      assert.ok(performance.now() - started < 500, `${what}: at once`);
    }
  }
  assert.equal(mock.requests.length, 0);
});

test("a refused request that held a half-open breaker's probe gives it back at once", T, async (t) => {
  // The first attempt's path, and the driver's (an attempt timeout takes it).
  for (const options of [{}, { attemptTimeoutMs: 5_000 }]) {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }] });
    const url = `${mock.url}/v1/chat/completions`;
    const retryFetch = createRetryFetch({ ...options, maxAttempts: 1, breaker: { failureThreshold: 1, cooldownMs: 300 } });
    assert.equal((await retryFetch(url, { method: "POST", body: "{}" })).status, 503);
    const states = () => Object.values(retryFetch.exportState().breakers).map((b) => b.state);
    assert.deepEqual(states(), ["open"]);
    await new Promise((r) => setTimeout(r, 350)); // past the cooldown: the next call is its probe
    const refused = await retryFetch(url, { method: "POST", body: "{}", headers: { "x-a": "a\x7fb" } }).then(() => null, (e) => e);
    assert.ok(refused instanceof TypeError, String(refused));
    // The probe was given back: the next call is admitted now, not a cooldown later.
    const res = await retryFetch(url, { method: "POST", body: "{}", retry: { deadlineMs: 200 } });
    assert.equal(res.status, 200, JSON.stringify(options));
    assert.equal(mock.requests.length, 2);
  }
});

test("methods and header values fetch takes are sent as given", T, async (t) => {
  const mock = await mockFor(t, { script: [{ status: 200 }] });
  const retryFetch = createRetryFetch();
  const url = `${mock.url}/v1/chat/completions`;
  const sent = [];
  for (const init of [
    { method: "post", body: "{}" }, { method: "PATCH", body: "{}" }, { method: "DELETE" },
    // Latin-1 and a tab pass as they are.
    { method: "POST", body: "{}", headers: { "x-a": "caf\u00e9\tb", "x-b": "a b" } },
  ]) {
    const res = await retryFetch(url, init);
    assert.equal(res.status, 200, JSON.stringify(init));
    sent.push(mock.requests.at(-1));
  }
  assert.deepEqual(sent.map((r) => r.method), ["POST", "PATCH", "DELETE", "POST"]);
  assert.equal(sent[3].headers["x-a"], "caf\u00e9\tb");
  assert.equal(sent[3].headers["x-b"], "a b");
});

test("junk to the other entry points: clean TypeErrors", T, async () => {
  for (const fn of [undefined, 5, "f", {}]) {
    await assert.rejects(retry(fn), TypeError);
  }
  const retryFetch = createRetryFetch();
  for (const state of [
    5, null, { breakers: 5 }, { breakers: { k: { state: "ajar" } } }, { breakers: { k: null } },
    { version: 2, breakers: {} }, { breakers: { k: { state: "open", openUntil: "9999999999999" } } },
    { breakers: { k: { state: "closed", failures: -1 } } }, { breakers: { k: { state: "open", cooledUntil: NaN } } },
  ]) {
    assert.throws(() => retryFetch.restoreState(state), TypeError, JSON.stringify(state));
  }
  // What exportState gives, and a state with the numbers left out, are taken.
  retryFetch.restoreState(retryFetch.exportState());
  retryFetch.restoreState({ breakers: { "https://api.example gpt-4o": { state: "closed" } } });
  assert.throws(() => createRetryFetch({ fallbacks: [{ url: "/relative" }] }), /fallbacks\[0\]\.url must be an absolute URL/);
  assert.equal(retryReport(5), undefined);
  assert.equal(retryReport({}), undefined);
  assert.equal(typeof createRetry(), "function");
});
