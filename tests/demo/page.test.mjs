// The demo: the page in headless Chromium (playwright-core, the system's /usr/bin/chromium) and
// the terminal scenario of `node demo/run.mjs --once`.
// Needs both builds: pkg/ (`make package`) and www/pkg/ (`make www/pkg/package.json`).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startDemo } from "../../demo/run.mjs";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const OUT = join(ROOT, "tests", "out");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const JITTERS = ["none", "full", "equal", "decorrelated"];

for (const dir of ["pkg", "www/pkg"]) {
  assert.ok(existsSync(join(ROOT, dir, "package.json")), `${dir}/ is not built (make package; make www/pkg/package.json)`);
}

let demo, context, page, profile;
const problems = []; // console errors and page errors

describe("the demo page in headless Chromium", () => {
  before(async () => {
    demo = await startDemo({ port: 0 });
    profile = mkdtempSync(join(tmpdir(), "llm-retry-demo-chromium-"));
    // A persistent context is how playwright takes a fresh --user-data-dir.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1200, height: 900 },
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
      ],
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (msg) => {
      if (msg.type() !== "error") return;
      // Chromium logs every 4xx/5xx response it fetched as "Failed to load resource"; the mock
      // provider's scripted 429s and 5xx are the point of the live run, so only those are allowed.
      const url = msg.location().url;
      const fromMock = Object.values(demo.mockUrls).some((m) => url.startsWith(m + "/"));
      if (fromMock && /^Failed to load resource: the server responded with a status of (429|5\d\d) /.test(msg.text())) return;
      problems.push(`console: ${msg.text()} (${url})`);
    });
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.stack ?? e}`));
    await page.goto(demo.url);
    await page.waitForSelector("body[data-ready=true]", { timeout: 15000 });
  });

  after(async () => {
    await context?.close();
    await demo?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  test("the page loads without errors and serves config.json and the wasm", async () => {
    const res = await fetch(new URL("config.json", demo.url));
    const config = await res.json();
    assert.equal(config.primary.url, demo.mockUrls.primary + "/v1/chat/completions");
    assert.equal(config.fallback.url, demo.mockUrls.fallback + "/v1/chat/completions");
    const wasm = await fetch(new URL("pkg/llm_retry_bg.wasm", demo.url));
    assert.equal(wasm.headers.get("content-type"), "application/wasm");
    const js = await fetch(new URL("app.js", demo.url));
    assert.match(js.headers.get("content-type"), /^text\/javascript/);
    assert.equal((await fetch(new URL("../Makefile", demo.url))).status, 404);
    assert.equal(await page.locator("#load-error").isHidden(), true);
    assert.deepEqual(problems, []);
  });

  test("the planner draws a chart for each jitter mode and shows the library's errors", async () => {
    for (const jitter of JITTERS) {
      const chart = page.locator(`[data-testid=planner-chart][data-jitter=${jitter}]`);
      const lines = await chart.locator("svg polyline, svg path").count();
      assert.ok(lines >= 1, `${jitter}: ${lines} lines`);
      assert.match(await chart.locator("[data-testid=worst]").innerText(), /\d/);
    }
    await page.fill("#in-maxMs", "100"); // below initialMs
    const error = page.locator("[data-testid=planner-error]");
    await error.waitFor({ state: "visible" });
    assert.match(await error.innerText(), /^RangeError: backoff\.maxMs must be/);
    await page.fill("#in-maxMs", "8000");
    await error.waitFor({ state: "hidden" });
  });

  test("the live run shows a timeline row per call, a fallback and the serving model", async () => {
    await page.click("[data-testid=live-run]");
    await page.waitForSelector("[data-testid=live-status][data-state=done]", { timeout: 45000 });
    const rows = page.locator("[data-testid=live-row]");
    assert.equal(await rows.count(), 12);
    assert.equal(await page.locator("[data-testid=live-row][data-done=true]").count(), 12);
    assert.ok((await page.locator("[data-testid=live-attempt]").count()) > 12, "some calls were retried");
    assert.ok((await page.locator("[data-testid=live-attempt][data-fallback=true]").count()) >= 1, "a fallback attempt");
    const models = await page.locator("[data-testid=live-model]").evaluateAll((els) => els.map((e) => e.textContent));
    assert.equal(models.length, 12);
    assert.ok(models.includes("backup-model"), models.join());
    assert.ok(models.includes("main-model"), models.join());
  });

  test("the streamed call: the first stream fails before its first token, the page shows the second stream's text once", async () => {
    const before = demo.mocks.stream.requests.length;
    await page.click("[data-testid=stream-run]");
    await page.waitForSelector("[data-testid=stream-status][data-state=done]", { timeout: 20000 });
    assert.equal(await page.locator("[data-testid=stream-text]").innerText(), "Hello from the second stream, read once.");
    assert.equal(demo.mocks.stream.requests.length - before, 2, "two requests reached the stream mock");
    const log = await page.locator("[data-testid=stream-events] li").evaluateAll((els) => els.map((e) => e.textContent));
    assert.ok(log.some((l) => /attempt 2 sent/.test(l)), log.join("\n"));
    assert.ok(log.some((l) => /retrying: the stream failed after its 200, before any token \(server-error\)/.test(l)), log.join("\n"));
    assert.ok(log.some((l) => /first token at .*committed/.test(l)), log.join("\n"));
    assert.ok(!log.some((l) => /the caller saw an error event/.test(l)), "the failed stream never reached the page");
    assert.match(await page.locator("[data-testid=stream-status]").innerText(), /^2 attempts/);
  });

  test("the storm table: the budget sends fewer requests than no budget; the defaults (pacing) serve every call", async () => {
    const rows = await page.locator("[data-testid=storm-row]").evaluateAll((trs) =>
      trs.map((tr) => {
        const n = (col) => Number(tr.querySelector(`[data-col=${col}]`).textContent.replace(/,/g, ""));
        return { jitter: tr.dataset.jitter, budget: tr.dataset.budget, pacing: tr.dataset.pacing, requests: n("requests"), succeeded: n("succeeded"), failed: n("failed") };
      }),
    );
    assert.equal(rows.length, 9);
    for (const jitter of JITTERS) {
      const on = rows.find((r) => r.jitter === jitter && r.budget === "on" && r.pacing === "off");
      const off = rows.find((r) => r.jitter === jitter && r.budget === "off" && r.pacing === "off");
      assert.ok(on.requests > 0 && on.requests < off.requests, `${jitter}: budget ${on.requests} vs ${off.requests}`);
    }
    const paced = rows.find((r) => r.pacing === "on");
    assert.equal(paced.failed, 0, "the defaults fail no call");
    assert.equal(paced.succeeded, 100);
    assert.ok(paced.requests < 200, `${paced.requests} requests for 100 calls`);
    mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: join(OUT, "demo.png"), fullPage: true });
    assert.deepEqual(problems, []);
  });
});

test("node demo/run.mjs --once runs the 20-call scenario and exits 0", async () => {
  const env = { ...process.env, DEMO_PORT: "0" };
  for (const k of ["LLM_API_KEY", "LLM_BASE_URL"]) delete env[k];
  const child = spawn(process.execPath, [join(ROOT, "demo", "run.mjs"), "--once"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), 60000);
  const code = await new Promise((resolve) => child.on("close", resolve));
  clearTimeout(timer);
  assert.equal(code, 0, stderr || stdout);
  assert.doesNotMatch(stdout, /\x1b\[/, "no colour when stdout is not a TTY");
  assert.match(stdout, /^Demo page: http:\/\/127\.0\.0\.1:\d+\//m);
  const m = stdout.match(/summary: (\d+) calls, (\d+) succeeded, (\d+) failed, (\d+) attempts \((\d+) retr(?:y|ies)\), (\d+) served by the fallback/);
  assert.ok(m, stdout);
  const [calls, succeeded, , attempts, retries, fallbacks] = m.slice(1).map(Number);
  assert.equal(calls, 20);
  assert.equal(succeeded, 20);
  assert.ok(retries > 0 && attempts > 20, `retries ${retries}`);
  assert.ok(fallbacks >= 1, `fallbacks ${fallbacks}`);
  assert.match(stdout, /rate-limited +→ waited +\d+ ms \(retry-after\)/);
  assert.match(stdout, /fallback to backup-model/);
  assert.match(stdout, /the caller read: "Hello from the retry" — one stream, each token once \(2 requests\)/);
});
