// Node-side half of the cross-runtime scenarios: the mock scripts and the assertions. Each
// runtime suite supplies only `run(name, urls)`, which executes fixtures/scenarios.mjs inside its
// runtime and resolves to that scenario's JSON result. Everything asserted is something a user
// would notice: the requests the provider saw, the gaps between them, what the caller got.

import { test } from "node:test";
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { startMockProvider } from "../js/mock-provider.mjs";

/** Per-test timeout: a hung runtime fails its test, not the whole run. */
export const T = { timeout: 30_000 };

/** How far a recorded gap may fall short of a wait the library must make (timer granularity). */
export const SLACK = 5;

/** Starts a mock provider that is closed when test `t` ends. */
export async function mockFor(t, opts) {
  const mock = await startMockProvider(opts);
  t.after(() => mock.close());
  return mock;
}

export function gaps(requests) {
  return requests.slice(1).map((r, i) => r.t - requests[i].t);
}

function assertRanClean(r) {
  assert.ok(r && typeof r === "object", `runtime returned no result: ${JSON.stringify(r)}`);
  assert.equal(r.error, null, `caller got an error: ${JSON.stringify(r.error)}`);
  assert.equal(r.ok, true);
}

export const CASES = [
  {
    name: "retry-after",
    title: "1. 429 (retry-after-ms: 300) then 200 → 2 requests, gap ≥ 300 ms, caller gets 200",
    primary: { script: [{ status: 429, headers: { "retry-after-ms": "300" } }, { status: 200 }], exhausted: "error" },
    check(r, { primary }) {
      assertRanClean(r);
      assert.equal(r.status, 200);
      assert.equal(r.content, "ok");
      assert.equal(primary.requests.length, 2, "provider saw 2 requests");
      const [gap] = gaps(primary.requests);
      // The backoff alone would be 20 ms (jitter "none"): only the hint explains ≥ 300 ms.
      assert.ok(gap >= 300 - SLACK, `gap ${gap.toFixed(1)} ms honours retry-after-ms: 300`);
      assert.equal(primary.requests[1].sha256, primary.requests[0].sha256, "identical bodies");
      const retry = r.events.find((e) => e.type === "retry");
      assert.equal(retry?.hint, "retry-after-ms", `retry event names the hint: ${JSON.stringify(retry)}`);
    },
  },
  {
    name: "503-503-200",
    title: "2. 503, 503, 200 → 3 requests, caller gets 200",
    primary: { script: [{ status: 503 }, { status: 503 }, { status: 200 }], exhausted: "error" },
    check(r, { primary }) {
      assertRanClean(r);
      assert.equal(r.status, 200);
      assert.equal(r.content, "ok");
      assert.equal(primary.requests.length, 3, "provider saw 3 requests");
      assert.equal(r.events.filter((e) => e.type === "retry").length, 2);
    },
  },
  {
    name: "400",
    title: "3. 400 → 1 request, caller gets the 400 with its body",
    primary: { script: [{ status: 400 }, { status: 200 }], exhausted: "error" },
    check(r, { primary }) {
      assertRanClean(r);
      assert.equal(r.status, 400);
      assert.equal(r.errorType, "invalid_request_error", "the 400's JSON body is readable");
      assert.equal(primary.requests.length, 1, "provider saw 1 request");
    },
  },
  {
    name: "fallback",
    title: "4. primary always 503 (maxAttempts 1) → fallback URL with model backup-model, caller gets 200",
    primary: { script: [{ status: 503 }] },
    backup: { script: [{ status: 200 }], exhausted: "error" },
    check(r, { primary, backup }) {
      assertRanClean(r);
      assert.equal(r.status, 200);
      assert.equal(r.content, "ok");
      assert.equal(r.model, "backup-model", "the completion came from the fallback route");
      assert.equal(primary.requests.length, 1, "primary tried once");
      assert.equal(primary.requests[0].json?.model, "gpt-4o-mini");
      assert.equal(backup.requests.length, 1, "fallback tried once");
      assert.equal(backup.requests[0].path, "/v1/chat/completions");
      assert.equal(backup.requests[0].json?.model, "backup-model", "body's model rewritten");
      assert.deepEqual(backup.requests[0].json?.messages, primary.requests[0].json?.messages);
      assert.equal(backup.requests[0].headers.authorization, undefined, "credentials not carried to another origin");
      assert.ok(r.events.some((e) => e.type === "fallback"), "a fallback event was emitted");
    },
  },
  {
    name: "abort",
    title: "5. abort during a 5 s retry-after-ms wait → rejects promptly with the abort reason, 1 request",
    primary: { script: [{ status: 503, headers: { "retry-after-ms": "5000" } }, { status: 200 }], exhausted: "error" },
    check(r, { primary, doneAt }) {
      assert.equal(r.ok, false, "the call rejected");
      assert.equal(r.error?.message, "caller gave up");
      assert.equal(r.isReason, true, "rejected with the abort reason itself");
      assert.ok(r.afterAbortMs < 100, `settled ${r.afterAbortMs?.toFixed(1)} ms after abort`);
      assert.equal(primary.requests.length, 1, "provider saw 1 request");
      const since = doneAt - primary.requests[0].t;
      assert.ok(since < 1500, `result reached the test ${since.toFixed(0)} ms after the request, not after the 5 s wait`);
    },
  },
  {
    name: "stream",
    title: "6. a 200 event stream that fails in-band before its first token, then a good one → 2 requests, the caller reads the second stream once",
    primary: {
      script: [
        { status: 200, headers: { "content-type": "text/event-stream" }, chunks: [
          'event: message_start\ndata: {"type":"message_start","message":{}}\n\n',
          'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
        ] },
        { status: 200, headers: { "content-type": "text/event-stream" }, chunks: [
          'event: message_start\ndata: {"type":"message_start","message":{}}\n\n',
          'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}\n\n',
          'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" world"}}\n\n',
          'event: message_stop\ndata: {"type":"message_stop"}\n\n',
        ] },
      ],
      exhausted: "error",
    },
    check(r, { primary }) {
      assertRanClean(r);
      assert.equal(r.status, 200);
      assert.equal(r.content, "Hello world", "the second stream's text, once");
      assert.equal(r.starts, 1, "one message_start: the served attempt's preamble only");
      assert.equal(primary.requests.length, 2, "provider saw 2 requests");
      assert.ok(r.events.some((e) => e.type === "commit"), "a commit event");
    },
  },
];

/**
 * Registers one node:test per case. `run(name, urls)` executes the scenario in the runtime under
 * test. `cors` is passed to every mock (browsers need it).
 */
export function scenarioTests(run, { cors = false } = {}) {
  for (const c of CASES) {
    test(c.title, T, async (t) => {
      const primary = await mockFor(t, { ...c.primary, cors });
      const backup = c.backup ? await mockFor(t, { ...c.backup, cors }) : undefined;
      const result = await run(c.name, { primary: primary.url, backup: backup?.url });
      const doneAt = performance.now();
      await new Promise((r) => setTimeout(r, 30)); // let any stray extra request land before counting
      c.check(result, { primary, backup, doneAt });
    });
  }
}
