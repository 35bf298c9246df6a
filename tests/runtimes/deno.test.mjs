// llm-retry in Deno (the `deno` npm package, pinned): the installed tarball is imported as the
// bare specifier "llm-retry" from node_modules, through the package's "deno" export condition,
// with network access limited to 127.0.0.1 and file reads to the package directory (the entry
// reads its .wasm from a file URL). Mock providers run here in Node; each scenario is one
// `deno run` of fixtures/deno-main.mjs printing its JSON result.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { scenarioTests } from "./harness.mjs";
import { deno, DENO_PERMS, DENO_RESOLVE, PKG_DIR } from "./runtimes.mjs";

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
