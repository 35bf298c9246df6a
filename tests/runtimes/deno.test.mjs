// llm-retry in Deno (the `deno` npm package, pinned): the installed tarball is imported as the
// bare specifier "llm-retry" from node_modules, through the package's "deno" export condition,
// with network access limited to 127.0.0.1 and file reads to the package directory (the entry
// reads its .wasm from a file URL). Mock providers run here in Node; each scenario is one
// `deno run` of fixtures/deno-main.mjs printing its JSON result. A second part imports
// "npm:llm-retry" instead, from a loopback registry serving the packed tarball.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { scenarioTests, mockFor, T } from "./harness.mjs";
import { deno, DENO_PERMS, DENO_RESOLVE, PKG_DIR, packedTarball, startTarballRegistry } from "./runtimes.mjs";

async function runInDeno(name, urls) {
  const args = ["run", ...DENO_RESOLVE, ...DENO_PERMS, "fixtures/deno-main.mjs", name, JSON.stringify(urls)];
  const { code, stdout, stderr } = await deno(args);
  assert.equal(code, 0, `deno exited ${code}\nstderr: ${stderr}\nstdout: ${stdout}`);
  assert.equal(stderr.trim(), "", "nothing on stderr (no warnings, no permission prompts)");
  return JSON.parse(stdout.trim().split("\n").at(-1));
}

describe("Deno", () => {
  test("the pinned deno is 2.x", async () => {
    const { stdout } = await deno(["--version"]);
    assert.match(stdout, /^deno 2\./);
  });

  test("deno resolves \"llm-retry\" from node_modules through the package's \"deno\" export condition", async () => {
    const { code, stdout, stderr } = await deno(["info", ...DENO_RESOLVE, "--json", "fixtures/deno-main.mjs"]);
    assert.equal(code, 0, stderr);
    const graph = JSON.parse(stdout);
    const dep = graph.modules.flatMap((m) => m.dependencies ?? []).find((d) => d.specifier === "llm-retry");
    const { exports } = JSON.parse(readFileSync(join(PKG_DIR, "package.json"), "utf8"));
    assert.equal(dep?.code?.specifier, pathToFileURL(join(PKG_DIR, exports["."].deno)).href);
    assert.equal(dep?.type?.specifier, pathToFileURL(join(PKG_DIR, "index.d.ts")).href, "types from index.d.ts");
  });

  scenarioTests(runInDeno);
});

// The main README's Deno example imports "npm:llm-retry". Deno then keeps the package in its own
// cache (DENO_DIR), outside any --allow-read=node_modules/... grant. A loopback registry serves
// the packed tarball, so this runs offline; DENO_DIR is a fresh temp dir.
describe("Deno, npm:llm-retry (from a loopback registry serving the packed tarball)", () => {
  let registry, denoDir;
  before(async () => {
    registry = await startTarballRegistry(packedTarball());
    denoDir = mkdtempSync(join(tmpdir(), "llm-retry-deno-dir-"));
  });
  after(async () => {
    await registry?.close();
    if (denoDir) rmSync(denoDir, { recursive: true, force: true });
  });

  async function runNpmSpecifier(t, perms) {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 503 }, { status: 200 }], exhausted: "error" });
    const args = ["run", "--node-modules-dir=none", "--no-lock", "--no-prompt", ...perms];
    const urls = JSON.stringify({ primary: mock.url });
    const r = await deno([...args, "fixtures/deno-npm.mjs", "503-503-200", urls], {
      env: { DENO_DIR: denoDir, NPM_CONFIG_REGISTRY: registry.url },
    });
    return { ...r, mock };
  }

  test("with --allow-read on Deno's cache dir: 503, 503, 200 → 200, 3 requests", T, async (t) => {
    const { code, stdout, stderr, mock } = await runNpmSpecifier(t, ["--allow-net=127.0.0.1", `--allow-read=${denoDir}`]);
    assert.equal(code, 0, stderr);
    assert.ok(registry.requests.includes("/llm-retry"), "the package came from the loopback registry");
    const r = JSON.parse(stdout.trim().split("\n").at(-1));
    assert.equal(r.status, 200);
    assert.equal(mock.requests.length, 3);
  });

  // The "deno" entry imports the .wasm as a module source, so no read permission is needed even
  // for the copy in Deno's npm cache (a file: fetch of it would demand one).
  test(
    "with --allow-net alone (no --allow-read): loads and runs",
    T,
    async (t) => {
      const { code, stdout, stderr, mock } = await runNpmSpecifier(t, ["--allow-net=127.0.0.1"]);
      assert.equal(code, 0, stderr.split("\n")[0]);
      assert.equal(JSON.parse(stdout.trim().split("\n").at(-1)).status, 200);
      assert.equal(mock.requests.length, 3);
    },
  );
});

