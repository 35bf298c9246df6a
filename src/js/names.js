// A call's names as the wasm takes them (drive.rs `Names`): each route's breaker key by number,
// kept once per client, and the call's shape written into wasm memory in one call; the calls' ids.

/** Route keys a client numbers before it numbers them anew from 0 (see `keyTable`). */
const MAX_KEYS = 16_384;

/**
 * The table of route keys by number a call's routes are numbered in (`keyId`), called as the
 * call is read, before they are: once the client has numbered MAX_KEYS keys (a gateway passing
 * its users' models on numbers one a model), it starts a new table, so the keys it holds are
 * bounded however many models its calls name. The call keeps its table (`keyNames`) and tells
 * the wasm which it is (`keyGen`, in its shape's flags): the wasm then forgets the keys of the
 * tables before (drive.rs `Client::key`); its breakers stay, found by the key itself.
 */
export const keyTable = (options) => {
  if (options.keyNames.length >= MAX_KEYS) {
    options.keyIds = new Map();
    options.keyNames = [];
    options.lastKey = [undefined, undefined, 0];
    options.keyGen++;
  }
  return options.keyNames;
};

/** The number in its client of the route key `key(part, model)`: the wasm keeps each key once, by
 * number (`keyNames`). Found by its two parts, so a call builds no key string it has seen before. */
export const keyId = (options, part, model) => {
  // The key found last, compared first: a call's model is a new string each time, and looking
  // it up hashes it.
  const last = options.lastKey;
  if (part === last[0] && model === last[1]) return last[2];
  let byModel = options.keyIds.get(part);
  if (byModel === undefined) options.keyIds.set(part, (byModel = new Map()));
  let id = byModel.get(model);
  if (id === undefined) {
    id = options.keyNames.push(key(part, model)) - 1;
    byModel.set(model, id);
  }
  options.lastKey = [part, model, id];
  return id;
};

/** Routes a call's shape carries at most; a call with more is read from its object (drive.rs). */
const SHAPE_ROUTES = 16;

/** The wasm's memory (`setMemory`, once per client), and a view of it as numbers, made again
 * only when the memory has grown (which detaches the buffer the old view was over): a call's
 * shape is written through it at an index the wasm gives, where a view made for each call (as
 * wasm-bindgen hands a slice over) cost an allocation and two builtins' code a call. */
let memory;
let numbers;
export const setMemory = (m) => {
  memory = m;
};
export const numbersView = () => (numbers !== undefined && numbers.byteLength !== 0 ? numbers : (numbers = new Float64Array(memory.buffer)));

/** Where a call's own settings start in its shape (drive.rs SHAPE_CALL). */
const SHAPE_CALL = 2 + 2 * SHAPE_ROUTES;

/**
 * What the wasm needs of a call (from `readRequest` or `fnCall`), as numbers written into wasm
 * memory from index `at` of a view of it as f64s (drive.rs `Shape`), so it is handed over in one
 * call: `[flags, routes, keyId, attempts, keyId, attempts, …]`, then at SHAPE_CALL its per-call
 * options' settings (`callNumbers`); flags: 1 idempotent, 2 has a signal, 4 has per-call
 * options, 8 has more routes than a shape holds, then the table its keys are numbered in
 * (`keyTable`) from bit 4 on; attempts NaN for the call's own.
 */
export function shape(call, at) {
  const { ids, attempts } = call;
  const out = numbersView();
  out[at] = (call.idempotent ? 1 : 0) | (call.signal !== undefined ? 2 : 0) | (call.call !== undefined ? 4 : 0)
    | (ids.length > SHAPE_ROUTES ? 8 : 0) | (call.keyGen << 4);
  out[at + 1] = ids.length;
  for (let i = 0; i < ids.length && i < SHAPE_ROUTES; i++) {
    out[at + 2 + 2 * i] = ids[i];
    out[at + 3 + 2 * i] = attempts[i] ?? NaN;
  }
  if (call.call !== undefined) callNumbers(call.call, out, at + SHAPE_CALL);
}

/** A boolean option as a number: 1, 0, or NaN when not set. */
export const bit = (v) => (v === undefined ? NaN : v ? 1 : 0);

/** What a call may set of its own (options.js `callOptions`, and the client's options of the
 * same names), as numbers at `at` of `out` (options.rs CALL_LEN of them; NaN: not set). */
export const callNumbers = (o, out, at) => {
  out[at] = o.maxAttempts ?? NaN;
  out[at + 1] = o.deadlineMs ?? NaN;
  out[at + 2] = o.attemptTimeoutMs ?? NaN;
  out[at + 3] = o.firstTokenTimeoutMs ?? NaN;
  out[at + 4] = o.idleTimeoutMs ?? NaN;
  out[at + 5] = bit(o.idempotent);
};

/** The key of number `id` in the table `call`'s routes were numbered in. */
export const keyName = (call, id) => call.keyNames[id];

/** Numbers the calls of this module instance, for `callId` in events and `id` in reports. */
let calls = 0;
export const callId = () => ++calls;

/** The breaker key of a route: its origin and model. */
const key = (origin, model) => (model === undefined ? origin : `${origin} ${model}`);
