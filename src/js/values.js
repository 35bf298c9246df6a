// Reading JavaScript values that may be anything (a Proxy, a getter that throws, a value of the
// wrong type) and naming what one is in an error message. Shared by the other files of the wasm
// layer's JavaScript half (values.rs lists them).

/** Reads a property of a value that may be anything (a Proxy, a getter that throws). */
export const field = (v, k) => {
  try {
    return v?.[k];
  } catch {
    return undefined;
  }
};

export const text = (v) => (typeof v === "string" ? v : "");

/** An object made by `{ … }` (or with a null prototype), not a URL, Map, Date, Promise, … */
export const plain = (v) => {
  try {
    const proto = Object.getPrototypeOf(v);
    return proto === Object.prototype || proto === null;
  } catch {
    return false;
  }
};

/** `got string "3"`, `got number 5`, `got object`, `got URL`: what a message says about a value. */
export const got = (v) =>
  typeof v === "string" ? `got string "${v.length > 100 ? `${v.slice(0, 100)}…` : v}"`
  : typeof v === "number" || typeof v === "boolean" ? `got ${typeof v} ${v}`
  : v === null ? "got null"
  : Array.isArray(v) ? "got array"
  : typeof v === "object" && !plain(v) ? `got ${text(field(field(v, "constructor"), "name")) || "object"}`
  : `got ${typeof v}`;

/** A header name (an RFC 9110 token). */
export const NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export const fail = (Class, path, rule, v) => {
  throw new Class(`${path} must be ${rule} (${got(v)})`);
};

/** The error for a transport that resolved to something that is not a response. */
export const notResponse = (v) => new TypeError(`fetch resolved to a non-Response (${got(v)})`);
