// Waiting in line, pacing and recovery, seen from the outside: what the mock provider received
// and when, what each caller got, and the events. Short delays from options; nothing is timed
// to pass or fail on speed beyond generous bounds (timers fire late under load, never early).
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import { createRetryFetch, retryReport, isCircuitOpenError } from "llm-retry";
import { T, mockFor, settle, sleep, within, chatInit, gaps } from "./helpers.mjs";

const path = "/v1/chat/completions";
const ofType = (events, type) => events.filter((e) => e.type === type);

describe("waiting in line", () => {
  test("a route's breaker closing wakes the calls waiting in line for it, not those waiting for another's", T, async () => {
    // Two routes open (restored): a until 1 s from now, b until 0.1 s. b's probe succeeds and closes
    // it; b's other calls are woken and served. a's calls, waiting for a, are not woken by it: each
    // is told one wait, and decides nothing more until a's own time comes (a call woken for
    // nothing decides again and tells another wait; with many routes open, as in a provider's
    // outage, every closing woke every waiting call).
    const events = [];
    const sent = [];
    const stub = async (_, init) => (sent.push(JSON.parse(init.body).model), new Response("{}"));
    const f = createRetryFetch({ fetch: stub, maxAttempts: 1, deadlineMs: 5_000, onEvent: (e) => events.push(e) });
    const url = "http://127.0.0.1:9" + path;
    const key = (m) => `http://127.0.0.1:9 ${m}`;
    const now = Date.now();
    f.restoreState({
      version: 1,
      breakers: {
        [key("a")]: { state: "open", failures: 5, openUntil: now + 1_000, cooledUntil: 0 },
        [key("b")]: { state: "open", failures: 5, openUntil: now + 100, cooledUntil: 0 },
      },
    });
    const call = (model) => f(url, { method: "POST", body: JSON.stringify({ model }) });
    const as = Array.from({ length: 5 }, () => call("a"));
    const bs = Array.from({ length: 5 }, () => call("b"));
    for (const r of await Promise.all(bs)) assert.equal(r.status, 200);
    await sleep(50);
    const waitsOf = (model) => ofType(events, "wait").filter((e) => e.model === model);
    assert.ok(Date.now() < now + 900, "b was served well before a's breaker lets a probe through");
    assert.deepEqual(sent, ["b", "b", "b", "b", "b"], "b's probe, then its other calls; nothing on a yet");
    assert.equal(waitsOf("a").length, 5, "each of a's calls told one wait");
    assert.ok(waitsOf("a").every((e) => e.wait === "breaker"));
    for (const r of await Promise.all(as)) assert.equal(r.status, 200);
    assert.deepEqual(sent.slice(5), ["a", "a", "a", "a", "a"]);
  });

  test("calls that find the route cooling after another call's 429 wait for it, then are served", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 429, headers: { "retry-after-ms": "300" } }, { status: 200 }] });
    const events = [];
    const f = createRetryFetch({ onEvent: (e) => events.push(e) });
    const first = f(mock.url + path, chatInit());
    await mock.waitForRequests(1);
    await sleep(20); // the 429 is in: the route cools until 300 ms after it
    const others = Array.from({ length: 5 }, () => f(mock.url + path, chatInit()));
    const all = await Promise.all([first, ...others]);
    assert.deepEqual(all.map((r) => r.status), [200, 200, 200, 200, 200, 200], "every call served");
    assert.equal(mock.requests.length, 7, "one 429, then one request per call");
    const rateLimitedAt = mock.requests[0].t;
    for (const r of mock.requests.slice(1)) {
      assert.ok(r.t - rateLimitedAt >= 295, `a request ${(r.t - rateLimitedAt).toFixed(0)} ms after the 429: inside the cooling`);
    }
    // The waiting calls were told why and for how long; none of them claims a retry.
    const cooling = ofType(events, "wait").filter((e) => e.wait === "cooling");
    assert.equal(cooling.length, 5, JSON.stringify(events));
    assert.ok(cooling.every((e) => e.delayMs > 200 && e.delayMs <= 300), JSON.stringify(cooling));
    assert.equal(ofType(events, "retry").length, 1, "only the rate-limited call retried");
    assert.ok(retryReport(all[1]).attempts[0].waitedMs >= 200, "the report counts the wait in line");
  });

  test("a hint is waited exactly, within the jitter bound — not max(hint, backoff)", T, async (t) => {
    const mock = await mockFor(t, {
      script: [
        { status: 503 },
        { status: 503 },
        { status: 429, headers: { "retry-after-ms": "250" } },
        { status: 200 },
      ],
    });
    // A backoff far longer than the hint: the hint still sets the wait.
    const f = createRetryFetch({ backoff: { initialMs: 10, maxMs: 10, jitter: "none" }, breaker: false });
    const res = await f(mock.url + path, chatInit());
    assert.equal(res.status, 200);
    const g = gaps(mock.requests);
    assert.ok(g[2] >= 249 && g[2] <= 250 + 25 + 60, `waited ${g[2].toFixed(0)} ms for a 250 ms hint`);

    const slow = await mockFor(t, { script: [{ status: 429, headers: { "retry-after-ms": "100" } }, { status: 200 }] });
    const waits = [];
    const g2 = createRetryFetch({ backoff: { initialMs: 5_000, maxMs: 5_000 }, onEvent: (e) => e.type === "wait" && waits.push(e) });
    assert.equal((await g2(slow.url + path, chatInit())).status, 200);
    assert.ok(waits[0].delayMs >= 100 && waits[0].delayMs <= 110, `a 100 ms hint with a 5 s backoff: ${waits[0].delayMs}`);
    assert.equal(waits[0].wait, "retry-after-ms");
    assert.ok(gaps(slow.requests)[0] < 1_000, "the backoff did not set the wait");
  });

  test("an open breaker is waited out: a probe after recovery closes it and the waiting calls are served at once", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }] });
    const events = [];
    const f = createRetryFetch({
      maxAttempts: 1,
      breaker: { failureThreshold: 2, cooldownMs: 150, maxCooldownMs: 150 },
      onEvent: (e) => events.push(e),
    });
    for (let i = 0; i < 2; i++) assert.equal((await f(mock.url + path, chatInit())).status, 503);
    assert.deepEqual(ofType(events, "breaker").map((e) => e.to), ["open"]);
    const waiting = Array.from({ length: 6 }, () => f(mock.url + path, chatInit()));
    await sleep(400); // a probe or two fail meanwhile; each takes its caller's only attempt
    mock.setScript([{ status: 200 }]);
    const results = await within(Promise.all(waiting.map(settle)), 5_000, "waiting calls");
    const served = results.filter((r) => r.ok && r.value.status === 200);
    const probesFailed = results.filter((r) => r.ok && r.value.status === 503).length;
    assert.ok(served.length >= 4, `served ${served.length} of 6 (${probesFailed} were failed probes)`);
    assert.equal(served.length + probesFailed, 6, "no call failed without a request");
    const moves = ofType(events, "breaker").map((e) => `${e.from}→${e.to}`);
    assert.equal(moves.at(-1), "half-open→closed", moves.join(", "));
    // The successful probe is the first 200; the calls waiting behind it went right after it,
    // not a cooldown later.
    const ok = mock.requests.filter((r, i) => i >= 2 && r.t >= mock.requests.find((q) => q.step.status === 200).t);
    const spread = ok.at(-1).t - ok[0].t;
    assert.ok(spread < 100, `the waiting calls followed the probe within ${spread.toFixed(0)} ms`);
    assert.ok(ofType(events, "wait").some((e) => e.wait === "breaker"), "the waits said why");
  });

  test("aborting a call that waits in line rejects at once with the signal's reason, sending nothing", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }] });
    const f = createRetryFetch({ maxAttempts: 1, breaker: { failureThreshold: 1, cooldownMs: 10_000 } });
    assert.equal((await f(mock.url + path, chatInit())).status, 503);
    const controller = new AbortController();
    const reason = new Error("user went away");
    const pending = settle(f(mock.url + path, chatInit({ signal: controller.signal })));
    await sleep(50);
    const abortedAt = performance.now();
    controller.abort(reason);
    const r = await pending;
    assert.equal(r.ok, false);
    assert.equal(r.error, reason, "rejected with signal.reason untouched");
    assert.ok(r.at - abortedAt < 50, `rejected ${(r.at - abortedAt).toFixed(0)} ms after the abort`);
    assert.equal(mock.requests.length, 1, "nothing sent while waiting");
  });

  test("a call that cannot reach any route within its deadline fails fast with CircuitOpenError and retryInMs", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 429, headers: { "retry-after": "5" } }] });
    const f = createRetryFetch({ maxAttempts: 1, deadlineMs: 2_000 });
    assert.equal((await f(mock.url + path, chatInit())).status, 429);
    const r = await settle(f(mock.url + path, chatInit()));
    assert.ok(isCircuitOpenError(r.error), `${r.error}`);
    assert.equal(r.error.reason, "cooling");
    assert.ok(r.error.retryInMs > 4_000 && r.error.retryInMs <= 5_000, `${r.error.retryInMs}`);
    assert.ok(r.ms < 100, "at once");
    assert.equal(mock.requests.length, 1);
  });
});

describe("pacing", () => {
  test("a spent rate limit (from the provider's headers) spaces calls at its refill rate instead of sending them into 429s", T, async (t) => {
    // 10 a burst, none left, full again in 200 ms: one request per ~21 ms.
    const limits = { "x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "200ms" };
    const mock = await mockFor(t, { script: [{ status: 200, headers: limits }] });
    const events = [];
    const f = createRetryFetch({ onEvent: (e) => events.push(e) });
    assert.equal((await f(mock.url + path, chatInit())).status, 200);
    const results = await Promise.all(Array.from({ length: 8 }, () => f(mock.url + path, chatInit())));
    assert.ok(results.every((r) => r.status === 200));
    // Slots are ~20 ms apart. Each arrival carries its own jitter (a timer may fire late, a busy
    // machine delays one request more than the next), so the spread of the eight is checked: sent
    // at once they would arrive within a few ms; paced, over seven slots.
    const [, first, ...rest] = mock.requests;
    const span = rest.at(-1).t - first.t;
    assert.ok(span >= 7 * 20 - 10, `8 calls spread over ${span.toFixed(0)} ms; gaps ${gaps(mock.requests).map((x) => x.toFixed(0))}`);
    rest.forEach((r, i) => assert.ok(r.t - first.t >= (i + 1) * 20 - 12, `gaps ${gaps(mock.requests).map((x) => x.toFixed(0))}`));
    assert.ok(ofType(events, "wait").filter((e) => e.wait === "pacing").length >= 7, "the calls waited for their slots");
  });

  test("one client pacing two providers reads each one's rate-limit headers, whichever it saw last", T, async (t) => {
    // Both spent, 100 a burst, whole again in 2 s: one request per ~20 ms on each route.
    const openai = await mockFor(t, {
      script: [{ status: 200, headers: { "x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s" } }],
    });
    const reset = new Date(Date.now() + 2_000).toISOString();
    const anthropic = await mockFor(t, {
      script: [{ status: 200, headers: { "anthropic-ratelimit-requests-limit": "100", "anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": reset } }],
    });
    const f = createRetryFetch();
    // OpenAI's headers, then Anthropic's, then OpenAI's again: each read after the other family.
    for (const mock of [openai, anthropic, openai]) assert.equal((await f(mock.url + path, chatInit())).status, 200);
    const burst = (mock) => Array.from({ length: 5 }, () => f(mock.url + path, chatInit()));
    const results = await Promise.all([...burst(openai), ...burst(anthropic)]);
    assert.ok(results.every((r) => r.status === 200));
    for (const mock of [openai, anthropic]) {
      const sent = mock.requests.slice(-5);
      const span = sent.at(-1).t - sent[0].t;
      assert.ok(span >= 4 * 20 - 10, `5 calls to one provider spread over ${span.toFixed(0)} ms; gaps ${gaps(sent).map((x) => x.toFixed(0))}`);
    }
  });

  test("a provider without rate-limit headers, offered twice its rate: its 429s pause the line, and the calls go at the rate it serves", T, async (t) => {
    // 50 a second, a burst of 10, no x-ratelimit headers; over it a 429 asking for 200 ms.
    // 100 calls over a second. Each 429 that pauses the route teaches the rate at once, and
    // the calls waiting keep their places through the pause (the build before: 12 429s, the
    // calls that waited out a pause sent together at its end).
    const mock = await mockFor(t, { limit: { rate: 50, burst: 10, headers: false, retryAfterMs: 200 } });
    const f = createRetryFetch({ deadlineMs: 20_000 });
    const calls = [];
    for (let i = 0; i < 100; i++) {
      calls.push(f(mock.url + path, chatInit()).then(async (r) => (await r.arrayBuffer(), r.status)));
      await sleep(10);
    }
    const statuses = await Promise.all(calls);
    assert.equal(statuses.filter((s) => s === 200).length, 100, "every call served");
    const refused = mock.requests.filter((r) => r.step.status === 429).length;
    assert.ok(refused <= 5, `${refused} 429s in ${mock.requests.length} requests`);
    assert.equal(mock.requests.length, 100 + refused);
  });

  test("a spent token limit holds the next call until its reset; one with tokens left does not", T, async (t) => {
    // Only the token limits speak: no request limit to pace by, so a hold is the token reset's.
    const inMs = (ms) => new Date(Date.now() + ms).toISOString();
    const cases = [
      ["OpenAI, tokens spent", true, () => ({ "x-ratelimit-remaining-requests": "999", "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "300ms" })],
      ["OpenAI, tokens left", false, () => ({ "x-ratelimit-remaining-requests": "999", "x-ratelimit-remaining-tokens": "12", "x-ratelimit-reset-tokens": "300ms" })],
      ["Anthropic, output tokens spent", true, () => ({
        "anthropic-ratelimit-requests-remaining": "50", "anthropic-ratelimit-tokens-remaining": "9000",
        "anthropic-ratelimit-tokens-reset": inMs(5_000), "anthropic-ratelimit-output-tokens-remaining": "0.0",
        "anthropic-ratelimit-output-tokens-reset": inMs(300),
      })],
      ["Anthropic, output tokens left", false, () => ({
        "anthropic-ratelimit-requests-remaining": "50", "anthropic-ratelimit-output-tokens-remaining": "10",
        "anthropic-ratelimit-output-tokens-reset": inMs(300),
      })],
    ];
    for (const [name, held, headers] of cases) {
      const mock = await mockFor(t, { script: [{ status: 200, headers: headers() }, { status: 200 }] });
      const f = createRetryFetch();
      assert.equal((await f(mock.url + path, chatInit())).status, 200, name);
      assert.equal((await f(mock.url + path, chatInit())).status, 200, name);
      const [gap] = gaps(mock.requests);
      if (held) assert.ok(gap >= 250, `${name}: the next call sent ${gap.toFixed(0)} ms after, not held to the reset`);
      else assert.ok(gap < 200, `${name}: the next call held ${gap.toFixed(0)} ms`);
    }
  });

  test("a provider that starts sending rate-limit headers after 100 responses without is paced by them within 8 calls", T, async (t) => {
    // A route whose responses bring no rate-limit headers has them looked for on one in 8 once
    // 64 in a row had none (each lookup costs the host); this one's limit then runs out.
    const mock = await mockFor(t, { script: [{ status: 200 }] });
    const f = createRetryFetch();
    for (let i = 0; i < 100; i++) assert.equal((await f(mock.url + path, chatInit())).status, 200);
    // 10 a burst, none left, full again in 200 ms: one request per ~21 ms.
    const limits = { "x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "200ms" };
    mock.setScript([{ status: 200, headers: limits }]);
    for (let i = 0; i < 8; i++) assert.equal((await f(mock.url + path, chatInit())).status, 200);
    const from = mock.requests.length;
    const results = await Promise.all(Array.from({ length: 8 }, () => f(mock.url + path, chatInit())));
    assert.ok(results.every((r) => r.status === 200));
    const sent = mock.requests.slice(from);
    const span = sent.at(-1).t - sent[0].t;
    assert.ok(span >= 7 * 20 - 10, `8 calls spread over ${span.toFixed(0)} ms; gaps ${gaps(sent).map((x) => x.toFixed(0))}`);
  });

  test("a response's rate-limit headers are looked for on every call at first, on one in 8 after 64 without, and never with pacing: false", T, async () => {
    // What the transport's responses were asked: each rate-limit name looked up, per call; a
    // JSON answer and an event stream (read up to its first token, then its headers) alike.
    const content = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: "hi" }, finish_reason: null }] })}\n\ndata: [DONE]\n\n`;
    for (const type of ["application/json", "text/event-stream"]) {
      const lookups = [];
      const transport = async () => {
        const res = new Response(type === "application/json" ? "{}" : content, { status: 200, headers: { "content-type": type } });
        const get = res.headers.get.bind(res.headers);
        let n = 0;
        res.headers.get = (name) => ((n += /ratelimit/.test(name) ? 1 : 0), get(name));
        lookups.push(() => n);
        return res;
      };
      const looked = () => lookups.splice(0).map((n) => n() > 0);
      const call = async (f) => {
        const res = await f("http://127.0.0.1:9" + path, chatInit());
        assert.equal(res.status, 200, type);
        if (type !== "application/json") assert.equal(await res.text(), content, "the stream as it came");
      };
      const f = createRetryFetch({ fetch: transport });
      for (let i = 0; i < 88; i++) await call(f);
      const all = looked();
      assert.ok(all.slice(0, 64).every(Boolean), `${type}: each of the first 64 responses was read`);
      assert.deepEqual(all.slice(64).map((l, i) => (l ? i : -1)).filter((i) => i >= 0), [0, 8, 16], `${type}: then one in 8`);
      const off = createRetryFetch({ fetch: transport, pacing: false });
      for (let i = 0; i < 5; i++) await call(off);
      assert.deepEqual(looked(), [false, false, false, false, false], `${type}: pacing off: never`);
    }
  });

  test("a provider's rate-limit headers are read on one response in 8 while its count leaves plenty, and on each while it does not", T, async () => {
    const plenty = { "x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-requests": "9000", "x-ratelimit-reset-requests": "6s" };
    const halfUsed = { ...plenty, "x-ratelimit-remaining-requests": "4000", "x-ratelimit-reset-requests": "36s" };
    let headers = plenty;
    const lookups = [];
    const transport = async () => {
      const res = new Response("{}", { status: 200, headers: { "content-type": "application/json", ...headers } });
      const get = res.headers.get.bind(res.headers);
      let n = 0;
      res.headers.get = (name) => ((n += /ratelimit/.test(name) ? 1 : 0), get(name));
      lookups.push(() => n);
      return res;
    };
    const read = () => lookups.splice(0).flatMap((n, i) => (n() > 0 ? [i] : []));
    const f = createRetryFetch({ fetch: transport });
    for (let i = 0; i < 24; i++) assert.equal((await f("http://127.0.0.1:9" + path, chatInit())).status, 200);
    assert.deepEqual(read(), [0, 8, 16], "plenty left: the first response, then one in 8");
    headers = halfUsed;
    for (let i = 0; i < 16; i++) assert.equal((await f("http://127.0.0.1:9" + path, chatInit())).status, 200);
    assert.deepEqual(read(), [0, ...Array.from({ length: 15 }, (_, i) => i + 1)], "more than half used: read at its turn, then every one");
  });

  test("pacing: false sends at once", T, async (t) => {
    const limits = { "x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s" };
    const mock = await mockFor(t, { script: [{ status: 200, headers: limits }] });
    const f = createRetryFetch({ pacing: false });
    await f(mock.url + path, chatInit());
    const r = await settle(Promise.all(Array.from({ length: 5 }, () => f(mock.url + path, chatInit()))));
    assert.ok(r.ok && r.ms < 500, `${r.ms} ms`);
    assert.equal(mock.requests.length, 6);
  });
});
