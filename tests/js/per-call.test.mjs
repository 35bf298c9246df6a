// One call's own options (`init.retry` of a retryFetch call, the SDKs' per-request fetchOptions,
// a createRetry call's second argument), and telling calls apart: `callId` on every event, an
// `attempt` event per request sent, `id` in the report.
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import OpenAI from "openai";
import { createRetryFetch, createRetry, retryReport, isRetryError } from "llm-retry";
import { FAST, T, mockFor, settle, chatInit } from "./helpers.mjs";

const chat = "/v1/chat/completions";

describe("init.retry: one call's own options", () => {
  test("maxAttempts: 1 for one call; the client's next call retries as configured", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 503 }, { status: 200 }] });
    const f = createRetryFetch({ maxAttempts: 4, backoff: FAST });
    const once = await f(mock.url + chat, { ...chatInit(), retry: { maxAttempts: 1 } });
    assert.equal(once.status, 503);
    assert.equal(mock.requests.length, 1, "one request for the call that said maxAttempts: 1");
    const again = await f(mock.url + chat, chatInit());
    assert.equal(again.status, 200);
    assert.equal(mock.requests.length, 3, "the next call retried: 503, then 200");
  });

  test("retry: false → one request, no fallback", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }] });
    const f = createRetryFetch({ backoff: FAST, fallbacks: [{ model: "backup" }] });
    const res = await f(mock.url + chat, { ...chatInit(), retry: false });
    assert.equal(res.status, 503);
    assert.equal(mock.requests.length, 1);
    assert.deepEqual(retryReport(res).attempts.map((a) => a.status), [503]);
  });

  test("fallbacks: false turns the client's fallbacks off; an array replaces them", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 503 }, { status: 200 }] });
    const f = createRetryFetch({ maxAttempts: 2, backoff: FAST, fallbacks: [{ model: "client-backup" }] });
    const off = await f(mock.url + chat, { ...chatInit(), retry: { fallbacks: false } });
    assert.equal(off.status, 503);
    assert.deepEqual(mock.requests.map((r) => r.json.model), ["gpt-4o-mini", "gpt-4o-mini"], "no fallback request");

    mock.setScript([{ status: 503 }, { status: 503 }, { status: 200 }]);
    const swapped = await f(mock.url + chat, { ...chatInit(), retry: { fallbacks: [{ model: "call-backup", maxAttempts: 1 }] } });
    assert.equal(swapped.status, 200);
    assert.deepEqual(mock.requests.slice(2).map((r) => r.json.model), ["gpt-4o-mini", "gpt-4o-mini", "call-backup"]);
    assert.equal(retryReport(swapped).model, "call-backup");
  });

  test("deadlineMs bounds this call only, the attempt in flight included", T, async (t) => {
    const mock = await mockFor(t, { script: [{ hang: true }] });
    const f = createRetryFetch({ backoff: FAST });
    const r = await settle(() => f(mock.url + chat, { ...chatInit(), retry: { deadlineMs: 300 } }));
    assert.equal(r.ok, false);
    assert.ok(isRetryError(r.error), `${r.error}`);
    assert.equal(r.error.reason, "deadline");
    assert.ok(r.ms >= 250 && r.ms < 1_500, `settled after ${r.ms.toFixed(0)} ms`);
  });

  test("attemptTimeoutMs with idempotent: true retries a hung POST", T, async (t) => {
    const mock = await mockFor(t, { script: [{ hang: true }, { status: 200 }] });
    const f = createRetryFetch({ backoff: FAST });
    const res = await f(mock.url + chat, { ...chatInit(), retry: { attemptTimeoutMs: 150, idempotent: true } });
    assert.equal(res.status, 200);
    assert.equal(mock.requests.length, 2);
    // Without them, the client's defaults: the same hang is not cut (no attempt timeout).
  });

  test("the retry key is ours: the transport never sees it", T, async (t) => {
    const seen = [];
    const f = createRetryFetch({
      fetch: async (url, init) => {
        seen.push(Object.keys(init));
        return new Response("{}", { status: 200 });
      },
    });
    await f("https://api.example.test/v1/chat/completions", { ...chatInit(), retry: { maxAttempts: 2 } });
    assert.equal(seen.length, 1);
    assert.ok(!seen[0].includes("retry"), `init keys sent: ${seen[0]}`);
  });

  test("a bad per-call option rejects with a TypeError or RangeError naming it; nothing is sent", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 200 }] });
    const f = createRetryFetch();
    const cases = [
      [{ maxAtempts: 2 }, TypeError, /unknown option init\.retry\.maxAtempts \(did you mean init\.retry\.maxAttempts\?\)/],
      [{ maxAttempts: 0 }, RangeError, /init\.retry\.maxAttempts must be between 1 and 100 \(got 0\)/],
      [{ deadlineMs: "5s" }, TypeError, /init\.retry\.deadlineMs must be a number \(got string "5s"\)/],
      [{ fallbacks: {} }, TypeError, /init\.retry\.fallbacks must be an array of routes or false/],
      [{ fallbacks: [{ url: "nope" }] }, TypeError, /init\.retry\.fallbacks\[0\]\.url must be an absolute URL/],
      [{ backoff: {} }, TypeError, /unknown option init\.retry\.backoff/],
      [5, TypeError, /init\.retry must be an object or false \(got number 5\)/],
    ];
    for (const [retry, Class, message] of cases) {
      const r = await settle(f(mock.url + chat, { ...chatInit(), retry }));
      assert.equal(r.ok, false, JSON.stringify(retry));
      assert.ok(r.error instanceof Class, `${JSON.stringify(retry)}: ${r.error}`);
      assert.match(r.error.message, message);
    }
    assert.equal(mock.requests.length, 0);
  });

  test("through the openai SDK's per-request fetchOptions", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }] });
    const client = new OpenAI({ apiKey: "sk-test", baseURL: mock.url + "/v1", maxRetries: 0, fetch: createRetryFetch({ backoff: FAST }) });
    const body = { model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] };
    const r = await settle(client.chat.completions.create(body, { fetchOptions: { retry: { maxAttempts: 1 } } }));
    assert.equal(r.ok, false);
    assert.equal(r.error.status, 503, "the one 503, raised by the SDK");
    assert.equal(mock.requests.length, 1);

    mock.setScript([{ status: 503 }, { status: 200 }]);
    const ok = await client.chat.completions.create(body);
    assert.equal(ok.choices[0].message.content, "ok");
    assert.equal(mock.requests.length, 3, "a request without fetchOptions is retried");
  });
});

describe("createRetry: one call's own options", () => {
  test("run(fn, { maxAttempts }) overrides the client's attempts for that call", T, async () => {
    const run = createRetry({ maxAttempts: 3, backoff: FAST });
    const failing = () => Object.assign(new Error("busy"), { status: 503 });
    let calls = 0;
    const r = await settle(run(() => { calls++; throw failing(); }, { maxAttempts: 1 }));
    assert.equal(r.ok, false);
    assert.equal(r.error.status, 503);
    assert.equal(calls, 1);
    calls = 0;
    await settle(run(() => { calls++; throw failing(); }));
    assert.equal(calls, 3, "the client's own maxAttempts");
  });

  test("run(fn, { fallbacks }) hands fn the call's routes", T, async () => {
    const run = createRetry({ maxAttempts: 1, backoff: FAST, fallbacks: [{ model: "client" }] });
    const models = [];
    const v = await run(({ route }) => {
      models.push(route.model);
      if (route.index === 0) throw Object.assign(new Error("busy"), { status: 503 });
      return "served";
    }, { fallbacks: [{ model: "per-call" }] });
    assert.equal(v, "served");
    assert.deepEqual(models, [undefined, "per-call"]);
  });

  test("a bad option or signal names it", async () => {
    const run = createRetry();
    await assert.rejects(run(() => 1, { maxAttempts: 500 }), { name: "RangeError", message: /options\.maxAttempts must be between 1 and 100/ });
    await assert.rejects(run(() => 1, { signal: "x" }), { name: "TypeError", message: /signal must be an AbortSignal/ });
    await assert.rejects(run(() => 1, 7), { name: "TypeError", message: /options must be an object/ });
  });
});

describe("telling calls apart", () => {
  test("concurrent calls: every event carries its call's id, each request an attempt event, the report the id", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }], exhausted: "cycle" });
    const events = [];
    const f = createRetryFetch({ backoff: FAST, onEvent: (e) => events.push(e) });
    const [a, b] = await Promise.all([f(mock.url + chat, chatInit()), f(mock.url + chat, chatInit())]);
    const [ra, rb] = [retryReport(a), retryReport(b)];
    assert.notEqual(ra.id, rb.id, "distinct ids");
    assert.ok(events.every((e) => e.callId === ra.id || e.callId === rb.id), "every event names one of the two calls");
    for (const r of [ra, rb]) {
      const mine = events.filter((e) => e.callId === r.id);
      const attempts = mine.filter((e) => e.type === "attempt");
      assert.deepEqual(attempts.map((e) => [e.attempt, e.route, e.model]), r.attempts.map((x, i) => [i + 1, x.route, x.model]), "one attempt event per request");
      assert.equal(mine.at(-1).type, "success");
    }
    assert.equal(events.filter((e) => e.type === "attempt").length, mock.requests.length, "as many attempt events as requests");
  });

  test("an attempt event is the last before its request leaves", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }] });
    const log = [];
    const f = createRetryFetch({ backoff: FAST, onEvent: (e) => log.push(`${e.type}:${mock.requests.length}`) });
    await f(mock.url + chat, chatInit());
    assert.deepEqual(log.filter((l) => !l.startsWith("breaker")), ["attempt:0", "wait:1", "retry:1", "attempt:1", "success:2"]);
  });
});
