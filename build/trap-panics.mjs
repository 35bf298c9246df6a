// Turns each of core's and alloc's panic functions, and the core::fmt code only they reach, into
// a bare trap. The crate is built without std: its panic handler is a trap and ignores the panic's
// message. But the panic functions still build that message before calling it — a
// `fmt::Arguments` on the shadow stack holding pointers to `Display`/`Debug` impls — and those
// pointers keep core::fmt (padding, integer formatting, UTF-8 counting) in the function table.
// Nightly Rust's `panic=immediate-abort` removes it all; this does the same on stable, after
// linking: a panic still traps where it did, now without writing its message first. wasm-opt
// then drops what nothing reaches any more.
//
// The crate formats no text with core::fmt (messages are built with `text::cat!`), so every path
// into it starts at a panic. That is checked here, not assumed: text formatted anywhere else
// (`format!`, `to_string()` of a number, `write!`) links a `core::fmt::Write` sink (String's) or
// `format_inner`, which a panic's message never needs (the handler ignores it); finding one fails
// the build, naming it, as that code would trap — aborting the instance for every call in it.
//
// Needs the wasm's name section (wasm-bindgen without --remove-name-section); writes the wasm
// back without it. Fails if it finds no panic function to trap, so a toolchain that names them
// otherwise is noticed rather than quietly making the wasm larger.
//
// usage: node build/trap-panics.mjs pkg/llm_retry_bg.wasm
import { readFileSync, writeFileSync } from "node:fs";
import { assemble, encodeLeb, reader } from "./wasm.mjs";

const [wasmPath] = process.argv.slice(2);
const wasm = readFileSync(wasmPath);
const fail = (msg) => {
  console.error(`trap-panics: ${msg}`);
  process.exit(1);
};

// A function of core or alloc (`core[<hash>]::…` as demangled) that only ever panics: the
// panicking module, and the out-of-line `…_fail(ed)`, `panic_…` and allocation-failure functions.
const PANIC =
  /^(core|alloc)(\[[0-9a-f]+\])?::([a-z_]+::)*(panicking::.*|[a-z_]*_fail(ed)?|panic_[a-z_]*|handle_error|handle_alloc_error|capacity_overflow)$/;
// A formatting trait's `fmt` (`<T as core::fmt::Display>::fmt`, Debug, LowerHex…), which the
// panic functions' messages point to: the roots of core::fmt in the function table.
const FMT = /^<.* as core(\[[0-9a-f]+\])?::fmt::[A-Za-z]+>::fmt(::h[0-9a-f]{16})?$/;
// What only text formatted outside a panic links: a `fmt::Write` sink, or `format!`'s own function.
const FORMATS = /as core(\[[0-9a-f]+\])?::fmt::Write>::|^alloc(\[[0-9a-f]+\])?::fmt::format::format_inner/;

const r = reader(wasm, fail);
const sections = r.sections();
const section = (id, custom) => {
  const found = sections.find((s) => s.id === id && (custom === undefined || s.custom === custom));
  if (!found) fail(`no section ${custom ?? id}`);
  r.pos = found.start;
  return found;
};

// Function indices count the imported functions first.
section(2);
let imported = 0;
for (let i = 0, n = r.leb(); i < n; i++) {
  r.name();
  r.name();
  if (r.importDesc() === 0) imported++;
}

// The name section's function names (subsection 1).
const names = section(0, "name");
r.name();
const traps = new Set();
const formats = [];
let panics = 0;
while (r.pos < names.end) {
  const sub = wasm[r.pos++];
  const end = r.leb() + r.pos;
  if (sub === 1) {
    for (let i = 0, n = r.leb(); i < n; i++) {
      const index = r.leb();
      const fn = r.name();
      if (index < imported) continue;
      const panic = PANIC.test(fn);
      if (panic) panics++;
      if (FORMATS.test(fn)) formats.push(fn);
      if (panic || FMT.test(fn)) traps.add(index - imported);
    }
  }
  r.pos = end;
}
if (formats.length > 0) {
  fail(`the crate formats text with core::fmt outside a panic (the wasm links ${formats.join(", ")}); ` +
    "in this build that code would trap: build the text with text::cat! (src/text.rs)");
}
if (panics === 0) fail("no panic function found by name (core::panicking::panic_fmt and the like)");

// Each trapped body becomes: no locals, `unreachable`, `end`. Any signature accepts it.
const code = section(10);
const bodies = [];
const count = r.leb();
for (let i = 0; i < count; i++) {
  const start = r.pos;
  const size = r.leb();
  r.pos += size;
  bodies.push(traps.has(i) ? Buffer.from([3, 0x00, 0x00, 0x0b]) : wasm.subarray(start, r.pos));
}
code.body = Buffer.concat([encodeLeb(count), ...bodies]);

writeFileSync(wasmPath, assemble(wasm, sections.filter((s) => s !== names)));
