// What `npm pack` of the built package ships besides the code: the licence texts the "license"
// field names, and where the source lives. Packs ../../pkg (or LLM_RETRY_PKG) into a temporary
// directory and reads the tarball, as the registry would receive it.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

const pkgDir = resolve(here, process.env.LLM_RETRY_PKG ?? "../../pkg");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
let dir;
let tarball;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "llm-retry-pack-"));
  const [packed] = JSON.parse(
    execFileSync(npm, ["pack", pkgDir, "--pack-destination", dir, "--json"], { cwd: here, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }),
  );
  tarball = join(dir, packed.filename);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const list = () => execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).split("\n").filter(Boolean);
const read = (name) => execFileSync("tar", ["-xOzf", tarball, `package/${name}`], { encoding: "utf8" });

test("the tarball carries both licence texts, LICENSE-MIT and LICENSE-APACHE", () => {
  const files = list();
  assert.ok(files.includes("package/LICENSE-MIT"), `LICENSE-MIT in ${files.join(", ")}`);
  assert.ok(files.includes("package/LICENSE-APACHE"), `LICENSE-APACHE in ${files.join(", ")}`);
  const mit = read("LICENSE-MIT");
  assert.match(mit, /^MIT License\n\nCopyright \(c\) 2026 the llm-retry authors\n/);
  assert.match(mit, /THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND/);
  const apache = read("LICENSE-APACHE");
  assert.match(apache, /^\s+Apache License\n\s+Version 2\.0, January 2004\n/);
  assert.match(apache, /END OF TERMS AND CONDITIONS/);
  // The files shipped are the repository's own.
  assert.equal(mit, readFileSync(resolve(here, "../../LICENSE-MIT"), "utf8"));
  assert.equal(apache, readFileSync(resolve(here, "../../LICENSE-APACHE"), "utf8"));
});

test("package.json: the licence expression matches Cargo.toml's and the licence files; repository, homepage and bugs agree", () => {
  const manifest = JSON.parse(read("package.json"));
  const cargo = readFileSync(resolve(here, "../../Cargo.toml"), "utf8").match(/^license = "(.*)"$/m)?.[1];
  assert.equal(manifest.license, "MIT OR Apache-2.0");
  assert.equal(manifest.license, cargo, "the same licence as the crate");
  assert.deepEqual(manifest.repository, { type: "git", url: "git+https://github.com/llm-retry/llm-retry.git" });
  const web = manifest.repository.url.replace(/^git\+/, "").replace(/\.git$/, "");
  assert.equal(manifest.homepage, `${web}#readme`);
  assert.deepEqual(manifest.bugs, { url: `${web}/issues` });
});
