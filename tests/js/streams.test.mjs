// Event streams through retryFetch, seen from the outside: a failure after the 200 but before the
// first content event is a failed attempt (retried, or sent to the next route) and the caller
// reads exactly one clean stream; after the first content event bytes pass through, once.
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import { createRetryFetch, retry, retryReport } from "llm-retry";
import { T, mockFor, settle, chatInit } from "./helpers.mjs";

const SSE = { "content-type": "text/event-stream" };
const ev = (name, data) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
const chat = (delta, finish = null) => `data: ${JSON.stringify({ object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
const text = (t) => ev("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: t } });
const START = ev("message_start", { type: "message_start", message: { id: "msg", content: [] } });
const PING = ev("ping", { type: "ping" });
const STOP = ev("message_stop", { type: "message_stop" });
const OVERLOADED = ev("error", { type: "error", error: { type: "overloaded_error", message: "Overloaded" } });
const FAST = { initialMs: 10, maxMs: 20 };
const path = "/v1/messages";

/** The text of an Anthropic-style stream, and the raw body. */
async function read(res) {
  const body = await res.text();
  const out = [...body.matchAll(/"text":"([^"]*)"/g)].map((m) => m[1]).join("");
  return { body, text: out };
}

describe("event streams", () => {
  test("an in-band error before the first token is retried; the caller reads the second stream, once", T, async (t) => {
    const mock = await mockFor(t, {
      script: [
        { status: 200, headers: SSE, chunks: [START, PING, OVERLOADED] },
        { status: 200, headers: SSE, chunks: [START, text("Sec"), text("ond"), STOP] },
      ],
    });
    const events = [];
    const f = createRetryFetch({ backoff: FAST, onEvent: (e) => events.push(e) });
    const res = await f(mock.url + path, chatInit());
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const { body, text: got } = await read(res);
    assert.equal(got, "Second");
    assert.equal(body, START + text("Sec") + text("ond") + STOP, "exactly the served attempt's bytes, preamble first");
    assert.equal(mock.requests.length, 2);
    const report = retryReport(res);
    assert.deepEqual(report.attempts.map((a) => [a.status, a.reason, a.inStream ?? false]), [[200, "server-error", true], [200, "ok", false]]);
    assert.ok(report.firstTokenMs >= 0);
    const commit = events.find((e) => e.type === "commit");
    assert.equal(commit.attempt, 2);
    assert.deepEqual(events.map((e) => e.type), ["attempt", "wait", "retry", "attempt", "commit", "success"]);
  });

  test("a stream is known by its content type however it is written; JSON and others are not watched", T, async (t) => {
    const role = chat({ role: "assistant", content: "" });
    const err = `data: ${JSON.stringify({ error: { message: "boom", type: "server_error", code: null } })}\n\n`;
    for (const type of ["TEXT/EVENT-STREAM; charset=utf-8", "Text/Event-Stream"]) {
      const mock = await mockFor(t, {
        script: [
          { status: 200, headers: { "content-type": type }, chunks: [role, err] },
          { status: 200, headers: { "content-type": type }, chunks: [role, chat({ content: "ok" }), "data: [DONE]\n\n"] },
        ],
      });
      const res = await createRetryFetch({ backoff: FAST })(mock.url + "/v1/chat/completions", chatInit());
      assert.ok((await res.text()).includes('"content":"ok"'), type);
      assert.equal(mock.requests.length, 2, `${type}: the error before the first token was retried`);
    }
    for (const type of ["application/json", "text/plain", "application/x-event-stream"]) {
      const mock = await mockFor(t, { script: [{ status: 200, headers: { "content-type": type }, chunks: [role, err] }] });
      const res = await createRetryFetch({ backoff: FAST })(mock.url + "/v1/chat/completions", chatInit());
      assert.equal(await res.text(), role + err, `${type}: passed through as it is`);
      assert.equal(mock.requests.length, 1, `${type}: not read as a stream`);
    }
  });

  test("a chat-completions stream: the role-only first delta is preamble, an error chunk before content is retried", T, async (t) => {
    const role = chat({ role: "assistant", content: "" });
    const err = `data: ${JSON.stringify({ error: { message: "boom", type: "server_error", code: null } })}\n\n`;
    const mock = await mockFor(t, {
      script: [
        { status: 200, headers: SSE, chunks: [role, err] },
        { status: 200, headers: SSE, chunks: [role, chat({ content: "ok" }), chat({}, "stop"), "data: [DONE]\n\n"] },
      ],
    });
    const res = await createRetryFetch({ backoff: FAST })(mock.url + "/v1/chat/completions", chatInit());
    const body = await res.text();
    assert.ok(body.startsWith(role) && body.includes('"content":"ok"') && body.endsWith("data: [DONE]\n\n"), body);
    assert.equal(mock.requests.length, 2);
  });

  test("an exhausted quota inside the stream moves to the fallback route at once", T, async (t) => {
    const created = ev("response.created", { type: "response.created", response: { id: "r", status: "in_progress" } });
    const quota = ev("error", { type: "error", code: "insufficient_quota", message: "You exceeded your current quota", param: null });
    const primary = await mockFor(t, { script: [{ status: 200, headers: SSE, chunks: [created, quota] }] });
    const delta = ev("response.output_text.delta", { type: "response.output_text.delta", delta: "from the fallback" });
    const fallback = await mockFor(t, { script: [{ status: 200, headers: SSE, chunks: [created, delta] }] });
    const f = createRetryFetch({ backoff: FAST, fallbacks: [{ url: fallback.url + "/v1/responses", model: "other" }] });
    const res = await f(primary.url + "/v1/responses", chatInit());
    assert.ok((await res.text()).includes("from the fallback"));
    assert.equal(primary.requests.length, 1, "a quota is not retried on its route");
    assert.equal(fallback.requests.length, 1);
    assert.equal(fallback.requests[0].json.model, "other");
    assert.equal(retryReport(res).route, 1);
  });

  /** A first stream that stalls before its first token, then one on time, through a client with
   * `options` (a 200 ms timeout): the caller reads the second, the first attempt failed for
   * `reason`; the mock's record. */
  async function stalledThenOnTime(t, options, reason) {
    const mock = await mockFor(t, {
      script: [
        { status: 200, headers: SSE, chunks: [START, text("late")], chunkDelayMs: 5_000 },
        { status: 200, headers: SSE, chunks: [START, text("on time"), STOP] },
      ],
    });
    const r = await settle(() => createRetryFetch({ backoff: FAST, ...options })(mock.url + path, chatInit()));
    assert.ok(r.ok, `${r.error}`);
    assert.equal((await read(r.value)).text, "on time");
    assert.ok(r.ms >= 200 && r.ms < 2_000, `${r.ms} ms`);
    assert.equal(retryReport(r.value).attempts[0].reason, reason);
    assert.equal(mock.requests.length, 2);
    return mock;
  }

  test("a stall before the first token past firstTokenTimeoutMs is a failed attempt", T, async (t) => {
    await stalledThenOnTime(t, { firstTokenTimeoutMs: 200 }, "first-token-timeout");
  });

  test("attemptTimeoutMs ends at the headers: a POST whose first token comes later is served, one request", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 200, headers: SSE, chunks: [START, text("late"), STOP], chunkDelayMs: 300 }] });
    const f = createRetryFetch({ backoff: FAST, attemptTimeoutMs: 150, firstTokenTimeoutMs: 5_000 });
    const r = await settle(() => f(mock.url + path, chatInit()));
    assert.ok(r.ok, `${r.error}`);
    assert.equal((await read(r.value)).text, "late");
    assert.ok(retryReport(r.value).firstTokenMs >= 250, "the first token came after the attempt's timeout");
    assert.equal(mock.requests.length, 1);
  });

  test("an empty 200 event stream is a failed attempt: retried, the caller reads the second", T, async (t) => {
    const mock = await mockFor(t, {
      script: [{ status: 200, headers: SSE, chunks: [] }, { status: 200, headers: SSE, chunks: [START, text("second"), STOP] }],
    });
    const res = await createRetryFetch({ backoff: FAST })(mock.url + path, chatInit());
    assert.equal((await read(res)).text, "second");
    assert.equal(mock.requests.length, 2);
    assert.deepEqual(
      retryReport(res).attempts.map((a) => [a.status, a.inStream]),
      [[200, true], [200, undefined]],
    );
  });

  test("a body that breaks before the first token is a failed attempt of a 200 stream in the report", T, async () => {
    let n = 0;
    const enc = new TextEncoder();
    const broken = () =>
      new ReadableStream({
        start(c) {
          c.enqueue(enc.encode(START));
        },
        pull(c) {
          c.error(new TypeError("terminated"));
        },
      });
    const transport = async () =>
      new Response(++n === 1 ? broken() : START + text("ok") + STOP, { status: 200, headers: SSE });
    const res = await createRetryFetch({ backoff: FAST, fetch: transport })("https://api.example/v1/messages", chatInit());
    assert.equal((await read(res)).text, "ok");
    assert.equal(n, 2);
    const [first] = retryReport(res).attempts;
    assert.equal(first.status, 200);
    assert.equal(first.inStream, true);
  });

  test("a reasoning model's streamed thinking is content: it commits, and firstTokenTimeoutMs does not cut it", T, async (t) => {
    const thinking = chat({ content: null, reasoning_content: "Let me think." });
    const mock = await mockFor(t, {
      script: [
        {
          status: 200,
          headers: SSE,
          chunks: [chat({ role: "assistant", content: "" }), thinking, thinking, thinking, thinking, chat({ content: "Hi" }, "stop")],
          chunkDelayMs: 100,
        },
      ],
    });
    const f = createRetryFetch({ backoff: FAST, firstTokenTimeoutMs: 250 });
    const r = await settle(() => f(mock.url + "/v1/chat/completions", chatInit()));
    assert.ok(r.ok, `${r.error}`);
    const body = await r.value.text();
    assert.equal(body.split("Let me think.").length - 1, 4);
    assert.ok(body.includes('"Hi"'));
    assert.equal(mock.requests.length, 1);
    assert.ok(retryReport(r.value).firstTokenMs < 250, "committed at the first thought, not the first text");
  });

  test("a served stream keeps the url it came from and whether it was redirected", T, async (t) => {
    const mock = await mockFor(t, {
      script: [{ status: 307, headers: { location: "/v1/messages?moved" }, body: "" }, { status: 200, headers: SSE, chunks: [START, text("x"), STOP] }],
    });
    const res = await createRetryFetch({ backoff: FAST })(mock.url + path, chatInit());
    assert.equal(res.url, mock.url + "/v1/messages?moved");
    assert.equal(res.redirected, true);
    assert.equal((await read(res)).text, "x");
  });

  test("an error after the first token is the caller's: one request, nothing replayed", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 200, headers: SSE, chunks: [START, text("Hel"), OVERLOADED] }] });
    const res = await createRetryFetch({ backoff: FAST })(mock.url + path, chatInit());
    const body = await res.text();
    assert.equal(body, START + text("Hel") + OVERLOADED, "delivered as it came");
    assert.equal(mock.requests.length, 1);
  });

  test("one large chunk: an error deep in its preamble is retried; content then an error in it is delivered whole", T, async (t) => {
    const pings = PING.repeat(Math.ceil(20_000 / PING.length)); // the verdict lies past the first slices read
    const rest = text("x").repeat(2000);
    const mock = await mockFor(t, {
      script: [
        { status: 200, headers: SSE, chunks: [START + pings + OVERLOADED + rest] },
        { status: 200, headers: SSE, chunks: [START + pings + text("Hel") + rest + OVERLOADED] },
      ],
    });
    const res = await createRetryFetch({ backoff: FAST })(mock.url + path, chatInit());
    const body = await res.text();
    assert.equal(mock.requests.length, 2, "the first stream's error, 20 KB into its one chunk, failed the attempt");
    assert.equal(body, START + pings + text("Hel") + rest + OVERLOADED, "the second: every byte, once");
  });

  test("a custom transport's chunks: a view into a larger buffer is read where it lies, an ArrayBuffer is converted", T, async () => {
    const enc = new TextEncoder();
    // Each chunk a view of its own bytes inside a buffer that holds an in-band error either side of
    // them: were the buffer read rather than the view, the stream would fail before its content.
    const view = (s) => {
      const [junk, bytes] = [enc.encode(OVERLOADED), enc.encode(s)];
      const buf = new Uint8Array(junk.length * 2 + bytes.length);
      buf.set(junk);
      buf.set(bytes, junk.length);
      buf.set(junk, junk.length + bytes.length);
      return buf.subarray(junk.length, junk.length + bytes.length);
    };
    const served = [
      [START, OVERLOADED].map((s) => enc.encode(s).buffer), // an error before content, in ArrayBuffers
      [START, text("Hel"), text("lo"), STOP].map(view),
    ];
    let sent = 0;
    const transport = async () => {
      const chunks = served[sent++];
      return new Response(new ReadableStream({ pull: (c) => (chunks.length ? c.enqueue(chunks.shift()) : c.close()) }), { headers: SSE });
    };
    const res = await createRetryFetch({ fetch: transport, backoff: FAST })("http://127.0.0.1:9" + path, chatInit());
    const { body, text: got } = await read(res);
    assert.equal(sent, 2, "the ArrayBuffers' in-band error was seen: retried");
    assert.equal(got, "Hello");
    assert.equal(body, START + text("Hel") + text("lo") + STOP, "each view's own bytes, once");
    assert.deepEqual(retryReport(res).attempts.map((a) => [a.status, a.reason]), [[200, "server-error"], [200, "ok"]]);
  });

  test("after the commit, a gap past idleTimeoutMs errors the body with a TimeoutError", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 200, headers: SSE, chunks: [START, text("a"), text("b")], chunkDelayMs: 600 }] });
    const events = [];
    const res = await createRetryFetch({ idleTimeoutMs: 300, onEvent: (e) => events.push(e) })(mock.url + path, chatInit());
    const r = await settle(res.text());
    assert.equal(r.ok, false);
    assert.equal(r.error.name, "TimeoutError", `${r.error}`);
    const after = events.filter((e) => e.type === "streamError");
    assert.deepEqual(after.map((e) => [e.phase, e.error, e.route]), [["after-commit", "TimeoutError", 0]], "told that it failed after the commit");
    assert.deepEqual(retryReport(res).streamError, { phase: "after-commit", error: "TimeoutError" }, "and the report says so");
    assert.equal(after[0].callId, retryReport(res).id);
    assert.equal(mock.requests.length, 1);
  });

  test("a preamble past 64 KB commits rather than grow", T, async (t) => {
    const pings = PING.repeat(Math.ceil(70_000 / PING.length));
    const mock = await mockFor(t, { script: [{ status: 200, headers: SSE, chunks: [START, pings, OVERLOADED] }, { status: 200 }] });
    const res = await createRetryFetch({ backoff: FAST })(mock.url + path, chatInit());
    assert.ok((await res.text()).endsWith(OVERLOADED), "committed before the error: delivered");
    assert.equal(mock.requests.length, 1);
  });

  test("aborting during the preamble rejects with the signal's reason", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 200, headers: SSE, chunks: [START, text("x")], chunkDelayMs: 5_000 }] });
    const controller = new AbortController();
    const reason = new Error("stop");
    setTimeout(() => controller.abort(reason), 100);
    const r = await settle(createRetryFetch()(mock.url + path, chatInit({ signal: controller.signal })));
    assert.equal(r.error, reason);
    assert.ok(r.ms < 1_000);
  });

  test("aborting during the preamble rejects at once even when the transport's body ignores the signal", T, async () => {
    let cancelled = false;
    const transport = async (url, init) => {
      if (init.signal?.aborted) throw init.signal.reason;
      const body = new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode(START));
        },
        pull: () => new Promise(() => {}), // never another chunk, whatever the signal says
        cancel() {
          cancelled = true;
        },
      });
      return new Response(body, { status: 200, headers: SSE });
    };
    const controller = new AbortController();
    const reason = new Error("stop");
    setTimeout(() => controller.abort(reason), 100);
    const r = await settle(createRetryFetch({ fetch: transport })("https://api.example/v1/messages", chatInit({ signal: controller.signal })));
    assert.equal(r.error, reason);
    assert.ok(r.ms < 1_000, `${r.ms} ms`);
    assert.equal(cancelled, true, "the transport's body was cancelled");
  });

  test("a JSON (non-stream) 200 is untouched", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 200 }] });
    const res = await createRetryFetch()(mock.url + "/v1/chat/completions", chatInit());
    assert.equal((await res.json()).object, "chat.completion");
    assert.equal(retryReport(res).firstTokenMs, undefined);
  });
});

describe("retry(fn) with a stream object", () => {
  const overloaded = () => Object.assign(new Error("Overloaded"), { error: { type: "error", error: { type: "overloaded_error", message: "Overloaded" } } });
  /** An SDK-like stream object: async iterable, with a member of its own. */
  const streamOf = (items, { failAt = -1, delayMs = 0 } = {}) => ({
    label: "sdk-stream",
    async *[Symbol.asyncIterator]() {
      for (let i = 0; i < items.length; i++) {
        if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
        if (i === failAt) throw overloaded();
        yield items[i];
      }
    },
  });
  const START_ITEM = { type: "message_start", message: {} };
  const TEXT = (t) => ({ type: "content_block_delta", delta: { type: "text_delta", text: t } });

  test("an error before the first content item is retried; the caller iterates one stream, each item once", T, async () => {
    let calls = 0;
    const s = await retry(() => (++calls === 1 ? streamOf([START_ITEM, TEXT("x")], { failAt: 1 }) : streamOf([START_ITEM, TEXT("a"), TEXT("b")])), { backoff: FAST });
    const got = [];
    for await (const item of s) got.push(item.delta?.text ?? item.type);
    assert.deepEqual(got, ["message_start", "a", "b"]);
    assert.equal(calls, 2);
    assert.equal(s.label, "sdk-stream", "the object's own members are still there");
    assert.equal(retryReport(s).attempts[0].inStream, true);
  });

  test("an error after the first content item is the caller's: fn called once", T, async () => {
    let calls = 0;
    const s = await retry(() => (calls++, streamOf([START_ITEM, TEXT("a"), TEXT("b")], { failAt: 2 })), { backoff: FAST });
    const got = [];
    const r = await settle((async () => { for await (const item of s) got.push(item.delta?.text ?? item.type); })());
    assert.equal(r.ok, false);
    assert.equal(r.error.message, "Overloaded");
    assert.deepEqual(got, ["message_start", "a"]);
    assert.equal(calls, 1);
  });

  test("the caller stopping early closes the stream object's own iteration (an SDK aborts its request)", T, async () => {
    let closed = 0;
    const obj = {
      async *[Symbol.asyncIterator]() {
        try {
          for (const item of [START_ITEM, TEXT("a"), TEXT("b"), TEXT("c")]) yield item;
        } finally {
          closed += 1;
        }
      },
    };
    const s = await retry(() => obj, { backoff: FAST });
    assert.equal(s, obj, "the object itself, its iteration resumed");
    const got = [];
    for await (const item of s) {
      got.push(item.delta?.text ?? item.type);
      if (got.length === 2) break;
    }
    assert.deepEqual(got, ["message_start", "a"]);
    assert.equal(closed, 1);
  });

  test("a stream object given up on for an in-band error item is closed before the next attempt", T, async () => {
    const closed = [];
    const ERROR_ITEM = { type: "error", error: { type: "overloaded_error", message: "Overloaded" } };
    const make = (n, items) => ({
      async *[Symbol.asyncIterator]() {
        try {
          for (const item of items) yield item;
        } finally {
          closed.push(n);
        }
      },
    });
    let calls = 0;
    const s = await retry(() => (++calls === 1 ? make(1, [START_ITEM, ERROR_ITEM, TEXT("never")]) : make(2, [START_ITEM, TEXT("a")])), { backoff: FAST });
    assert.deepEqual(closed, [1], "the first stream closed, the served one still open");
    const got = [];
    for await (const item of s) got.push(item.delta?.text ?? item.type);
    assert.deepEqual(got, ["message_start", "a"]);
    assert.deepEqual(closed, [1, 2]);
    assert.equal(calls, 2);
  });

  test("a frozen stream object is wrapped: one stream, each item once, its members readable", T, async () => {
    let calls = 0;
    const s = await retry(() => Object.freeze(++calls === 1 ? streamOf([START_ITEM, TEXT("x")], { failAt: 1 }) : streamOf([START_ITEM, TEXT("a")])), { backoff: FAST });
    const got = [];
    for await (const item of s) got.push(item.delta?.text ?? item.type);
    assert.deepEqual(got, ["message_start", "a"]);
    assert.equal(s.label, "sdk-stream");
    assert.equal(calls, 2);
    await assert.rejects(async () => {
      for await (const _ of s);
    }, /already been iterated/);
  });

  test("attemptTimeoutMs bounds fn until it returns: a stream whose first item comes later is served, fn called once", T, async () => {
    let calls = 0;
    const s = await retry(() => (++calls, streamOf([START_ITEM, TEXT("late")], { delayMs: 150 })), {
      backoff: FAST,
      attemptTimeoutMs: 100,
    });
    const got = [];
    for await (const item of s) if (item.delta) got.push(item.delta.text);
    assert.deepEqual(got, ["late"]);
    assert.equal(calls, 1);
  });

  test("an iterator whose next() throws at once, or that has none, rejects the call with that error", T, async () => {
    const boom = new Error("boom");
    const throwing = { [Symbol.asyncIterator]: () => ({ next() { throw boom; } }) };
    await assert.rejects(retry(() => throwing, { backoff: FAST }), (e) => e === boom);
    await assert.rejects(retry(() => ({ [Symbol.asyncIterator]: () => ({}) }), { backoff: FAST }), TypeError);
  });

  test("a stream given up on before its first item has its request aborted through the attempt's signal", T, async () => {
    const signals = [];
    const s = await retry(({ signal }) => {
      signals.push(signal);
      return signals.length === 1 ? streamOf([START_ITEM, TEXT("late")], { delayMs: 3_000 }) : streamOf([TEXT("ok")]);
    }, { backoff: FAST, firstTokenTimeoutMs: 100 });
    for await (const _ of s);
    assert.equal(signals.length, 2);
    assert.equal(signals[0].aborted, true, "the stalled attempt's request was aborted");
    assert.equal(signals[0].reason?.name, "TimeoutError");
    assert.equal(signals[1].aborted, false);
  });

  test("idleTimeoutMs: a served stream object silent past it ends with a TimeoutError, its request aborted", T, async () => {
    let signal;
    const silent = {
      async *[Symbol.asyncIterator]() {
        yield TEXT("first");
        await new Promise(() => {}); // never another item
      },
    };
    const s = await retry((ctx) => ((signal = ctx.signal), silent), { backoff: FAST, idleTimeoutMs: 100 });
    const got = [];
    const started = performance.now();
    await assert.rejects(async () => {
      for await (const item of s) got.push(item.delta.text);
    }, { name: "TimeoutError" });
    assert.deepEqual(got, ["first"]);
    assert.ok(performance.now() - started < 1_000);
    assert.equal(signal.aborted, true);
  });

  test("a stream object that ends with no item at all is a failed attempt", T, async () => {
    let calls = 0;
    const s = await retry(() => (++calls === 1 ? streamOf([]) : streamOf([TEXT("ok")])), { backoff: FAST });
    const got = [];
    for await (const item of s) got.push(item.delta.text);
    assert.deepEqual(got, ["ok"]);
    assert.equal(calls, 2);
  });

  test("a stream that stalls before its first content item past firstTokenTimeoutMs is retried", T, async () => {
    let calls = 0;
    const s = await retry(() => (++calls === 1 ? streamOf([START_ITEM, TEXT("late")], { delayMs: 3_000 }) : streamOf([TEXT("ok")])), {
      backoff: FAST,
      firstTokenTimeoutMs: 150,
    });
    const got = [];
    for await (const item of s) got.push(item.delta.text);
    assert.deepEqual(got, ["ok"]);
    assert.equal(calls, 2);
  });
});
