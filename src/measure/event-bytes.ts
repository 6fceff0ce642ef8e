// Bounded capture of an event's (or a JSON answer's) bytes, and the byte searches token accounting makes on it instead of JSON.parse.

const QUOTE = 0x22;
const COLON = 0x3a;
const SPACE = 0x20;
const TAB = 0x09;
const CR = 0x0d;
const LF = 0x0a;

/**
 * Keeps the first `head` and the last `tail` bytes of what is appended, so memory per stream is fixed
 * whatever the event's size: keys that open an object (type, error, content) are in the head, keys that
 * close one (finish_reason, usage) in the tail. Bytes between are counted, not kept.
 */
export class ByteCapture {
  readonly buf: Buffer;
  /** Bytes appended since the last reset. */
  total = 0;
  /** Bytes of `buf` in use: min(total, head + tail). */
  length = 0;

  constructor(
    private readonly head: number,
    private readonly tail: number,
  ) {
    this.buf = Buffer.allocUnsafe(head + tail);
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
    const cap = this.buf.length;
    if (this.length + n <= cap) {
      src.copy(this.buf, this.length, start, end);
      this.length += n;
      return;
    }
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

function isSpace(b: number | undefined): boolean {
  return b === SPACE || b === TAB || b === CR || b === LF;
}

/**
 * Where the value of `"key"` starts in buf[0, len) (after the colon and any spaces), or -1. A JSON key
 * `"key"` cannot occur inside a string value (a quote there is escaped), so a byte match is a key.
 */
export function valueAfter(buf: Buffer, len: number, key: Buffer, from = 0): number {
  let i = buf.indexOf(key, from);
  while (i >= 0 && i + key.length < len) {
    let j = i + key.length;
    while (j < len && isSpace(buf[j])) j++;
    if (buf[j] === COLON) {
      j++;
      while (j < len && isSpace(buf[j])) j++;
      if (j < len) return j;
      return -1;
    }
    i = buf.indexOf(key, i + 1);
  }
  return -1;
}

/** True when `"key"` has a non-empty string value (`"content":"x`), as a delta that carries text has. */
export function hasText(buf: Buffer, len: number, key: Buffer): boolean {
  const v = valueAfter(buf, len, key);
  return v >= 0 && buf[v] === QUOTE && v + 1 < len && buf[v + 1] !== QUOTE;
}

/** True when `"key"` has a value other than null (an error object or message). */
export function hasNonNull(buf: Buffer, len: number, key: Buffer): boolean {
  const v = valueAfter(buf, len, key);
  return v >= 0 && buf[v] !== 0x6e; // 'n'ull
}

/** True when `"key"` has a string value (of any length). */
export function hasString(buf: Buffer, len: number, key: Buffer): boolean {
  const v = valueAfter(buf, len, key);
  return v >= 0 && buf[v] === QUOTE;
}

/** The last integer value of `"key"` in buf[0, len), or -1 (usage counts are cumulative: the last one wins). */
export function lastInt(buf: Buffer, len: number, key: Buffer): number {
  let found = -1;
  let from = 0;
  for (;;) {
    const v = valueAfter(buf, len, key, from);
    if (v < 0) return found;
    let n = 0;
    let j = v;
    while (j < len && buf[j]! >= 0x30 && buf[j]! <= 0x39 && j - v < 12) n = n * 10 + (buf[j++]! - 0x30);
    if (j > v) found = n;
    from = v;
  }
}

/** True when buf[start, end) equals `word`. */
export function bytesEqual(buf: Buffer, start: number, end: number, word: Buffer): boolean {
  return end - start === word.length && buf.compare(word, 0, word.length, start, end) === 0;
}

/** True when buf[start, end) ends with `suffix`. */
export function bytesEndWith(buf: Buffer, start: number, end: number, suffix: Buffer): boolean {
  return end - start >= suffix.length && buf.compare(suffix, 0, suffix.length, end - suffix.length, end) === 0;
}

/**
 * The span of the string value of `"type"` in buf[0, len), as [start, end), or undefined. Used for an
 * event that came without an `event:` line (its type then is only in its data).
 */
export function typeSpan(buf: Buffer, len: number, key: Buffer): [number, number] | undefined {
  const v = valueAfter(buf, len, key);
  if (v < 0 || buf[v] !== QUOTE) return undefined;
  const close = buf.indexOf(QUOTE, v + 1);
  if (close < 0 || close >= len) return undefined;
  return [v + 1, close];
}

/** Index of the first byte that is not JSON whitespace, from `from`. */
export function skipSpace(buf: Buffer, len: number, from = 0): number {
  let i = from;
  while (i < len && isSpace(buf[i])) i++;
  return i;
}
