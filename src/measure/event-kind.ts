// What one SSE event is in each stream format (a token, the terminal event, an in-band error), read by byte search.

import {
  bytesEndWith,
  bytesEqual,
  bytesStartWith,
  HAS_CONTENT,
  HAS_ERROR,
  HAS_FINISH,
  lastInt,
  openaiKeys,
  skipSpace,
  typeSpan,
  valueAfter,
} from './event-bytes.js';
import type { StreamFormat, StreamFormatSetting } from './token-summary.js';

/** Bits of an event's kind. */
export const TOKEN = 1;
/** The upstream said the answer is over (`[DONE]`, a finish_reason, message_stop, response.completed). */
export const END = 2;
export const ERROR = 4;

const key = (k: string) => Buffer.from(`"${k}"`);
const word = (w: string) => Buffer.from(w);

const K_ERROR = key('error');
const K_TYPE = key('type');
const K_CHOICES = key('choices');
const K_COMPLETION_TOKENS = key('completion_tokens');
const K_OUTPUT_TOKENS = key('output_tokens');
const DONE = word('[DONE]');
const W_ERROR = word('error');
const W_DELTA_SUFFIX = word('.delta');
const W_RESPONSE_PREFIX = word('response.');
const W_RESPONSE_COMPLETED = word('response.completed');
const W_RESPONSE_INCOMPLETE = word('response.incomplete');
const W_RESPONSE_FAILED = word('response.failed');
const W_MESSAGE_STOP = word('message_stop');
const W_CONTENT_BLOCK_DELTA = word('content_block_delta');
const ANTHROPIC_EVENTS = [
  'message_start',
  'content_block_start',
  'content_block_delta',
  'content_block_stop',
  'message_delta',
  'message_stop',
  'ping',
].map(word);
const LEFT_BRACKET = 0x5b;

/**
 * An event as the scanner hands it over: its `event:` name (nameLen 0 when none) and its data, which is
 * data[dataStart, dataEnd) (the relayed chunk itself when the event lay in one chunk, else a capture).
 */
export interface EventBytes {
  name: Buffer;
  nameLen: number;
  data: Buffer;
  dataStart: number;
  dataEnd: number;
  /** The data was longer than the capture: only its head and tail were kept. */
  clipped: boolean;
}

/** The format a path implies, or undefined to decide by the first event. */
export function formatForPath(path: string): StreamFormat | undefined {
  const q = path.indexOf('?');
  const p = q < 0 ? path : path.slice(0, q);
  if (p.endsWith('/completions')) return 'openai';
  if (p.endsWith('/messages')) return 'anthropic';
  if (p.endsWith('/responses')) return 'responses';
  return undefined;
}

export function initialFormat(setting: StreamFormatSetting, path: string): StreamFormat | undefined {
  if (setting !== 'auto') return setting;
  return formatForPath(path);
}

/** The event's type: its `event:` name, or else the `"type"` string in its data. */
function typeOf(e: EventBytes): { buf: Buffer; start: number; end: number } | undefined {
  if (e.nameLen > 0) return { buf: e.name, start: 0, end: e.nameLen };
  const span = typeSpan(e.data, e.dataStart, e.dataEnd, K_TYPE);
  return span ? { buf: e.data, start: span[0], end: span[1] } : undefined;
}

/** The format of a stream whose path said nothing, from its first data event. */
export function detectFormat(e: EventBytes): StreamFormat {
  const t = typeOf(e);
  if (t) {
    if (bytesStartWith(t.buf, t.start, t.end, W_RESPONSE_PREFIX)) return 'responses';
    for (const name of ANTHROPIC_EVENTS) if (bytesEqual(t.buf, t.start, t.end, name)) return 'anthropic';
  }
  const s = skipSpace(e.data, e.dataStart, e.dataEnd);
  if (bytesStartWith(e.data, s, e.dataEnd, DONE)) return 'openai';
  if (valueAfter(e.data, e.dataStart, e.dataEnd, K_CHOICES) >= 0) return 'openai';
  return 'generic';
}

function openaiKind(e: EventBytes): number {
  const { data, dataStart: start, dataEnd: end } = e;
  const s = skipSpace(data, start, end);
  if (bytesStartWith(data, s, end, DONE)) return END;
  if (e.nameLen > 0 && bytesEqual(e.name, 0, e.nameLen, W_ERROR)) return ERROR;
  // Content and finish_reason live in the choices array: the scan starts at its `[` (found by memchr),
  // skipping id, object, created and model. An error body (`{"error": ...}`) has no array before its key,
  // so the whole event is scanned then.
  const open = data.indexOf(LEFT_BRACKET, s);
  const errorFirst = bytesStartWith(data, skipSpace(data, s + 1, end), end, K_ERROR);
  const keys = openaiKeys(data, open < 0 || open >= end || errorFirst ? s : open, end);
  if (keys & HAS_ERROR) return ERROR;
  let bits = keys & HAS_FINISH ? END : 0;
  if (keys & HAS_CONTENT || e.clipped) bits |= TOKEN;
  return bits;
}

function responsesKind(e: EventBytes): number {
  const t = typeOf(e);
  if (!t) return 0;
  if (bytesEqual(t.buf, t.start, t.end, W_RESPONSE_COMPLETED)) return END;
  if (bytesEqual(t.buf, t.start, t.end, W_RESPONSE_INCOMPLETE)) return END;
  if (bytesEqual(t.buf, t.start, t.end, W_RESPONSE_FAILED)) return ERROR;
  if (bytesEqual(t.buf, t.start, t.end, W_ERROR)) return ERROR;
  if (bytesEndWith(t.buf, t.start, t.end, W_DELTA_SUFFIX)) return TOKEN;
  return 0;
}

function anthropicKind(e: EventBytes): number {
  const t = typeOf(e);
  if (!t) return 0;
  if (bytesEqual(t.buf, t.start, t.end, W_CONTENT_BLOCK_DELTA)) return TOKEN;
  if (bytesEqual(t.buf, t.start, t.end, W_MESSAGE_STOP)) return END;
  if (bytesEqual(t.buf, t.start, t.end, W_ERROR)) return ERROR;
  return 0;
}

function genericKind(e: EventBytes): number {
  if (e.nameLen > 0 && bytesEqual(e.name, 0, e.nameLen, W_ERROR)) return ERROR;
  return TOKEN;
}

export function eventKind(format: StreamFormat, e: EventBytes): number {
  switch (format) {
    case 'openai':
      return openaiKind(e);
    case 'responses':
      return responsesKind(e);
    case 'anthropic':
      return anthropicKind(e);
    case 'generic':
      return genericKind(e);
  }
}

/**
 * Output tokens the event reports in its `usage`, or -1. Read only on events that are not plain tokens
 * (the final usage chunk, message_delta, response.completed) or that end the answer, to keep the search
 * off the hot path.
 */
export function outputTokensOf(format: StreamFormat, e: EventBytes): number {
  if (format === 'openai') return lastInt(e.data, e.dataStart, e.dataEnd, K_COMPLETION_TOKENS);
  if (format === 'generic') return -1;
  return lastInt(e.data, e.dataStart, e.dataEnd, K_OUTPUT_TOKENS);
}
