// llm-retry in headless Chromium (the system /usr/bin/chromium, driven by playwright-core). A
// static server on 127.0.0.1 serves fixtures/browser.html, which loads the installed package
// the way a page without a bundler does — an import map sending "llm-retry" to /pkg/browser.js —
// and runs the cross-runtime scenarios against mock providers that answer CORS.
//
// Browsers only let a script read the headers a cross-origin server lists in
// Access-Control-Expose-Headers: with `cors: "expose"` the library sees retry-after-ms and waits
// for it; with plain `cors: true` the hint is invisible and the retry happens on backoff alone.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { scenarioTests, mockFor, gaps, T, SLACK } from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".ts": "text/plain; charset=utf-8",
  ".md": "text/plain; charset=utf-8",
};
/** URL prefix → directory served under it. */
const ROOTS = { "/pkg/": join(here, "node_modules", "llm-retry"), "/fixtures/": join(here, "fixtures") };

/** Serves "/" (the test page) and the ROOTS, read-only, on 127.0.0.1 with an OS-chosen port. */
async function startStaticServer() {
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    let file = path === "/" ? join(here, "fixtures", "browser.html") : null;
    for (const [prefix, dir] of Object.entries(ROOTS)) {
      if (!file && path.startsWith(prefix)) {
        const candidate = join(dir, path.slice(prefix.length));
        if (candidate.startsWith(dir + sep)) file = candidate;
      }
    }
    if (!file || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { "content-type": "text/plain" }).end(`not found: ${path}`);
      return;
    }
    res.writeHead(200, { "content-type": MIME[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
    res.end(readFileSync(file));
  });
  await new Promise((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))),
  };
}

// Chromium reports every non-2xx fetch as a console error ("Failed to load resource: the server
// responded with a status of 503"). Those are the scripted statuses, not page errors: they are
// accepted only for URLs of the mock providers, and only with the statuses the scenarios use.
const EXPECTED_NETWORK_LOG = /^Failed to load resource: the server responded with a status of (400|429|503) /;

describe("Chromium (headless, playwright-core)", () => {
  let site, context, page, userDataDir;
  const consoleProblems = [];
  const mockOrigins = new Set();

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install -y chromium (or set CHROMIUM)`);
    site = await startStaticServer();
    userDataDir = mkdtempSync(join(tmpdir(), "llm-retry-chromium-"));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (msg) => {
      if (msg.type() !== "error" && msg.type() !== "warning") return;
      const at = msg.location()?.url ?? "";
      const fromMock = [...mockOrigins].some((o) => at.startsWith(o));
      if (fromMock && EXPECTED_NETWORK_LOG.test(msg.text())) return;
      consoleProblems.push(`console.${msg.type()}: ${msg.text()} (${at})`);
    });
    page.on("pageerror", (e) => consoleProblems.push(`pageerror: ${e.stack ?? e}`));
    await page.goto(site.url + "/");
    await page.waitForFunction(() => document.title === "ready" && typeof window.runScenario === "function", null, {
      timeout: 10_000,
    });
  });

  after(async () => {
    await context?.close();
    await site?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  async function runInPage(name, urls) {
    for (const u of Object.values(urls)) if (u) mockOrigins.add(u);
    return page.evaluate(([n, u]) => window.runScenario(n, u), [name, urls]);
  }

  test("the page loaded the package through the import map", T, async () => {
    const loaded = await page.evaluate(() => performance.getEntriesByType("resource").map((e) => new URL(e.name).pathname));
    assert.ok(loaded.includes("/pkg/browser.js"), `import map used: ${loaded}`);
    assert.ok(loaded.includes("/pkg/llm_retry_bg.wasm"), `wasm fetched next to browser.js: ${loaded}`);
  });

  describe("scenarios (mocks expose the hint headers: cors \"expose\")", () => {
    scenarioTests(runInPage, { cors: "expose" });
  });

  describe("429 + retry-after-ms: 300, with and without Access-Control-Expose-Headers", () => {
    const script = [{ status: 429, headers: { "retry-after-ms": "300" } }, { status: 200 }];

    test("cors \"expose\": the hint is readable → gap ≥ 300 ms, wait set by retry-after-ms", T, async (t) => {
      const mock = await mockFor(t, { script, cors: "expose", exhausted: "error" });
      const r = await runInPage("retry-after", { primary: mock.url });
      assert.equal(r.error, null, JSON.stringify(r.error));
      assert.equal(r.status, 200);
      assert.equal(mock.requests.length, 2);
      const [gap] = gaps(mock.requests);
      assert.ok(gap >= 300 - SLACK, `gap ${gap.toFixed(1)} ms honours the exposed retry-after-ms`);
      const retry = r.events.find((e) => e.type === "retry");
      assert.equal(retry.wait, "retry-after-ms");
    });

    test("plain cors: the hint is invisible to the page → retried on backoff alone (20 ms, gap < 300 ms)", T, async (t) => {
      const mock = await mockFor(t, { script, cors: true, exhausted: "error" });
      const r = await runInPage("retry-after", { primary: mock.url });
      assert.equal(r.error, null, JSON.stringify(r.error));
      assert.equal(r.status, 200, "the retry still succeeds");
      assert.equal(mock.requests.length, 2);
      assert.equal(mock.requests[0].step.headers["retry-after-ms"], "300", "the server did send the hint");
      const [gap] = gaps(mock.requests);
      assert.ok(gap < 300, `gap ${gap.toFixed(1)} ms: the unexposed hint was not honoured`);
      const retry = r.events.find((e) => e.type === "retry");
      assert.equal(retry.wait, "backoff", `the wait came from the backoff: ${JSON.stringify(retry)}`);
      assert.equal(retry.hint, undefined);
    });
  });

  test("no console errors or warnings, no uncaught page errors", () => {
    assert.deepEqual(consoleProblems, []);
  });
});
