// The package through esbuild's CLI, with the invocations the README gives:
// - for a page: `--bundle --format=esm --conditions=esbuild --loader:.wasm=file` (the "esbuild"
//   entry imports the .wasm as a file, which esbuild copies beside the bundle), run in Chromium;
// - for Node: `--bundle --platform=node --format=esm`, nothing else (the Node entry carries its
//   wasm), the output moved to a directory of its own and run there.
// Each calls a loopback mock that answers 503 then 200.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { T, mockFor } from "./harness.mjs";
import { here, run, startStaticServer, launchChromium } from "./runtimes.mjs";

const ESBUILD = join(here, "node_modules", ".bin", "esbuild");

/** A scratch app directory inside this one, so "llm-retry" resolves from ./node_modules. */
function scratch(t, name) {
  const dir = join(here, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const esbuild = (cwd, args) => execFileSync(ESBUILD, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

const CALL = `const retryFetch = createRetryFetch({ backoff: { initialMs: 20, maxMs: 50 } });
const res = await retryFetch(mock + "/v1/chat/completions", { method: "POST", body: JSON.stringify({ model: "m", messages: [] }) });
const result = JSON.stringify({ status: res.status, attempts: retryReport(res).attempts.length, content: (await res.json()).choices[0].message.content });`;

test("esbuild --format=esm --conditions=esbuild --loader:.wasm=file: the page retries a 503 and gets the 200", T, async (t) => {
  const app = scratch(t, ".esbuild-app");
  writeFileSync(
    join(app, "main.js"),
    `import { createRetryFetch, retryReport } from "llm-retry";
const mock = new URLSearchParams(location.search).get("mock");
${CALL}
document.title = result;
`,
  );
  esbuild(app, ["main.js", "--bundle", "--format=esm", "--conditions=esbuild", "--loader:.wasm=file", "--outdir=dist"]);
  const out = readdirSync(join(app, "dist"));
  assert.ok(out.some((f) => /^llm_retry_bg-.+\.wasm$/.test(f)), `esbuild copied the .wasm beside the bundle: ${out}`);

  const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }], exhausted: "error", cors: true });
  const page = `<!doctype html><link rel="icon" href="data:,"><title>pending</title><script type="module" src="/main.js"></script>`;
  const site = await startStaticServer({ pages: { "/": page }, roots: { "/": join(app, "dist") } });
  t.after(() => site.close());
  const browser = await launchChromium();
  t.after(() => browser.close());
  browser.allowStatusLogsFrom(mock.url);
  await browser.page.goto(`${site.url}/?mock=${encodeURIComponent(mock.url)}`);
  await browser.page
    .waitForFunction(() => document.title !== "pending", null, { timeout: 10_000 })
    .catch((e) => assert.fail(`${e.message}\n${browser.problems.join("\n")}\nrequests: ${mock.requests.length}`));
  assert.deepEqual(JSON.parse(await browser.page.title()), { status: 200, attempts: 2, content: "ok" });
  assert.equal(mock.requests.length, 2, "the provider saw 2 requests");
  assert.deepEqual(browser.problems, []);
});

test("esbuild --platform=node --format=esm: the bundle, alone in another directory, retries a 503 and gets the 200", T, async (t) => {
  const app = scratch(t, ".esbuild-node");
  writeFileSync(
    join(app, "server.mjs"),
    `import { createRetryFetch, retryReport } from "llm-retry";
const mock = process.argv[2];
${CALL}
console.log(result);
`,
  );
  esbuild(app, ["server.mjs", "--bundle", "--platform=node", "--format=esm", "--outfile=dist/server.mjs"]);
  assert.deepEqual(readdirSync(join(app, "dist")), ["server.mjs"], "one file: the wasm is inside it");
  // Away from node_modules: nothing can be read from the package at run time.
  const alone = mkdtempSync(join(tmpdir(), "llm-retry-esbuild-"));
  t.after(() => rmSync(alone, { recursive: true, force: true }));
  copyFileSync(join(app, "dist", "server.mjs"), join(alone, "server.mjs"));

  const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }], exhausted: "error" });
  const { code, stdout, stderr } = await run(process.execPath, [join(alone, "server.mjs"), mock.url], { cwd: alone, timeoutMs: 60_000 });
  assert.equal(code, 0, stderr);
  assert.deepEqual(JSON.parse(stdout), { status: 200, attempts: 2, content: "ok" });
  assert.equal(mock.requests.length, 2, "the provider saw 2 requests");
});
