// The README's Node examples, run verbatim against the mock provider: each block tagged
// `<!-- readme-test: NAME -->` is written to a file here (so "openai" and "llm-retry" resolve
// from this directory) and run in a child process whose OPENAI_BASE_URL points at the mock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startMockProvider } from "./mock-provider.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

function example(name) {
  const m = readme.match(new RegExp(`<!-- readme-test: ${name} -->\\s*\`\`\`js\\n([\\s\\S]*?)\`\`\``));
  assert.ok(m, `README has no example tagged ${name}`);
  return m[1];
}

function run(name, mock) {
  const file = `${here}.readme-${name}.mjs`;
  writeFileSync(file, example(name));
  const env = { ...process.env, OPENAI_BASE_URL: `${mock.url}/v1`, OPENAI_API_KEY: "sk-readme" };
  return new Promise((resolve) => {
    execFile(process.execPath, [file], { env, timeout: 20_000 }, (error, stdout, stderr) => {
      rmSync(file, { force: true });
      resolve({ code: error ? error.code ?? 1 : 0, stdout, stderr });
    });
  });
}

test("README: Node with the OpenAI SDK retries a 429 and prints the completion", async () => {
  const mock = await startMockProvider({ script: [{ status: 429, headers: { "retry-after-ms": "50" } }, { status: 200 }] });
  try {
    const r = await run("node-openai", mock);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "ok");
    assert.equal(mock.requests.length, 2);
    assert.ok(mock.requests[1].t - mock.requests[0].t >= 45, "waited for the hint");
    assert.match(r.stderr, /^retry rate-limited/m, "the onEvent line");
    assert.match(r.stderr, /^served by gpt-4o$/m, "retryReport on the SDK's response");
    assert.equal(mock.requests[1].json.model, "gpt-4o");
  } finally {
    await mock.close();
  }
});

test("README: a chat stream that fails before its first token is retried; the SDK reads the second, once", async () => {
  const sse = (name) => readFileSync(new URL(`../fixtures/sse/${name}.sse`, import.meta.url), "utf8");
  const SSE = { "content-type": "text/event-stream" };
  const mock = await startMockProvider({
    script: [
      { status: 200, headers: SSE, chunks: [sse("openai-chat-error-before-content")] },
      { status: 200, headers: SSE, chunks: [sse("openai-chat-good")] },
    ],
    exhausted: "error",
  });
  try {
    const r = await run("node-stream", mock);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "Hello world\n", "the second stream's text, once");
    assert.equal(mock.requests.length, 2);
    assert.equal(mock.requests[1].json.stream, true);
    assert.match(r.stderr, /^retry server-error before the first token$/m);
    assert.match(r.stderr, /^first token after \d+(\.\d+)? ms$/m);
  } finally {
    await mock.close();
  }
});

test("README: retry(fn) falls back to the second model after three failures", async () => {
  const mock = await startMockProvider({ script: [{ status: 503 }, { status: 503 }, { status: 503 }, { status: 200 }] });
  try {
    const r = await run("node-retry-fn", mock);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "ok");
    assert.deepEqual(
      mock.requests.map((q) => q.json.model),
      ["openai/gpt-4o", "openai/gpt-4o", "openai/gpt-4o", "anthropic/claude-3-5-haiku-20241022"],
    );
  } finally {
    await mock.close();
  }
});

test("README: one call's own options — two attempts on gpt-4o, no fallback", async () => {
  const mock = await startMockProvider({ script: [{ status: 503 }, { status: 200 }] });
  try {
    const r = await run("per-call", mock);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "ok");
    assert.deepEqual(mock.requests.map((q) => q.json.model), ["gpt-4o", "gpt-4o"]);
    assert.ok(!("retry" in mock.requests[0].headers));
  } finally {
    await mock.close();
  }
  const down = await startMockProvider({ script: [{ status: 503 }, { status: 503 }, { status: 200 }] });
  try {
    const r = await run("per-call", down);
    assert.notEqual(r.code, 0, "the SDK raised the second 503");
    assert.match(r.stderr, /503/);
    assert.deepEqual(down.requests.map((q) => q.json.model), ["gpt-4o", "gpt-4o"], "no third attempt, no fallback to gpt-4o-mini");
  } finally {
    await down.close();
  }
});
