// As tests/runtimes/prepare.mjs, for this app: `npm ci` (next, react, a Node 22 binary for Next's
// steps, playwright-core) when the lockfile changed, then the packed llm-retry installed into
// node_modules as a user's `npm install llm-retry` would.
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { preparePackage } from "../runtimes/prepare.mjs";

preparePackage(dirname(fileURLToPath(import.meta.url)));
