// Zeroes the panic locations that nothing refers to any more, and the source paths only they
// named. A panic site passes a `core::panic::Location` — a 16-byte record in the data section:
// a pointer to its file's path, the path's length, a line and a column — to the panic function.
// build/trap-panics.mjs turns the panic functions into bare traps, and wasm-opt then drops their
// unused parameters, so no call passes the record's address any more: the records and the paths
// (`src/js/fetch.rs`, `/rustc/<hash>/library/core/src/…`, `index.crates.io-…/js-sys-…/src/…`)
// stay in the data, unread. wasm-opt cannot drop data (memory is opaque to it); nightly Rust's
// `-Zlocation-detail=none` would not emit them. This does it after linking, on stable.
//
// Only what is provably unreferenced goes, by conservative rules (a false reference keeps data,
// never the reverse):
//   - a reference is any number a LEB128 at ANY byte of the code section decodes to (every
//     `i32.const` and every load/store offset is one, among much that is not) or of the other
//     sections but the data (a global's initial value), and any 4 bytes at any byte of the data
//     (a pointer stored in data), except inside a record being dropped;
//   - a record counts as a Location only by its shape: 4-aligned, its pointer at the start of a
//     printable string whose first `len` bytes end in `.rs`, line ≥ 1, column ≥ 1, both small;
//     and only if the wasm before optimisation referred to its exact address (a panic site
//     passed it), so it is not, say, an element of a table read by index;
//   - a record is dropped when nothing refers into its 16 bytes, the pointers in the records kept
//     counted (repeated until that holds); a path when nothing refers into it or to its end.
// Data addresses do not move in wasm-opt, so the two modules' addresses agree.
//
// usage: node build/drop-panic-locations.mjs <wasm before wasm-opt> <wasm after it (rewritten)>
import { readFileSync, writeFileSync } from "node:fs";
import { reader } from "./wasm.mjs";

const [beforePath, wasmPath] = process.argv.slice(2);
const fail = (msg) => {
  console.error(`drop-panic-locations: ${msg}`);
  process.exit(1);
};

/** Every number a LEB128 (read unsigned, and signed as 32 bits) starting at any byte of `wasm`'s
 * code section decodes to, among those in [lo, hi]; with `all`, of every section but the data
 * and custom ones (a global's or an element's initial value too). */
function numbers(wasm, lo, hi, all) {
  const r = reader(wasm, fail);
  const sections = r.sections().filter((s) => (all ? s.id !== 0 && s.id !== 11 : s.id === 10));
  if (!sections.some((s) => s.id === 10)) fail("no code section");
  const out = new Set();
  for (const { start, end } of sections) {
    for (let p = start; p < end; p++) {
      let u = 0;
      for (let k = 0, shift = 0; k < 5 && p + k < end; k++, shift += 7) {
        const byte = wasm[p + k];
        u += (byte & 0x7f) * 2 ** shift;
        if (byte & 0x80) continue;
        const signed = byte & 0x40 && shift + 7 < 32 ? (u - 2 ** (shift + 7)) >>> 0 : u;
        for (const v of [u, signed]) if (v >= lo && v <= hi) out.add(v);
        break;
      }
    }
  }
  return out;
}

const wasm = readFileSync(wasmPath);
const r = reader(wasm, fail);
const data = r.sections().find((s) => s.id === 11) ?? fail("no data section");

// Active segments of memory 0 at constant offsets, as [address, file offset, size].
r.pos = data.start;
const segments = [];
for (let i = 0, n = r.leb(); i < n; i++) {
  if (r.leb() !== 0) fail(`data segment ${i} is not an active segment of memory 0`);
  if (wasm[r.pos++] !== 0x41) fail(`data segment ${i}'s offset is not an i32.const`);
  let at = r.leb();
  if (at >= 2 ** 31) fail(`data segment ${i}'s offset is negative`);
  if (wasm[r.pos++] !== 0x0b) fail(`data segment ${i}'s offset is not a constant`);
  const size = r.leb();
  segments.push([at, r.pos, size]);
  r.pos += size;
}
const lo = Math.min(...segments.map(([at]) => at));
const hi = Math.max(...segments.map(([at, , size]) => at + size));
/** The file offset of the byte at `address` in the data, or -1. */
const offset = (address) => {
  for (const [at, start, size] of segments) if (address >= at && address < at + size) return start + address - at;
  return -1;
};
const u32 = (address) => {
  const p = offset(address);
  return p >= 0 && offset(address + 3) === p + 3 ? wasm.readUInt32LE(p) : undefined;
};

// Printable strings in the data, as [address, end).
const strings = [];
for (const [at, start, size] of segments) {
  for (let p = start; p < start + size; ) {
    let q = p;
    while (q < start + size && wasm[q] >= 0x20 && wasm[q] < 0x7f) q++;
    if (q > p) strings.push([at + p - start, at + q - start]);
    p = q + 1;
  }
}
const stringAt = new Map(strings);

// Location records, by shape, that the wasm before optimisation referred to.
const before = numbers(readFileSync(beforePath), lo, hi, false);
let records = [];
for (let a = (lo + 3) & ~3; a + 16 <= hi; a += 4) {
  const [file, len, line, col] = [u32(a), u32(a + 4), u32(a + 8), u32(a + 12)];
  if (col === undefined || line === undefined || len === undefined || file === undefined) continue;
  const end = stringAt.get(file);
  if (end === undefined || len < 4 || file + len > end) continue;
  if (!wasm.toString("latin1", offset(file), offset(file) + len).endsWith(".rs")) continue;
  if (line < 1 || line > 1_000_000 || col < 1 || col > 10_000 || !before.has(a)) continue;
  records.push(a);
}
if (records.length === 0) fail("no panic location found (a 16-byte record naming a .rs file): has the toolchain changed?");

// References in the optimised wasm: the numbers in its sections, and pointers in data outside the
// records being dropped. Keep the records something refers into, until none is left to keep.
const fromCode = numbers(wasm, lo, hi, true);
let references;
for (;;) {
  const dropped = new Set(records.flatMap((a) => [a, a + 4, a + 8, a + 12])); // their words
  references = new Set(fromCode);
  for (const [at, , size] of segments) {
    for (let a = at; a + 4 <= at + size; a++) {
      const word = a - (a & 3);
      if (dropped.has(word) || (a & 3 && dropped.has(word + 4))) continue;
      const v = u32(a);
      if (v !== undefined && v >= lo && v <= hi) references.add(v);
    }
  }
  const refersInto = (from, to) => [...references].some((v) => v >= from && v <= to);
  const still = records.filter((a) => !refersInto(a, a + 15));
  if (still.length === records.length) break;
  records = still;
}
const sorted = [...references].sort((x, y) => x - y);
/** Whether anything refers to an address in [from, to]. */
const referred = (from, to) => {
  let l = 0;
  let h = sorted.length;
  while (l < h) {
    const m = (l + h) >> 1;
    if (sorted[m] < from) l = m + 1;
    else h = m;
  }
  return l < sorted.length && sorted[l] <= to;
};

let bytes = 0;
const paths = new Set();
for (const a of records) {
  const file = u32(a);
  const end = stringAt.get(file);
  if (!referred(file, end)) paths.add(file);
  wasm.fill(0, offset(a), offset(a) + 16);
  bytes += 16;
}
for (const file of paths) {
  const end = stringAt.get(file);
  wasm.fill(0, offset(file), offset(file) + end - file);
  bytes += end - file;
}
writeFileSync(wasmPath, wasm);
console.log(`drop-panic-locations: ${records.length} panic locations and ${paths.size} source paths zeroed (${bytes} bytes)`);
