// Stream retries with the real SDKs: a `200 text/event-stream` is committed only at its first
// content event; before that an in-band error event, a transport error or a stall is a failed
// attempt (retried, or sent to the next route), and the caller gets ONE clean stream — the served
// attempt's status, headers and body, its own preamble first, no event twice. After the commit an
// error is the caller's to see, and nothing is sent again.
//
// The bodies are the recorded streams in ../fixtures/sse (see its README), served event by event
// by the scripted mock provider on 127.0.0.1. The first describe block runs every fixture through
// the plain SDKs (no llm-retry), so a broken fixture cannot pass for a library bug.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { performance } from "node:perf_hooks";

import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { streamText } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { createAnthropic } from "@ai-sdk/anthropic";
import { createRetryFetch, retry, retryReport } from "llm-retry";
import { T, SLACK, mockFor } from "./harness.mjs";

const FAST = { initialMs: 20, maxMs: 50 };
const MODEL = "gpt-4o";
const CLAUDE = "claude-mock-model"; // unknown to the SDK: no deprecation notice
const MESSAGES = [{ role: "user", content: "Say hi" }];

// ---------------------------------------------------------------------------------------------
// Fixtures and mock steps

const FIXTURES = new URL("../fixtures/sse/", import.meta.url);
const sse = (name) => readFileSync(new URL(name, FIXTURES), "utf8");
/** A fixture cut into its events (each with its trailing blank line), as a provider flushes them. */
const events = (name) => sse(name).split(/(?<=\n\n|\r\n\r\n)/).filter(Boolean);

const TEXT = {
  "openai-chat-good.sse": "Hello world",
  "openai-chat-good-crlf.sse": "CRLF stream",
  "openai-chat-error-after-content.sse": "Partial answer",
  "openai-responses-good.sse": "Second stream",
  "anthropic-good.sse": "Third stream",
  "anthropic-error-after-content.sse": "Half",
};

/**
 * A mock step answering 200 with fixture `name`, one event per write. `id` goes out as both
 * x-request-id (OpenAI) and request-id (Anthropic), so a test can tell whose headers it got.
 */
function stream(name, id, extra = {}) {
  return {
    status: 200,
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-request-id": id, "request-id": id },
    chunks: events(name),
    ...extra,
  };
}

/** Lets a stray extra request land before the test counts requests. */
const settle = () => new Promise((r) => setTimeout(r, 50));

// ---------------------------------------------------------------------------------------------
// Clients and what they hand the caller

const openaiClient = (mock, fetch) =>
  new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, fetch, maxRetries: 0 });
const anthropicClient = (mock, fetch) =>
  new Anthropic({ apiKey: "sk-ant-test", baseURL: mock.url, fetch, maxRetries: 0 });

/** Iterates an openai chat stream: text, chunk ids, role chunks, and the error it ended with. */
async function readChat(s) {
  const out = { text: "", ids: [], roles: 0, tools: {}, finish: null, error: null };
  try {
    for await (const chunk of s) {
      out.ids.push(chunk.id);
      const choice = chunk.choices[0];
      if (!choice) continue;
      if (choice.delta?.role) out.roles += 1;
      out.text += choice.delta?.content ?? "";
      for (const tc of choice.delta?.tool_calls ?? []) {
        const acc = (out.tools[tc.index] ??= { id: null, name: "", arguments: "" });
        if (tc.id) acc.id = tc.id;
        acc.name += tc.function?.name ?? "";
        acc.arguments += tc.function?.arguments ?? "";
      }
      if (choice.finish_reason) out.finish = choice.finish_reason;
    }
  } catch (e) {
    out.error = e;
  }
  return out;
}

/** Iterates an openai Responses stream: the event types in order and the text deltas. */
async function readResponses(s) {
  const out = { text: "", types: [], events: [], error: null };
  try {
    for await (const ev of s) {
      out.types.push(ev.type);
      out.events.push(ev);
      if (ev.type === "response.output_text.delta") out.text += ev.delta;
    }
  } catch (e) {
    out.error = e;
  }
  return out;
}

/** Runs an Anthropic MessageStream to its end: text from `text` events, final message, error. */
async function readMessageStream(ms) {
  const out = { deltas: [], text: null, message: null, error: null };
  ms.on("text", (d) => out.deltas.push(d));
  try {
    out.text = await ms.finalText();
    out.message = await ms.finalMessage();
  } catch (e) {
    out.error = e;
  }
  return out;
}

/** streamText to its end; errors the AI SDK reports through onError are collected, not logged. */
async function aiText(model) {
  const errors = [];
  const result = streamText({ model, prompt: "Say hi", maxOutputTokens: 16, maxRetries: 0, onError: ({ error }) => errors.push(error) });
  let text = null;
  let error = null;
  try {
    text = await result.text;
  } catch (e) {
    error = e;
  }
  return { text, error, errors };
}

/** createRetryFetch with its events and each returned Response's retryReport recorded. */
function recorded(options = {}) {
  const events = [];
  const reports = [];
  const retryFetch = createRetryFetch({ backoff: FAST, ...options, onEvent: (e) => events.push(e) });
  const fetch = async (input, init) => {
    const res = await retryFetch(input, init);
    reports.push(retryReport(res));
    return res;
  };
  return { fetch, events, reports };
}

/** The light checks of the commit signals: a commit event and the report's firstTokenMs. */
function assertCommitted(rec, { route }) {
  const commits = rec.events.filter((e) => e.type === "commit");
  assert.equal(commits.length, 1, `one commit event: ${JSON.stringify(rec.events)}`);
  assert.equal(commits[0].route, route, "the commit names the serving route");
  assert.equal(typeof commits[0].attempt, "number");
  assert.equal(typeof commits[0].firstTokenMs, "number");
  assert.ok(commits[0].firstTokenMs >= 0);
  assert.equal(typeof rec.reports[0]?.firstTokenMs, "number", `retryReport carries firstTokenMs: ${JSON.stringify(rec.reports[0])}`);
}

function assertIdenticalBodies(requests) {
  for (const r of requests.slice(1)) assert.equal(r.sha256, requests[0].sha256, "identical bodies");
}

// ---------------------------------------------------------------------------------------------

describe("fixtures parse with the plain SDKs", () => {
  test("every fixture: whole events, JSON data, the line ends it claims", () => {
    const names = readdirSync(FIXTURES).filter((n) => n.endsWith(".sse"));
    assert.equal(names.length, 14);
    for (const name of names) {
      const raw = sse(name);
      const crlf = name.includes("crlf");
      assert.equal(events(name).join(""), raw, `${name}: split into events and back`);
      if (crlf) assert.ok(!/[\r\n]/.test(raw.replace(/\r\n/g, "")), `${name}: only \\r\\n`);
      else assert.ok(!raw.includes("\r"), `${name}: only \\n`);
      assert.ok(raw.endsWith(crlf ? "\r\n\r\n" : "\n\n"), `${name}: ends with a blank line`);
      for (const ev of events(name)) {
        const lines = ev.split(/\r?\n/).filter(Boolean);
        const data = lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6));
        assert.equal(data.length, 1, `${name}: one data line per event`);
        const named = lines.find((l) => l.startsWith("event: "))?.slice(7);
        if (data[0] === "[DONE]") continue;
        const json = JSON.parse(data[0]);
        if (named) assert.equal(json.type, named, `${name}: event name matches data.type`);
        assert.ok(name.startsWith("openai-chat") ? !named : named, `${name}: event: lines only outside chat completions`);
      }
    }
  });

  describe("openai (chat completions)", () => {
    const run = async (t, name) => {
      const mock = await mockFor(t, { script: [stream(name, "req_plain")], exhausted: "error" });
      const s = await openaiClient(mock, globalThis.fetch).chat.completions.create({ model: MODEL, messages: MESSAGES, stream: true });
      return readChat(s);
    };
    for (const name of ["openai-chat-good.sse", "openai-chat-good-crlf.sse"]) {
      test(`${name} → "${TEXT[name]}"`, T, async (t) => {
        const r = await run(t, name);
        assert.equal(r.error, null);
        assert.equal(r.text, TEXT[name]);
        assert.equal(r.finish, "stop");
        assert.equal(r.roles, 1);
      });
    }
    test("openai-chat-tool-call-first.sse → get_weather({\"city\":\"Paris\"})", T, async (t) => {
      const r = await run(t, "openai-chat-tool-call-first.sse");
      assert.equal(r.error, null);
      assert.equal(r.text, "");
      assert.deepEqual(r.tools, { 0: { id: "call_mockWeather01", name: "get_weather", arguments: '{"city":"Paris"}' } });
      assert.equal(r.finish, "tool_calls");
    });
    test("openai-chat-error-before-content.sse → the SDK throws APIError (no status) after the role chunk", T, async (t) => {
      const r = await run(t, "openai-chat-error-before-content.sse");
      assert.ok(r.error instanceof OpenAI.APIError, String(r.error));
      assert.equal(r.error.status, undefined, "an in-band error has no HTTP status");
      assert.equal(r.error.type, "server_error");
      assert.match(r.error.message, /The server had an error/);
      assert.equal(r.text, "");
      assert.equal(r.ids.length, 1, "the role-only chunk was yielded first");
    });
    test("openai-chat-error-after-content.sse → \"Partial answer\", then APIError", T, async (t) => {
      const r = await run(t, "openai-chat-error-after-content.sse");
      assert.ok(r.error instanceof OpenAI.APIError, String(r.error));
      assert.equal(r.text, "Partial answer");
    });
  });

  describe("openai (Responses API)", () => {
    const run = async (t, name) => {
      const mock = await mockFor(t, { script: [stream(name, "req_plain")], exhausted: "error" });
      const s = await openaiClient(mock, globalThis.fetch).responses.create({ model: MODEL, input: "Say hi", stream: true });
      return readResponses(s);
    };
    test("openai-responses-good.sse → \"Second stream\" (create and responses.stream)", T, async (t) => {
      const r = await run(t, "openai-responses-good.sse");
      assert.equal(r.error, null);
      assert.equal(r.text, "Second stream");
      assert.equal(r.types[0], "response.created");
      assert.equal(r.types.at(-1), "response.completed");
      const mock = await mockFor(t, { script: [stream("openai-responses-good.sse", "req_plain")], exhausted: "error" });
      const final = await openaiClient(mock, globalThis.fetch).responses.stream({ model: MODEL, input: "Say hi" }).finalResponse();
      // finalResponse() is the snapshot built from the deltas (this SDK release sets no output_text
      // on it unless the request asked for auto-parsing).
      assert.equal(final.output[0].content[0].text, "Second stream");
      assert.equal(final.id, "resp_mockGood0001");
    });
    // The openai SDK does NOT throw for the Responses API's in-band errors: `event: error` data has
    // no `.error` field (code/message are top level) and the event name is not thread.*, so both
    // `error` and `response.failed` are yielded to the caller as ordinary events.
    for (const [name, type, code] of [
      ["openai-responses-error-insufficient-quota.sse", "error", "insufficient_quota"],
      ["openai-responses-failed-server-error.sse", "response.failed", "server_error"],
      ["openai-responses-error-overloaded.sse", "error", "server_is_overloaded"],
    ]) {
      test(`${name} → yielded as a \`${type}\` event (code ${code}), no text, no throw`, T, async (t) => {
        const r = await run(t, name);
        assert.equal(r.error, null);
        assert.equal(r.text, "");
        assert.equal(r.types[0], "response.created");
        const last = r.events.at(-1);
        assert.equal(last.type, type);
        assert.equal(type === "error" ? last.code : last.response.error.code, code);
      });
    }
  });

  describe("@anthropic-ai/sdk (messages.stream)", () => {
    const run = async (t, name) => {
      const mock = await mockFor(t, { script: [stream(name, "req_plain")], exhausted: "error" });
      return readMessageStream(
        anthropicClient(mock, globalThis.fetch).messages.stream({ model: CLAUDE, max_tokens: 16, messages: MESSAGES }),
      );
    };
    test("anthropic-good.sse → finalText \"Third stream\"", T, async (t) => {
      const r = await run(t, "anthropic-good.sse");
      assert.equal(r.error, null);
      assert.equal(r.text, "Third stream");
      assert.deepEqual(r.deltas, ["Thi", "rd", " stream"]);
      assert.equal(r.message.id, "msg_mockGood0001");
      assert.equal(r.message.stop_reason, "end_turn");
    });
    for (const [name, type] of [
      ["anthropic-error-overloaded.sse", "overloaded_error"],
      ["anthropic-error-rate-limit.sse", "rate_limit_error"],
      ["anthropic-error-invalid-request.sse", "invalid_request_error"],
    ]) {
      test(`${name} → the stream rejects with APIError type ${type}, no text`, T, async (t) => {
        const r = await run(t, name);
        assert.ok(r.error instanceof Anthropic.APIError, String(r.error));
        assert.equal(r.error.status, undefined, "an in-band error has no HTTP status");
        assert.equal(r.error.type, type);
        assert.deepEqual(r.deltas, []);
      });
    }
    test("anthropic-error-after-content.sse → \"Half\", then APIError overloaded_error", T, async (t) => {
      const r = await run(t, "anthropic-error-after-content.sse");
      assert.ok(r.error instanceof Anthropic.APIError, String(r.error));
      assert.equal(r.error.type, "overloaded_error");
      assert.deepEqual(r.deltas, ["Half"]);
    });
  });

  describe("ai streamText (@ai-sdk/openai, @ai-sdk/anthropic)", () => {
    const models = {
      chat: (mock) => createOpenAI({ baseURL: `${mock.url}/v1`, apiKey: "sk-test" }).chat(MODEL),
      responses: (mock) => createOpenAI({ baseURL: `${mock.url}/v1`, apiKey: "sk-test" })(MODEL),
      anthropic: (mock) => createAnthropic({ baseURL: `${mock.url}/v1`, apiKey: "sk-ant-test" })(CLAUDE),
    };
    for (const [kind, name, path] of [
      ["chat", "openai-chat-good.sse", "/v1/chat/completions"],
      ["chat", "openai-chat-good-crlf.sse", "/v1/chat/completions"],
      ["responses", "openai-responses-good.sse", "/v1/responses"],
      ["anthropic", "anthropic-good.sse", "/v1/messages"],
    ]) {
      test(`${kind}: ${name} → "${TEXT[name]}"`, T, async (t) => {
        const mock = await mockFor(t, { script: [stream(name, "req_plain")], exhausted: "error" });
        const r = await aiText(models[kind](mock));
        assert.deepEqual(r.errors, []);
        assert.equal(r.text, TEXT[name]);
        assert.equal(mock.requests[0].path, path);
      });
    }
    // How the AI SDK surfaces in-band errors (plain fetch). @ai-sdk/openai peeks the stream up to
    // its first output chunk and throws an APICallError (status made up from the code: 500, 503,
    // 429 not retryable for insufficient_quota); streamText hands it to onError and `result.text`
    // rejects with NoOutputGeneratedError. After content, the error frame reaches onError as a
    // plain object and `result.text` RESOLVES with the partial text. @ai-sdk/anthropic checks only
    // the first part after stream-start, which is message_start's metadata, so an error after
    // message_start is never an APICallError: it reaches onError as a plain object and
    // `result.text` resolves with "" — a silent empty answer.
    for (const [kind, name, expect] of [
      ["chat", "openai-chat-error-before-content.sse", { status: 500, text: null }],
      ["chat", "openai-chat-error-after-content.sse", { object: true, text: "Partial answer" }],
      ["responses", "openai-responses-error-overloaded.sse", { status: 503, text: null }],
      ["responses", "openai-responses-error-insufficient-quota.sse", { status: 429, text: null }],
      ["responses", "openai-responses-failed-server-error.sse", { status: 500, text: null }],
      ["anthropic", "anthropic-error-overloaded.sse", { object: true, text: "" }],
      ["anthropic", "anthropic-error-after-content.sse", { object: true, text: "Half" }],
    ]) {
      const how = expect.status ? `APICallError ${expect.status}, text rejects` : `a plain error object, text ${JSON.stringify(expect.text)}`;
      test(`${kind}: ${name} → onError gets ${how}`, T, async (t) => {
        const mock = await mockFor(t, { script: [stream(name, "req_plain")], exhausted: "error" });
        const r = await aiText(models[kind](mock));
        assert.equal(r.errors.length, 1, `one error: ${r.errors}`);
        const [e] = r.errors;
        if (expect.status) {
          assert.equal(e.name, "AI_APICallError", String(e));
          assert.equal(e.statusCode, expect.status);
          assert.equal(r.error?.name, "AI_NoOutputGeneratedError", String(r.error));
          assert.equal(r.text, null);
        } else {
          assert.ok(!(e instanceof Error) && typeof e.message === "string", JSON.stringify(e));
          assert.equal(r.error, null);
          assert.equal(r.text, expect.text);
        }
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Through llm-retry

/** The start of a fixture (its first `n` events), then nothing for a minute: a stall. */
function stalledAfter(name, n, id) {
  const ev = events(name);
  return stream(name, id, { chunks: [ev.slice(0, n).join(""), ev.slice(n).join("")], chunkDelayMs: 60_000 });
}

/** A fixture whose first `n` events come at once, then a `gapMs` pause before the rest. */
function gapAfter(name, n, gapMs, id) {
  const ev = events(name);
  return stream(name, id, { chunks: [ev.slice(0, n).join(""), ev.slice(n).join("")], chunkDelayMs: gapMs });
}

const closedWithin = (req, ms) =>
  Promise.race([req.closed.then(() => true), new Promise((r) => setTimeout(() => r(false), ms))]);

describe("raw fetch through llm-retry: one clean stream", () => {
  // The body the caller reads is byte for byte the serving attempt's fixture: its own preamble,
  // nothing of the failed attempt's, no event twice.
  for (const [bad, good, path] of [
    ["openai-chat-error-before-content.sse", "openai-chat-good.sse", "/v1/chat/completions"],
    ["openai-chat-error-before-content.sse", "openai-chat-good-crlf.sse", "/v1/chat/completions"],
    ["openai-responses-failed-server-error.sse", "openai-responses-good.sse", "/v1/responses"],
    ["openai-responses-error-overloaded.sse", "openai-responses-good.sse", "/v1/responses"],
    ["anthropic-error-overloaded.sse", "anthropic-good.sse", "/v1/messages"],
    ["anthropic-error-rate-limit.sse", "anthropic-good.sse", "/v1/messages"],
  ]) {
    test(`200 + ${bad}, then ${good} → the caller reads exactly ${good}, 2 requests`, T, async (t) => {
      const mock = await mockFor(t, { script: [stream(bad, "req_1"), stream(good, "req_2")], exhausted: "error" });
      const rec = recorded();
      const res = await rec.fetch(`${mock.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, stream: true, messages: MESSAGES }),
      });
      const body = await res.text();
      await settle();
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-request-id"), "req_2", "the served attempt's headers");
      assert.match(res.headers.get("content-type"), /^text\/event-stream/);
      assert.equal(body, sse(good));
      assert.equal(mock.requests.length, 2);
      assertIdenticalBodies(mock.requests);
      assertCommitted(rec, { route: 0 });
    });
  }

  test("200 + anthropic-error-invalid-request.sse → delivered as it came (the caller's own error), 1 request", T, async (t) => {
    const name = "anthropic-error-invalid-request.sse";
    const mock = await mockFor(t, { script: [stream(name, "req_1"), stream("anthropic-good.sse", "req_2")], exhausted: "error" });
    const res = await createRetryFetch({ backoff: FAST })(`${mock.url}/v1/messages`, { method: "POST", body: "{}" });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), sse(name));
    await settle();
    assert.equal(mock.requests.length, 1);
  });

  test("idle gap after content > idleTimeoutMs → the body errors with a TimeoutError, 1 request", T, async (t) => {
    const mock = await mockFor(t, { script: [gapAfter("openai-chat-good.sse", 2, 1500, "req_1")], exhausted: "error" });
    const res = await createRetryFetch({ backoff: FAST, idleTimeoutMs: 300 })(`${mock.url}/v1/chat/completions`, { method: "POST", body: "{}" });
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let got = "";
    const t0 = performance.now();
    const err = await (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return null;
          got += dec.decode(value, { stream: true });
        }
      } catch (e) {
        return e;
      }
    })();
    const after = performance.now() - t0;
    assert.equal(err?.name, "TimeoutError", String(err));
    assert.equal(got, events("openai-chat-good.sse").slice(0, 2).join(""), "what came before the gap, once");
    assert.ok(after < 1500, `errored after ${after.toFixed(0)} ms, before the gap ended`);
    await settle();
    assert.equal(mock.requests.length, 1);
  });
});

describe("stream retries with the real SDKs", () => {
  test("1. openai chat stream: in-band server_error before content, then a good stream → \"Hello world\" once, 2 requests", T, async (t) => {
    const mock = await mockFor(t, {
      script: [stream("openai-chat-error-before-content.sse", "req_1"), stream("openai-chat-good.sse", "req_2")],
      exhausted: "error",
    });
    const rec = recorded();
    const client = openaiClient(mock, rec.fetch);

    const { data, request_id } = await client.chat.completions
      .create({ model: MODEL, messages: MESSAGES, stream: true })
      .withResponse();
    const r = await readChat(data);

    assert.equal(r.error, null, String(r.error));
    assert.equal(r.text, "Hello world");
    assert.equal(r.roles, 1, "one role chunk: the served attempt's preamble, once");
    assert.deepEqual([...new Set(r.ids)], ["chatcmpl-mockGood0001"], "every chunk from the second stream");
    assert.equal(request_id, "req_2", "the served attempt's headers");
    await settle();
    assert.equal(mock.requests.length, 2);
    for (const q of mock.requests) assert.equal(q.path, "/v1/chat/completions");
    assertIdenticalBodies(mock.requests);
    assertCommitted(rec, { route: 0 });
  });

  test("1b. openai chat stream: a tool call as the first content commits (no stall retry), 1 request", T, async (t) => {
    // The first chunk is role + tool_calls at once; the rest comes 1 s later. Were that chunk
    // taken for preamble, firstTokenTimeoutMs would fire and send the request again.
    const mock = await mockFor(t, {
      script: [gapAfter("openai-chat-tool-call-first.sse", 1, 1000, "req_1"), stream("openai-chat-good.sse", "req_2")],
      exhausted: "error",
    });
    const rec = recorded({ firstTokenTimeoutMs: 300 });
    const s = await openaiClient(mock, rec.fetch).chat.completions.create({ model: MODEL, messages: MESSAGES, stream: true });
    const r = await readChat(s);

    assert.equal(r.error, null, String(r.error));
    assert.deepEqual(r.tools, { 0: { id: "call_mockWeather01", name: "get_weather", arguments: '{"city":"Paris"}' } });
    assert.equal(r.finish, "tool_calls");
    await settle();
    assert.equal(mock.requests.length, 1);
    assertCommitted(rec, { route: 0 });
  });

  test("2. openai Responses stream: response.created + insufficient_quota on the primary → the fallback (model \"other\") serves \"Second stream\"", T, async (t) => {
    const primary = await mockFor(t, { script: [stream("openai-responses-error-insufficient-quota.sse", "req_p")], exhausted: "error" });
    const backup = await mockFor(t, { script: [stream("openai-responses-good.sse", "req_b")], exhausted: "error" });
    const rec = recorded({ fallbacks: [{ url: `${backup.url}/v1/responses`, model: "other" }] });
    const client = openaiClient(primary, rec.fetch);

    const { data, request_id } = await client.responses.create({ model: MODEL, input: "Say hi", stream: true }).withResponse();
    const r = await readResponses(data);

    assert.equal(r.error, null, String(r.error));
    assert.equal(r.text, "Second stream");
    assert.ok(!r.types.includes("error"), `no error event reached the caller: ${r.types}`);
    assert.equal(r.types.filter((x) => x === "response.created").length, 1, "one response.created");
    assert.equal(r.events[0].response.id, "resp_mockGood0001", "the fallback's own preamble");
    assert.equal(request_id, "req_b");
    await settle();
    assert.equal(primary.requests.length, 1, "a quota error is not retried on the same route");
    assert.equal(backup.requests.length, 1);
    assert.equal(backup.requests[0].path, "/v1/responses");
    assert.equal(backup.requests[0].json?.model, "other", "body's model rewritten");
    assert.equal(backup.requests[0].json?.input, primary.requests[0].json?.input);
    assert.equal(backup.requests[0].json?.stream, true);
    assert.ok(rec.events.some((e) => e.type === "fallback" && e.from === 0 && e.to === 1), JSON.stringify(rec.events));
    assertCommitted(rec, { route: 1 });
    assert.equal(rec.reports[0]?.route, 1);
  });

  test("3. anthropic messages.stream: message_start + overloaded_error, then a good stream → finalText \"Third stream\", 2 requests", T, async (t) => {
    const mock = await mockFor(t, {
      script: [stream("anthropic-error-overloaded.sse", "req_1"), stream("anthropic-good.sse", "req_2")],
      exhausted: "error",
    });
    const rec = recorded();
    const ms = anthropicClient(mock, rec.fetch).messages.stream({ model: CLAUDE, max_tokens: 16, messages: MESSAGES });
    const r = await readMessageStream(ms);

    assert.equal(r.error, null, String(r.error));
    assert.equal(r.text, "Third stream");
    assert.deepEqual(r.deltas, ["Thi", "rd", " stream"], "each delta once");
    assert.equal(r.message.id, "msg_mockGood0001", "the second stream's message_start");
    assert.equal(ms.request_id, "req_2");
    await settle();
    assert.equal(mock.requests.length, 2);
    for (const q of mock.requests) assert.equal(q.path, "/v1/messages");
    assertIdenticalBodies(mock.requests);
    assertCommitted(rec, { route: 0 });
  });

  test("4. a stall after message_start past firstTokenTimeoutMs: 300 → retried, the second stream's text, 2 requests", T, async (t) => {
    const mock = await mockFor(t, {
      script: [stalledAfter("anthropic-error-overloaded.sse", 1, "req_1"), stream("anthropic-good.sse", "req_2")],
      exhausted: "error",
    });
    const rec = recorded({ firstTokenTimeoutMs: 300 });
    const ms = anthropicClient(mock, rec.fetch).messages.stream({ model: CLAUDE, max_tokens: 16, messages: MESSAGES });
    const r = await readMessageStream(ms);

    assert.equal(r.error, null, String(r.error));
    assert.equal(r.text, "Third stream");
    assert.equal(r.message.id, "msg_mockGood0001", "not the stalled stream's message_start");
    await settle();
    assert.equal(mock.requests.length, 2);
    assertIdenticalBodies(mock.requests);
    const gap = mock.requests[1].t - mock.requests[0].t;
    assert.ok(gap >= 300 - SLACK, `retried ${gap.toFixed(0)} ms after the first request: waited the first-token timeout`);
    assert.ok(gap < 5000, `retried ${gap.toFixed(0)} ms after: not after the stall ended`);
    assert.ok(await closedWithin(mock.requests[0], 2000), "the stalled attempt's connection was closed");
    assertCommitted(rec, { route: 0 });
  });

  test("5a. openai chat: an in-band error after two text deltas → the SDK throws, \"Partial answer\" once, 1 request", T, async (t) => {
    const mock = await mockFor(t, {
      script: [stream("openai-chat-error-after-content.sse", "req_1"), stream("openai-chat-good.sse", "req_2")],
      exhausted: "error",
    });
    const rec = recorded();
    const s = await openaiClient(mock, rec.fetch).chat.completions.create({ model: MODEL, messages: MESSAGES, stream: true });
    const r = await readChat(s);

    assert.ok(r.error instanceof OpenAI.APIError, `the SDK raised its APIError: ${r.error}`);
    assert.match(r.error.message, /The server had an error/);
    assert.equal(r.text, "Partial answer");
    assert.equal(r.roles, 1);
    await settle();
    assert.equal(mock.requests.length, 1, "committed: nothing sent again");
    assertCommitted(rec, { route: 0 });
  });

  test("5b. anthropic messages.stream: overloaded_error after the first text delta → rejects, \"Half\" once, 1 request", T, async (t) => {
    const mock = await mockFor(t, {
      script: [stream("anthropic-error-after-content.sse", "req_1"), stream("anthropic-good.sse", "req_2")],
      exhausted: "error",
    });
    const rec = recorded();
    const r = await readMessageStream(
      anthropicClient(mock, rec.fetch).messages.stream({ model: CLAUDE, max_tokens: 16, messages: MESSAGES }),
    );

    assert.ok(r.error instanceof Anthropic.APIError, `the SDK raised its APIError: ${r.error}`);
    assert.equal(r.error.type, "overloaded_error");
    assert.deepEqual(r.deltas, ["Half"]);
    await settle();
    assert.equal(mock.requests.length, 1, "committed: nothing sent again");
  });

  test("6. an idle gap of 1500 ms after the first text delta, idleTimeoutMs: 300 → the SDK's iteration rejects, 1 request", T, async (t) => {
    const mock = await mockFor(t, { script: [gapAfter("openai-chat-good.sse", 2, 1500, "req_1")], exhausted: "error" });
    const rec = recorded({ idleTimeoutMs: 300 });
    const s = await openaiClient(mock, rec.fetch).chat.completions.create({ model: MODEL, messages: MESSAGES, stream: true });
    const t0 = performance.now();
    const r = await readChat(s);
    const after = performance.now() - t0;

    // The library errors the body with a DOMException TimeoutError; the openai SDK's SSE reader
    // passes it through untouched (its isAbortError only swallows AbortError), so the caller's
    // `for await` rejects with name "TimeoutError".
    assert.ok(r.error, "the iteration rejected");
    assert.equal(r.error.name, "TimeoutError", `${r.error?.name}: ${r.error?.message}`);
    assert.equal(r.text, "Hel", "the text before the gap, once");
    assert.ok(after < 1500, `rejected after ${after.toFixed(0)} ms, before the gap ended`);
    await settle();
    assert.equal(mock.requests.length, 1);
  });

  describe("7. ai streamText, the AI SDK's own maxRetries: 0", () => {
    const cases = [
      {
        title: "@ai-sdk/openai .chat(): server_error before content, then \"Hello world\"",
        model: (mock, fetch) => createOpenAI({ baseURL: `${mock.url}/v1`, apiKey: "sk-test", fetch }).chat(MODEL),
        bad: "openai-chat-error-before-content.sse",
        good: "openai-chat-good.sse",
        path: "/v1/chat/completions",
      },
      {
        title: "@ai-sdk/openai (Responses): server_is_overloaded before content, then \"Second stream\"",
        model: (mock, fetch) => createOpenAI({ baseURL: `${mock.url}/v1`, apiKey: "sk-test", fetch })(MODEL),
        bad: "openai-responses-error-overloaded.sse",
        good: "openai-responses-good.sse",
        path: "/v1/responses",
      },
      {
        title: "@ai-sdk/anthropic: overloaded_error after message_start, then \"Third stream\"",
        model: (mock, fetch) => createAnthropic({ baseURL: `${mock.url}/v1`, apiKey: "sk-ant-test", fetch })(CLAUDE),
        bad: "anthropic-error-overloaded.sse",
        good: "anthropic-good.sse",
        path: "/v1/messages",
      },
    ];
    for (const c of cases) {
      test(`${c.title} → result.text exact, 2 requests`, T, async (t) => {
        const mock = await mockFor(t, { script: [stream(c.bad, "req_1"), stream(c.good, "req_2")], exhausted: "error" });
        const rec = recorded();
        const r = await aiText(c.model(mock, rec.fetch));

        assert.deepEqual(r.errors.map(String), [], "no error reached onError");
        assert.equal(r.error, null, String(r.error));
        assert.equal(r.text, TEXT[c.good]);
        await settle();
        assert.equal(mock.requests.length, 2);
        for (const q of mock.requests) assert.equal(q.path, c.path);
        assertIdenticalBodies(mock.requests);
        assertCommitted(rec, { route: 0 });
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// retry(fn) with the SDKs' own stream objects: `fn` returns the SDK's `Stream`, which llm-retry
// reads up to its first content item. An error the SDK throws before it is a failed attempt;
// the caller gets the SDK's object, whose iteration, `toReadableStream()` and `tee()` all yield
// the served attempt's items, each once.

describe("retry(fn) with the SDKs' stream objects", () => {
  const chatStream = (mock) => {
    const openai = openaiClient(mock);
    let calls = 0;
    const fn = ({ signal }) => (calls++, openai.chat.completions.create({ model: MODEL, messages: MESSAGES, stream: true }, { signal }));
    return { fn, calls: () => calls };
  };
  const chatText = (items) => items.map((c) => c.choices[0]?.delta?.content ?? "").join("");

  test("openai chat: the SDK's APIError (no status) before content → retried; iterating gives \"Hello world\" once, 2 requests", T, async (t) => {
    const mock = await mockFor(t, { script: [stream("openai-chat-error-before-content.sse", "req_1"), stream("openai-chat-good.sse", "req_2")], exhausted: "error" });
    const { fn, calls } = chatStream(mock);
    const s = await retry(fn, { backoff: FAST });
    const r = await readChat(s);
    assert.equal(r.error, null, String(r.error));
    assert.equal(r.text, "Hello world");
    assert.equal(r.roles, 1, "the served stream's role chunk, once");
    assert.deepEqual(new Set(r.ids), new Set(["chatcmpl-mockGood0001"]), "only the second stream's chunks");
    assert.equal(calls(), 2);
    await settle();
    assert.equal(mock.requests.length, 2);
    const report = retryReport(s);
    assert.deepEqual(report.attempts.map((a) => [a.reason, a.inStream ?? false]), [["server-error", true], ["ok", false]]);
  });

  test("openai chat: toReadableStream() and tee() of what retry(fn) resolved with give the served stream, each item once", T, async (t) => {
    const mock = await mockFor(t, {
      script: [stream("openai-chat-error-before-content.sse", "req_1"), stream("openai-chat-good.sse", "req_2"),
        stream("openai-chat-error-before-content.sse", "req_3"), stream("openai-chat-good.sse", "req_4")],
      exhausted: "error",
    });
    const { fn } = chatStream(mock);
    const lines = [];
    const body = (await retry(fn, { backoff: FAST })).toReadableStream().pipeThrough(new TextDecoderStream());
    for await (const part of body) lines.push(part);
    const items = lines.join("").split("\n").filter(Boolean).map((l) => JSON.parse(l));
    assert.equal(chatText(items), "Hello world");
    assert.equal(items.filter((c) => c.choices[0]?.delta?.role).length, 1);

    const [left, right] = (await retry(fn, { backoff: FAST })).tee();
    const a = await readChat(left);
    const b = await readChat(right);
    assert.equal(a.error ?? b.error, null, String(a.error ?? b.error));
    assert.deepEqual([a.text, b.text], ["Hello world", "Hello world"]);
    await settle();
    assert.equal(mock.requests.length, 4);
  });

  test("anthropic messages.create({ stream: true }): overloaded_error before content → retried, \"Third stream\" once, 2 requests", T, async (t) => {
    const mock = await mockFor(t, { script: [stream("anthropic-error-overloaded.sse", "req_1"), stream("anthropic-good.sse", "req_2")], exhausted: "error" });
    const anthropic = anthropicClient(mock);
    let calls = 0;
    const s = await retry(({ signal }) => (calls++, anthropic.messages.create({ model: CLAUDE, max_tokens: 16, messages: MESSAGES, stream: true }, { signal })), { backoff: FAST });
    let text = "";
    const types = [];
    for await (const ev of s) {
      types.push(ev.type);
      if (ev.type === "content_block_delta" && ev.delta.type === "text_delta") text += ev.delta.text;
    }
    assert.equal(text, "Third stream");
    assert.equal(types.filter((x) => x === "message_start").length, 1, "one message_start: the served stream's");
    assert.equal(calls, 2);
    await settle();
    assert.equal(mock.requests.length, 2);
  });

  test("openai Responses: an insufficient_quota event item on the primary → fn's fallback route serves \"Second stream\"; the given-up stream is closed", T, async (t) => {
    const mock = await mockFor(t, {
      script: [stream("openai-responses-error-insufficient-quota.sse", "req_1"), stream("openai-responses-good.sse", "req_2")],
      exhausted: "error",
    });
    const openai = openaiClient(mock);
    const made = [];
    const s = await retry(({ route, signal }) => {
      const p = openai.responses.create({ model: route.model ?? MODEL, input: "Say hi", stream: true }, { signal });
      made.push(p);
      return p;
    }, { backoff: FAST, fallbacks: [{ model: "other" }] });
    const r = await readResponses(s);
    assert.equal(r.error, null, String(r.error));
    assert.equal(r.text, "Second stream");
    assert.ok(!r.types.includes("error"), `no error event reached the caller: ${r.types}`);
    assert.equal(r.types.filter((x) => x === "response.created").length, 1);
    assert.deepEqual(mock.requests.map((q) => q.json?.model), [MODEL, "other"]);
    assert.equal((await made[0]).controller.signal.aborted, true, "the primary's stream closed: its request aborted");
    assert.equal(retryReport(s).route, 1);
  });

  test("openai chat: an error after content is the caller's: \"Partial answer\" once, then the SDK's APIError, fn called once", T, async (t) => {
    const mock = await mockFor(t, { script: [stream("openai-chat-error-after-content.sse", "req_1"), stream("openai-chat-good.sse", "req_2")], exhausted: "error" });
    const { fn, calls } = chatStream(mock);
    const r = await readChat(await retry(fn, { backoff: FAST }));
    assert.equal(r.text, "Partial answer");
    assert.equal(r.error?.constructor.name, "APIError");
    assert.equal(calls(), 1);
    await settle();
    assert.equal(mock.requests.length, 1);
  });
});
