// Shortens the names the wasm imports its JS glue by: wasm-bindgen names each import
// `__wbg_<name>_<16 hex digits>` in the module "./<out>_bg.js", and both the .wasm and the glue
// carry every name, hash included (~110 of them). This renames the module to "w" and each import
// to a short name, in the .wasm's import section and in the glue's import object, and
// fails if the glue does not hold each name exactly once as a property key. Exports the glue
// reads as `wasm.<name>` (hashed closure shims among them) get short names the same way.
// Functions the wasm imports straight from our snippets (src/js/*.js) come as one namespace
// import per function, all under the same key of the import object (the file's path), the
// namespace itself as the value: a bundler then builds an object of all the file's exports. Each
// file's become one module, named by a letter ("v", "u", …), and its value an object of only the
// functions the wasm imports, under short names.
//
// usage: node build/minify-imports.mjs pkg/llm_retry_bg.wasm pkg/llm_retry.js
import { readFileSync, writeFileSync } from "node:fs";
import { assemble, encodeLeb, encodeName, reader } from "./wasm.mjs";

const [wasmPath, gluePath] = process.argv.slice(2);
const wasm = readFileSync(wasmPath);
let glue = readFileSync(gluePath, "utf8");
const fail = (msg) => {
  console.error(`minify-imports: ${msg}`);
  process.exit(1);
};

// 0 → "a", 51 → "Z", 52 → "aa": names that are valid JS identifiers.
const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const shortName = (n) => (n < 52 ? "" : shortName(Math.floor(n / 52) - 1)) + letters[n % 52];

const r = reader(wasm, fail);
const sections = r.sections();
const parse = (id, entry) => {
  const found = sections.find((s) => s.id === id);
  if (!found) fail(`no section ${id}`);
  r.pos = found.start;
  const count = r.leb();
  const entries = [];
  for (let i = 0; i < count; i++) entries.push(entry());
  if (r.pos !== found.end) fail(`section ${id} did not parse to its end`);
  found.body = Buffer.concat([encodeLeb(count), ...entries]);
};

// Each function type's parameter count (the type section, read before the imports are renamed).
const params = [];
parse(1, () => {
  const start = r.pos;
  if (wasm[r.pos++] !== 0x60) fail("a type that is not a function type");
  const n = r.leb();
  r.pos += n;
  const results = r.leb();
  r.pos += results;
  params.push(n);
  return wasm.subarray(start, r.pos);
});

// Imports: every import from the glue module is renamed, and the module becomes "w".
const imports = new Map();
/** A glue import's parameter count in the wasm, by its short name. */
const arity = new Map();
const modules = new Set();
/** The snippets' short module names, by path, and the functions the wasm imports from each
 * (export name → short name). */
const snippets = new Map();
const snippetFields = new Map();
const SNIPPET_KEYS = "vutsrqponm";
parse(2, () => {
  const module = r.name();
  const field = r.name();
  const descStart = r.pos;
  r.importDesc();
  const desc = wasm.subarray(descStart, r.pos);
  if (module.startsWith("./snippets/")) {
    if (!snippets.has(module)) {
      if (snippets.size === SNIPPET_KEYS.length) fail(`more than ${SNIPPET_KEYS.length} snippet modules`);
      snippets.set(module, SNIPPET_KEYS[snippets.size]);
      snippetFields.set(module, new Map());
    }
    const fields = snippetFields.get(module);
    if (!fields.has(field)) fields.set(field, shortName(fields.size));
    return Buffer.concat([encodeName(snippets.get(module)), encodeName(fields.get(field)), desc]);
  }
  if (!module.endsWith("_bg.js")) return Buffer.concat([encodeName(module), encodeName(field), desc]);
  modules.add(module);
  const short = shortName(imports.size);
  imports.set(field, short);
  if (desc[0] === 0) {
    const d = reader(desc, fail);
    d.pos = 1;
    arity.set(short, params[d.leb()]);
  }
  return Buffer.concat([encodeName("w"), encodeName(short), desc]);
});
if (modules.size !== 1) fail(`expected one glue module, found ${[...modules].join(", ")}`);

// Exports: those the glue reads as `wasm.<name>` (and never names in quotes) are renamed; the
// rest keep their names, and so does `memory`, which callers of initSync may read. A glue
// function of the same name is a local and keeps its own.
const exports = new Map();
parse(7, () => {
  const field = r.name();
  const descStart = r.pos;
  r.pos++;
  r.leb();
  const desc = wasm.subarray(descStart, r.pos);
  const member = new RegExp(`\\bwasm\\.${field}\\b`).test(glue);
  const quoted = glue.includes(`"${field}"`) || glue.includes(`'${field}'`);
  let short = field;
  if (member && !quoted && field !== "memory") {
    short = shortName(exports.size);
    exports.set(field, short);
  }
  return Buffer.concat([encodeName(short), desc]);
});

const out = assemble(wasm, sections);

const [module] = modules;
const moduleKey = JSON.stringify(module);
if (glue.split(moduleKey).length !== 2) fail(`glue must name ${moduleKey} once`);
glue = glue.replace(moduleKey, '"w"');
for (const [from, to] of imports) {
  const key = new RegExp(`\\b${from}:`, "g");
  const hits = glue.match(key)?.length ?? 0;
  if (hits !== 1 || glue.split(from).length !== 2) fail(`glue must hold ${from} once, as a key`);
  glue = glue.replace(key, `${to}:`);
}
// Each glue import declares as many parameters as the wasm passes it. V8 calls an import whose
// function declares another number through a wrapper of another kind, compiled apart (with its
// optimising compiler, as the module is instantiated: ~50 µs each here) even where a wrapper of
// the same signature exists, and slower to call. The glue declares none on the imports that may
// throw (`function() { return handleError(function (arg0, …) {…}, arguments) }`): they get their
// inner function's.
glue = glue.replace(
  /function\(\) \{ return handleError\(function \(([^)]*)\) \{/g,
  (_, p) => `function(${p}) { return handleError(function (${p}) {`,
);
for (const [name, n] of arity) {
  const declared = new RegExp(`^\\s+${name}: function\\(([^)]*)\\)`, "m").exec(glue);
  if (!declared) fail(`glue must define import ${name} as \`${name}: function(…)\``);
  const count = declared[1].trim() === "" ? 0 : declared[1].split(",").length;
  if (count !== n) fail(`glue import ${name} declares ${count} parameters, the wasm passes ${n}`);
}
// Each snippet: one of its namespace imports and import-object entries kept, keyed by its letter.
for (const [snippet, short] of snippets) {
  const key = JSON.stringify(snippet);
  const names = [];
  let lines = glue.split("\n").filter((line) => {
    const entry = /^\s*(".*"): (import\d+),$/.exec(line);
    if (entry?.[1] !== key) return true;
    names.push(entry[2]);
    return names.length === 1;
  });
  if (names.length === 0) fail(`glue must hold ${key} as a key of the import object`);
  const lineOf = (n) => `import * as ${n} from ${key}`;
  const found = lines.filter((line) => names.some((n) => line === lineOf(n)));
  if (found.length !== names.length) fail(`glue must import ${names.join(", ")} from ${key}, once each`);
  lines = lines.filter((line) => line === lineOf(names[0]) || !found.includes(line));
  const ns = names[0];
  const entries = [...snippetFields.get(snippet)].map(([field, to]) => `${to}: ${ns}.${field}`);
  glue = lines.join("\n").replace(`${key}: ${ns},`, `"${short}": { ${entries.join(", ")} },`);
}
for (const [from, to] of exports) {
  glue = glue.replace(new RegExp(`\\bwasm\\.${from}\\b`, "g"), `wasm.${to}`);
}

writeFileSync(wasmPath, out);
writeFileSync(gluePath, glue);
