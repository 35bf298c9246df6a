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
// into it starts at a panic. A future `format!` would trap at once, in the tests.
//
// Needs the wasm's name section (wasm-bindgen without --remove-name-section); writes the wasm
// back without it. Fails if it finds no panic function to trap, so a toolchain that names them
// otherwise is noticed rather than quietly making the wasm larger.
//
// usage: node build/trap-panics.mjs pkg/llm_retry_bg.wasm
import { readFileSync, writeFileSync } from "node:fs";

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

let pos = 0;
const leb = () => {
  let result = 0;
  let shift = 0;
  for (;;) {
    const byte = wasm[pos++];
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return result;
  }
};
const encodeLeb = (n) => {
  const out = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return Buffer.from(out);
};
const name = () => {
  const len = leb();
  pos += len;
  return wasm.toString("utf8", pos - len, pos);
};

pos = 8;
const sections = [];
while (pos < wasm.length) {
  const id = wasm[pos++];
  const size = leb();
  sections.push({ id, start: pos, end: pos + size, body: wasm.subarray(pos, pos + size) });
  pos += size;
}
const section = (id, custom) => {
  const found = sections.find((s) => s.id === id && (custom === undefined || s.custom === custom));
  if (!found) fail(`no section ${custom ?? id}`);
  pos = found.start;
  return found;
};
for (const s of sections) {
  if (s.id !== 0) continue;
  pos = s.start;
  s.custom = name();
}

// Function indices count the imported functions first.
section(2);
let imported = 0;
for (let i = 0, n = leb(); i < n; i++) {
  name();
  name();
  const kind = wasm[pos++];
  if (kind === 0) {
    leb();
    imported++;
  } else if (kind === 1) {
    pos++;
    if (wasm[pos++] & 1) leb();
    leb();
  } else if (kind === 2) {
    if (wasm[pos++] & 1) leb();
    leb();
  } else if (kind === 3) {
    pos += 2;
  } else if (kind === 4) {
    pos++;
    leb();
  } else {
    fail(`unknown import kind ${kind}`);
  }
}

// The name section's function names (subsection 1).
const names = section(0, "name");
name();
const traps = new Set();
let panics = 0;
while (pos < names.end) {
  const sub = wasm[pos++];
  const end = leb() + pos;
  if (sub === 1) {
    for (let i = 0, n = leb(); i < n; i++) {
      const index = leb();
      const fn = name();
      if (index < imported) continue;
      if (PANIC.test(fn)) panics++;
      if (PANIC.test(fn) || FMT.test(fn)) traps.add(index - imported);
    }
  }
  pos = end;
}
if (panics === 0) fail("no panic function found by name (core::panicking::panic_fmt and the like)");

// Each trapped body becomes: no locals, `unreachable`, `end`. Any signature accepts it.
const code = section(10);
const bodies = [];
const count = leb();
for (let i = 0; i < count; i++) {
  const start = pos;
  const size = leb();
  pos += size;
  bodies.push(traps.has(i) ? Buffer.from([3, 0x00, 0x00, 0x0b]) : wasm.subarray(start, pos));
}
code.body = Buffer.concat([encodeLeb(count), ...bodies]);

const out = Buffer.concat([
  wasm.subarray(0, 8),
  ...sections
    .filter((s) => s !== names)
    .map(({ id, body }) => Buffer.concat([Buffer.from([id]), encodeLeb(body.length), body])),
]);
writeFileSync(wasmPath, out);
