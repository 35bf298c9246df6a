// The package's surface beyond the first contract, tested against what index.d.ts documents:
// fallbacks (model rewrite, other origins, credential hygiene), retryReport, createRetry with
// shared breakers, retry's own signal, onExhausted, exportState/restoreState.
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import {
  createRetryFetch,
  createRetry,
  retry,
  retryReport,
  isCircuitOpenError,
  isRetryError,
} from "llm-retry";
import { FAST, T, mockFor, settle, within, chatInit, CHAT_BODY } from "./helpers.mjs";

const SECRET_HEADERS = {
  authorization: "Bearer sk-primary-secret",
  "x-api-key": "sk-primary-secret",
  "api-key": "sk-primary-secret",
  cookie: "session=sk-primary-secret",
  "x-org-secret": "org-123",
};

describe("fallbacks", () => {
  test("same-origin model fallback: 503s on the primary, then the body's model is rewritten", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 503 }, { status: 200 }] });
    const events = [];
    const f = createRetryFetch({
      maxAttempts: 2,
      backoff: FAST,
      fallbacks: [{ model: "gpt-4o" }],
      onEvent: (e) => events.push(e),
    });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit({ headers: { authorization: "Bearer sk-same" } }));
    assert.equal(res.status, 200);
    assert.equal((await res.json()).model, "gpt-4o", "the fallback's model served the call");
    assert.equal(mock.requests.length, 3);
    assert.deepEqual(
      mock.requests.map((r) => r.json?.model),
      ["gpt-4o-mini", "gpt-4o-mini", "gpt-4o"],
    );
    const original = JSON.parse(CHAT_BODY);
    assert.deepEqual(mock.requests[2].json.messages, original.messages, "other body fields kept");
    assert.equal(mock.requests[2].headers.authorization, "Bearer sk-same", "same origin keeps credentials");
    const fb = events.find((e) => e.type === "fallback");
    assert.ok(fb, `fallback event expected in ${JSON.stringify(events)}`);
    assert.equal(fb.from, 0);
    assert.equal(fb.to, 1);
    const report = retryReport(res);
    assert.ok(report, "retryReport(res) is set");
    assert.equal(report.fallback, true);
    assert.equal(report.route, 1);
    assert.equal(report.attempts.length, 3);
  });

  test("other-origin fallback: credentials and sensitiveHeaders are not carried over; route headers are", T, async (t) => {
    const primary = await mockFor(t, { script: [{ status: 503 }] });
    const backup = await mockFor(t, { script: [{ status: 200 }] });
    const f = createRetryFetch({
      maxAttempts: 1,
      backoff: FAST,
      sensitiveHeaders: ["x-org-secret"],
      fallbacks: [{ url: `${backup.url}/v2/chat`, model: "backup-model", headers: { "x-backup-key": "bk-1" } }],
    });
    const res = await f(`${primary.url}/v1/chat/completions`, chatInit({ headers: { ...SECRET_HEADERS, "x-trace": "t1" } }));
    assert.equal(res.status, 200);
    assert.equal(primary.requests.length, 1);
    assert.equal(primary.requests[0].headers.authorization, SECRET_HEADERS.authorization, "primary got its credentials");
    assert.equal(backup.requests.length, 1);
    const b = backup.requests[0];
    assert.equal(b.path, "/v2/chat");
    assert.equal(b.method, "POST");
    assert.equal(b.json?.model, "backup-model");
    assert.equal(b.headers["x-backup-key"], "bk-1", "route headers are set");
    assert.equal(b.headers["x-trace"], "t1", "ordinary headers are kept");
    for (const name of ["authorization", "x-api-key", "api-key", "cookie", "x-org-secret"]) {
      assert.equal(b.headers[name], undefined, `${name} must not reach another origin`);
    }
  });

  test("a 400 on the primary is final: no fallback", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 400 }, { status: 200 }] });
    const f = createRetryFetch({ backoff: FAST, fallbacks: [{ model: "gpt-4o" }] });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.equal(res.status, 400);
    assert.equal(mock.requests.length, 1);
  });

  test("insufficient_quota on the primary moves to the fallback at once", T, async (t) => {
    const quota = { error: { message: "quota", type: "insufficient_quota", code: "insufficient_quota" } };
    const mock = await mockFor(t, { script: [{ status: 429, body: quota }, { status: 200 }] });
    const f = createRetryFetch({ backoff: FAST, fallbacks: [{ model: "gpt-4o" }] });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.equal(res.status, 200);
    assert.deepEqual(
      mock.requests.map((r) => r.json?.model),
      ["gpt-4o-mini", "gpt-4o"],
    );
  });

  test("retry(fn) sees the route: index 0 then 1 with the fallback's model", T, async () => {
    const routes = [];
    const result = await retry(
      ({ route }) => {
        routes.push({ index: route.index, model: route.model });
        if (route.index === 0) throw Object.assign(new Error("overloaded"), { status: 529 });
        return `served by ${route.model}`;
      },
      { maxAttempts: 1, backoff: FAST, fallbacks: [{ model: "claude-fallback" }] },
    );
    assert.equal(result, "served by claude-fallback");
    assert.deepEqual(routes, [
      { index: 0, model: undefined },
      { index: 1, model: "claude-fallback" },
    ]);
  });
});

describe("retryReport", () => {
  test("the request's model is read however its body or init comes: bytes, a Blob, a Request, more init keys", T, async () => {
    const client = () => createRetryFetch({ fetch: async () => new Response("{}") });
    const f = client();
    const url = "https://api.example/v1/chat/completions";
    const json = ' \n{"messages":[{"role":"user","content":"h\u00e9"}],"model":"gpt-4o"}';
    const bytes = new TextEncoder().encode(json);
    const forms = {
      "a string": [url, { method: "POST", body: json }],
      "a Uint8Array": [url, { method: "POST", body: bytes }],
      "an ArrayBuffer": [url, { method: "POST", body: bytes.buffer }],
      "a Blob": [url, { method: "POST", body: new Blob([json]) }],
      "a Request": [new Request(url, { method: "POST", body: json })],
      "a redirect key": [url, { method: "POST", body: json, redirect: "follow" }],
    };
    for (const [form, args] of Object.entries(forms)) {
      // Its own client: the route the call kept its breaker under is the model's.
      const g = client();
      assert.equal(retryReport(await g(...args)).model, "gpt-4o", form);
      assert.deepEqual(Object.keys(g.exportState().breakers), ["https://api.example gpt-4o"], form);
    }
    for (const body of [new Uint8Array([0x7b, 0xff, 0xfe]), new TextEncoder().encode("model=gpt-4o")]) {
      assert.equal(retryReport(await f(url, { method: "POST", body })).model, undefined);
    }
  });

  test("records each attempt's status, reason and wait", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }] });
    const f = createRetryFetch({ backoff: { initialMs: 30, jitter: "none" } });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    const report = retryReport(res);
    assert.ok(report);
    assert.equal(report.attempts.length, 2);
    assert.equal(report.attempts[0].status, 503);
    assert.equal(report.attempts[1].status, 200);
    assert.equal(typeof report.attempts[0].reason, "string");
    // The time actually waited: the 30 ms backoff, and the timer's lateness.
    assert.ok(report.attempts[1].waitedMs >= 30 && report.attempts[1].waitedMs < 200, `${report.attempts[1].waitedMs}`);
    assert.equal(report.totalWaitMs, report.attempts[1].waitedMs);
    assert.equal(report.fallback, false);
    assert.equal(report.route, 0);
    assert.ok(report.durationMs >= 30 - 5);
  });

  test("a wait is never shorter than decided, by the host's clock, when a timer fires early", T, async (t) => {
    // A clock at half speed: each 60 ms timer fires when the clock shows 30 ms gone, as a timer
    // that fires early would. The rest is slept again until the clock has seen the whole wait.
    const realNow = Date.now;
    const start = realNow();
    Date.now = () => Math.floor(start + (realNow() - start) / 2);
    t.after(() => (Date.now = realNow));
    const mock = await mockFor(t, { script: [{ status: 503, headers: { "retry-after-ms": "60" } }, { status: 200 }] });
    const f = createRetryFetch({ backoff: { initialMs: 1, jitter: "none" } });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    Date.now = realNow;
    assert.equal(res.status, 200);
    const waited = retryReport(res).attempts[1].waitedMs;
    assert.ok(waited >= 60 && waited < 90, `waited ${waited} ms by the clock, for a 60 ms hint`);
    assert.equal(mock.requests.length, 2);
  });

  test("a wait's last millisecond is slept again when a 1 ms timer ends before the clock ticks over", T, async (t) => {
    // A clock of the test's own, moved by the timers that fire: one of n ms moves it n - 1 (it
    // fires a millisecond early, as Node's cached loop time lets a timer), and one of 1 ms moves it
    // on every other firing only (a clock read in whole milliseconds that has not ticked over
    // yet). Each timer runs at once: no real waiting, the same steps every run.
    const [realNow, realSetTimeout] = [Date.now, globalThis.setTimeout];
    let clock = 1_700_000_000_000;
    let ones = 0;
    const restore = () => {
      Date.now = realNow;
      globalThis.setTimeout = realSetTimeout;
    };
    t.after(restore);
    const sent = [];
    const transport = async () => {
      sent.push(clock);
      return sent.length === 1 ? new Response("busy", { status: 503, headers: { "retry-after-ms": "60" } }) : new Response("{}");
    };
    const waits = [];
    const f = createRetryFetch({ fetch: transport, onEvent: (e) => e.type === "wait" && waits.push(e.delayMs) });
    Date.now = () => clock;
    globalThis.setTimeout = (fn, ms, ...args) =>
      realSetTimeout(() => {
        clock += ms > 1 ? ms - 1 : ones++ % 2;
        fn(...args);
      }, 0);
    const res = await f("http://127.0.0.1:9/v1/chat/completions", chatInit());
    restore();
    assert.equal(res.status, 200);
    assert.equal(sent.length, 2);
    assert.equal(waits.length, 1);
    assert.ok(waits[0] >= 60, `decided ${waits[0]} ms for a 60 ms hint`);
    assert.ok(sent[1] - sent[0] >= waits[0], `sent ${sent[1] - sent[0]} ms after the 503 by the clock, for a wait of ${waits[0]}`);
  });

  test("a wait ends after its timer when the clock stands still or goes back (no rest is slept)", T, async (t) => {
    const realNow = Date.now;
    t.after(() => (Date.now = realNow));
    for (const clock of [() => 1_700_000_000_000, (() => { let x = realNow(); return () => (x -= 1000); })()]) {
      Date.now = clock;
      const mock = await mockFor(t, { script: [{ status: 503, headers: { "retry-after-ms": "40" } }, { status: 200 }] });
      const f = createRetryFetch({ backoff: { initialMs: 1, jitter: "none" } });
      const t0 = performance.now();
      const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
      const took = performance.now() - t0;
      Date.now = realNow;
      assert.equal(res.status, 200);
      assert.equal(mock.requests.length, 2);
      assert.ok(mock.requests[1].t - mock.requests[0].t >= 35, "the hint's wait, by the timer");
      assert.ok(took < 1_000, `ended after its timer (${took.toFixed(0)} ms)`);
    }
  });

  test("undefined for a response that did not come from a retryFetch", () => {
    assert.equal(retryReport(new Response("x")), undefined);
  });

  test("RetryError carries the report", T, async () => {
    const r = await settle(
      retry(
        () => {
          throw new TypeError("fetch failed");
        },
        { maxAttempts: 2, backoff: FAST },
      ),
    );
    assert.ok(isRetryError(r.error));
    assert.equal(r.error.report?.attempts?.length, 2);
    assert.equal(retryReport(r.error)?.attempts?.length, 2);
  });

  test("an SDK error the call ended on has its report too", T, async () => {
    const busy = Object.assign(new Error("busy"), { status: 503 });
    const r = await settle(retry(() => { throw busy; }, { maxAttempts: 2, backoff: FAST }));
    assert.equal(r.error, busy);
    assert.deepEqual(retryReport(busy)?.attempts?.map((a) => a.status), [503, 503]);
  });
});

describe("createRetry, signal, onExhausted, state", () => {
  test("createRetry shares a breaker across calls: the third call is refused without calling fn", T, async () => {
    // A deadline shorter than the cooldown: no waiting in line for the breaker, so it fails fast.
    const run = createRetry({ maxAttempts: 1, backoff: FAST, deadlineMs: 5_000, breaker: { failureThreshold: 2, cooldownMs: 10_000 } });
    let calls = 0;
    const failing = () => {
      calls++;
      throw Object.assign(new Error("busy"), { status: 503 });
    };
    await settle(run(failing));
    await settle(run(failing));
    const r = await settle(run(failing));
    assert.equal(r.ok, false);
    assert.ok(isCircuitOpenError(r.error), `CircuitOpenError expected, got ${r.error}`);
    assert.equal(calls, 2);
  });

  test("retry(fn, { signal }) aborting during a wait rejects with signal.reason at once", T, async () => {
    const controller = new AbortController();
    const reason = new Error("user cancelled");
    setTimeout(() => controller.abort(reason), 50);
    let calls = 0;
    const r = await settle(
      within(
        retry(
          () => {
            calls++;
            throw Object.assign(new Error("rate"), { status: 429, headers: { "retry-after": "5" } });
          },
          { signal: controller.signal },
        ),
        3000,
        "aborted retry",
      ),
    );
    assert.equal(r.ok, false);
    assert.equal(r.error, reason);
    assert.equal(calls, 1);
    assert.ok(r.ms < 500, `settled after ${r.ms.toFixed(0)} ms`);
  });

  test("onExhausted's value becomes the result of retry(fn)", T, async () => {
    let seen;
    const result = await retry(
      () => {
        throw Object.assign(new Error("busy"), { status: 503 });
      },
      {
        maxAttempts: 2,
        backoff: FAST,
        onExhausted: (report) => {
          seen = report;
          return "cached answer";
        },
      },
    );
    assert.equal(result, "cached answer");
    assert.equal(seen?.attempts?.length, 2);
  });

  test("exportState → JSON → restoreState carries an open breaker to a new client", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }] });
    const opts = { maxAttempts: 1, backoff: FAST, deadlineMs: 5_000, breaker: { failureThreshold: 1, cooldownMs: 10_000 } };
    const a = createRetryFetch(opts);
    await a(`${mock.url}/v1/chat/completions`, chatInit());
    const state = JSON.parse(JSON.stringify(a.exportState()));
    assert.equal(state.version, 1);
    assert.ok(Object.values(state.breakers).some((b) => b.state === "open"), `an open breaker in ${JSON.stringify(state)}`);
    const b = createRetryFetch(opts);
    b.restoreState(state);
    const r = await settle(b(`${mock.url}/v1/chat/completions`, chatInit()));
    assert.equal(r.ok, false, `restored client should refuse, got ${r.value?.status}`);
    assert.ok(isCircuitOpenError(r.error), `CircuitOpenError expected, got ${r.error}`);
    assert.equal(mock.requests.length, 1, "nothing sent while the restored breaker is open");
  });

  test("an instant past a day ahead holds no route shut: a saved state's, or a spent limit's reset", T, async () => {
    let sent = 0;
    const headers = { "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "99999999999h" };
    const transport = async () => (sent++, new Response("{}", { headers }));
    const opts = { fetch: transport, backoff: FAST, deadlineMs: 5_000, maxRetryAfterMs: 1_000 };
    const url = "https://api.example/v1/chat/completions";
    const a = createRetryFetch(opts);
    for (let i = 0; i < 3; i++) assert.equal((await a(url, chatInit())).status, 200);
    assert.equal(sent, 3, "the spent limit's absurd reset held nothing back");
    const b = createRetryFetch(opts);
    const state = JSON.parse(JSON.stringify(a.exportState()));
    for (const v of Object.values(state.breakers)) Object.assign(v, { state: "open", openUntil: 1e300, cooledUntil: Date.now() + 1e15 });
    b.restoreState(state);
    assert.equal((await b(url, chatInit())).status, 200);
    assert.equal(sent, 4);
  });
});
