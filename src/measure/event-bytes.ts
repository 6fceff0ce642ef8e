// Bounded capture of an event's (or a JSON answer's) bytes, and the byte searches token accounting makes on it instead of JSON.parse.

const QUOTE = 0x22;
const COLON = 0x3a;
const SPACE = 0x20;
const TAB = 0x09;
const CR = 0x0d;
const LF = 0x0a;
/** What a capture holds before it grows (answers and events are mostly shorter). */
const INITIAL_BYTES = 1024;

/**
 * Keeps the first `head` and the last `tail` bytes of what is appended, so memory per stream is fixed
 * whatever the event's size: keys that open an object (type, error, content) are in the head, keys that
 * close one (finish_reason, usage) in the tail. Bytes between are counted, not kept. The buffer starts
 * small and grows to head + tail only for an answer that long: most answers are a few hundred bytes, and
 * a 16 KiB buffer per JSON answer is memory outside the heap that the GC must then account for (at 12,000
 * answers a second, ~190 MiB a second of it; bench/ throughput).
 */
export class ByteCapture {
  buf: Buffer;
  /** Bytes appended since the last reset. */
  total = 0;
  /** Bytes of `buf` in use: min(total, head + tail). */
  length = 0;
  private readonly cap: number;

  constructor(
    private readonly head: number,
    private readonly tail: number,
  ) {
    this.cap = head + tail;
    // Under 4 KiB, a slice of Node's shared buffer pool rather than an allocation of its own.
    this.buf = Buffer.allocUnsafe(Math.min(this.cap, INITIAL_BYTES));
  }

  /** Makes room for `need` bytes (at most head + tail), keeping what is held. */
  private grow(need: number): void {
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(Math.min(size, this.cap));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  reset(): void {
    this.total = 0;
    this.length = 0;
  }

  /** True when bytes were dropped from the middle (the capture is head + tail, not the whole). */
  get clipped(): boolean {
    return this.total > this.length;
  }

  append(src: Buffer, start: number, end: number): void {
    const n = end - start;
    if (n <= 0) return;
    this.total += n;
    const cap = this.cap;
    if (this.length + n <= cap) {
      if (this.length + n > this.buf.length) this.grow(this.length + n);
      src.copy(this.buf, this.length, start, end);
      this.length += n;
      return;
    }
    if (this.buf.length < cap) this.grow(cap);
    // Fill the rest, then keep the tail region [head, cap) as the last `tail` bytes.
    let from = start;
    if (this.length < cap) {
      const room = cap - this.length;
      src.copy(this.buf, this.length, from, from + room);
      from += room;
      this.length = cap;
    }
    const rest = end - from;
    if (rest >= this.tail) {
      src.copy(this.buf, this.head, end - this.tail, end);
    } else {
      this.buf.copyWithin(this.head, this.head + rest, cap);
      src.copy(this.buf, cap - rest, from, end);
    }
  }

  appendByte(byte: number): void {
    if (this.length < this.buf.length) {
      this.buf[this.length++] = byte;
      this.total++;
      return;
    }
    ONE[0] = byte;
    this.append(ONE, 0, 1);
  }
}

const ONE = Buffer.alloc(1);

export function isSpace(b: number | undefined): boolean {
  return b === SPACE || b === TAB || b === CR || b === LF;
}

/**
 * Where the value of `"key"` starts in buf[start, end) (after the colon and any spaces), or -1. A JSON key
 * `"key"` cannot occur inside a string value (a quote there is escaped), so a byte match is a key.
 */
export function valueAfter(buf: Buffer, start: number, end: number, key: Buffer): number {
  // A capture's buffer is larger than what it holds: a search for a missing key must stop at `end`, not
  // run on through stale bytes to the buffer's end (16 KiB for a JSON answer's capture).
  const hay = end < buf.length ? buf.subarray(0, end) : buf;
  let i = hay.indexOf(key, start);
  while (i >= 0 && i + key.length < end) {
    let j = i + key.length;
    while (j < end && isSpace(buf[j])) j++;
    if (buf[j] === COLON) {
      j++;
      while (j < end && isSpace(buf[j])) j++;
      return j < end ? j : -1;
    }
    i = hay.indexOf(key, i + 1);
  }
  return -1;
}

/** The last integer value of `"key"` in buf[start, end), or -1 (usage counts are cumulative: the last one wins). */
export function lastInt(buf: Buffer, start: number, end: number, key: Buffer): number {
  let found = -1;
  let from = start;
  for (;;) {
    const v = valueAfter(buf, from, end, key);
    if (v < 0) return found;
    const n = intAt(buf, v, end);
    if (n >= 0) found = n;
    from = v;
  }
}

/** The integer (up to 12 digits) at buf[v], or -1 when no digit is there. */
export function intAt(buf: Buffer, v: number, end: number): number {
  let n = 0;
  let j = v;
  while (j < end && buf[j]! >= 0x30 && buf[j]! <= 0x39 && j - v < 12) n = n * 10 + (buf[j++]! - 0x30);
  return j > v ? n : -1;
}

/** True when buf[start, end) equals `word`. */
export function bytesEqual(buf: Buffer, start: number, end: number, word: Buffer): boolean {
  if (end - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (buf[start + i] !== word[i]) return false;
  return true;
}

/** True when buf[start, end) starts with `word`. */
export function bytesStartWith(buf: Buffer, start: number, end: number, word: Buffer): boolean {
  return end - start >= word.length && bytesEqual(buf, start, start + word.length, word);
}

/** True when buf[start, end) ends with `suffix`. */
export function bytesEndWith(buf: Buffer, start: number, end: number, suffix: Buffer): boolean {
  return end - start >= suffix.length && bytesEqual(buf, end - suffix.length, end, suffix);
}

/**
 * The span of the string value of `"type"` in buf[start, end), as [start, end), or undefined. Used for an
 * event that came without an `event:` line (its type then is only in its data).
 */
export function typeSpan(buf: Buffer, start: number, end: number, key: Buffer): [number, number] | undefined {
  const v = valueAfter(buf, start, end, key);
  if (v < 0 || buf[v] !== QUOTE) return undefined;
  const close = buf.indexOf(QUOTE, v + 1);
  if (close < 0 || close >= end) return undefined;
  return [v + 1, close];
}

/** Index of the first byte that is not JSON whitespace, from `from`. */
export function skipSpace(buf: Buffer, from: number, end: number): number {
  let i = from;
  while (i < end && isSpace(buf[i])) i++;
  return i;
}

// The keys of an OpenAI chunk (without their opening quote), told apart by their first letter in one pass
// (see openaiKeys); a JSON answer's reader shares the ones it also reads.
export const KEY_CONTENT = Buffer.from('content"');
export const KEY_TEXT = Buffer.from('text"');
const KEY_REASONING_CONTENT = Buffer.from('reasoning_content"');
const KEY_REASONING = Buffer.from('reasoning"');
export const KEY_TOOL_CALLS = Buffer.from('tool_calls"');
const KEY_FINISH = Buffer.from('finish_reason"');
export const KEY_ERROR = Buffer.from('error"');

/** Bits openaiKeys answers. */
export const HAS_CONTENT = 1;
export const HAS_FINISH = 2;
export const HAS_ERROR = 4;

/** True when buf[at, end) starts with `key`. */
export function keyAt(buf: Buffer, at: number, end: number, key: Buffer): boolean {
  if (at + key.length > end) return false;
  for (let i = 0; i < key.length; i++) if (buf[at + i] !== key[i]) return false;
  return true;
}

/**
 * One pass over an OpenAI chunk's JSON in buf[start, end): does it carry content (a non-empty content,
 * text or reasoning string, or tool_calls), a finish_reason, an error? A JS loop over the bytes, looking
 * only at quotes, costs less than the several native searches it replaces (each ~0.2 µs of call alone).
 */
export function openaiKeys(buf: Buffer, start: number, end: number): number {
  let bits = 0;
  for (let i = start; i < end; i++) {
    if (buf[i] !== QUOTE) continue;
    const k = i + 1;
    const c = buf[k];
    let key: Buffer | undefined;
    if (c === 0x63) key = KEY_CONTENT;
    else if (c === 0x66) key = KEY_FINISH;
    else if (c === 0x74) key = buf[k + 1] === 0x65 ? KEY_TEXT : KEY_TOOL_CALLS;
    else if (c === 0x65) key = KEY_ERROR;
    else if (c === 0x72) key = buf[k + 9] === 0x5f ? KEY_REASONING_CONTENT : KEY_REASONING;
    else continue;
    if (!keyAt(buf, k, end, key)) continue;
    let j = k + key.length;
    while (j < end && isSpace(buf[j])) j++;
    if (buf[j] !== COLON) continue;
    j++;
    while (j < end && isSpace(buf[j])) j++;
    if (j >= end) break;
    const v = buf[j];
    if (key === KEY_FINISH) {
      if (v === QUOTE) bits |= HAS_FINISH;
    } else if (key === KEY_ERROR) {
      if (v !== 0x6e) bits |= HAS_ERROR;
    } else if (key === KEY_TOOL_CALLS) {
      if (v === 0x5b) bits |= HAS_CONTENT;
    } else if (v === QUOTE && j + 1 < end && buf[j + 1] !== QUOTE) bits |= HAS_CONTENT;
    // finish_reason closes a choice: with content already seen, nothing after it changes the answer.
    if (key === KEY_FINISH && (bits & HAS_CONTENT) !== 0) break;
    // Go on from the value: a string value's own quotes are skipped as non-keys by the checks above.
    i = j - 1;
  }
  return bits;
}
