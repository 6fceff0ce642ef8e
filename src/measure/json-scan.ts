// Token accounting of a non-streaming JSON answer: its head and tail are copied aside as they are relayed, and read at the end.

import {
  ByteCapture,
  intAt,
  isSpace,
  KEY_CONTENT,
  KEY_ERROR,
  KEY_TEXT,
  KEY_TOOL_CALLS,
  keyAt,
  skipSpace,
} from './event-bytes.js';
import type { EndClass, StreamFormat, TokenSummary } from './token-summary.js';

/**
 * The body goes on to the client untouched; only its first and last 8 KiB are copied (an answer opens
 * with `error` or its content and closes with `usage`), so memory stays bounded whatever its size.
 */
const HEAD = 8 * 1024;
const TAIL = 8 * 1024;

export class JsonAnswerScanner implements TokenSummary {
  readonly kind = 'json' as const;
  readonly format: StreamFormat = 'openai';
  readonly events = 0;
  readonly tokenEvents = 0;
  readonly firstTokenAt = 0;
  readonly lastTokenAt = 0;
  readonly gaps = undefined;
  readonly maxGapMs = 0;
  heldBack = false;
  outputTokens = -1;
  end: EndClass = 'truncated';
  /** The body is a completion (choices, content with a role, output, usage of output tokens, or an error). */
  answer = false;
  private readonly capture = new ByteCapture(HEAD, TAIL);

  feed(chunk: Buffer, _now: number): void {
    this.capture.append(chunk, 0, chunk.length);
  }

  finish(how: 'upstream_end' | 'cut' | 'client_abort'): EndClass {
    // What came of the body (all of it, or its head when it was cut) says whether it is a completion.
    const read = jsonAnswer(this.capture.buf, this.capture.length);
    this.answer = read.answer;
    if (how === 'client_abort') this.end = 'client_abort';
    else if (how === 'cut') this.end = 'truncated';
    else {
      this.outputTokens = read.outputTokens;
      this.end = read.error ? 'inband_error' : read.empty ? 'empty' : 'complete';
    }
    return this.end;
  }
}

const QUOTE = 0x22;
const COLON = 0x3a;
const LEFT_BRACKET = 0x5b;
const RIGHT_BRACKET = 0x5d;

// The keys a JSON answer is read by (without their opening quote), and their slots in `first`.
const KEY_CHOICES = Buffer.from('choices"');
const KEY_COMPLETION_TOKENS = Buffer.from('completion_tokens"');
const KEY_ROLE = Buffer.from('role"');
const KEY_OUTPUT = Buffer.from('output"');
const KEY_OUTPUT_TOKENS = Buffer.from('output_tokens"');
const ERROR = 0;
const CONTENT = 1;
const CHOICES = 2;
const TEXT = 3;
const TOOL_CALLS = 4;
const ROLE = 5;
const OUTPUT = 6;

/** Where the first value of each key with a slot starts (-1: none); usage counts are kept apart, last one wins. */
const first = new Int32Array(7);

/**
 * A non-streaming JSON answer (its head and tail, data[0, len)): an in-band error, whether it carries
 * content, and its output tokens. OpenAI (choices[].message.content / text / tool_calls) and Anthropic
 * (content[]). One pass over the bytes, looking only at quotes: a JSON key `"key"` cannot occur inside a
 * string value (a quote there is escaped), so a quote followed by a known key, a colon and a value is that
 * key. A dozen native searches cost more here, each ~0.2 µs of call alone (see bench/ throughput).
 */
export function jsonAnswer(
  data: Buffer,
  len: number,
): { answer: boolean; error: boolean; empty: boolean; outputTokens: number } {
  first.fill(-1);
  let completionTokens = -1;
  let outputTokensKey = -1;
  for (let i = 0; i < len; i++) {
    if (data[i] !== QUOTE) continue;
    const k = i + 1;
    const c = data[k];
    let key: Buffer;
    let slot = -1;
    if (c === 0x65) {
      key = KEY_ERROR;
      slot = ERROR;
    } else if (c === 0x63) {
      if (data[k + 1] === 0x68) {
        key = KEY_CHOICES;
        slot = CHOICES;
      } else if (data[k + 2] === 0x6d) key = KEY_COMPLETION_TOKENS;
      else {
        key = KEY_CONTENT;
        slot = CONTENT;
      }
    } else if (c === 0x74) {
      const text = data[k + 1] === 0x65;
      key = text ? KEY_TEXT : KEY_TOOL_CALLS;
      slot = text ? TEXT : TOOL_CALLS;
    } else if (c === 0x72) {
      key = KEY_ROLE;
      slot = ROLE;
    } else if (c === 0x6f) {
      if (data[k + 6] === 0x5f) key = KEY_OUTPUT_TOKENS;
      else {
        key = KEY_OUTPUT;
        slot = OUTPUT;
      }
    } else continue;
    if (!keyAt(data, k, len, key)) continue;
    let j = k + key.length;
    while (j < len && isSpace(data[j])) j++;
    if (data[j] !== COLON) continue;
    j++;
    while (j < len && isSpace(data[j])) j++;
    if (j >= len) break;
    if (slot >= 0) {
      if (first[slot] === -1) first[slot] = j;
    } else {
      // Usage counts are cumulative: the last one wins.
      const n = intAt(data, j, len);
      if (n >= 0 && key === KEY_COMPLETION_TOKENS) completionTokens = n;
      else if (n >= 0) outputTokensKey = n;
    }
    // Go on from the value: a string value's own quotes are looked at as keys, and are none.
    i = j - 1;
  }
  const s = skipSpace(data, 0, len);
  // A top-level {"error": ...}: the key comes first in every server's error body.
  const errorAt = first[ERROR]!;
  const error = errorAt >= 0 && errorAt < Math.min(len, s + 16) && data[errorAt] !== 0x6e; // 'n'ull
  const outputTokens = completionTokens >= 0 ? completionTokens : outputTokensKey;
  const stringAt = (v: number) => v >= 0 && data[v] === QUOTE && v + 1 < len && data[v + 1] !== QUOTE;
  let empty: boolean;
  if (outputTokens >= 0) empty = outputTokens === 0;
  else {
    // A non-empty list: content blocks, or tool calls.
    const listAt = (v: number) =>
      v >= 0 && data[v] === LEFT_BRACKET && data[skipSpace(data, v + 1, len)] !== RIGHT_BRACKET;
    const content =
      stringAt(first[CONTENT]!) || listAt(first[CONTENT]!) || stringAt(first[TEXT]!) || listAt(first[TOOL_CALLS]!);
    empty = !content;
  }
  // Only completions are answers: a model list or an embedding is not judged for tokens or emptiness.
  const answer =
    error ||
    outputTokens >= 0 ||
    first[CHOICES]! >= 0 ||
    (first[CONTENT]! >= 0 && first[ROLE]! >= 0) ||
    first[OUTPUT]! >= 0;
  return { answer, error, empty: !error && empty, outputTokens };
}
