// The README's per-runtime examples, run as written in the runtime each is for. Only the
// provider hosts change: "https://api.openai.com", "https://backup.example.com" and
// "https://llm-proxy.example.com" become mock providers on 127.0.0.1 (the Deno permission line's
// hosts too). Blocks are found by the tag line before them, `<!-- readme-test: NAME -->` (the
// convention of tests/js/readme.test.mjs), so they can move between READMEs:
// README=path/to/README.md overrides the file (default: the repository's README.md).

import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { mockFor, T } from "./harness.mjs";
import { getClosedPort } from "../js/mock-provider.mjs";
import { here, PKG_DIR, deno, run, startWorker, loadError, startStaticServer, launchChromium } from "./runtimes.mjs";

const README = resolve(here, process.env.README ?? "../../README.md");
const readme = readFileSync(README, "utf8");

/** The code of the README block tagged `<!-- readme-test: name -->`, fenced as `lang`. */
function block(name, lang) {
  const m = readme.match(new RegExp(`<!-- readme-test: ${name} -->\\s*\`\`\`${lang}\\n([\\s\\S]*?)^\`\`\``, "m"));
  assert.ok(m, `${README} has no \`\`\`${lang} block tagged <!-- readme-test: ${name} -->`);
  return m[1];
}

// Snippets that import "llm-retry" as a bare specifier must sit under this directory so that
// node_modules is found; the directory is git-ignored and removed afterwards.
const scratch = join(here, ".readme");
mkdirSync(scratch, { recursive: true });
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs a Node script from this directory with `env` added. */
const runNode = (file, env) => run(process.execPath, [file], { env, timeoutMs: 60_000 });

describe(`README examples (${README})`, () => {
  test("Node with the OpenAI SDK: 429 then 200 → prints the completion, 2 requests", T, async (t) => {
    const code = block("node-openai", "js");
    const mock = await mockFor(t, { script: [{ status: 429, headers: { "retry-after-ms": "50" } }, { status: 200 }], exhausted: "error" });
    const file = join(scratch, "openai.mjs");
    writeFileSync(file, code);
    const r = await runNode(file, { OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${mock.url}/v1` });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "ok");
    assert.equal(mock.requests.length, 2);
    for (const req of mock.requests) assert.equal(req.headers.authorization, "Bearer sk-test");
  });

  // The cross-provider recipe: each SDK reads its base URL and key from the environment, so the
  // block runs as written against two mocks, one speaking each provider's API.
  describe("Across providers: retry(fn) with the OpenAI SDK on route 0, the Anthropic SDK on route 1", () => {
    const ANSWER = "Gateways route LLM calls across providers.";
    const anthropicMessage = (req) => ({
      id: "msg_mock_1",
      type: "message",
      role: "assistant",
      model: req.json?.model,
      content: [{ type: "text", text: ANSWER }],
      stop_reason: "end_turn",
      stop_sequence: null,
      usage: { input_tokens: 9, output_tokens: 7 },
    });

    async function runRecipe(t, openaiScript) {
      const openai = await mockFor(t, { script: openaiScript });
      const anthropic = await mockFor(t, { script: [{ status: 200, body: anthropicMessage }], exhausted: "error" });
      const file = join(scratch, "cross-provider.mjs");
      writeFileSync(file, block("node-cross-provider", "js"));
      const r = await runNode(file, {
        OPENAI_API_KEY: "sk-openai-test",
        OPENAI_BASE_URL: `${openai.url}/v1`,
        ANTHROPIC_API_KEY: "sk-ant-test",
        ANTHROPIC_BASE_URL: anthropic.url,
        ANTHROPIC_AUTH_TOKEN: undefined, // (unset: only the API key is the Anthropic credential here)
      });
      return { r, openai, anthropic };
    }

    function assertOpenAIRequests(openai, n) {
      assert.equal(openai.requests.length, n, `OpenAI saw ${n} request(s)`);
      for (const req of openai.requests) {
        assert.equal(req.path, "/v1/chat/completions");
        assert.equal(req.json.model, "gpt-4o");
        assert.equal(req.headers.authorization, "Bearer sk-openai-test");
      }
    }

    function assertAnthropicServed(r, anthropic) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${ANSWER}\n`, "the caller printed Anthropic's text");
      assert.equal(r.stderr, "", "no warning printed");
      assert.equal(anthropic.requests.length, 1, "Anthropic saw 1 request");
      const [req] = anthropic.requests;
      assert.equal(req.path, "/v1/messages");
      assert.equal(req.json.model, "claude-haiku-4-5", "the fallback route's model");
      assert.equal(req.json.messages[0].content, "Summarise LLM gateways in one sentence.");
      assert.ok(req.headers["anthropic-version"], "sent by the Anthropic SDK");
      assert.equal(req.headers.authorization, "Bearer sk-ant-test", "Anthropic's own key");
      const leaked = Object.entries(req.headers).filter(([, v]) => v.includes("sk-openai"));
      assert.deepEqual(leaked, [], "no header carries the OpenAI key");
    }

    test("OpenAI 503 on every attempt → after 3 attempts Anthropic answers, the caller prints its text", T, async (t) => {
      const { r, openai, anthropic } = await runRecipe(t, [{ status: 503 }]);
      assertAnthropicServed(r, anthropic);
      assertOpenAIRequests(openai, 3);
      assert.ok(anthropic.requests[0].t > openai.requests[2].t, "Anthropic only after OpenAI's third failure");
    });

    test("OpenAI 429 insufficient_quota → Anthropic at once, OpenAI asked once", T, async (t) => {
      const quota = {
        error: { message: "You exceeded your current quota.", type: "insufficient_quota", param: null, code: "insufficient_quota" },
      };
      const { r, openai, anthropic } = await runRecipe(t, [{ status: 429, body: quota }]);
      assertAnthropicServed(r, anthropic);
      assertOpenAIRequests(openai, 1);
    });

    test("OpenAI 401 (its key refused) → Anthropic at once, OpenAI asked once", T, async (t) => {
      const { r, openai, anthropic } = await runRecipe(t, [{ status: 401 }]);
      assertAnthropicServed(r, anthropic);
      assertOpenAIRequests(openai, 1);
    });

    test("OpenAI 400 (the caller's own error) → thrown as the SDK's error, Anthropic never asked", T, async (t) => {
      const { r, openai, anthropic } = await runRecipe(t, [{ status: 400 }]);
      assert.notEqual(r.code, 0, "the script failed");
      assert.match(r.stderr, /BadRequestError/, r.stderr);
      assert.equal(r.stdout, "");
      assertOpenAIRequests(openai, 1);
      assert.equal(anthropic.requests.length, 0);
    });
  });

  test("Deno: primary 503 twice → the fallback answers with backup-model, sent with the fallback's own key", T, async (t) => {
    const code = block("deno", "js");
    const primary = await mockFor(t, { script: [{ status: 503 }] });
    const backup = await mockFor(t, { script: [{ status: 200 }], exhausted: "error" });
    const file = join(scratch, "main.js");
    writeFileSync(
      file,
      code.replaceAll("https://api.openai.com", primary.url).replaceAll("https://backup.example.com", backup.url),
    );
    const line = code.match(/^\/\/ (deno run .*)$/m)?.[1];
    assert.ok(line, "the Deno example starts with its `deno run` line");
    const args = line
      .replace(/--allow-net=\S+/, "--allow-net=127.0.0.1")
      .split(/\s+/)
      .slice(1)
      .map((a) => (a === "main.js" ? file : a));
    const env = { OPENAI_API_KEY: "sk-test", BACKUP_API_KEY: "sk-backup" };
    const r = await deno([...args.slice(0, -1), "--no-prompt", args.at(-1)], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "200 backup-model\n");
    assert.equal(primary.requests.length, 2, "maxAttempts: 2 on the primary");
    for (const req of primary.requests) assert.equal(req.headers.authorization, "Bearer sk-test");
    assert.equal(backup.requests.length, 1);
    assert.equal(backup.requests[0].json.model, "backup-model");
    assert.equal(backup.requests[0].headers.authorization, "Bearer sk-backup", "the fallback's own key, not the primary's");
  });

  test("Cloudflare Worker: 503 then 200 → the Worker answers 200, the key sent on both", T, async (t) => {
    const code = block("workerd", "js");
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }], exhausted: "error" });
    const worker = startWorker({
      scriptPath: join(scratch, "worker.js"),
      script: code.replaceAll("https://api.openai.com", mock.url),
      bindings: { OPENAI_API_KEY: "sk-test" },
    });
    t.after(() => worker.dispose());
    const err = await loadError(worker.mf);
    assert.equal(err, null, `${err?.message}\n${worker.log()}`);
    const body = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] });
    const res = await worker.mf.dispatchFetch("http://worker.test/", { method: "POST", body });
    assert.equal(res.status, 200, worker.log());
    assert.equal((await res.json()).choices[0].message.content, "ok");
    assert.equal(mock.requests.length, 2);
    for (const req of mock.requests) {
      assert.equal(req.headers.authorization, "Bearer sk-test");
      assert.equal(req.sha256, mock.requests[0].sha256);
    }
  });

  test("Cloudflare Worker: when the provider cannot be reached, the handler answers a JSON 503 with the reason", T, async (t) => {
    const code = block("workerd", "js");
    const worker = startWorker({
      scriptPath: join(scratch, "worker-down.js"),
      script: code.replaceAll("https://api.openai.com", `http://127.0.0.1:${await getClosedPort()}`),
      bindings: { OPENAI_API_KEY: "sk-test" },
    });
    t.after(() => worker.dispose());
    const body = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] });
    const res = await worker.mf.dispatchFetch("http://worker.test/", { method: "POST", body });
    assert.equal(res.status, 503, worker.log());
    assert.deepEqual(await res.json(), { error: "RetryError", reason: "attempts-exhausted" });
  });

  test("Browser page with an import map: 429 then 200 → the page shows the completion", T, async (t) => {
    const code = block("browser", "html");
    const mock = await mockFor(t, {
      script: [{ status: 429, headers: { "retry-after-ms": "50" } }, { status: 200 }],
      cors: "expose",
      exhausted: "error",
    });
    const site = await startStaticServer({
      pages: { "/": `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">\n${code.replaceAll("https://llm-proxy.example.com", mock.url)}` },
      roots: { "/node_modules/llm-retry/": PKG_DIR },
    });
    t.after(() => site.close());
    const browser = await launchChromium();
    t.after(() => browser.close());
    browser.allowStatusLogsFrom(mock.url);
    await browser.page.goto(site.url + "/");
    await browser.page.waitForFunction(() => document.body?.textContent === "ok", null, { timeout: 10_000 });
    assert.equal(mock.requests.length, 2);
    assert.deepEqual(browser.problems, []);
  });
});
