// Type-checks types/*.ts against the package's declarations (tsc --noEmit -p ., with the DOM
// library, and -p tsconfig.node.json, with @types/node instead), and checks the runtime shape of
// the exports.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { dirname } from "node:path";

import * as llm from "llm-retry";

const here = dirname(fileURLToPath(import.meta.url));

test("runtime exports exist with the right kinds", () => {
  for (const name of ["createRetryFetch", "retry", "isRetryError", "isCircuitOpenError"]) {
    assert.equal(typeof llm[name], "function", `${name} is a function`);
  }
  for (const name of ["RetryError", "CircuitOpenError"]) {
    assert.equal(typeof llm[name], "function", `${name} is a class`);
    assert.ok(llm[name].prototype instanceof Error, `${name} extends Error`);
  }
  assert.equal(llm.isCircuitOpenError(new Error("x")), false);
  assert.equal(llm.isCircuitOpenError(undefined), false);
});

test("tsc --noEmit -p tests/js accepts types/*.ts (strict, nodenext)", { timeout: 120_000 }, () => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const r = spawnSync(process.execPath, [tsc, "--noEmit", "-p", here], { encoding: "utf8", cwd: here });
  assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});

// A Node project has Node's types and no DOM library: index.d.ts must need nothing DOM-only.
test("tsc --noEmit -p tests/js/tsconfig.node.json accepts types/*.ts without the DOM library (@types/node)", { timeout: 120_000 }, () => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const r = spawnSync(process.execPath, [tsc, "--noEmit", "-p", `${here}/tsconfig.node.json`], { encoding: "utf8", cwd: here });
  assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});
