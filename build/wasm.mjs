// The little of the wasm binary format that make package's steps read and rewrite: sections,
// LEB128 numbers, names and import descriptors.

/** Unsigned LEB128. */
export const encodeLeb = (n) => {
  const out = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return Buffer.from(out);
};

export const encodeName = (text) => {
  const bytes = Buffer.from(text, "utf8");
  return Buffer.concat([encodeLeb(bytes.length), bytes]);
};

/** A cursor over `wasm`: `pos` is where the next read starts. `fail(msg)` reports bad input. */
export function reader(wasm, fail) {
  const r = {
    pos: 0,
    leb() {
      let result = 0;
      let shift = 0;
      for (;;) {
        const byte = wasm[r.pos++];
        result += (byte & 0x7f) * 2 ** shift;
        shift += 7;
        if (byte < 0x80) return result;
      }
    },
    name() {
      const len = r.leb();
      r.pos += len;
      return wasm.toString("utf8", r.pos - len, r.pos);
    },
    limits() {
      const flags = wasm[r.pos++];
      r.leb();
      if (flags & 1) r.leb();
    },
    /** Skips an import's descriptor; returns its kind (0 a function). */
    importDesc() {
      const kind = wasm[r.pos++];
      if (kind === 0 || kind === 4) {
        if (kind === 4) r.pos++;
        r.leb();
      } else if (kind === 1) {
        r.pos++;
        r.limits();
      } else if (kind === 2) {
        r.limits();
      } else if (kind === 3) {
        r.pos += 2;
      } else {
        fail(`unknown import kind ${kind}`);
      }
      return kind;
    },
    /** The module's sections, each as its id, where its body starts and ends, and the body; a
     * custom section (id 0) also with its name. */
    sections() {
      const out = [];
      r.pos = 8;
      while (r.pos < wasm.length) {
        const id = wasm[r.pos++];
        const size = r.leb();
        const s = { id, start: r.pos, end: r.pos + size, body: wasm.subarray(r.pos, r.pos + size) };
        if (id === 0) s.custom = r.name();
        out.push(s);
        r.pos = s.end;
      }
      return out;
    },
  };
  return r;
}

/** The module again: `wasm`'s header, then each section's (maybe replaced) body. */
export const assemble = (wasm, sections) =>
  Buffer.concat([
    wasm.subarray(0, 8),
    ...sections.map(({ id, body }) => Buffer.concat([Buffer.from([id]), encodeLeb(body.length), body])),
  ]);
