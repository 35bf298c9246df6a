// llm-retry in Deno (the `deno` npm package, pinned): the installed tarball is imported as the
// bare specifier "llm-retry" from node_modules, through the package's "deno" export condition,
// with network access limited to 127.0.0.1 and file reads to the package directory (the entry
// reads its .wasm from a file URL). Mock providers run here in Node; each scenario is one
// `deno run` of fixtures/deno-main.mjs printing its JSON result.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { scenarioTests } from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const DENO = join(here, "node_modules", ".bin", process.platform === "win32" ? "deno.cmd" : "deno");
const ENV = { ...process.env, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };
// "manual": use ./node_modules as npm left it (no deno-managed npm cache, no registry access).
const RESOLVE = ["--node-modules-dir=manual"];
const PERMS = ["--no-prompt", "--allow-net=127.0.0.1", "--allow-read=node_modules/llm-retry"];

/** Runs deno with `args` from this directory; resolves { code, stdout, stderr }. */
function deno(args, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    const child = spawn(DENO, args, { cwd: here, env: ENV, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`deno ${args.join(" ")}: no exit within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function runInDeno(name, urls) {
  const { code, stdout, stderr } = await deno(["run", ...RESOLVE, ...PERMS, "fixtures/deno-main.mjs", name, JSON.stringify(urls)]);
  assert.equal(code, 0, `deno exited ${code}\nstderr: ${stderr}\nstdout: ${stdout}`);
  assert.equal(stderr.trim(), "", "nothing on stderr (no warnings, no permission prompts)");
  return JSON.parse(stdout.trim().split("\n").at(-1));
}

describe("Deno", () => {
  test("deno resolves \"llm-retry\" from node_modules through the package's \"deno\" export condition", async () => {
    const { code, stdout, stderr } = await deno(["info", ...RESOLVE, "--json", "fixtures/deno-main.mjs"]);
    assert.equal(code, 0, stderr);
    const graph = JSON.parse(stdout);
    const dep = graph.modules.flatMap((m) => m.dependencies ?? []).find((d) => d.specifier === "llm-retry");
    const pkgJson = JSON.parse(readFileSync(join(here, "node_modules/llm-retry/package.json"), "utf8"));
    const expected = pathToFileURL(join(here, "node_modules/llm-retry", pkgJson.exports["."].deno)).href;
    assert.equal(dep?.code?.specifier, expected);
    assert.equal(
      dep?.type?.specifier,
      pathToFileURL(join(here, "node_modules/llm-retry/index.d.ts")).href,
      "types come from the package's index.d.ts",
    );
  });

  test("the installed version of deno is the pinned 2.x", async () => {
    const { stdout } = await deno(["--version"]);
    assert.match(stdout, /^deno 2\./);
  });

  scenarioTests(runInDeno);
});
