// The real OpenAI SDK (pinned in package.json) talking to the mock provider, with llm-retry
// either as its fetch (createRetryFetch) or around its calls (retry).
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import OpenAI from "openai";
import { createRetryFetch, retry } from "llm-retry";
import { T, mockFor, settle } from "./helpers.mjs";

const FAST = { initialMs: 20, maxMs: 200 };
const MESSAGES = [{ role: "user", content: "Say ok" }];

function client(mock, fetchImpl) {
  return new OpenAI({
    apiKey: "sk-test",
    baseURL: `${mock.url}/v1`,
    fetch: fetchImpl,
    maxRetries: 0,
    timeout: 10_000,
  });
}

function sseChunk(content, finish = null) {
  return `data: ${JSON.stringify({
    id: "chatcmpl-mock-stream",
    object: "chat.completion.chunk",
    created: 1,
    model: "gpt-4o-mini",
    choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish }],
  })}\n\n`;
}

describe("OpenAI SDK with fetch: createRetryFetch()", () => {
  test("429 (retry-after-ms: 50) then 200 → completion returned, 2 identical requests", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 429, headers: { "retry-after-ms": "50" } }, { status: 200 }] });
    const openai = client(mock, createRetryFetch({ backoff: FAST }));
    const completion = await openai.chat.completions.create({ model: "gpt-4o-mini", messages: MESSAGES });
    assert.equal(completion.choices[0].message.content, "ok");
    assert.equal(completion.model, "gpt-4o-mini");
    assert.equal(mock.requests.length, 2);
    for (const r of mock.requests) {
      assert.equal(r.method, "POST");
      assert.equal(r.path, "/v1/chat/completions");
      assert.equal(r.headers.authorization, "Bearer sk-test");
      assert.deepEqual(r.json?.messages, MESSAGES);
    }
    assert.equal(mock.requests[1].sha256, mock.requests[0].sha256, "identical bodies");
    const gap = mock.requests[1].t - mock.requests[0].t;
    assert.ok(gap >= 50 - 5, `gap ${gap.toFixed(1)} ms honours retry-after-ms: 50`);
  });

  test("400 → the SDK's BadRequestError, 1 request", T, async (t) => {
    const mock = await mockFor(t, {
      script: [{ status: 400, body: { error: { message: "bad model", type: "invalid_request_error", param: "model", code: null } } }],
    });
    const openai = client(mock, createRetryFetch({ backoff: FAST }));
    const r = await settle(openai.chat.completions.create({ model: "nope", messages: MESSAGES }));
    assert.equal(r.ok, false);
    assert.ok(r.error instanceof OpenAI.BadRequestError, `BadRequestError expected, got ${r.error?.constructor?.name}`);
    assert.equal(r.error.status, 400);
    assert.match(r.error.message, /bad model/);
    assert.equal(mock.requests.length, 1);
  });

  test("insufficient_quota 429 → the SDK's RateLimitError, 1 request", T, async (t) => {
    const mock = await mockFor(t, {
      script: [
        {
          status: 429,
          body: { error: { message: "You exceeded your current quota", type: "insufficient_quota", code: "insufficient_quota" } },
        },
      ],
    });
    const openai = client(mock, createRetryFetch({ backoff: FAST }));
    const r = await settle(openai.chat.completions.create({ model: "gpt-4o-mini", messages: MESSAGES }));
    assert.equal(r.ok, false);
    assert.ok(r.error instanceof OpenAI.RateLimitError, `RateLimitError expected, got ${r.error}`);
    assert.equal(r.error.code, "insufficient_quota");
    assert.equal(mock.requests.length, 1);
  });

  test("streaming: 503 then an SSE stream → the stream's deltas arrive intact", T, async (t) => {
    const mock = await mockFor(t, {
      script: [
        { status: 503 },
        {
          status: 200,
          chunks: [sseChunk("o"), sseChunk("k"), sseChunk(null, "stop"), "data: [DONE]\n\n"],
          chunkDelayMs: 10,
        },
      ],
    });
    const openai = client(mock, createRetryFetch({ backoff: FAST }));
    const stream = await openai.chat.completions.create({ model: "gpt-4o-mini", messages: MESSAGES, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    assert.equal(text, "ok");
    assert.equal(mock.requests.length, 2);
    assert.equal(mock.requests[1].sha256, mock.requests[0].sha256);
    assert.equal(mock.requests[0].json.stream, true);
  });
});

describe("OpenAI SDK wrapped in retry(fn)", () => {
  test("429 with retry-after-ms → retried from the SDK's RateLimitError, then the completion", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 429, headers: { "retry-after-ms": "40" } }, { status: 200 }] });
    const openai = client(mock, undefined);
    const attempts = [];
    const completion = await retry(
      ({ attempt, signal }) => {
        attempts.push(attempt);
        return openai.chat.completions.create({ model: "gpt-4o-mini", messages: MESSAGES }, { signal });
      },
      { backoff: { initialMs: 1, maxMs: 5 } },
    );
    assert.equal(completion.choices[0].message.content, "ok");
    assert.deepEqual(attempts, [1, 2]);
    assert.equal(mock.requests.length, 2);
    const gap = mock.requests[1].t - mock.requests[0].t;
    assert.ok(gap >= 40 - 5, `gap ${gap.toFixed(1)} ms honours retry-after-ms read from the SDK error's Headers`);
  });

  test("insufficient_quota from the SDK → not retried, the SDK's RateLimitError surfaces (itself or as cause)", T, async (t) => {
    const mock = await mockFor(t, {
      script: [
        {
          status: 429,
          body: { error: { message: "You exceeded your current quota", type: "insufficient_quota", code: "insufficient_quota" } },
        },
      ],
    });
    const openai = client(mock, undefined);
    const r = await settle(
      retry(() => openai.chat.completions.create({ model: "gpt-4o-mini", messages: MESSAGES }), {
        backoff: { initialMs: 1, maxMs: 5 },
      }),
    );
    assert.equal(r.ok, false);
    const sdkErr = r.error instanceof OpenAI.RateLimitError ? r.error : r.error?.cause;
    assert.ok(sdkErr instanceof OpenAI.RateLimitError, `RateLimitError (or a RetryError caused by one) expected, got ${r.error}`);
    assert.equal(sdkErr.code, "insufficient_quota");
    assert.equal(mock.requests.length, 1);
  });
});
