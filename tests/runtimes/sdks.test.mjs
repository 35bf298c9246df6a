// The real SDKs (pinned in package.json) in Node, with the installed llm-retry tarball's
// createRetryFetch as their `fetch` and their own retries turned off — the integration the
// README recommends. Each talks to a scripted mock provider on 127.0.0.1.

import { test, describe } from "node:test";
import assert from "node:assert/strict";

import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { generateText } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { createRetryFetch, retry, retryReport, isRetryError, isCircuitOpenError, retryErrorOf } from "llm-retry";
import { getClosedPort } from "../js/mock-provider.mjs";
import { T, SLACK, mockFor, gaps } from "./harness.mjs";

const FAST = { initialMs: 20, maxMs: 200 };

describe("OpenAI SDK (openai) with fetch: retryFetch", () => {
  test("429 (retry-after-ms: 50) then 200 → completion returned, 2 requests with identical bodies", T, async (t) => {
    const mock = await mockFor(t, {
      script: [{ status: 429, headers: { "retry-after-ms": "50" } }, { status: 200 }],
      exhausted: "error",
    });
    const retryFetch = createRetryFetch({ backoff: FAST });
    const client = new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, fetch: retryFetch, maxRetries: 0 });

    const completion = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "Say ok" }],
    });

    assert.equal(completion.choices[0].message.content, "ok");
    assert.equal(mock.requests.length, 2);
    for (const r of mock.requests) {
      assert.equal(r.path, "/v1/chat/completions");
      assert.equal(r.headers.authorization, "Bearer sk-test");
    }
    assert.equal(mock.requests[1].sha256, mock.requests[0].sha256, "identical bodies");
    const [gap] = gaps(mock.requests);
    assert.ok(gap >= 50 - SLACK, `gap ${gap.toFixed(1)} ms honours retry-after-ms: 50`);
  });
});

describe("Anthropic SDK (@anthropic-ai/sdk) with fetch: retryFetch", () => {
  // A model name the SDK does not know, so it prints no deprecation notice.
  const MODEL = "claude-mock-model";
  const message = (req) => ({
    id: "msg_mock_1",
    type: "message",
    role: "assistant",
    model: req.json?.model ?? MODEL,
    content: [{ type: "text", text: "ok" }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: { input_tokens: 1, output_tokens: 1 },
  });
  const overloaded = { type: "error", error: { type: "overloaded_error", message: "Overloaded" } };
  const script = [{ status: 529, body: overloaded }, { status: 200, body: message }];

  async function ask(client) {
    return client.messages.create({ model: MODEL, max_tokens: 16, messages: [{ role: "user", content: "Say ok" }] });
  }

  function assertTwoIdenticalRequests(mock) {
    assert.equal(mock.requests.length, 2);
    for (const r of mock.requests) {
      assert.equal(r.path, "/v1/messages");
      assert.ok(r.headers["anthropic-version"], "the SDK's version header survived the retry");
    }
    assert.equal(mock.requests[1].sha256, mock.requests[0].sha256, "identical bodies");
  }

  // This SDK release sends `apiKey` as "Authorization: Bearer …" (older releases sent X-Api-Key).
  test("529 overloaded then 200 → text \"ok\", 2 requests, the apiKey credential sent on both", T, async (t) => {
    const mock = await mockFor(t, { script, exhausted: "error" });
    const retryFetch = createRetryFetch({ backoff: FAST });
    const client = new Anthropic({ apiKey: "sk-ant-test", baseURL: mock.url, fetch: retryFetch, maxRetries: 0 });

    const msg = await ask(client);

    assert.equal(msg.content[0].type, "text");
    assert.equal(msg.content[0].text, "ok");
    assertTwoIdenticalRequests(mock);
    for (const r of mock.requests) assert.equal(r.headers.authorization, "Bearer sk-ant-test");
  });

  test("529 overloaded then 200 with an x-api-key header → the x-api-key reached the server on both", T, async (t) => {
    const mock = await mockFor(t, { script, exhausted: "error" });
    const retryFetch = createRetryFetch({ backoff: FAST });
    const client = new Anthropic({
      apiKey: null,
      defaultHeaders: { "x-api-key": "sk-ant-test" },
      baseURL: mock.url,
      fetch: retryFetch,
      maxRetries: 0,
    });

    const msg = await ask(client);

    assert.equal(msg.content[0].text, "ok");
    assertTwoIdenticalRequests(mock);
    for (const r of mock.requests) assert.equal(r.headers["x-api-key"], "sk-ant-test");
  });
});

describe("Vercel AI SDK (ai + @ai-sdk/openai) with fetch: retryFetch", () => {
  test("503 then 200 → generateText returns \"ok\", 2 requests", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }], exhausted: "error" });
    const reports = [];
    const retryFetch = createRetryFetch({ backoff: FAST });
    const openai = createOpenAI({
      baseURL: `${mock.url}/v1`,
      apiKey: "sk-test",
      fetch: async (input, init) => {
        const res = await retryFetch(input, init);
        reports.push(retryReport(res));
        return res;
      },
    });

    const { text } = await generateText({ model: openai.chat("gpt-4o-mini"), prompt: "hi", maxRetries: 0 });

    assert.equal(text, "ok");
    assert.equal(mock.requests.length, 2);
    for (const r of mock.requests) assert.equal(r.path, "/v1/chat/completions");
    assert.equal(mock.requests[1].sha256, mock.requests[0].sha256, "identical bodies");
    assert.deepEqual(
      reports.map((rep) => rep?.attempts.map((a) => a.status)),
      [[503, 200]],
      "one SDK call, two attempts inside llm-retry",
    );
  });
});

// What a user catches with each SDK when llm-retry gives up without a response to hand back:
// the SDK wraps our error (OpenAI and Anthropic in APIConnectionError's `cause`, the AI SDK in
// AI_APICallError / AI_RetryError), and retryReport, isRetryError and retryErrorOf find it.
describe("errors through the SDKs: ours found along the cause chain", () => {
  const dead = async () => `http://127.0.0.1:${await getClosedPort()}`;
  const opts = { maxAttempts: 2, backoff: { initialMs: 5, maxMs: 10 } };

  test("OpenAI: APIConnectionError wrapping our RetryError", T, async () => {
    const client = new OpenAI({ apiKey: "sk-test", baseURL: `${await dead()}/v1`, fetch: createRetryFetch(opts), maxRetries: 0 });
    const e = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] }).catch((x) => x);
    assert.ok(e instanceof OpenAI.APIConnectionError, `${e?.constructor?.name}`);
    assert.equal(isRetryError(e), true);
    assert.equal(retryErrorOf(e)?.reason, "attempts-exhausted");
    assert.equal(retryReport(e)?.attempts.length, 2);
  });

  test("Anthropic: APIConnectionError wrapping our CircuitOpenError when no route can be reached in time", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }] });
    const retryFetch = createRetryFetch({ maxAttempts: 1, deadlineMs: 2_000, breaker: { failureThreshold: 1, cooldownMs: 10_000 } });
    const client = new Anthropic({ apiKey: "k", baseURL: mock.url, fetch: retryFetch, maxRetries: 0 });
    const ask = () => client.messages.create({ model: "m", max_tokens: 5, messages: [{ role: "user", content: "hi" }] }).catch((x) => x);
    const first = await ask();
    assert.equal(first.status, 503, "the 503 itself, as the SDK's own error");
    const e = await ask();
    assert.ok(e instanceof Anthropic.APIConnectionError, `${e?.constructor?.name}`);
    assert.equal(isCircuitOpenError(e), true);
    assert.ok(retryErrorOf(e)?.retryInMs > 2_000);
    assert.equal(retryReport(e)?.attempts.length, 0, "nothing was sent");
    assert.equal(mock.requests.length, 1);
  });

  test("AI SDK: generateText's error wrapping our RetryError", T, async () => {
    const openai = createOpenAI({ baseURL: `${await dead()}/v1`, apiKey: "sk-test", fetch: createRetryFetch(opts) });
    const e = await generateText({ model: openai.chat("m"), prompt: "hi", maxRetries: 0 }).catch((x) => x);
    assert.ok(e instanceof Error, `${e}`);
    assert.equal(isRetryError(e), true, `${e?.name}: ${e?.message}`);
    assert.equal(retryReport(e)?.attempts.length, 2);
  });
});

// retry(fn) around the real SDKs' own errors.
describe("retry(fn) with the SDKs' errors", () => {
  test("OpenAI: an APIConnectionError (its name is 'Error') is retried, then the fallback on another provider answers", T, async (t) => {
    const dead = `http://127.0.0.1:${await getClosedPort()}/v1`;
    const mock = await mockFor(t, { script: [{ status: 200 }] });
    const routes = [];
    const out = await retry(async ({ route, signal }) => {
      routes.push(route.url ?? "primary");
      const baseURL = route.url ?? dead;
      const client = new OpenAI({ apiKey: "sk-test", baseURL, maxRetries: 0 });
      const c = await client.chat.completions.create({ model: route.model ?? "gpt-4o", messages: [{ role: "user", content: "hi" }] }, { signal });
      return c.choices[0].message.content;
    }, { maxAttempts: 2, backoff: FAST, fallbacks: [{ url: `${mock.url}/v1`, model: "other" }] });
    assert.equal(out, "ok");
    assert.deepEqual(routes, ["primary", "primary", `${mock.url}/v1`], "two attempts on the dead primary, then the fallback");
    assert.equal(mock.requests.length, 1);
  });
});
