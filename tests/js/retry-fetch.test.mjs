// createRetryFetch against the scripted mock provider (tests/js/mock-provider.mjs).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";

import { createRetryFetch, RetryError, isRetryError, CircuitOpenError, isCircuitOpenError } from "llm-retry";
import { getClosedPort } from "./mock-provider.mjs";
import { FAST, T, mockFor, gaps, sha256, settle, sleep, within, CHAT_BODY, chatInit } from "./helpers.mjs";

const SLACK = 5; // ms the recorded gap may fall short of a wait the library must make

describe("retryable statuses", () => {
  test("1. 429 (Retry-After: 1), 429, 200 → 3 requests, first gap ≥ 1 s, caller gets the 200", T, async (t) => {
    const mock = await mockFor(t, {
      script: [{ status: 429, headers: { "retry-after": "1" } }, { status: 429 }, { status: 200 }],
    });
    const f = createRetryFetch({ backoff: FAST });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.equal(res.status, 200);
    const json = await res.json();
    assert.equal(json.object, "chat.completion");
    assert.equal(json.choices[0].message.content, "ok");
    assert.equal(json.model, "gpt-4o-mini");
    assert.equal(mock.requests.length, 3, "server saw 3 requests");
    const [g1] = gaps(mock.requests);
    assert.ok(g1 >= 1000 - SLACK, `gap between 1st and 2nd request ${g1.toFixed(1)} ms should honour Retry-After: 1`);
  });

  test("2. 503, 503, 200 with {initialMs: 50, multiplier: 3, jitter: none} → growing gaps ≥ 50 and ≥ 150", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 503 }, { status: 200 }] });
    const f = createRetryFetch({ backoff: { initialMs: 50, multiplier: 3, jitter: "none" } });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.equal(res.status, 200);
    assert.equal((await res.json()).choices[0].message.content, "ok");
    assert.equal(mock.requests.length, 3);
    const [g1, g2] = gaps(mock.requests);
    assert.ok(g1 >= 50 - SLACK, `first gap ${g1.toFixed(1)} ms ≥ 50`);
    assert.ok(g2 >= 150 - SLACK, `second gap ${g2.toFixed(1)} ms ≥ 150`);
    assert.ok(g2 > g1, `second gap ${g2.toFixed(1)} > first gap ${g1.toFixed(1)}`);
  });

  test("7. 503 forever, maxAttempts 3 → 3 requests, resolves with the last 503 (no rejection)", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503, headers: { "x-marker": "last" }, body: "busy" }] });
    const f = createRetryFetch({ maxAttempts: 3, backoff: FAST });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.ok(res instanceof Response);
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("x-marker"), "last");
    assert.equal(await res.text(), "busy");
    assert.equal(mock.requests.length, 3);
  });

  test("maxAttempts 1 → no retry at all", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }] });
    const f = createRetryFetch({ maxAttempts: 1, backoff: FAST });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.equal(res.status, 503);
    assert.equal(mock.requests.length, 1);
  });

  test("retryOn narrows the retried statuses", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }] });
    const f = createRetryFetch({ retryOn: [429], backoff: FAST });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.equal(res.status, 503);
    assert.equal(mock.requests.length, 1);
  });

  for (const status of [408, 409, 500, 502, 504, 529]) {
    test(`default retryOn includes ${status}`, T, async (t) => {
      const mock = await mockFor(t, { script: [{ status }, { status: 200 }] });
      const f = createRetryFetch({ backoff: FAST });
      const res = await f(`${mock.url}/v1/chat/completions`, chatInit({ headers: { "idempotency-key": "k1" } }));
      assert.equal(res.status, 200);
      assert.equal(mock.requests.length, 2);
    });
  }

  test("a retried response's body is cancelled, not left to hold its connection; the last one is the caller's", T, async () => {
    const cancelled = [];
    // One chunk, then the end; `cancel` notes which response was given back unread.
    const body = (i) => {
      let sent = false;
      return new ReadableStream({
        pull: (c) => (sent ? c.close() : ((sent = true), c.enqueue(new TextEncoder().encode(`busy ${i}`)))),
        cancel: () => cancelled.push(i),
      });
    };
    let n = 0;
    const transport = async () => {
      const i = n++;
      return i < 2 ? new Response(body(i), { status: 503 }) : new Response("ok", { status: 200 });
    };
    const f = createRetryFetch({ fetch: transport, backoff: FAST });
    const res = await f("http://127.0.0.1:9/v1/chat/completions", chatInit());
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "ok");
    assert.equal(n, 3, "the transport was called three times");
    assert.deepEqual(cancelled, [0, 1], "both 503s' bodies were cancelled");

    // A call that ends on a 503 hands it back unread: its body is the caller's.
    cancelled.length = 0;
    n = 0;
    const last = await createRetryFetch({ fetch: transport, maxAttempts: 2, backoff: FAST })(
      "http://127.0.0.1:9/v1/chat/completions",
      chatInit(),
    );
    assert.equal(last.status, 503);
    assert.equal(n, 2);
    assert.deepEqual(cancelled, [0], "only the superseded 503 was cancelled");
    assert.equal(await last.text(), "busy 1");
  });
});

describe("not retried", () => {
  for (const status of [400, 401]) {
    test(`3. ${status} → exactly 1 request, the ${status} Response with a readable body`, T, async (t) => {
      const mock = await mockFor(t, { script: [{ status }, { status: 200 }] });
      const f = createRetryFetch({ backoff: FAST });
      const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
      assert.equal(res.status, status);
      const body = await res.json();
      assert.equal(typeof body.error.message, "string");
      assert.equal(mock.requests.length, 1);
    });
  }

  test("4a. 429 insufficient_quota → 1 request, the 429 returned with its body intact", T, async (t) => {
    const quota = {
      error: { message: "You exceeded your current quota", type: "insufficient_quota", code: "insufficient_quota" },
    };
    const mock = await mockFor(t, { script: [{ status: 429, body: quota }, { status: 200 }] });
    const f = createRetryFetch({ backoff: FAST });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.equal(res.status, 429);
    assert.deepEqual(await res.json(), quota, "body still readable by the caller after classification");
    assert.equal(mock.requests.length, 1);
  });

  test("4b. 503 with x-should-retry: false → 1 request", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503, headers: { "x-should-retry": "false" } }, { status: 200 }] });
    const f = createRetryFetch({ backoff: FAST });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.equal(res.status, 503);
    assert.equal(mock.requests.length, 1);
  });

  test("5. 429 with Retry-After: 120 (> maxRetryAfterMs) → 1 request, returned at once", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 429, headers: { "retry-after": "120" } }, { status: 200 }] });
    const f = createRetryFetch({ backoff: FAST });
    const r = await settle(f(`${mock.url}/v1/chat/completions`, chatInit()));
    assert.ok(r.ok, `should resolve, got ${r.error}`);
    assert.equal(r.value.status, 429);
    assert.equal(r.value.headers.get("retry-after"), "120");
    assert.ok(r.ms < 1000, `returned after ${r.ms.toFixed(0)} ms, expected well under 1 s`);
    assert.equal(mock.requests.length, 1);
    // The route now cools for 120 s, longer than anything waited for: the next call sends
    // nothing and fails fast, saying why and when to come back.
    const next = await settle(f(`${mock.url}/v1/chat/completions`, chatInit()));
    assert.ok(isCircuitOpenError(next.error), `${next.error}`);
    assert.equal(next.error.reason, "cooling");
    assert.ok(next.error.retryInMs > 115_000 && next.error.retryInMs <= 120_000, `${next.error.retryInMs}`);
    assert.equal(mock.requests.length, 1);
  });

  test("maxRetryAfterMs alone decides: Retry-After: 120 with deadlineMs 300000 → returned at once", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 429, headers: { "retry-after": "120" } }, { status: 200 }] });
    const f = createRetryFetch({ backoff: FAST, deadlineMs: 300_000 });
    const r = await settle(within(f(`${mock.url}/v1/chat/completions`, chatInit()), 5000, "call"));
    assert.ok(r.ok, `should resolve, got ${r.error}`);
    assert.equal(r.value.status, 429);
    assert.ok(r.ms < 1000, `returned after ${r.ms.toFixed(0)} ms`);
    assert.equal(mock.requests.length, 1);
  });

  test("maxRetryAfterMs: 500 with Retry-After: 1 → returned at once", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503, headers: { "retry-after": "1" } }, { status: 200 }] });
    const f = createRetryFetch({ backoff: FAST, maxRetryAfterMs: 500 });
    const r = await settle(within(f(`${mock.url}/v1/chat/completions`, chatInit()), 5000, "call"));
    assert.ok(r.ok, `should resolve, got ${r.error}`);
    assert.equal(r.value.status, 503);
    assert.ok(r.ms < 800, `returned after ${r.ms.toFixed(0)} ms`);
    assert.equal(mock.requests.length, 1);
  });

  test("retry-after-ms (OpenAI) is honoured", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 429, headers: { "retry-after-ms": "120" } }, { status: 200 }] });
    const f = createRetryFetch({ backoff: { initialMs: 1, maxMs: 5 } });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.equal(res.status, 200);
    assert.equal(mock.requests.length, 2);
    const [g] = gaps(mock.requests);
    assert.ok(g >= 120 - SLACK, `gap ${g.toFixed(1)} ms ≥ retry-after-ms 120`);
  });

  test("200 passes through with its headers and body", T, async (t) => {
    const mock = await mockFor(t, {
      script: [{ status: 200, headers: { "x-request-id": "req_1" }, body: { hello: "world" } }],
    });
    const f = createRetryFetch({ backoff: FAST });
    const res = await f(`${mock.url}/v1/models`);
    assert.equal(res.status, 200);
    assert.equal(res.ok, true);
    assert.equal(res.headers.get("x-request-id"), "req_1");
    assert.deepEqual(await res.json(), { hello: "world" });
    assert.equal(mock.requests.length, 1);
    assert.equal(mock.requests[0].method, "GET");
  });
});

describe("6. request bodies are replayed byte-for-byte", () => {
  test("1 MB random Uint8Array, 503×3 then 200 → 4 identical uploads, method and header kept", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 503 }, { status: 503 }, { status: 200 }] });
    const bytes = new Uint8Array(randomBytes(1024 * 1024));
    const hash = sha256(bytes);
    const f = createRetryFetch({ backoff: FAST });
    const res = await f(`${mock.url}/v1/upload`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream", "x-custom": "keep-me" },
      body: bytes,
    });
    assert.equal(res.status, 200);
    assert.equal(mock.requests.length, 4);
    for (const [i, r] of mock.requests.entries()) {
      assert.equal(r.method, "POST", `attempt ${i + 1} method`);
      assert.equal(r.path, "/v1/upload", `attempt ${i + 1} path`);
      assert.equal(r.headers["x-custom"], "keep-me", `attempt ${i + 1} custom header`);
      assert.equal(r.headers["content-type"], "application/octet-stream", `attempt ${i + 1} content-type`);
      assert.equal(r.body.length, bytes.length, `attempt ${i + 1} body length`);
      assert.equal(r.sha256, hash, `attempt ${i + 1} body hash`);
    }
  });

  const cases = [
    {
      name: "string JSON body",
      make: () => ({ body: CHAT_BODY, headers: { "content-type": "application/json" } }),
      expect: (r) => {
        assert.equal(r.body.toString("utf8"), CHAT_BODY);
        assert.equal(r.headers["content-type"], "application/json");
      },
    },
    {
      name: "Blob body",
      make: () => ({ body: new Blob(["blob-part-1|", new Uint8Array([0, 1, 2, 255]), "|end"], { type: "application/x-test" }) }),
      expect: (r) => {
        assert.equal(r.body.length, 12 + 4 + 4);
        assert.equal(r.headers["content-type"], "application/x-test");
      },
    },
    {
      name: "URLSearchParams body",
      make: () => ({ body: new URLSearchParams({ a: "1", b: "two words", c: "ü" }) }),
      expect: (r) => {
        assert.equal(r.body.toString("utf8"), "a=1&b=two+words&c=%C3%BC");
        assert.match(r.headers["content-type"], /^application\/x-www-form-urlencoded/);
      },
    },
    {
      name: "FormData body",
      make: () => {
        const fd = new FormData();
        fd.append("purpose", "fine-tune");
        fd.append("file", new Blob(['{"prompt":"x"}\n'], { type: "application/jsonl" }), "data.jsonl");
        return { body: fd };
      },
      expect: (r) => {
        assert.match(r.headers["content-type"], /^multipart\/form-data; boundary=/);
        const text = r.body.toString("utf8");
        assert.match(text, /name="purpose"\r\n\r\nfine-tune/);
        assert.match(text, /filename="data.jsonl"/);
      },
    },
    {
      name: "ReadableStream body (duplex: half)",
      make: () => {
        const parts = ["stream-", "part-", "three"];
        return {
          duplex: "half",
          headers: { "content-type": "text/plain" },
          body: new ReadableStream({
            pull(controller) {
              const p = parts.shift();
              if (p === undefined) controller.close();
              else controller.enqueue(new TextEncoder().encode(p));
            },
          }),
        };
      },
      expect: (r) => assert.equal(r.body.toString("utf8"), "stream-part-three"),
    },
  ];

  for (const c of cases) {
    test(`${c.name}: 503, 503, 200 → 3 byte-identical uploads`, T, async (t) => {
      const mock = await mockFor(t, { script: [{ status: 503 }, { status: 503 }, { status: 200 }] });
      const f = createRetryFetch({ backoff: FAST });
      const init = c.make();
      const res = await f(`${mock.url}/v1/files`, { method: "POST", ...init, headers: { "x-custom": "k", ...(init.headers ?? {}) } });
      assert.equal(res.status, 200);
      assert.equal(mock.requests.length, 3);
      const first = mock.requests[0];
      c.expect(first);
      for (const [i, r] of mock.requests.entries()) {
        assert.equal(r.method, "POST", `attempt ${i + 1} method`);
        assert.equal(r.headers["x-custom"], "k", `attempt ${i + 1} custom header`);
        assert.equal(r.headers["content-type"], first.headers["content-type"], `attempt ${i + 1} content-type`);
        assert.equal(r.sha256, first.sha256, `attempt ${i + 1} body differs from attempt 1:\n${r.body}\n---\n${first.body}`);
      }
    });
  }

  test("Request object input with a body is replayed", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }] });
    const f = createRetryFetch({ backoff: FAST });
    const req = new Request(`${mock.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-custom": "from-request" },
      body: CHAT_BODY,
    });
    const res = await f(req);
    assert.equal(res.status, 200);
    assert.equal(mock.requests.length, 2);
    for (const r of mock.requests) {
      assert.equal(r.method, "POST");
      assert.equal(r.headers["x-custom"], "from-request");
      assert.equal(r.body.toString("utf8"), CHAT_BODY);
    }
  });

  test("URL object input works", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }] });
    const f = createRetryFetch({ backoff: FAST });
    const res = await f(new URL("/v1/models?x=1", mock.url));
    assert.equal(res.status, 200);
    assert.deepEqual(
      mock.requests.map((r) => r.path),
      ["/v1/models?x=1", "/v1/models?x=1"],
    );
  });
});

describe("8. network errors", () => {
  test("connection refused → RetryError after maxAttempts, cause set", T, async () => {
    const port = await getClosedPort();
    const f = createRetryFetch({ maxAttempts: 3, backoff: FAST });
    const r = await settle(f(`http://127.0.0.1:${port}/v1/models`));
    assert.equal(r.ok, false, "should reject");
    const e = r.error;
    assert.ok(isRetryError(e), `isRetryError(e) for ${e}`);
    assert.ok(e instanceof RetryError, "e instanceof RetryError");
    assert.ok(e instanceof Error, "e instanceof Error");
    assert.equal(e.name, "RetryError");
    assert.equal(e.attempts, 3);
    assert.notEqual(e.cause, undefined, "e.cause is set");
    assert.equal(typeof e.reason, "string");
    assert.ok(e.reason.length > 0, "e.reason is non-empty");
    assert.equal(e.status, undefined, "no HTTP status for a network error");
  });

  test("connection reset without response, then 200 → retried (GET)", T, async (t) => {
    const mock = await mockFor(t, { script: [{ destroy: true }, { status: 200 }] });
    const f = createRetryFetch({ backoff: FAST });
    const res = await f(`${mock.url}/v1/models`);
    assert.equal(res.status, 200);
    assert.equal(mock.requests.length, 2);
  });

  test("isRetryError is false for other errors and non-errors", () => {
    assert.equal(isRetryError(new Error("x")), false);
    assert.equal(isRetryError(new TypeError("fetch failed")), false);
    assert.equal(isRetryError(null), false);
    assert.equal(isRetryError(undefined), false);
    assert.equal(isRetryError("RetryError"), false);
  });

  test("isRetryError is not fooled by a plain object named RetryError", () => {
    assert.equal(isRetryError({ name: "RetryError" }), false);
  });
});

describe("9. abort", () => {
  test("abort during a Retry-After sleep → rejects promptly with exactly the reason; 1 request", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503, headers: { "retry-after": "5" } }, { status: 200 }] });
    const f = createRetryFetch({ backoff: FAST });
    const controller = new AbortController();
    const reason = new Error("bye");
    let abortedAt = 0;
    const timer = setTimeout(() => {
      abortedAt = performance.now();
      controller.abort(reason);
    }, 100);
    t.after(() => clearTimeout(timer));
    const r = await settle(
      within(f(`${mock.url}/v1/chat/completions`, chatInit({ signal: controller.signal })), 4000, "aborted call"),
    );
    assert.equal(r.ok, false, "should reject");
    assert.equal(r.error, reason, `rejects with the abort reason itself, got ${r.error}`);
    assert.ok(r.at - abortedAt < 100, `settled ${(r.at - abortedAt).toFixed(0)} ms after abort`);
    assert.ok(r.ms < 100 + 150, `settled ${r.ms.toFixed(0)} ms after the call`);
    assert.equal(mock.requests.length, 1);
  });

  test("abort during a hung attempt → rejects promptly with the reason, connection closed", T, async (t) => {
    const mock = await mockFor(t, { script: [{ hang: true }] });
    const f = createRetryFetch({ backoff: FAST });
    const controller = new AbortController();
    const reason = new Error("stop waiting");
    let abortedAt = 0;
    const timer = setTimeout(() => {
      abortedAt = performance.now();
      controller.abort(reason);
    }, 100);
    t.after(() => clearTimeout(timer));
    const r = await settle(
      within(f(`${mock.url}/v1/chat/completions`, chatInit({ signal: controller.signal })), 4000, "aborted call"),
    );
    assert.equal(r.ok, false);
    assert.equal(r.error, reason, `rejects with the abort reason itself, got ${r.error}`);
    assert.ok(r.at - abortedAt < 100, `settled ${(r.at - abortedAt).toFixed(0)} ms after abort`);
    assert.equal(mock.requests.length, 1);
    const closedAt = await within(mock.requests[0].closed, 2000, "server-side close of the aborted request");
    assert.ok(mock.requests[0].closedEarly, "connection closed before any response");
    assert.ok(closedAt - abortedAt < 500, `server saw the close ${(closedAt - abortedAt).toFixed(0)} ms after abort`);
  });

  test("abort() without a reason → rejects with signal.reason (AbortError)", T, async (t) => {
    const mock = await mockFor(t, { script: [{ hang: true }] });
    const f = createRetryFetch({ backoff: FAST });
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 50);
    t.after(() => clearTimeout(timer));
    const r = await settle(within(f(`${mock.url}/v1/models`, { signal: controller.signal }), 4000, "aborted call"));
    assert.equal(r.ok, false);
    assert.equal(r.error, controller.signal.reason);
    assert.equal(r.error.name, "AbortError");
  });

  test("already-aborted signal → rejects with its reason, no request sent", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 200 }] });
    const f = createRetryFetch({ backoff: FAST });
    const reason = new Error("too late");
    const r = await settle(within(f(`${mock.url}/v1/models`, { signal: AbortSignal.abort(reason) }), 2000, "call"));
    assert.equal(r.ok, false);
    assert.equal(r.error, reason);
    await sleep(50);
    assert.equal(mock.requests.length, 0);
  });

  test("aborted from onEvent with no wait before the retry → nothing more is sent, even by a transport that ignores the signal", T, async () => {
    const controller = new AbortController();
    const reason = new Error("enough");
    let sent = 0;
    const f = createRetryFetch({
      backoff: { initialMs: 0, maxMs: 0 },
      budget: false,
      fetch: async () => (sent++, new Response("busy", { status: 503 })),
      onEvent: (e) => e.type === "retry" && controller.abort(reason),
    });
    const r = await settle(within(f("https://api.example/v1/models", { signal: controller.signal }), 2000, "call"));
    assert.equal(r.ok, false);
    assert.equal(r.error, reason);
    assert.equal(sent, 1);
  });

  test("abort while a streamed request body is still being read → rejects promptly, nothing sent", T, async () => {
    let sent = 0;
    const f = createRetryFetch({ fetch: async () => (sent++, new Response("{}")) });
    const controller = new AbortController();
    const reason = new Error("gave up");
    setTimeout(() => controller.abort(reason), 100);
    const body = new ReadableStream({ pull: () => new Promise(() => {}) }); // never ends
    const r = await settle(within(f("https://api.example/v1/chat/completions", { method: "POST", body, duplex: "half", signal: controller.signal }), 2000, "call"));
    assert.equal(r.error, reason);
    assert.ok(r.ms < 1_000, `${r.ms} ms`);
    assert.equal(sent, 0);
  });

  test("signal on a Request input is honoured", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503, headers: { "retry-after": "5" } }] });
    const f = createRetryFetch({ backoff: FAST });
    const controller = new AbortController();
    const reason = new Error("request signal");
    const timer = setTimeout(() => controller.abort(reason), 100);
    t.after(() => clearTimeout(timer));
    const req = new Request(`${mock.url}/v1/models`, { signal: controller.signal });
    const r = await settle(within(f(req), 4000, "aborted call"));
    assert.equal(r.ok, false);
    assert.equal(r.error, reason);
    assert.ok(r.ms < 1000, `settled after ${r.ms.toFixed(0)} ms`);
  });
});

describe("10. attemptTimeoutMs", () => {
  test("GET: hang then 200, attemptTimeoutMs 100 → 2 requests, 200", T, async (t) => {
    const mock = await mockFor(t, { script: [{ hang: true }, { status: 200 }] });
    const f = createRetryFetch({ attemptTimeoutMs: 100, backoff: FAST });
    const r = await settle(within(f(`${mock.url}/v1/models`), 5000, "call"));
    assert.ok(r.ok, `should resolve, got ${r.error}`);
    assert.equal(r.value.status, 200);
    assert.equal(mock.requests.length, 2);
    const [g1] = gaps(mock.requests);
    assert.ok(g1 >= 100 - SLACK, `second attempt only after the 100 ms timeout (gap ${g1.toFixed(0)})`);
  });

  test("POST (not idempotent): hang → 1 request, RetryError mentioning the timeout", T, async (t) => {
    const mock = await mockFor(t, { script: [{ hang: true }, { status: 200 }] });
    const f = createRetryFetch({ attemptTimeoutMs: 100, backoff: FAST });
    const r = await settle(within(f(`${mock.url}/v1/chat/completions`, chatInit()), 5000, "call"));
    assert.equal(r.ok, false, "should reject");
    assert.ok(isRetryError(r.error), `RetryError expected, got ${r.error}`);
    assert.match(`${r.error.reason}`, /time/i, "reason mentions the timeout");
    assert.equal(r.error.attempts, 1);
    assert.ok(r.ms < 1000, `rejected after ${r.ms.toFixed(0)} ms`);
    await sleep(50);
    assert.equal(mock.requests.length, 1);
  });

  test("POST with an Idempotency-Key header → timed-out attempt is retried", T, async (t) => {
    const mock = await mockFor(t, { script: [{ hang: true }, { status: 200 }] });
    const f = createRetryFetch({ attemptTimeoutMs: 100, backoff: FAST });
    const r = await settle(
      within(f(`${mock.url}/v1/chat/completions`, chatInit({ headers: { "Idempotency-Key": "abc-123" } })), 5000, "call"),
    );
    assert.ok(r.ok, `should resolve, got ${r.error}`);
    assert.equal(r.value.status, 200);
    assert.equal(mock.requests.length, 2);
    for (const q of mock.requests) assert.equal(q.headers["idempotency-key"], "abc-123");
  });

  test("POST with idempotent: true → timed-out attempt is retried", T, async (t) => {
    const mock = await mockFor(t, { script: [{ hang: true }, { status: 200 }] });
    const f = createRetryFetch({ attemptTimeoutMs: 100, idempotent: true, backoff: FAST });
    const r = await settle(within(f(`${mock.url}/v1/chat/completions`, chatInit()), 5000, "call"));
    assert.ok(r.ok, `should resolve, got ${r.error}`);
    assert.equal(r.value.status, 200);
    assert.equal(mock.requests.length, 2);
    assert.equal(mock.requests[1].sha256, mock.requests[0].sha256);
  });

  test("slow headers within attemptTimeoutMs are not cut off", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 200, delayMs: 50 }] });
    const f = createRetryFetch({ attemptTimeoutMs: 500, backoff: FAST });
    const res = await f(`${mock.url}/v1/models`);
    assert.equal(res.status, 200);
    assert.equal(mock.requests.length, 1);
  });

  test("attemptTimeoutMs does not cut off a slow body once headers arrived", T, async (t) => {
    const mock = await mockFor(t, {
      script: [{ status: 200, chunks: ["data: 1\n\n", "data: 2\n\n", "data: 3\n\n"], chunkDelayMs: 80 }],
    });
    const f = createRetryFetch({ attemptTimeoutMs: 100, backoff: FAST });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "data: 1\n\ndata: 2\n\ndata: 3\n\n");
    assert.equal(mock.requests.length, 1);
  });
});

describe("10b. attemptTimeoutMs with the caller's signal", () => {
  // An attempt with a timeout has a signal of its own that follows the caller's: the caller's
  // abort must reach the request while it waits for headers and while its body streams after.

  /** A timed call to a hung mock whose signal (`prepare`d first) is aborted after 100 ms: it
   * rejects with the abort's reason, promptly. */
  async function abortedWhileHung(t, prepare = () => {}) {
    const mock = await mockFor(t, { script: [{ hang: true }] });
    const f = createRetryFetch({ attemptTimeoutMs: 5000, backoff: FAST });
    const controller = new AbortController();
    prepare(controller.signal);
    const reason = new Error("stop waiting");
    const timer = setTimeout(() => controller.abort(reason), 100);
    t.after(() => clearTimeout(timer));
    const r = await settle(within(f(`${mock.url}/v1/chat/completions`, chatInit({ signal: controller.signal })), 4000, "call"));
    assert.equal(r.error, reason, `rejects with the abort reason itself, got ${r.error}`);
    assert.ok(r.ms < 1000, `settled ${r.ms.toFixed(0)} ms after the call`);
    assert.equal(mock.requests.length, 1);
    return mock;
  }

  test("the caller's abort during a hung attempt rejects with its reason; the connection closes", T, async (t) => {
    const mock = await abortedWhileHung(t);
    await within(mock.requests[0].closed, 2000, "server-side close of the aborted request");
    assert.ok(mock.requests[0].closedEarly, "connection closed before a response");
  });

  test("the caller's abort while the body streams, after the attempt ended, errors the body and closes the connection", T, async (t) => {
    const chunks = Array.from({ length: 40 }, (_, i) => `data: ${i}\n\n`);
    const mock = await mockFor(t, { script: [{ status: 200, chunks, chunkDelayMs: 50 }] });
    const f = createRetryFetch({ attemptTimeoutMs: 5000, backoff: FAST });
    const controller = new AbortController();
    const reason = new Error("stop reading");
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit({ signal: controller.signal }));
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    assert.equal((await reader.read()).done, false, "a first chunk arrives");
    controller.abort(reason);
    const r = await settle(within((async () => { for (;;) if ((await reader.read()).done) return "ended"; })(), 2000, "body"));
    assert.equal(r.ok, false, `the body errors rather than ${r.value}`);
    assert.equal(r.error, reason, `with the abort reason, got ${r.error}`);
    await within(mock.requests[0].closed, 2000, "server-side close of the aborted stream");
    assert.ok(mock.requests[0].closedEarly, "connection closed before the stream's end");
  });

  test("a signal that takes no new properties is followed all the same: its abort reaches a hung timed attempt", T, async (t) => {
    await abortedWhileHung(t, (signal) => Object.preventExtensions(signal)); // (a frozen one could not be aborted at all)
  });

  test("one long-lived signal passed to many calls collects no listeners, and aborts the call in flight", T, async (t) => {
    const script = [...Array.from({ length: 300 }, () => ({ status: 200 })), { hang: true }];
    const mock = await mockFor(t, { script });
    const f = createRetryFetch({ attemptTimeoutMs: 5000, backoff: FAST });
    const controller = new AbortController();
    const warnings = [];
    const onWarning = (w) => warnings.push(w.name);
    process.on("warning", onWarning);
    t.after(() => process.off("warning", onWarning));
    for (let i = 0; i < 300; i++) {
      const res = await f(`${mock.url}/v1/chat/completions`, chatInit({ signal: controller.signal }));
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
    const { getEventListeners } = await import("node:events");
    assert.ok(getEventListeners(controller.signal, "abort").length <= 1, "at most one listener, whatever the number of calls");
    const reason = new Error("shutting down");
    const timer = setTimeout(() => controller.abort(reason), 100);
    t.after(() => clearTimeout(timer));
    const r = await settle(within(f(`${mock.url}/v1/chat/completions`, chatInit({ signal: controller.signal })), 4000, "call"));
    assert.equal(r.error, reason, `the call in flight rejects with the reason, got ${r.error}`);
    await sleep(10);
    assert.deepEqual(warnings.filter((n) => n === "MaxListenersExceededWarning"), []);
  });
});

describe("11. deadlineMs", () => {
  test("hang forever, deadlineMs 300 → RetryError within ~300–650 ms", T, async (t) => {
    const mock = await mockFor(t, { script: [{ hang: true }] });
    const f = createRetryFetch({ deadlineMs: 300, backoff: FAST });
    const r = await settle(() => within(f(`${mock.url}/v1/models`), 5000, "call"));
    assert.equal(r.ok, false, "should reject");
    assert.ok(isRetryError(r.error), `RetryError expected, got ${r.error}`);
    assert.ok(r.ms >= 300 - SLACK, `rejected after ${r.ms.toFixed(0)} ms, not before the deadline`);
    assert.ok(r.ms < 650, `rejected after ${r.ms.toFixed(0)} ms, expected soon after 300`);
  });

  test("503 with Retry-After: 2 and deadlineMs 1000 → 1 request, the 503 at once", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503, headers: { "retry-after": "2" } }, { status: 200 }] });
    const f = createRetryFetch({ deadlineMs: 1000, backoff: FAST });
    const r = await settle(within(f(`${mock.url}/v1/chat/completions`, chatInit()), 5000, "call"));
    assert.ok(r.ok, `should resolve, got ${r.error}`);
    assert.equal(r.value.status, 503);
    assert.ok(r.ms < 500, `returned after ${r.ms.toFixed(0)} ms; must not sleep past the deadline`);
    assert.equal(mock.requests.length, 1);
  });
});

describe("12. option validation (synchronous, from createRetryFetch)", () => {
  // [options, allowed error classes, message pattern, extension?] — the unmarked rows are the
  // contract's own examples; "extension" rows apply the same rule to the other options.
  const bad = [
    [{ maxAttempts: 0 }, RangeError, /maxAttempts/],
    [{ maxAttempts: "3" }, TypeError, /maxAttempts/],
    [{ backoff: { jitter: "wild" } }, [TypeError, RangeError], /backoff\.jitter/],
    [{ backoff: { initialMs: 500, maxMs: 100 } }, RangeError, /backoff\.maxMs/],
    [{ maxAtempts: 3 }, TypeError, /maxAtempts/],
    [{ fetch: 5 }, TypeError, /fetch/],
    [{ retryOn: [99] }, RangeError, /retryOn/],
    [{ onEvent: "x" }, TypeError, /onEvent/],
    [{ maxAttempts: 1.5 }, [TypeError, RangeError], /maxAttempts/, "extension"],
    [{ backoff: { initialMs: -1 } }, RangeError, /backoff\.initialMs/, "extension"],
    [{ backoff: { initalMs: 5 } }, TypeError, /initalMs/, "extension"],
    [{ retryOn: "429" }, TypeError, /retryOn/, "extension"],
    [{ deadlineMs: -5 }, RangeError, /deadlineMs/, "extension"],
    [{ attemptTimeoutMs: "100" }, TypeError, /attemptTimeoutMs/, "extension"],
    [{ idempotent: "yes" }, TypeError, /idempotent/, "extension"],
    [{ maxRetryAfterMs: -1 }, RangeError, /maxRetryAfterMs/, "extension"],
  ];
  for (const [opts, classes, re, ext] of bad) {
    const allowed = [classes].flat();
    const label = `${ext ? "(extension) " : ""}${JSON.stringify(opts)} → ${allowed.map((c) => c.name).join(" or ")} ${re}`;
    test(label, () => {
      let thrown;
      let returned;
      try {
        returned = createRetryFetch(opts);
      } catch (e) {
        thrown = e;
      }
      assert.ok(thrown !== undefined, `createRetryFetch(${JSON.stringify(opts)}) did not throw (returned ${typeof returned})`);
      assert.ok(
        allowed.some((C) => thrown instanceof C),
        `expected ${allowed.map((c) => c.name).join("/")}, got ${thrown?.constructor?.name}: ${thrown?.message}`,
      );
      assert.match(thrown.message, re);
    });
  }

  test("valid options do not throw", () => {
    assert.equal(typeof createRetryFetch(), "function");
    assert.equal(typeof createRetryFetch({}), "function");
    assert.equal(typeof createRetryFetch(undefined), "function");
    assert.equal(
      typeof createRetryFetch({
        maxAttempts: 5,
        backoff: { initialMs: 10, maxMs: 100, multiplier: 1.5, jitter: "decorrelated" },
        deadlineMs: 5000,
        attemptTimeoutMs: 1000,
        retryOn: [429, 503],
        maxRetryAfterMs: 10_000,
        idempotent: true,
        budget: { maxTokens: 10, tokenRatio: 0.1 },
        breaker: { failureThreshold: 5, cooldownMs: 1000 },
        fetch: globalThis.fetch,
        onEvent: () => {},
      }),
      "function",
    );
    for (const jitter of ["full", "equal", "decorrelated", "none"]) {
      assert.equal(typeof createRetryFetch({ backoff: { jitter } }), "function", `jitter ${jitter}`);
    }
    assert.equal(typeof createRetryFetch({ budget: false, breaker: false }), "function");
  });
});

describe("13. events", () => {
  test("scenario 2 emits two retry events and one success event", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 503 }, { status: 200 }] });
    const events = [];
    const f = createRetryFetch({
      backoff: { initialMs: 50, multiplier: 3, jitter: "none" },
      onEvent: (e) => events.push(e),
    });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.equal(res.status, 200);
    const retries = events.filter((e) => e.type === "retry");
    const successes = events.filter((e) => e.type === "success");
    assert.equal(retries.length, 2, `retry events: ${JSON.stringify(events)}`);
    assert.deepEqual(
      retries.map((e) => e.attempt),
      [1, 2],
    );
    for (const e of retries) {
      assert.equal(e.status, 503);
      assert.equal(typeof e.reason, "string");
      assert.ok(e.reason.length > 0);
      assert.equal(typeof e.delayMs, "number");
    }
    assert.ok(retries[1].delayMs > retries[0].delayMs, "delayMs increases");
    // Each wait is announced as it starts (`wait`), each retry as it is sent (`retry`, with the
    // time actually waited: the backoff and the timer's lateness).
    const waits = events.filter((e) => e.type === "wait");
    assert.deepEqual(
      waits.map((e) => [e.delayMs, e.wait]),
      [[50, "backoff"], [150, "backoff"]],
      "jitter none: delays are initialMs·multiplier^(n-1)",
    );
    retries.forEach((e, i) => assert.ok(e.delayMs >= waits[i].delayMs && e.delayMs < waits[i].delayMs + 100, `${e.delayMs}`));
    assert.deepEqual(events.map((e) => e.type), ["attempt", "wait", "retry", "attempt", "wait", "retry", "attempt", "success"]);
    assert.equal(successes.length, 1, `success events: ${JSON.stringify(events)}`);
    assert.equal(successes[0].attempts, 3);
    assert.equal(typeof successes[0].totalMs, "number");
    assert.ok(successes[0].totalMs >= 200 - SLACK, `totalMs ${successes[0].totalMs} covers the sleeps`);
    assert.equal(events.filter((e) => e.type === "giveUp").length, 0);
  });

  test("429 with Retry-After: 1 → retry event with hint retry-after and delayMs ≥ 1000", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 429, headers: { "retry-after": "1" } }, { status: 200 }] });
    const events = [];
    const f = createRetryFetch({ backoff: FAST, onEvent: (e) => events.push(e) });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.equal(res.status, 200);
    const retry = events.find((e) => e.type === "retry");
    assert.ok(retry, `no retry event in ${JSON.stringify(events)}`);
    assert.equal(retry.hint, "retry-after");
    assert.equal(retry.status, 429);
    assert.ok(retry.delayMs >= 1000, `delayMs ${retry.delayMs}`);
  });

  test("exhaustion emits giveUp with attempts", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }] });
    const events = [];
    const f = createRetryFetch({ maxAttempts: 2, backoff: FAST, onEvent: (e) => events.push(e) });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.equal(res.status, 503);
    const giveUps = events.filter((e) => e.type === "giveUp");
    assert.equal(giveUps.length, 1, `events: ${JSON.stringify(events)}`);
    assert.equal(giveUps[0].attempts, 2);
    assert.equal(typeof giveUps[0].reason, "string");
  });

  test("events and errors never carry the Authorization header or api key", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }] });
    const events = [];
    const secretHeaders = { Authorization: "Bearer sk-secret-123", "x-api-key": "sk-secret-123" };
    const f = createRetryFetch({ maxAttempts: 2, backoff: FAST, onEvent: (e) => events.push(e) });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit({ headers: secretHeaders }));
    assert.equal(res.status, 200);
    assert.equal(mock.requests[1].headers.authorization, "Bearer sk-secret-123", "header still sent");
    mock.setScript([{ status: 503 }]);
    await f(`${mock.url}/v1/chat/completions`, chatInit({ headers: secretHeaders })); // giveUp path
    const port = await getClosedPort();
    const r = await settle(f(`http://127.0.0.1:${port}/v1/chat/completions`, chatInit({ headers: secretHeaders })));
    assert.equal(r.ok, false);
    assert.ok(events.length >= 3, `expected retry/success/giveUp events, got ${events.length}`);
    assert.doesNotMatch(JSON.stringify(events), /sk-secret/);
    const leaks = deepStrings(events).filter((s) => s.includes("sk-secret"));
    assert.deepEqual(leaks, [], "no reachable string in the events holds the secret");
    const errLeaks = deepStrings(r.error).filter((s) => s.includes("sk-secret"));
    assert.deepEqual(errLeaks, [], "the RetryError does not hold the secret");
  });

  test("an onEvent that throws does not break the call", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }] });
    let calls = 0;
    const f = createRetryFetch({
      backoff: FAST,
      onEvent: () => {
        calls++;
        throw new Error("listener bug");
      },
    });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.equal(res.status, 200);
    assert.equal(mock.requests.length, 2);
    assert.ok(calls >= 1, "onEvent was called");
  });
});

describe("14. options.fetch transport", () => {
  test("a wrapper around globalThis.fetch is used for every attempt", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }] });
    let calls = 0;
    const transport = (input, init) => {
      calls++;
      return globalThis.fetch(input, init);
    };
    const f = createRetryFetch({ backoff: FAST, fetch: transport });
    const res = await f(`${mock.url}/v1/chat/completions`, chatInit());
    assert.equal(res.status, 200);
    assert.equal(calls, 2);
    assert.equal(mock.requests.length, 2);
  });

  test("a synthetic transport that never touches the network", T, async () => {
    const seen = [];
    const transport = async (input, init) => {
      const req = new Request(input, init);
      seen.push({ url: req.url, method: req.method, body: await req.text() });
      return seen.length < 2
        ? new Response("busy", { status: 503 })
        : new Response(JSON.stringify({ fine: true }), { status: 200, headers: { "content-type": "application/json" } });
    };
    const f = createRetryFetch({ backoff: FAST, fetch: transport });
    const res = await f("http://llm.invalid/v1/chat/completions", chatInit());
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { fine: true });
    assert.equal(seen.length, 2);
    for (const s of seen) {
      assert.equal(s.url, "http://llm.invalid/v1/chat/completions");
      assert.equal(s.method, "POST");
      assert.equal(s.body, CHAT_BODY);
    }
  });
});

describe("(extension) circuit breaker", () => {
  test("failureThreshold 2: after two failed calls the third, which cannot wait 10 s, is refused with CircuitOpenError, no request", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }] });
    const events = [];
    const f = createRetryFetch({
      maxAttempts: 1,
      backoff: FAST,
      deadlineMs: 5_000,
      breaker: { failureThreshold: 2, cooldownMs: 10_000 },
      onEvent: (e) => events.push(e),
    });
    assert.equal((await f(`${mock.url}/v1/chat/completions`, chatInit())).status, 503);
    assert.equal((await f(`${mock.url}/v1/chat/completions`, chatInit())).status, 503);
    const r = await settle(f(`${mock.url}/v1/chat/completions`, chatInit()));
    assert.equal(r.ok, false, `third call should be refused, got status ${r.value?.status}`);
    assert.ok(isCircuitOpenError(r.error), `CircuitOpenError expected, got ${r.error}`);
    assert.ok(r.error instanceof CircuitOpenError);
    assert.equal(r.error.name, "CircuitOpenError");
    assert.ok(r.error.retryInMs > 0 && r.error.retryInMs <= 10_000, `retryInMs ${r.error.retryInMs}`);
    assert.equal(mock.requests.length, 2, "no request while the circuit is open");
    const b = events.find((e) => e.type === "breaker");
    assert.ok(b, `breaker event expected in ${JSON.stringify(events)}`);
    assert.equal(typeof b.key, "string");
    assert.notEqual(b.from, b.to);
  });

  test("breaker: false never refuses", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }] });
    const f = createRetryFetch({ maxAttempts: 1, backoff: FAST, breaker: false });
    for (let i = 0; i < 8; i++) assert.equal((await f(`${mock.url}/v1/models`)).status, 503);
    assert.equal(mock.requests.length, 8);
  });
});

/** Every string reachable from `root`: own keys and values (enumerable or not), Headers, Map, Request/Response. */
function deepStrings(root) {
  const out = [];
  const seen = new Set();
  const visit = (v, depth) => {
    if (typeof v === "string") return void out.push(v);
    if (v === null || (typeof v !== "object" && typeof v !== "function") || seen.has(v) || depth > 12) return;
    seen.add(v);
    if (typeof Headers !== "undefined" && v instanceof Headers) {
      for (const [k, val] of v) out.push(k, val);
      return;
    }
    if (v instanceof Map) {
      for (const [k, val] of v) visit(k, depth + 1), visit(val, depth + 1);
      return;
    }
    if ((typeof Request !== "undefined" && v instanceof Request) || v instanceof Response) {
      out.push(v.url);
      visit(v.headers, depth + 1);
      return;
    }
    if (typeof v === "function") return;
    for (const key of Reflect.ownKeys(v)) {
      if (typeof key === "string") out.push(key);
      const d = Object.getOwnPropertyDescriptor(v, key);
      if (d && "value" in d) visit(d.value, depth + 1);
    }
    if (v instanceof Error) {
      out.push(String(v.message), String(v.stack ?? ""));
      visit(v.cause, depth + 1);
    }
  };
  visit(root, 0);
  return out;
}
