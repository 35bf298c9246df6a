// Installs llm-retry into ./node_modules the way a user gets it: `npm pack` of the built package
// (../../pkg, so the "files" list and the exports map are what gets tested), then
// `npm install --no-save <tarball>`. Also installs the pinned dependencies (`npm ci`) when
// node_modules is missing or older than package-lock.json.
//
// Idempotent: a stamp records the hashes of package-lock.json and of pkg/; a second run with
// nothing changed does no npm work at all (well under a second).
//
//   node prepare.mjs            # from tests/runtimes (npm test runs it first)
//   LLM_RETRY_PKG=dir node prepare.mjs   # pack another build of the package
//
// `preparePackage(dir)` does the same for another npm project beside this one (tests/next).

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const npm = process.platform === "win32" ? "npm.cmd" : "npm";

function hashTree(dir) {
  const h = createHash("sha256");
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) {
        if (name !== "node_modules") walk(p);
      } else {
        h.update(relative(dir, p)).update("\0").update(readFileSync(p)).update("\0");
      }
    }
  };
  walk(dir);
  return h.digest("hex");
}

const hashFile = (p) => createHash("sha256").update(readFileSync(p)).digest("hex");

/** Packs ../../pkg (or LLM_RETRY_PKG) and installs it into `here`/node_modules, after `npm ci`. */
export function preparePackage(here) {
  // Relative to `here`, never absolute: the repository is cloned elsewhere in CI.
  const pkgDir = relative(here, resolve(here, process.env.LLM_RETRY_PKG ?? "../../pkg")) || ".";
  const packDir = ".pack";
  const stampPath = join(here, "node_modules", ".llm-retry-stamp.json");
  const run = (args) => execFileSync(npm, args, { cwd: here, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });

  if (!existsSync(join(here, pkgDir, "package.json"))) {
    console.error(`prepare: no built package at ${resolve(here, pkgDir)}: run \`make package\` at the repository root first`);
    process.exit(1);
  }

  const want = { lock: hashFile(join(here, "package-lock.json")), pkg: hashTree(join(here, pkgDir)) };
  let have = {};
  try {
    have = JSON.parse(readFileSync(stampPath, "utf8"));
  } catch {}

  const t0 = Date.now();
  if (have.lock !== want.lock || !existsSync(join(here, "node_modules", ".package-lock.json"))) {
    console.log("prepare: npm ci (pinned dependencies)");
    run(["ci", "--no-audit", "--no-fund"]); // wipes node_modules, llm-retry included
    have = {};
  }

  if (have.pkg !== want.pkg || !existsSync(join(here, "node_modules", "llm-retry", "package.json"))) {
    rmSync(join(here, packDir), { recursive: true, force: true });
    mkdirSync(join(here, packDir), { recursive: true });
    const [packed] = JSON.parse(run(["pack", pkgDir, "--pack-destination", packDir, "--json"]));
    const tarball = `./${packDir}/${packed.filename}`;
    console.log(`prepare: packed ${pkgDir} → ${tarball} (${packed.entryCount} files, ${packed.size} bytes)`);
    // Remove the old copy so npm cannot keep it on the strength of an unchanged name and version.
    rmSync(join(here, "node_modules", "llm-retry"), { recursive: true, force: true });
    run(["install", "--no-save", "--no-audit", "--no-fund", tarball]);
    console.log(`prepare: installed ${tarball} into node_modules/llm-retry`);
  }

  writeFileSync(stampPath, JSON.stringify(want) + "\n");
  console.log(`prepare: ready (${Date.now() - t0} ms)`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  preparePackage(dirname(fileURLToPath(import.meta.url)));
}
