// retry(fn) — the SDK-agnostic form: classification from thrown errors shaped like the OpenAI /
// Anthropic SDKs' (status, headers, error.code), wait hints, and pass-through of results.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";

import { retry, retryReport, RetryError, isRetryError } from "llm-retry";
import { T, settle, within } from "./helpers.mjs";

// Backoff tiny enough that any gap ≥ 30 ms can only come from a server hint.
const TINY = { initialMs: 1, maxMs: 5 };
const SLACK = 5;

function sdkError(message, status, extra = {}) {
  return Object.assign(new Error(message), { status, ...extra });
}

describe("retry(fn)", () => {
  test("fn gets attempt 1,2,3 and a signal; retry-after-ms hint honoured; resolves 'done'", T, async () => {
    const calls = [];
    const result = await retry(
      (ctx) => {
        calls.push({ attempt: ctx.attempt, signal: ctx.signal, t: performance.now() });
        if (calls.length <= 2) throw sdkError("rate", 429, { headers: { "retry-after-ms": "30" } });
        return "done";
      },
      { backoff: TINY },
    );
    assert.equal(result, "done");
    assert.equal(calls.length, 3);
    assert.deepEqual(
      calls.map((c) => c.attempt),
      [1, 2, 3],
    );
    for (const c of calls) {
      assert.ok(c.signal instanceof AbortSignal, "ctx.signal is an AbortSignal");
      assert.equal(c.signal.aborted, false);
    }
    const gap1 = calls[1].t - calls[0].t;
    const gap2 = calls[2].t - calls[1].t;
    assert.ok(gap1 >= 30 - SLACK, `gap1 ${gap1.toFixed(1)} ms ≥ retry-after-ms 30`);
    assert.ok(gap2 >= 30 - SLACK, `gap2 ${gap2.toFixed(1)} ms ≥ retry-after-ms 30`);
  });

  test("headers as a Headers instance (OpenAI SDK v5 APIError) are read too", T, async () => {
    const times = [];
    const result = await retry(
      () => {
        times.push(performance.now());
        if (times.length === 1) throw sdkError("rate", 429, { headers: new Headers({ "retry-after-ms": "30" }) });
        return "done";
      },
      { backoff: TINY },
    );
    assert.equal(result, "done");
    assert.equal(times.length, 2);
    assert.ok(times[1] - times[0] >= 30 - SLACK, `gap ${(times[1] - times[0]).toFixed(1)} ms ≥ 30`);
  });

  /** retry() over an fn that always throws `err`: how it settled and how often fn ran. */
  async function alwaysThrowing(err) {
    let calls = 0;
    const r = await settle(
      retry(
        () => {
          calls++;
          throw err;
        },
        { backoff: TINY },
      ),
    );
    return { ...r, calls };
  }

  test("status 400 → rethrown untouched at once, 1 call", T, async () => {
    const err = sdkError("bad request", 400);
    const r = await alwaysThrowing(err);
    assert.equal(r.ok, false);
    assert.equal(r.error, err, "the very same error object");
    assert.equal(r.calls, 1);
  });

  const quotaCases = {
    "nested error.code": () => sdkError("quota", 429, { error: { code: "insufficient_quota", type: "insufficient_quota" } }),
    "top-level code, as OpenAI's APIError": () =>
      sdkError("quota", 429, {
        code: "insufficient_quota",
        type: "insufficient_quota",
        error: { message: "You exceeded your current quota", code: "insufficient_quota" },
      }),
    "only a top-level code": () => sdkError("quota", 429, { code: "insufficient_quota" }),
  };
  for (const [name, make] of Object.entries(quotaCases)) {
    test(`429 insufficient_quota (${name}) → 1 call, the original error surfaces`, T, async () => {
      const err = make();
      const r = await alwaysThrowing(err);
      assert.equal(r.ok, false);
      assert.equal(r.calls, 1);
      assert.equal(r.error, err, "the quota error itself");
    });
  }

  test("non-retryable errors other than 400 (insufficient_quota, 401, 403, 404) are rethrown untouched too", T, async () => {
    // index.d.ts: an HTTP error is rethrown untouched.
    const cases = [
      quotaCases["nested error.code"](),
      sdkError("unauthorized", 401),
      sdkError("forbidden", 403),
      sdkError("not found", 404),
    ];
    const wrongly = [];
    for (const err of cases) {
      const r = await alwaysThrowing(err);
      assert.equal(r.calls, 1, `status ${err.status}: 1 call`);
      if (r.error !== err) wrongly.push(`${err.status} ${err.message} → ${r.error?.name}: ${r.error?.message}`);
    }
    assert.deepEqual(wrongly, [], "these came back wrapped instead of untouched");
  });

  test("TypeError('fetch failed') → retried", T, async () => {
    let calls = 0;
    const result = await retry(
      () => {
        calls++;
        if (calls === 1) throw new TypeError("fetch failed");
        return "ok";
      },
      { backoff: TINY },
    );
    assert.equal(result, "ok");
    assert.equal(calls, 2);
  });

  test("errors sorted by shape: network errors retried, timeouts only when idempotent, the rest rethrown", T, async () => {
    const named = (name) => Object.assign(new Error("x"), { name });
    const coded = (code) => Object.assign(new Error("x"), { code });
    const hostile = new Proxy({}, { get() { throw new Error("no reading me"); } });
    const cases = [
      ["code ECONNRESET (Node socket)", coded("ECONNRESET"), 2],
      ["cause.code ENOTFOUND", Object.assign(new Error("x"), { cause: { code: "ENOTFOUND" } }), 2],
      ["name APIConnectionError (SDK)", named("APIConnectionError"), 2],
      // The OpenAI SDK's classes leave `name` as "Error": known by the class's own name.
      ["class APIConnectionError (OpenAI SDK)", new (class APIConnectionError extends Error {})("Connection error."), 2],
      ["TypeError 'NetworkError when attempting to fetch resource.' (Firefox)", new TypeError("NetworkError when attempting to fetch resource."), 2],
      ["name APIConnectionTimeoutError (SDK)", named("APIConnectionTimeoutError"), 1],
      ["class APIConnectionTimeoutError (OpenAI SDK)", new (class APIConnectionTimeoutError extends Error {})("Request timed out."), 1],
      ["code UND_ERR_CONNECT_TIMEOUT (undici)", coded("UND_ERR_CONNECT_TIMEOUT"), 1],
      ["a TypeError of another kind", new TypeError("x is not a function"), 1],
      ["a Proxy that throws on every read", hostile, 1],
      ["a string", "boom", 1],
    ];
    const calls = async (thrown, options) => {
      let n = 0;
      const r = await settle(retry(() => (++n === 1 ? Promise.reject(thrown) : "ok"), { backoff: TINY, ...options }));
      return { n, result: r.ok ? r.value : r.error };
    };
    for (const [title, thrown, expected] of cases) {
      const { n, result } = await calls(thrown);
      assert.equal(n, expected, `${title}: ${n} calls`);
      if (expected === 1 && !/Timeout|TIMEOUT/.test(title)) assert.equal(result, thrown, `${title}: rethrown untouched`);
    }
    for (const [title, thrown] of cases.filter(([title]) => /Timeout|TIMEOUT/.test(title))) {
      const { result } = await calls(thrown);
      assert.equal(result.name, "RetryError", `${title}: ${result}`);
      assert.equal(result.reason, "timeout-not-idempotent");
      assert.equal((await calls(thrown, { idempotent: true })).n, 2, `${title} with idempotent: true is retried`);
    }
  });

  test("the Vercel AI SDK's APICallError (statusCode, responseHeaders, responseBody) is classified as an HTTP error", T, async () => {
    const apiCallError = (statusCode, responseHeaders = {}, responseBody = "{}") =>
      Object.assign(new Error(`status ${statusCode}`), { name: "AI_APICallError", statusCode, responseHeaders, responseBody });
    const times = [];
    let n = 0;
    const out = await retry(() => {
      times.push(performance.now());
      if (++n === 1) throw apiCallError(503, { "retry-after-ms": "60" });
      return "ok";
    }, { backoff: TINY });
    assert.equal(out, "ok");
    assert.ok(times[1] - times[0] >= 60 - SLACK, `waited ${(times[1] - times[0]).toFixed(0)} ms for its hint`);
    const quota = apiCallError(429, {}, JSON.stringify({ error: { code: "insufficient_quota", type: "insufficient_quota" } }));
    const routes = [];
    const r = await retry(({ route }) => {
      routes.push(route.model);
      if (routes.length === 1) throw quota;
      return "fallback";
    }, { backoff: TINY, fallbacks: [{ model: "other" }] });
    assert.equal(r, "fallback");
    assert.deepEqual(routes, [undefined, "other"], "the quota sent the call to the next route at once");
  });

  test("plain Error('bug') without status → not retried, rethrown untouched", T, async () => {
    const bug = new Error("bug");
    let calls = 0;
    const r = await settle(
      retry(
        () => {
          calls++;
          throw bug;
        },
        { backoff: TINY },
      ),
    );
    assert.equal(r.ok, false);
    assert.equal(r.error, bug);
    assert.equal(calls, 1);
  });

  test("exhausted on HTTP errors → the last SDK error itself, its attempts in retryReport", T, async () => {
    const thrown = [];
    const r = await settle(
      retry(
        () => {
          const e = sdkError(`overloaded #${thrown.length + 1}`, 503);
          thrown.push(e);
          throw e;
        },
        { maxAttempts: 3, backoff: TINY },
      ),
    );
    assert.equal(r.ok, false);
    assert.equal(thrown.length, 3);
    assert.equal(r.error, thrown[2], "the last error, by identity, so SDK error classes keep working");
    const report = retryReport(r.error);
    assert.deepEqual(report.attempts.map((a) => a.status), [503, 503, 503]);
    assert.ok(report.totalWaitMs >= 0);
  });

  test("exhausted on network errors → RetryError with cause = the last error", T, async () => {
    const thrown = [];
    const r = await settle(
      retry(
        () => {
          const e = new TypeError("fetch failed");
          thrown.push(e);
          throw e;
        },
        { maxAttempts: 3, backoff: TINY },
      ),
    );
    assert.equal(thrown.length, 3);
    assert.ok(isRetryError(r.error), `RetryError expected, got ${r.error}`);
    assert.ok(r.error instanceof RetryError);
    assert.equal(r.error.name, "RetryError");
    assert.equal(r.error.attempts, 3);
    assert.equal(r.error.cause, thrown[2], "cause is the last error, by identity");
    assert.equal(r.error.reason, "attempts-exhausted");
  });

  test("results pass through untouched (same identity), sync and async fn", T, async () => {
    const obj = { deep: { value: [1, 2, 3] } };
    assert.equal(await retry(() => obj), obj);
    assert.equal(await retry(async () => obj), obj);
    const fnResult = () => 1;
    assert.equal(await retry(() => fnResult), fnResult);
    assert.equal(await retry(() => undefined), undefined);
    assert.equal(await retry(() => null), null);
  });

  test("a rejected promise is treated like a throw", T, async () => {
    let calls = 0;
    const result = await retry(
      async () => {
        calls++;
        if (calls === 1) throw sdkError("overloaded", 529);
        return "fine";
      },
      { backoff: TINY },
    );
    assert.equal(result, "fine");
    assert.equal(calls, 2);
  });

  test("onEvent sees retry and success events", T, async () => {
    const events = [];
    let calls = 0;
    await retry(
      () => {
        calls++;
        if (calls < 3) throw sdkError("busy", 503);
        return 1;
      },
      { backoff: TINY, onEvent: (e) => events.push(e) },
    );
    assert.deepEqual(
      events.filter((e) => e.type === "retry").map((e) => [e.attempt, e.status]),
      [
        [1, 503],
        [2, 503],
      ],
    );
    const success = events.find((e) => e.type === "success");
    assert.ok(success, `events: ${JSON.stringify(events)}`);
    assert.equal(success.attempts, 3);
  });

  test("deadlineMs aborts ctx.signal and rejects with RetryError", T, async () => {
    let seenSignal;
    const t0 = performance.now();
    const r = await settle(
      within(
        retry(
          ({ signal }) => {
            seenSignal = signal;
            return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
          },
          { deadlineMs: 200, backoff: TINY },
        ),
        3000,
        "retry with deadline",
      ),
    );
    const ms = performance.now() - t0;
    assert.equal(r.ok, false);
    assert.ok(isRetryError(r.error), `RetryError expected, got ${r.error}`);
    assert.ok(seenSignal?.aborted, "ctx.signal was aborted at the deadline");
    assert.ok(ms >= 200 - SLACK && ms < 600, `rejected after ${ms.toFixed(0)} ms`);
  });

  test("bad options are rejected with the option's path (throw or rejected promise)", T, async () => {
    const cases = [
      [{ maxAttempts: 0 }, RangeError, /maxAttempts/],
      [{ maxAtempts: 3 }, TypeError, /maxAtempts/],
    ];
    for (const [opts, C, re] of cases) {
      let called = false;
      let err;
      try {
        await retry(() => {
          called = true;
          return 1;
        }, opts);
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof C, `${JSON.stringify(opts)}: expected ${C.name}, got ${err}`);
      assert.match(err.message, re);
      assert.equal(called, false, `${JSON.stringify(opts)}: fn must not run with invalid options`);
    }
  });
});
